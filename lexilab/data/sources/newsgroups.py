"""20 Newsgroups, "bydate" version (Lang 1995; split by date by J. Rennie): 20 classes.

Official train (11,314) / test (7,532) posts are kept; val is carved from train by hashing the
post id (10 %), then calibration from what train holds (10 %). The header block (everything
up to the first blank line: From, Subject, Organization, ...) is removed by default, as in
scikit-learn's ``remove=("headers",)``: sender addresses and organisations give the group
away. Posts left empty are dropped and counted in the report. Posts are decoded as latin-1
(a few are ISO-8859-1), like scikit-learn does.
"""
from __future__ import annotations

from pathlib import Path

from lexilab.data.formats import iter_tar_members
from lexilab.data.manifests import manifest_files
from lexilab.data.registry import register_dataset
from lexilab.data.sources._base import finish, resolve_options, verify
from lexilab.data.splits import CALIBRATION_FRACTION, VAL_FRACTION, assemble
from lexilab.errors import LexilabError

NAME = "20newsgroups"
ARCHIVE = "20newsgroups/20news-bydate.tar.gz"
SALT = "20newsgroups"  # shared with topics7 so a post lands in the same split in both
_FOLDERS = {"20news-bydate-train": "train", "20news-bydate-test": "test"}
_CACHE: dict[tuple, dict[str, list[tuple[str, str, str]]]] = {}

DEFAULTS = {"strip_headers": True, "val": VAL_FRACTION, "calibration": CALIBRATION_FRACTION}


def read_bydate(path: str | Path) -> dict[str, list[tuple[str, str, str]]]:
    """{"train"|"test": [(post id, group, raw text)]}; the id is ``<split>/<group>/<number>``."""
    path = Path(path)
    stat = path.stat()
    key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size)
    if key not in _CACHE:
        out: dict[str, list[tuple[str, str, str]]] = {"train": [], "test": []}
        for name, content in iter_tar_members(path):
            parts = (name[2:] if name.startswith("./") else name).split("/")
            if len(parts) != 3 or parts[0] not in _FOLDERS:
                continue  # README files or other members outside the two split folders
            split = _FOLDERS[parts[0]]
            out[split].append((f"{split}/{parts[1]}/{parts[2]}", parts[1], content.decode("latin-1")))
        if not out["train"] or not out["test"]:
            raise LexilabError(f"{path}: no 20news-bydate-train/ and 20news-bydate-test/ members")
        _CACHE.clear()  # keep one archive's parse, not every version ever read
        _CACHE[key] = out
    return _CACHE[key]


def strip_header(text: str) -> str:
    """Drop the header block: every line before the first blank line."""
    _, blank, body = text.partition("\n\n")
    return body if blank else text


def load_posts(root: Path, strip_headers: bool = True) -> tuple[dict[str, list[dict]], int]:
    """Official {train, test} post dicts (id, text, group) and the number of empty posts dropped."""
    parsed = read_bydate(Path(root) / ARCHIVE)
    splits: dict[str, list[dict]] = {}
    dropped = 0
    for split, posts in parsed.items():
        rows = []
        for ident, group, raw in posts:
            text = (strip_header(raw) if strip_headers else raw).strip()
            if not text:
                dropped += 1
                continue
            rows.append({"id": ident, "text": text, "group": group})
        splits[split] = rows
    return splits, dropped


@register_dataset(NAME, "multiclass", "20 Newsgroups bydate: 20 groups (official train/test)",
                  files=manifest_files(NAME))
def load_20newsgroups(root: Path, **options):
    opts, check = resolve_options(NAME, options, DEFAULTS)
    files = verify(NAME, root)
    official, dropped = load_posts(root, opts["strip_headers"])
    for rows in official.values():
        for row in rows:
            row["label"] = row.pop("group")
    report = {"empty_after_header_strip": dropped}
    splits = assemble(official, SALT, val=opts["val"], calibration=opts["calibration"])
    labels = sorted({row["label"] for rows in splits.values() for row in rows})
    return finish(NAME, "multiclass", splits, files=files, report=report, label_names=labels,
                  check_manifest=check)
