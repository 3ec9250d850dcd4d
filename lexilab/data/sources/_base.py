"""Shared steps of every built-in loader: option checking, file verification, final checks."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from lexilab.data import manifests
from lexilab.data.registry import SPLITS, Dataset, did_you_mean
from lexilab.data.splits import check_splits
from lexilab.errors import LexilabError


def resolve_options(name: str, given: dict[str, Any], defaults: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """Merge ``given`` over ``defaults``; an unknown option is an error (never silently ignored).

    Returns (options, check_manifest). The manifest's counts and labels describe the default
    options, so they are checked only then; ``check_counts: false`` (every loader accepts it)
    skips that check, e.g. for a maintainer re-pinning a manifest after a deliberate change.
    """
    given = dict(given)
    check_counts = given.pop("check_counts", True)
    if not isinstance(check_counts, bool):
        raise LexilabError(f"dataset {name}: option check_counts must be true or false, got {check_counts!r}")
    for key in given:
        if key not in defaults:
            raise LexilabError(
                f"dataset {name}: unknown option {key!r}{did_you_mean(key, defaults)}; "
                f"options: {', '.join(sorted(defaults)) or 'none'}")
    options = {**defaults, **given}
    is_default = all(options[k] == defaults[k] for k in defaults)
    return options, is_default and check_counts


def verify(name: str, root: Path, manifest_name: str | None = None) -> dict[str, str]:
    """Check the files a dataset reads against the manifest → {relative path: sha256}."""
    return manifests.verify_files(manifest_name or name, root)


def check_labels(name: str, kind: str, splits: dict[str, list[dict]], label_names: list[str] | None) -> None:
    if kind == "seq2seq":
        return
    known = set(label_names or ())
    if not known:
        raise LexilabError(f"dataset {name}: a {kind} dataset needs a non-empty label set")
    for split in SPLITS:
        for example in splits[split]:
            found = [example.get("label")] if kind == "multiclass" else example.get("labels")
            if not isinstance(found, list):
                raise LexilabError(f"dataset {name}: example {example.get('id')!r}: 'labels' must be a list")
            for label in found:
                if label not in known:
                    raise LexilabError(
                        f"dataset {name}: example {example.get('id')!r}: unknown label {label!r}"
                        f"{did_you_mean(label, known)}")


def finish(name: str, kind: str, splits: dict[str, list[dict]], *, files: dict[str, str],
           report: dict[str, int], label_names: list[str] | None = None,
           text_fields: tuple[str, ...] | list[str] = ("text",), check_manifest: bool = False) -> Dataset:
    """Validate splits and labels, build the Dataset and (default options) check its manifest."""
    check_splits(name, splits)
    check_labels(name, kind, splits, label_names)
    dataset = Dataset(name=name, kind=kind, splits={s: splits[s] for s in SPLITS},
                      label_names=list(label_names) if label_names is not None else None,
                      text_fields=list(text_fields), files=dict(files), report=dict(report))
    if check_manifest:
        manifests.check_against_manifest(dataset)
    return dataset
