"""GoEmotions (Demszky et al., ACL 2020): Reddit comments, 28 emotion labels, multi-label.

Official splits: train.tsv → train, dev.tsv → val, test.tsv → test (43,410 / 5,426 / 5,427);
calibration is carved from train by hashing the comment id (10 % by default). Label ids in the
TSVs index ``emotions.txt`` lines, so ids are turned into names here (neutral = id 27) and
everything downstream works by name.
"""
from __future__ import annotations

from pathlib import Path

from lexilab.data.formats import read_tsv
from lexilab.data.manifests import manifest_files
from lexilab.data.registry import register_dataset
from lexilab.data.sources._base import finish, resolve_options, verify
from lexilab.data.splits import CALIBRATION_FRACTION, assemble
from lexilab.errors import LexilabError

NAME = "goemotions"
FOLDER = "goemotions"
OFFICIAL = {"train": "train.tsv", "val": "dev.tsv", "test": "test.tsv"}
DEFAULTS = {"calibration": CALIBRATION_FRACTION}


def read_label_names(path: str | Path) -> list[str]:
    """Label names in id order (one per line; the upstream file has no trailing newline)."""
    path = Path(path)
    if not path.is_file():
        raise LexilabError(f"{path}: file not found")
    names = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    for number, label in enumerate(names, start=1):
        if not label:
            raise LexilabError(f"{path}: line {number}: empty label name")
    if len(set(names)) != len(names):
        raise LexilabError(f"{path}: duplicate label names")
    return names


def read_split(path: str | Path, label_names: list[str]) -> list[dict]:
    """Rows of one GoEmotions TSV: ``text``, comma-separated label ids, ``comment_id``."""
    parsed: dict[str, list[str]] = {}  # "0,17" → names; few distinct strings, so parse each once

    def names(ids: str, line: int) -> list[str]:
        labels = []
        for raw in ids.split(","):
            raw = raw.strip()
            if not raw.isdigit() or int(raw) >= len(label_names):
                raise LexilabError(
                    f"{path}: line {line}: unknown label id {raw!r} (emotions.txt has ids 0–{len(label_names) - 1})")
            labels.append(label_names[int(raw)])
        return list(dict.fromkeys(labels))

    rows = []
    for line, (text, ids, comment_id) in read_tsv(path, ncols=3):
        labels = parsed.get(ids)
        if labels is None:
            labels = parsed[ids] = names(ids, line)
        comment_id = comment_id.strip()
        if not comment_id:
            raise LexilabError(f"{path}: line {line}: empty comment id")
        rows.append({"id": comment_id, "text": text, "labels": list(labels)})
    return rows


@register_dataset(NAME, "multilabel", "GoEmotions: Reddit comments, 28 emotions (official splits)",
                  files=manifest_files(NAME))
def load_goemotions(root: Path, **options):
    opts, check = resolve_options(NAME, options, DEFAULTS)
    files = verify(NAME, root)
    folder = Path(root) / FOLDER
    label_names = read_label_names(folder / "emotions.txt")
    official = {split: read_split(folder / fname, label_names) for split, fname in OFFICIAL.items()}
    splits = assemble(official, NAME, calibration=opts["calibration"])
    return finish(NAME, "multilabel", splits, files=files, report={}, label_names=label_names,
                  check_manifest=check)
