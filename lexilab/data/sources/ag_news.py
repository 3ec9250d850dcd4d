"""AG News (Zhang, Zhao & LeCun, NeurIPS 2015), the 7,600-row *test* file only: 4 classes.

Only the test file is available, so it is split by hashing the row id (``row-<n>``, n = 1-based
data row): 80 / 10 / 10, then calibration from train (10 %). Labels 1–4 → World, Sports,
Business, Sci/Tech. Input: title + blank line + description.

``clean: true`` (default) undoes the distribution's escapes: ``\\`` line breaks → space,
``#39;``-style numeric entities that lost their ``&`` (128–159 read as cp1252, as the source
text was), `` quot;``/`` amp;``/... without ``&``, HTML entities, and the HTML tags they encode.
"""
from __future__ import annotations

import html
import re
from pathlib import Path

from lexilab.data.formats import read_csv
from lexilab.data.manifests import manifest_files
from lexilab.data.registry import register_dataset
from lexilab.data.sources._base import finish, resolve_options, verify
from lexilab.data.splits import CALIBRATION_FRACTION, TEST_FRACTION, VAL_FRACTION, assemble
from lexilab.errors import LexilabError

NAME = "ag_news"
FILE = "ag_news/test.csv"
LABELS = {"1": "World", "2": "Sports", "3": "Business", "4": "Sci/Tech"}
DEFAULTS = {"clean": True, "val": VAL_FRACTION, "test": TEST_FRACTION, "calibration": CALIBRATION_FRACTION}

_NUMERIC = re.compile(r"&?#(\d+);")
_BARE = re.compile(r"(?<![&\w])(quot|amp|lt|gt|nbsp);")
_TAG = re.compile(r"<[^<>]{0,200}>")
_BARE_CHARS = {"quot": '"', "amp": "&", "lt": "<", "gt": ">", "nbsp": " "}


def _numeric(match: re.Match) -> str:
    code = int(match.group(1))
    if 128 <= code <= 159:
        return bytes([code]).decode("cp1252", errors="replace")
    return chr(code) if code < 0x110000 else match.group(0)


def clean(text: str) -> str:
    text = text.replace("\\", " ")
    text = _NUMERIC.sub(_numeric, text)
    text = _BARE.sub(lambda m: _BARE_CHARS[m.group(1)], text)
    text = _TAG.sub(" ", html.unescape(text))
    return " ".join(text.split())


def read_ag_news(path: str | Path, do_clean: bool = True) -> list[dict]:
    path = Path(path)
    rows = []
    for number, (line, row) in enumerate(read_csv(path, header=True), start=1):
        for column in ("label", "title", "description"):
            if column not in row:
                raise LexilabError(f"{path}: line 1: no column {column!r} in the header")
        label = row["label"].strip()
        if label not in LABELS:
            raise LexilabError(f"{path}: line {line}: unknown label {label!r} (expected 1–4)")
        title, description = row["title"], row["description"]
        if do_clean:
            title, description = clean(title), clean(description)
        rows.append({"id": f"row-{number}", "text": f"{title}\n\n{description}".strip(), "label": LABELS[label]})
    return rows


@register_dataset(NAME, "multiclass", "AG News test file (4 classes, hash split)", files=manifest_files(NAME))
def load_ag_news(root: Path, **options):
    opts, check = resolve_options(NAME, options, DEFAULTS)
    files = verify(NAME, root)
    rows = read_ag_news(Path(root) / FILE, bool(opts["clean"]))
    splits = assemble({"train": rows}, NAME, val=opts["val"], test=opts["test"], calibration=opts["calibration"])
    return finish(NAME, "multiclass", splits, files=files, report={}, label_names=list(LABELS.values()),
                  check_manifest=check)
