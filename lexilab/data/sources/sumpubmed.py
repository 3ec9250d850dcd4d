"""SumPubMed (Gupta et al., ACL-IJCNLP SRW 2021), first 1,500 documents: article → abstract.

The text is lower-cased with ``<cit>``/``<dig>`` placeholders (the corpus' own preprocessing).
Target: the full structured ``abstract`` by default; ``target: shorter_abstract`` selects the
corpus' short summary. No official split: hash split on the document number (80 / 10 / 10),
then calibration carved from train (10 %).
"""
from __future__ import annotations

from pathlib import Path

from lexilab.data.formats import read_jsonl
from lexilab.data.manifests import manifest_files
from lexilab.data.registry import register_dataset
from lexilab.data.sources._base import finish, resolve_options, verify
from lexilab.data.splits import CALIBRATION_FRACTION, TEST_FRACTION, VAL_FRACTION, assemble
from lexilab.errors import LexilabError

NAME = "sumpubmed"
FILE = "sumpubmed/sumpubmed_first1500.jsonl.gz"
DEFAULTS = {"target": "abstract", "val": VAL_FRACTION, "test": TEST_FRACTION,
            "calibration": CALIBRATION_FRACTION}


def read_sumpubmed(path: str | Path, target: str = "abstract") -> tuple[list[dict], int]:
    """(rows, number of rows dropped for an empty text or target)."""
    path = Path(path)
    rows, dropped = [], 0
    for line, record in read_jsonl(path):
        for key in ("id", "text", target):
            if key not in record:
                raise LexilabError(f"{path}: line {line}: field {key!r} missing")
        text, summary = str(record["text"]).strip(), str(record[target]).strip()
        if not text or not summary:
            dropped += 1
            continue
        rows.append({"id": str(record["id"]), "text": text, "target": summary, "domain": "academic"})
    return rows, dropped


@register_dataset(NAME, "seq2seq", "SumPubMed (first 1,500): biomedical article → abstract (hash split)",
                  files=manifest_files(NAME))
def load_sumpubmed(root: Path, **options):
    opts, check = resolve_options(NAME, options, DEFAULTS)
    if opts["target"] not in ("abstract", "shorter_abstract"):
        raise LexilabError(f"dataset {NAME}: option target must be abstract|shorter_abstract, got {opts['target']!r}")
    files = verify(NAME, root)
    rows, dropped = read_sumpubmed(Path(root) / FILE, opts["target"])
    splits = assemble({"train": rows}, NAME, val=opts["val"], test=opts["test"], calibration=opts["calibration"])
    return finish(NAME, "seq2seq", splits, files=files, report={"empty_rows_dropped": dropped},
                  text_fields=("text", "target"), check_manifest=check)
