"""LexiMind's discovery set: 500 literary rows (Gutenberg excerpt → Goodreads description) and
500 academic rows (arXiv article start → abstract), plus ``summaries_mixed``, their union with
a ``domain`` field so metrics break down per domain.

Only gold fields are used: ``text`` (source, cut at 2,000 characters upstream),
``reference_summary`` (target) and ``title``. The file's ``topic``, ``emotion`` and
``generated_summary`` are LexiMind's own *predictions* and are never read.
No official split: hash split on the discovery id (salt ``leximind_discovery``, shared by all
datasets built from these rows, topics7's Fiction class included), 80 / 10 / 10, then
calibration from train.
"""
from __future__ import annotations

from pathlib import Path

from lexilab.data.formats import read_jsonl
from lexilab.data.manifests import manifest_files
from lexilab.data.registry import SPLITS, load_dataset, register_dataset
from lexilab.data.sources._base import finish, resolve_options, verify
from lexilab.data.splits import CALIBRATION_FRACTION, TEST_FRACTION, VAL_FRACTION, assemble
from lexilab.errors import LexilabError

DISCOVERY = "leximind_discovery/discovery_dataset.jsonl"
SALT = "leximind_discovery"
GOLD = ("id", "title", "text", "source_type", "reference_summary")
SPLIT_DEFAULTS = {"val": VAL_FRACTION, "test": TEST_FRACTION, "calibration": CALIBRATION_FRACTION}


def read_discovery(path: str | Path) -> list[dict]:
    """Rows with the gold fields only: ``{id, title, text, target, domain}``."""
    path = Path(path)
    rows = []
    for line, record in read_jsonl(path):
        for key in GOLD:
            if not isinstance(record.get(key), str):
                raise LexilabError(f"{path}: line {line}: field {key!r} missing or not a string")
        if record["source_type"] not in ("literary", "academic"):
            raise LexilabError(f"{path}: line {line}: source_type {record['source_type']!r} is not literary|academic")
        rows.append({"id": record["id"], "text": record["text"], "target": record["reference_summary"],
                     "title": record["title"], "domain": record["source_type"]})
    return rows


def _load_domain(name: str, domain: str, root: Path, options: dict):
    opts, check = resolve_options(name, options, SPLIT_DEFAULTS)
    files = verify(name, root)
    rows = read_discovery(Path(root) / DISCOVERY)
    keep = [row for row in rows if row["domain"] == domain]
    report = {"other_domain_rows_skipped": len(rows) - len(keep),
              "empty_rows_dropped": sum(1 for r in keep if not r["text"].strip() or not r["target"].strip())}
    keep = [r for r in keep if r["text"].strip() and r["target"].strip()]
    splits = assemble({"train": keep}, SALT, **opts)
    return finish(name, "seq2seq", splits, files=files, report=report,
                  text_fields=("text", "target", "title"), check_manifest=check)


@register_dataset("leximind_literary", "seq2seq",
                  "LexiMind literary: Gutenberg excerpt → Goodreads description (500 rows, gold only)",
                  files=manifest_files("leximind_literary"))
def load_leximind_literary(root: Path, **options):
    return _load_domain("leximind_literary", "literary", Path(root), options)


@register_dataset("leximind_academic", "seq2seq",
                  "LexiMind academic: arXiv article start → abstract (500 rows, gold only)",
                  files=manifest_files("leximind_academic"))
def load_leximind_academic(root: Path, **options):
    return _load_domain("leximind_academic", "academic", Path(root), options)


MIXED = "summaries_mixed"
MIXED_DEFAULTS = {"academic": ["leximind_academic"], "literary": ["leximind_literary"]}


@register_dataset(MIXED, "seq2seq", "academic + literary summarization with a domain field",
                  files=manifest_files(MIXED))
def load_summaries_mixed(root: Path, **options):
    """Union of seq2seq datasets per domain; ids become ``<dataset>:<id>``; splits are kept."""
    opts, check = resolve_options(MIXED, options, MIXED_DEFAULTS)
    splits: dict[str, list[dict]] = {s: [] for s in SPLITS}
    files: dict[str, str] = {}
    report: dict[str, int] = {}
    fields: list[str] = []
    for domain in ("academic", "literary"):
        names = opts[domain]
        if isinstance(names, str):
            names = [names]
        for source in names:
            part = load_dataset(source, root)
            if part.kind != "seq2seq":
                raise LexilabError(f"dataset {MIXED}: option {domain}: {source!r} is {part.kind}, not seq2seq")
            files.update(part.files)
            report.update({f"{source}.{k}": v for k, v in part.report.items()})
            fields += [f for f in part.text_fields if f not in fields]
            for split in SPLITS:
                splits[split] += [{**row, "id": f"{source}:{row['id']}", "domain": domain, "source": source}
                                  for row in part.splits[split]]
    return finish(MIXED, "seq2seq", splits, files=files, report=report, text_fields=fields,
                  check_manifest=check)
