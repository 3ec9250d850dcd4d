"""topics7: LexiMind's seven topic classes, assembled from three sources and balanced.

Sources and labels:

- 20 Newsgroups posts (headers removed), labelled by :data:`NEWSGROUP_TOPIC` below — one
  reviewed decision per group; groups that fit no class map to ``None`` and are excluded
  (counted in the report). ``newsgroup_map: leximind`` uses LexiMind's own map instead
  (``scripts/download_data.py``), for parity runs.
- arXiv metadata abstracts, labelled by the primary category's archive with LexiMind's rule:
  cs, eess → Technology; q-fin, econ → Business; every other archive → Science.
- LexiMind's 500 Gutenberg excerpts (discovery set, literary rows) → Fiction. This is a
  source-level label: a few of these books are non-fiction (e.g. a 1921 Everest expedition
  report), as in LexiMind's own data.

Splits follow each source (20NG: official train/test, val carved from train; arXiv and
Gutenberg: hash splits), with the same salts as ``20newsgroups``, ``arxiv_categories`` and
``leximind_literary``, so a row sits in the same split in every dataset that uses it.
Filtering as in LexiMind: texts of ``min_chars`` (100) characters or fewer are dropped and
longer ones cut to ``max_chars`` (1,500); both are counted.

Balance (``balance: min``, default): in every split, each class is downsampled to the size
of the split's smallest class, keeping the rows with the lowest ``sha256("topics7-balance",
seed, id)`` — seeded, order-free and reviewable. ``balance: none`` keeps everything.
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path

from lexilab.data.manifests import manifest_files
from lexilab.data.registry import SPLITS, register_dataset
from lexilab.data.sources import arxiv, leximind, newsgroups
from lexilab.data.sources._base import finish, resolve_options, verify
from lexilab.data.splits import CALIBRATION_FRACTION, TEST_FRACTION, VAL_FRACTION, assemble, unit_hash
from lexilab.errors import LexilabError

NAME = "topics7"
TOPICS = ["Arts", "Business", "Fiction", "History", "Philosophy", "Science", "Technology"]

# Group → topic (None: fits no class; excluded and counted). Reviewed one by one.
NEWSGROUP_TOPIC: dict[str, str | None] = {
    # Debates on the existence of God, ethics without religion: philosophy of religion.
    "alt.atheism": "Philosophy",
    # The five comp.* groups: software, operating systems and hardware.
    "comp.graphics": "Technology",
    "comp.os.ms-windows.misc": "Technology",
    "comp.sys.ibm.pc.hardware": "Technology",
    "comp.sys.mac.hardware": "Technology",
    "comp.windows.x": "Technology",
    # Classified ads for selling goods: commerce, the only Business source besides q-fin.
    "misc.forsale": "Business",
    # rec.*: hobbies and sport, a loose fit for Arts kept from LexiMind because no other source
    # here provides Arts; without them the class would be empty.
    "rec.autos": "Arts",
    "rec.motorcycles": "Arts",
    "rec.sport.baseball": "Arts",
    "rec.sport.hockey": "Arts",
    # Cryptography and circuits are computer science / engineering: Technology, consistent with
    # the arXiv rule (cs.CR, eess → Technology). LexiMind put every sci.* group in Science.
    "sci.crypt": "Technology",
    "sci.electronics": "Technology",
    # Medicine and space science.
    "sci.med": "Science",
    "sci.space": "Science",
    # Theology and religious argument: the closest of the seven classes is Philosophy.
    "soc.religion.christian": "Philosophy",
    "talk.religion.misc": "Philosophy",
    # Gun-control policy debate: current politics, no class fits (LexiMind: History).
    "talk.politics.guns": None,
    # Much of it argues historical events (1915, 1948, Ottoman and Israeli history): History.
    "talk.politics.mideast": "History",
    # Current US politics (taxes, elections, Clinton administration): no class fits (LexiMind: History).
    "talk.politics.misc": None,
}

# LexiMind's map (scripts/download_data.py, newsgroup_map): sci.* → Science, comp.* → Technology,
# religion → Philosophy, talk.politics.* → History, misc.forsale → Business, rec.* → Arts.
LEXIMIND_NEWSGROUP_TOPIC: dict[str, str | None] = {
    group: ("Science" if group.startswith("sci.") else "Technology" if group.startswith("comp.")
            else "History" if group.startswith("talk.politics.") else "Arts" if group.startswith("rec.")
            else "Business" if group == "misc.forsale" else "Philosophy")
    for group in NEWSGROUP_TOPIC
}
NEWSGROUP_MAPS = {"lexilab": NEWSGROUP_TOPIC, "leximind": LEXIMIND_NEWSGROUP_TOPIC}

DEFAULTS = {"newsgroup_map": "lexilab", "balance": "min", "seed": 0, "min_chars": 100, "max_chars": 1500,
            "val": VAL_FRACTION, "test": TEST_FRACTION, "calibration": CALIBRATION_FRACTION}


def arxiv_topic(categories: list[str]) -> str:
    """LexiMind's arXiv rule, on the primary (first listed) category's archive."""
    archive = arxiv.archive(categories[0])
    if archive in ("cs", "eess"):
        return "Technology"
    if archive in ("q-fin", "econ"):
        return "Business"
    return "Science"


def _sources(root: Path, opts: dict, report: Counter) -> dict[str, list[dict]]:
    """Rows {id, text, label, source} per split from the three sources, before filtering."""
    mapping = NEWSGROUP_MAPS[opts["newsgroup_map"]]
    split_opts = {"val": opts["val"], "calibration": opts["calibration"]}
    posts, empty = newsgroups.load_posts(root, strip_headers=True)
    report["20newsgroups.empty_after_header_strip"] += empty
    for rows in posts.values():
        for row in rows:
            topic = mapping.get(row["group"])
            if topic is None:
                report[f"20newsgroups.excluded_group.{row['group']}"] += 1
            row["label"] = topic
        rows[:] = [r for r in rows if r["label"] is not None]
    parts = [(assemble(posts, newsgroups.SALT, **split_opts), "20ng", "20newsgroups")]

    papers = [{"id": r["id"], "text": r["abstract"], "label": arxiv_topic(r["categories"])}
              for r in arxiv.read_arxiv(root / arxiv.CSV)]
    parts.append((assemble({"train": papers}, arxiv.SALT, test=opts["test"], **split_opts), "arxiv", "arxiv"))

    books = [{"id": r["id"], "text": r["text"], "label": "Fiction"}
             for r in leximind.read_discovery(root / leximind.DISCOVERY) if r["domain"] == "literary"]
    parts.append((assemble({"train": books}, leximind.SALT, test=opts["test"], **split_opts), "gutenberg", "gutenberg"))

    out: dict[str, list[dict]] = {s: [] for s in SPLITS}
    for splits, prefix, source in parts:
        for split in SPLITS:
            out[split] += [{"id": f"{prefix}:{r['id']}", "text": r["text"], "label": r["label"], "source": source}
                           for r in splits[split]]
    return out


def balance(rows: list[dict], seed: int, split: str, report: Counter) -> list[dict]:
    """Downsample every class to the smallest class's size (lowest seeded id hash kept)."""
    by_class: dict[str, list[dict]] = {t: [] for t in TOPICS}
    for row in rows:
        by_class[row["label"]].append(row)
    smallest = min(len(v) for v in by_class.values())
    kept: list[dict] = []
    for topic, members in by_class.items():
        members.sort(key=lambda r: unit_hash("topics7-balance", str(seed), r["id"]))
        report[f"balance_dropped.{split}.{topic}"] += len(members) - smallest
        kept += members[:smallest]
    kept.sort(key=lambda r: r["id"])
    return kept


@register_dataset(NAME, "multiclass", "LexiMind's 7 topics from 20NG + arXiv + Gutenberg, balanced",
                  files=manifest_files(NAME))
def load_topics7(root: Path, **options):
    opts, check = resolve_options(NAME, options, DEFAULTS)
    if opts["newsgroup_map"] not in NEWSGROUP_MAPS:
        raise LexilabError(f"dataset {NAME}: option newsgroup_map must be one of {sorted(NEWSGROUP_MAPS)}")
    if opts["balance"] not in ("min", "none"):
        raise LexilabError(f"dataset {NAME}: option balance must be 'min' or 'none', got {opts['balance']!r}")
    root = Path(root)
    files = verify(NAME, root)
    report: Counter = Counter()
    splits = _sources(root, opts, report)
    min_chars, max_chars = int(opts["min_chars"]), int(opts["max_chars"])
    for split in SPLITS:
        kept = []
        for row in splits[split]:
            text = row["text"].strip()
            if len(text) <= min_chars:
                report[f"too_short.{row['source']}"] += 1
                continue
            if max_chars and len(text) > max_chars:
                report[f"truncated.{row['source']}"] += 1
                text = text[:max_chars].rstrip()
            kept.append({**row, "text": text})
        splits[split] = kept
        if opts["balance"] == "min":
            splits[split] = balance(kept, int(opts["seed"]), split, report)
    return finish(NAME, "multiclass", splits, files=files, report=dict(sorted(report.items())),
                  label_names=TOPICS, check_manifest=check)
