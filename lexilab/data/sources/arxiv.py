"""arXiv metadata sample (first 2,000 records of the Cornell/Kaggle OAI snapshot) and the
multi-label ``arxiv_categories`` task (Clement et al. 2019, "On the Use of ArXiv as a Dataset").

The CSV's ``id`` column lost its zeros to numeric formatting (``0704.0010`` → ``704.001``);
the records are the snapshot's first 2,000 in order, so the canonical id is restored from the
row position and checked against the numeric value of the column.

Label rule for ``arxiv_categories`` (default ``level: archive``, ``min_count: 10``): every
category a paper lists (primary first, then cross-lists) is reduced to its archive — the part
before the dot (``math.AG`` → ``math``, ``hep-th`` → ``hep-th``) — and an archive is a label when
at least ``min_count`` papers of the file list it. With the defaults this gives 18 labels.
Dropped archives and papers left with no label are counted in the report. ``level: category``
uses full category names instead. Input: ``title`` + blank line + ``abstract``. No official
split: hash split on the arXiv id (salt ``arxiv_metadata``, shared with topics7).
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path

from lexilab.data.formats import read_csv
from lexilab.data.manifests import manifest_files
from lexilab.data.registry import register_dataset
from lexilab.data.sources._base import finish, resolve_options, verify
from lexilab.data.splits import CALIBRATION_FRACTION, TEST_FRACTION, VAL_FRACTION, assemble
from lexilab.errors import LexilabError

NAME = "arxiv_categories"
CSV = "arxiv_metadata_sample/arxiv_metadata_first2000.csv"
SALT = "arxiv_metadata"
FIRST_ID = (704, 1)  # 0704.0001: the snapshot's first record
DEFAULTS = {"level": "archive", "min_count": 10, "val": VAL_FRACTION, "test": TEST_FRACTION,
            "calibration": CALIBRATION_FRACTION}


def clean(text: str) -> str:
    """Undo the hard line wrapping of titles and abstracts."""
    return " ".join(text.split())


def read_arxiv(path: str | Path) -> list[dict]:
    """Records ``{id, title, abstract, categories}`` with canonical ids (``0704.0001`` ...)."""
    path = Path(path)
    out = []
    for position, (line, row) in enumerate(read_csv(path, header=True)):
        for column in ("id", "title", "abstract", "categories"):
            if column not in row:
                raise LexilabError(f"{path}: line 1: no column {column!r} in the header")
        number = FIRST_ID[1] + position
        ident = f"{FIRST_ID[0]:04d}.{number:04d}"
        try:
            matches = abs(float(row["id"]) - float(ident)) < 1e-9
        except ValueError:
            matches = False
        if not matches:
            raise LexilabError(f"{path}: line {line}: id {row['id']!r} is not record {ident} (rows out of order?)")
        categories = row["categories"].split()
        if not categories:
            raise LexilabError(f"{path}: line {line}: empty categories")
        out.append({"id": ident, "title": clean(row["title"]), "abstract": clean(row["abstract"]),
                    "categories": categories})
    return out


def archive(category: str) -> str:
    return category.split(".", 1)[0]


@register_dataset(NAME, "multilabel", "arXiv categories (multi-label, archives with ≥10 papers)",
                  files=manifest_files(NAME))
def load_arxiv_categories(root: Path, **options):
    opts, check = resolve_options(NAME, options, DEFAULTS)
    if opts["level"] not in ("archive", "category"):
        raise LexilabError(f"dataset {NAME}: option level must be 'archive' or 'category', got {opts['level']!r}")
    files = verify(NAME, root)
    records = read_arxiv(Path(root) / CSV)
    reduce = archive if opts["level"] == "archive" else (lambda c: c)
    per_paper = [list(dict.fromkeys(reduce(c) for c in r["categories"])) for r in records]
    counts = Counter(label for labels in per_paper for label in labels)
    keep = sorted(label for label, n in counts.items() if n >= int(opts["min_count"]))
    report = {"labels_below_min_count": len(counts) - len(keep),
              "label_mentions_dropped": sum(n for label, n in counts.items() if label not in keep)}
    rows = []
    for record, labels in zip(records, per_paper):
        rows.append({"id": record["id"], "text": f"{record['title']}\n\n{record['abstract']}",
                     "title": record["title"], "labels": [label for label in labels if label in keep]})
    report["papers_left_without_label"] = sum(1 for r in rows if not r["labels"])
    splits = assemble({"train": rows}, SALT, val=opts["val"], test=opts["test"], calibration=opts["calibration"])
    return finish(NAME, "multilabel", splits, files=files, report=report, label_names=keep,
                  text_fields=("text",), check_manifest=check)
