"""SciTLDR-A (Cachola et al., Findings of EMNLP 2020): abstract → one-sentence TLDR.

Official splits: train → train, dev → val, test → test (1,992 / 619 / 618); calibration is
carved from train by hashing the paper id (10 %). Input: the abstract sentences joined with
single spaces. Target: the *first* TLDR listed — the only one in train; dev/test list
several (author- and reviewer-derived), and all of them are kept in ``references`` for
multi-reference evaluation. The paper ``title`` is kept as an extra text field.
"""
from __future__ import annotations

from pathlib import Path

from lexilab.data.formats import read_jsonl
from lexilab.data.manifests import manifest_files
from lexilab.data.registry import register_dataset
from lexilab.data.sources._base import finish, resolve_options, verify
from lexilab.data.splits import CALIBRATION_FRACTION, assemble
from lexilab.errors import LexilabError

NAME = "scitldr"
FILES = {"train": "scitldr/SciTLDR-A_train.jsonl", "val": "scitldr/SciTLDR-A_dev.jsonl",
         "test": "scitldr/SciTLDR-A_test.jsonl"}
DEFAULTS = {"calibration": CALIBRATION_FRACTION}


def read_split(path: str | Path) -> list[dict]:
    path = Path(path)
    rows = []
    for line, record in read_jsonl(path):
        source, targets = record.get("source"), record.get("target")
        if not isinstance(record.get("paper_id"), str) or not record["paper_id"]:
            raise LexilabError(f"{path}: line {line}: field 'paper_id' missing or not a string")
        for key, value in (("source", source), ("target", targets)):
            if not isinstance(value, list) or not value or not all(isinstance(s, str) for s in value):
                raise LexilabError(f"{path}: line {line}: field {key!r} must be a non-empty list of strings")
        rows.append({"id": record["paper_id"], "text": " ".join(s.strip() for s in source),
                     "target": targets[0].strip(), "references": [t.strip() for t in targets],
                     "title": str(record.get("title") or ""), "domain": "academic"})
    return rows


@register_dataset(NAME, "seq2seq", "SciTLDR-A: abstract → TLDR (official splits; first TLDR as target)",
                  files=manifest_files(NAME))
def load_scitldr(root: Path, **options):
    opts, check = resolve_options(NAME, options, DEFAULTS)
    files = verify(NAME, root)
    official = {split: read_split(Path(root) / rel) for split, rel in FILES.items()}
    splits = assemble(official, NAME, calibration=opts["calibration"])
    return finish(NAME, "seq2seq", splits, files=files, report={},
                  text_fields=("text", "target", "references", "title"), check_manifest=check)
