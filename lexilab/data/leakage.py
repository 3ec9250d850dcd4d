"""Leakage check: exact and near-duplicate texts across the splits of one dataset and across
datasets, over every text field (inputs *and* targets).

Texts are normalised (Unicode NFKC, lower case, punctuation → space, whitespace collapsed).
Exact duplicates share a normalised text. Near duplicates are pairs whose sets of word
``ngram``-shingles have Jaccard similarity ≥ ``threshold``: candidates come from MinHash
signatures (Broder, "On the resemblance and containment of documents", 1997) bucketed by
LSH banding (Indyk & Motwani 1998; Leskovec, Rajaraman & Ullman, *Mining of Massive
Datasets*, ch. 3), and every candidate is then verified with the exact Jaccard similarity, so
reported pairs are never estimates. Texts with fewer than ``min_tokens`` normalised words are
skipped (too generic for a match to mean a leak: "thank you"); they are counted.

A pair is classified by where its two occurrences sit:

- ``train-eval``: one in a train split, the other in val / calibration / test (of the same or
  another dataset) — a **leak**; policy ``drop`` removes the train-side example;
- ``eval-eval``: two different evaluation splits (e.g. val vs test) — reported;
- ``same-split``: the same split of two datasets (e.g. topics7/train vs 20newsgroups/train,
  which share source rows) — counted only, not a leak.
Pairs inside one dataset split, and fields of one example, are not pairs.
"""
from __future__ import annotations

import hashlib
import re
import unicodedata
import warnings
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from lexilab.data.registry import Dataset
from lexilab.errors import LexilabError

POLICIES = ("warn", "drop", "fail")
EVAL_SPLITS = ("val", "calibration", "test")
_PUNCT = re.compile(r"[^\w\s]|_")
_NON_ASCII_PUNCT = re.compile(r"[^\w\s\x00-\x7f]")
# ASCII bytes: letters and digits kept, everything else (punctuation, "_", whitespace) → space;
# bytes >= 128 (parts of UTF-8 sequences) pass through and are handled by the regex.
_ASCII_TABLE = bytes(c if (48 <= c <= 57 or 97 <= c <= 122 or c >= 128) else 32 for c in range(256))


def normalize(text: str) -> str:
    r"""NFKC, lower case, punctuation → space, whitespace collapsed.

    Same result as ``" ".join(re.sub(r"[^\w\s]|_", " ", nfkc(text).lower()).split())``, with
    the ASCII part done by ``bytes.translate`` (several times faster on long articles).
    """
    text = unicodedata.normalize("NFKC", text).lower()
    text = text.encode("utf-8", "surrogatepass").translate(_ASCII_TABLE).decode("utf-8", "surrogatepass")
    if not text.isascii():
        text = _NON_ASCII_PUNCT.sub(" ", text)
    return " ".join(text.split())


def category(split_a: str, split_b: str) -> str:
    if (split_a == "train") != (split_b == "train"):
        return "train-eval"
    return "same-split" if split_a == split_b else "eval-eval"


@dataclass
class LeakageReport:
    """Pairs of duplicate texts and their counts per pair of ``dataset/split`` locations."""

    settings: dict
    counts: dict[str, dict] = field(default_factory=dict)  # "a/split ~ b/split" → {exact, near, category}
    pairs: list[dict] = field(default_factory=list)  # train-eval and eval-eval pairs (capped)
    pairs_truncated: bool = False
    train_side: dict[str, set[str]] = field(default_factory=dict)  # dataset → ids of leaking train examples
    texts: int = 0
    unique_texts: int = 0
    short_texts: int = 0

    def total(self, cat: str = "train-eval") -> int:
        return sum(c["exact"] + c["near"] for c in self.counts.values() if c["category"] == cat)

    def leaks(self) -> list[dict]:
        return [p for p in self.pairs if p["category"] == "train-eval"]

    def summary(self, max_rows: int = 30) -> str:
        lines = [f"leakage: {self.texts} texts ({self.unique_texts} distinct after normalisation, "
                 f"{self.short_texts} shorter than {self.settings['min_tokens']} words skipped); "
                 f"near = Jaccard ≥ {self.settings['threshold']} on word {self.settings['ngram']}-grams"]
        rows = sorted(self.counts.items(), key=lambda kv: ({"train-eval": 0, "eval-eval": 1}.get(kv[1]["category"], 2),
                                                           -(kv[1]["exact"] + kv[1]["near"]), kv[0]))
        if not rows:
            lines.append("  no duplicate texts across splits or datasets")
        width = max((len(k) for k, _ in rows[:max_rows]), default=10)
        for key, c in rows[:max_rows]:
            lines.append(f"  {key:<{width}}  {c['category']:<10}  exact {c['exact']:>6}  near {c['near']:>6}")
        if len(rows) > max_rows:
            lines.append(f"  ... {len(rows) - max_rows} more location pairs")
        dropped = sum(len(v) for v in self.train_side.values())
        lines.append(f"  leaks (train vs eval pairs): {self.total('train-eval')}; train examples involved: {dropped}"
                     f"; eval-eval overlaps: {self.total('eval-eval')}")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {"settings": self.settings, "counts": self.counts, "pairs": self.pairs,
                "pairs_truncated": self.pairs_truncated,
                "train_side": {k: sorted(v) for k, v in self.train_side.items()},
                "texts": self.texts, "unique_texts": self.unique_texts, "short_texts": self.short_texts}


def _labelled(datasets: Sequence[Dataset] | dict[str, Dataset]) -> list[tuple[str, Dataset]]:
    """(label, dataset) pairs: a mapping's keys (e.g. task names) or the datasets' names."""
    if isinstance(datasets, dict):
        return [(str(k), d) for k, d in datasets.items()]
    items = [(d.name, d) for d in datasets]
    names = [n for n, _ in items]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise LexilabError(f"leakage: dataset names must be unique, found {dup} twice (pass a mapping with unique keys)")
    return items


def _field_values(example: dict, fld: str) -> Iterable[tuple[str, str]]:
    value = example.get(fld)
    if isinstance(value, str):
        yield fld, value
    elif isinstance(value, list):
        for i, v in enumerate(value):
            if isinstance(v, str):
                yield f"{fld}[{i}]", v


def _token_hashes(tokens: list[str]) -> np.ndarray:
    """A stable 64-bit hash (BLAKE2b) per token; each distinct token is hashed once."""
    codes, distinct = pd.factorize(np.array(tokens, dtype=object))
    hashes = np.fromiter(
        (int.from_bytes(hashlib.blake2b(t.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "little")
         for t in distinct), dtype=np.uint64, count=len(distinct))
    return hashes[codes]


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser: spreads combined token hashes over all 64 bits."""
    x = x ^ (x >> np.uint64(30))
    x = x * np.uint64(0xBF58476D1CE4E5B9)
    x = x ^ (x >> np.uint64(27))
    x = x * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _shingles(tokens: np.ndarray, lengths: np.ndarray, ngram: int) -> tuple[np.ndarray, np.ndarray]:
    """(shingle hashes of all docs, concatenated; start offset of each doc). Every doc ≥ ngram tokens."""
    ends = np.cumsum(lengths)
    with np.errstate(over="ignore"):
        acc = tokens[: len(tokens) - ngram + 1].copy()
        for k in range(1, ngram):
            acc = acc * np.uint64(0x9E3779B97F4A7C15) + tokens[k: len(tokens) - ngram + 1 + k]
        # windows that start in the last ngram-1 tokens of a doc run into the next doc: drop them
        valid = np.ones(len(acc), dtype=bool)
        cross = (ends[:, None] - np.arange(1, ngram)[None, :]).ravel()
        valid[cross[cross < len(acc)]] = False
        starts = np.concatenate([[0], np.cumsum(lengths - ngram + 1)[:-1]]).astype(np.int64)
        return _mix(acc[valid]), starts


def _minhash(shingles: np.ndarray, starts: np.ndarray, num_perm: int, seed: int, workers: int) -> np.ndarray:
    """(docs, num_perm) uint32 MinHash signatures with multiply-shift hash functions."""
    rng = np.random.default_rng(seed)
    a = rng.integers(1, 2**63, size=num_perm, dtype=np.uint64) * np.uint64(2) + np.uint64(1)  # odd
    b = rng.integers(0, 2**63, size=num_perm, dtype=np.uint64)
    sig = np.empty((len(starts), num_perm), dtype=np.uint32)
    # Chunks of whole docs (~1M shingles each) keep temporaries small and run in threads
    # (numpy releases the GIL inside ufuncs).
    bounds = [0]
    target = 1 << 20
    edges = np.searchsorted(starts, np.arange(target, len(shingles), target))
    for e in np.unique(edges):
        if 0 < e < len(starts) and e > bounds[-1]:
            bounds.append(int(e))
    bounds.append(len(starts))

    def run(lo: int, hi: int) -> None:
        begin = int(starts[lo])
        end = int(starts[hi]) if hi < len(starts) else len(shingles)
        chunk, offsets = shingles[begin:end], starts[lo:hi] - begin
        with np.errstate(over="ignore"):
            for k in range(num_perm):
                h = (chunk * a[k] + b[k]) >> np.uint64(32)
                sig[lo:hi, k] = np.minimum.reduceat(h, offsets)

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        list(pool.map(lambda lohi: run(*lohi), zip(bounds[:-1], bounds[1:])))
    return sig


def _lsh_candidates(sig: np.ndarray, bands: int) -> np.ndarray:
    """Unique (i, j), i < j, of signature rows that agree on every row of at least one band."""
    n, k = sig.shape
    rows = k // bands
    idx = np.arange(n)
    found = []
    for band in range(bands):
        block = sig[idx, band * rows:(band + 1) * rows].astype(np.uint64)
        key = np.zeros(len(idx), dtype=np.uint64)
        with np.errstate(over="ignore"):
            for col in range(rows):
                key = key * np.uint64(0x100000001B3) + block[:, col]
        order = np.argsort(key, kind="stable")
        sk = key[order]
        starts = np.flatnonzero(np.concatenate([[True], sk[1:] != sk[:-1]]))
        sizes = np.diff(np.concatenate([starts, [len(sk)]]))
        pairs2 = starts[sizes == 2]  # most buckets with a collision hold two docs: vectorised
        if len(pairs2):
            a, b = idx[order[pairs2]], idx[order[pairs2 + 1]]
            found.append(np.minimum(a, b) * n + np.maximum(a, b))
        for start, size in zip(starts[sizes > 2], sizes[sizes > 2]):
            members = np.sort(idx[order[start:start + size]])
            ii, jj = np.triu_indices(len(members), 1)
            found.append(members[ii] * n + members[jj])
    if not found:
        return np.zeros((0, 2), dtype=np.int64)
    codes = np.unique(np.concatenate(found))
    return np.stack([codes // n, codes % n], axis=1)


class LeakageWarning(UserWarning):
    """Emitted by policy ``warn`` when train examples duplicate evaluation examples."""


def find_leaks(datasets: Sequence[Dataset] | dict[str, Dataset], *, threshold: float = 0.8, ngram: int = 3,
               min_tokens: int = 4, num_perm: int = 64, bands: int = 16, seed: int = 0,
               max_pairs: int = 10000, workers: int = 2) -> LeakageReport:
    """Find exact and near-duplicate texts across splits and datasets (see the module doc).

    ``num_perm`` MinHash functions in ``bands`` bands: a pair with Jaccard s becomes a candidate
    with probability 1 - (1 - s^r)^bands, r = num_perm / bands (64 / 16: 0.9998 at s = 0.8).
    """
    if not 0.0 < threshold <= 1.0 or ngram < 1 or min_tokens < 1 or num_perm % bands:
        raise LexilabError("leakage: need 0 < threshold <= 1, ngram >= 1, min_tokens >= 1, num_perm divisible by bands")
    items = _labelled(datasets)
    settings = {"threshold": threshold, "ngram": ngram, "min_tokens": min_tokens, "num_perm": num_perm,
                "bands": bands, "seed": seed, "datasets": {label: d.name for label, d in items}}
    report = LeakageReport(settings=settings)

    locs: list[tuple[str, str]] = []  # (dataset, split)
    occ_loc: list[int] = []
    occ_id: list[str] = []
    occ_field: list[str] = []
    occ_uid: list[int] = []
    uid_of: dict[str, int] = {}
    norm_of: dict[str, str] = {}  # raw → normalised; datasets built from one source repeat texts
    norms: list[str] = []
    for label, ds in items:
        for split, rows in ds.splits.items():
            locs.append((label, split))
            loc = len(locs) - 1
            for example in rows:
                for fld in ds.text_fields:
                    for fname, raw in _field_values(example, fld):
                        norm = norm_of.get(raw)
                        if norm is None:
                            norm = norm_of[raw] = normalize(raw)
                        uid = uid_of.get(norm)
                        if uid is None:
                            uid = uid_of[norm] = len(norms)
                            norms.append(norm)
                        occ_loc.append(loc)
                        occ_id.append(str(example["id"]))
                        occ_field.append(fname)
                        occ_uid.append(uid)
    del norm_of, uid_of
    report.texts = len(occ_uid)
    report.unique_texts = len(norms)

    occs: list[list[int]] = [[] for _ in norms]
    for o, uid in enumerate(occ_uid):
        occs[uid].append(o)
    all_tokens: list[str] = []
    lengths: list[int] = []
    doc_uid: list[int] = []
    short = np.zeros(len(norms), dtype=bool)
    for uid, norm in enumerate(norms):
        tokens = norm.split()
        if len(tokens) < min_tokens:
            short[uid] = True
            continue
        if len(tokens) >= ngram:
            all_tokens += tokens
            lengths.append(len(tokens))
            doc_uid.append(uid)
    report.short_texts = int(sum(len(occs[u]) for u in np.flatnonzero(short)))

    def single_loc(uid: int) -> int | None:
        found = {occ_loc[o] for o in occs[uid]}
        return found.pop() if len(found) == 1 else None

    links: list[tuple[int, int, str, float]] = []
    for uid in range(len(norms)):
        if not short[uid] and len({occ_loc[o] for o in occs[uid]}) > 1:
            links.append((uid, uid, "exact", 1.0))
    if len(doc_uid) > 1:
        shingles, starts = _shingles(_token_hashes(all_tokens), np.array(lengths, dtype=np.int64), ngram)
        del all_tokens
        sig = _minhash(shingles, starts, num_perm, seed, workers)
        ends = np.concatenate([starts[1:], [len(shingles)]])
        sets: dict[int, np.ndarray] = {}

        def shingle_set(d: int) -> np.ndarray:
            if d not in sets:
                sets[d] = np.unique(shingles[starts[d]:ends[d]])
            return sets[d]

        for i, j in _lsh_candidates(sig, bands):
            u, v = doc_uid[i], doc_uid[j]
            lu = single_loc(u)
            if lu is not None and lu == single_loc(v):
                continue  # both only inside one dataset split: not a pair across splits
            a, b = shingle_set(int(i)), shingle_set(int(j))
            inter = len(np.intersect1d(a, b, assume_unique=True))
            sim = inter / (len(a) + len(b) - inter)
            if sim >= threshold:
                links.append((min(u, v), max(u, v), "near", float(sim)))
    _expand(report, links, occs, locs, occ_loc, occ_id, occ_field, max_pairs)
    return report


def _expand(report: LeakageReport, links, occs, locs, occ_loc, occ_id, occ_field, max_pairs: int) -> None:
    """Occurrence-level counts per location pair, the capped pair list and the train side."""
    counts: dict[tuple[int, int], Counter] = defaultdict(Counter)
    train_side: dict[str, set[str]] = defaultdict(set)

    def describe(o: int) -> dict:
        dataset, split = locs[occ_loc[o]]
        return {"dataset": dataset, "split": split, "id": occ_id[o], "field": occ_field[o]}

    for u, v, kind, sim in links:
        left, right = occs[u], occs[v]
        cu, cv = Counter(occ_loc[o] for o in left), Counter(occ_loc[o] for o in right)
        for lu, nu in cu.items():
            for lv, nv in cv.items():
                if u == v and lu >= lv or u != v and lu == lv:
                    continue  # exact: each unordered location pair once; never within one location
                counts[(min(lu, lv), max(lu, lv))][kind] += nu * nv
        # train-side examples: a train occurrence on one side, an eval occurrence on the other
        for side, other in ((left, right), (right, left)):
            if any(locs[occ_loc[o]][1] != "train" for o in other):
                for o in side:
                    dataset, split = locs[occ_loc[o]]
                    if split == "train":
                        train_side[dataset].add(occ_id[o])
        if len(report.pairs) >= max_pairs:
            report.pairs_truncated = True
            continue
        for x in left:
            for y in right:
                if (u == v and y <= x) or occ_loc[x] == occ_loc[y]:
                    continue
                cat = category(locs[occ_loc[x]][1], locs[occ_loc[y]][1])
                if cat == "same-split":
                    continue
                if len(report.pairs) >= max_pairs:
                    report.pairs_truncated = True
                    break
                report.pairs.append({"a": describe(x), "b": describe(y), "kind": kind,
                                     "similarity": round(sim, 4), "category": cat})
    for (la, lb), c in sorted(counts.items()):
        (da, sa), (db, sb) = locs[la], locs[lb]
        report.counts[f"{da}/{sa} ~ {db}/{sb}"] = {"exact": c["exact"], "near": c["near"], "category": category(sa, sb)}
    report.train_side = dict(train_side)


def apply(datasets: Sequence[Dataset] | dict[str, Dataset], policy: str = "warn",
          report: LeakageReport | None = None, **options):
    """Cleaned datasets under a policy; same container type (list or dict) as given.

    ``warn``: datasets unchanged, a :class:`LeakageWarning` when leaks exist; ``drop``: each
    train example that duplicates an evaluation example (of any dataset given) is removed from
    its train split, counted in ``report["leakage_dropped_train"]``; ``fail``: a one-line
    :class:`LexilabError` when leaks exist. ``options`` go to :func:`find_leaks`.
    """
    if policy not in POLICIES:
        raise LexilabError(f"leakage policy {policy!r} is not one of {', '.join(POLICIES)}")
    items = _labelled(datasets)
    report = report or find_leaks(datasets, **options)
    leaks = report.total("train-eval")
    worst = sorted(((c["exact"] + c["near"], k) for k, c in report.counts.items() if c["category"] == "train-eval"),
                   reverse=True)[:3]
    where = "; ".join(f"{k}: {n}" for n, k in worst)
    if policy == "fail" and leaks:
        raise LexilabError(f"leakage: {leaks} train/eval duplicate pairs ({where}); "
                           f"set the leakage policy to drop to remove the train-side copies")
    if policy == "warn" or not leaks:
        if leaks:
            warnings.warn(f"leakage: {leaks} train/eval duplicate pairs ({where})", LeakageWarning, stacklevel=2)
        return datasets
    cleaned = []
    for label, ds in items:
        drop = report.train_side.get(label, set())
        if not drop:
            cleaned.append(ds)
            continue
        train = [ex for ex in ds.splits["train"] if str(ex["id"]) not in drop]
        if not train:
            raise LexilabError(f"leakage: dropping leaking examples would leave {label} without train rows")
        splits = {**ds.splits, "train": train}
        cleaned.append(replace(ds, splits=splits, report={**ds.report,
                                                          "leakage_dropped_train": len(ds.splits["train"]) - len(train)}))
    if isinstance(datasets, dict):
        return {key: ds for key, ds in zip(datasets, cleaned)}
    return cleaned


def check(datasets: Sequence[Dataset] | dict[str, Dataset], policy: str = "warn", **options):
    """``(cleaned datasets, report)``: :func:`find_leaks` then :func:`apply` — call before training."""
    report = find_leaks(datasets, **options)
    return apply(datasets, policy, report=report), report
