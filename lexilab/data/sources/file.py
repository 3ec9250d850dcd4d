"""Generic datasets from your own JSONL / CSV / TSV files, with a field mapping in the spec.

    data:
      name: file
      path: my/reviews.csv          # relative paths resolve against the data root
      kind: multiclass              # seq2seq | multiclass | multilabel
      fields: {text: body, label: stars, id: review_id}   # + any extra text fields: {title: headline}
      # format: csv                 # jsonl | csv | tsv; default from the file suffix (.gz allowed)
      # splits: {train: a.jsonl, test: b.jsonl}          # instead of path; missing splits are carved
      # label_names: [neg, pos]     # fixes the label set and order; other labels are an error
      # label_sep: ","              # multilabel labels given as one string (CSV/TSV)
      # dataset_name: reviews       # name in reports (default: file:<stem>); also the split salt

CSV/TSV files need a header row. Without an ``id`` field, ids are ``<file name>:<line>``.
Without official splits: hash split on the id (80 / 10 / 10), calibration from train (10 %).
"""
from __future__ import annotations

from pathlib import Path

from lexilab.data.formats import FORMATS, guess_format, read_records
from lexilab.data.manifests import sha256_file
from lexilab.data.registry import KINDS, SPLITS, did_you_mean, register_dataset
from lexilab.data.sources._base import finish, resolve_options
from lexilab.data.splits import CALIBRATION_FRACTION, TEST_FRACTION, VAL_FRACTION, assemble
from lexilab.errors import LexilabError

NAME = "file"
TARGET_KEY = {"seq2seq": "target", "multiclass": "label", "multilabel": "labels"}
RESERVED = {"text", "target", "label", "labels", "id", "domain"}
DEFAULTS = {"path": None, "splits": None, "format": None, "kind": None, "fields": None, "label_names": None,
            "label_sep": ",", "dataset_name": None, "val": VAL_FRACTION, "test": TEST_FRACTION,
            "calibration": CALIBRATION_FRACTION}


def _resolve(root: Path, path) -> Path:
    path = Path(str(path)).expanduser()
    return path if path.is_absolute() else root / path


def _labels(value, kind: str, sep: str, where: str) -> str | list[str]:
    if kind == "multiclass":
        if isinstance(value, (list, dict)) or value is None:
            raise LexilabError(f"{where}: a multiclass label must be one value, got {value!r}")
        return str(value).strip()
    if isinstance(value, list):
        return [str(v).strip() for v in value if str(v).strip()]
    if isinstance(value, str):
        return [v.strip() for v in value.split(sep) if v.strip()] if sep else [value.strip()]
    raise LexilabError(f"{where}: multilabel labels must be a list or a {sep!r}-separated string, got {value!r}")


def read_file(path: Path, fmt: str | None, kind: str, fields: dict[str, str | None], label_sep: str,
              label_names: list[str] | None = None) -> list[dict]:
    """Examples of one file under a field mapping; a missing field or unknown label names the file and line."""
    known = set(label_names) if label_names is not None else None
    rows = []
    for line, record in read_records(path, fmt):
        example = {}
        for out_key, column in fields.items():
            if column is None:  # an optional field switched off
                continue
            if column not in record:
                raise LexilabError(
                    f"{path}: line {line}: field {column!r} (fields.{out_key}) missing; "
                    f"fields present: {', '.join(sorted(map(str, record)))}")
            value = record[column]
            where = f"{path}: line {line}: field {column!r}"
            if out_key == TARGET_KEY[kind] and kind != "seq2seq":
                example[out_key] = _labels(value, kind, label_sep, where)
                found = [example[out_key]] if kind == "multiclass" else example[out_key]
                for label in found:
                    if known is not None and label not in known:
                        raise LexilabError(f"{where}: unknown label {label!r}{did_you_mean(label, known)}")
            elif out_key == "references" and isinstance(value, list):
                example[out_key] = [str(v) for v in value]
            elif value is None or isinstance(value, (dict, list)):
                raise LexilabError(f"{where}: expected text, got {type(value).__name__}")
            else:
                example[out_key] = str(value)
        example["id"] = example["id"] if "id" in example else f"{path.name}:{line}"
        if not example["text"].strip():
            raise LexilabError(f"{path}: line {line}: field {fields['text']!r} (fields.text) is empty")
        rows.append(example)
    return rows


@register_dataset(NAME, "any", "your own JSONL/CSV/TSV file(s) with a field mapping (kind per spec)")
def load_file(root: Path, **options):
    opts, _ = resolve_options(NAME, options, DEFAULTS)
    root = Path(root)
    kind = opts["kind"]
    if kind not in KINDS:
        raise LexilabError(f"dataset file: option kind must be one of {', '.join(KINDS)}, got {kind!r}")
    fields = opts["fields"]
    target_key = TARGET_KEY[kind]
    if not isinstance(fields, dict) or "text" not in fields or target_key not in fields:
        raise LexilabError(f"dataset file: option fields must map at least 'text' and '{target_key}' to column names")
    if opts["format"] is not None and opts["format"] not in FORMATS:
        raise LexilabError(f"dataset file: option format must be one of {', '.join(FORMATS)}, got {opts['format']!r}")
    if (opts["path"] is None) == (opts["splits"] is None):
        raise LexilabError("dataset file: give exactly one of the options path and splits")
    paths = {"train": opts["path"]} if opts["path"] is not None else dict(opts["splits"])
    unknown = set(paths) - set(SPLITS)
    if unknown or "train" not in paths:
        raise LexilabError(f"dataset file: option splits needs train and only {', '.join(SPLITS)}; got {sorted(paths)}")
    if opts["label_names"] is not None:
        opts["label_names"] = [str(x) for x in opts["label_names"]]
    files, official = {}, {}
    for split, rel in paths.items():
        path = _resolve(root, rel)
        if not path.is_file():
            raise LexilabError(f"{path}: file not found (dataset file, split {split})")
        fmt = opts["format"] or guess_format(path)
        official[split] = read_file(path, fmt, kind, dict(fields), opts["label_sep"], opts["label_names"])
        files[str(path)] = sha256_file(path)
    name = opts["dataset_name"] or f"file:{Path(str(paths['train'])).stem}"
    splits = assemble(official, name, val=opts["val"], test=opts["test"], calibration=opts["calibration"])
    label_names = None
    if kind != "seq2seq":
        found = sorted({lab for rows in splits.values() for r in rows
                        for lab in ([r["label"]] if kind == "multiclass" else r["labels"])})
        label_names = opts["label_names"] if opts["label_names"] is not None else found
    extra = [k for k in fields if k not in RESERVED]
    text_fields = ["text"] + (["target"] if kind == "seq2seq" else []) + extra
    return finish(name, kind, splits, files=files, report={}, label_names=label_names, text_fields=text_fields)
