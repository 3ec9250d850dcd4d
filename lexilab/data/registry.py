"""The dataset registry: a name → loader. Adding a dataset is one module + one test.

A loader is ``loader(root: Path, **options) -> Dataset``. Examples are plain dicts:

- every example: ``id`` (str, unique within the dataset), ``text`` (the model input);
- seq2seq: ``target`` (str); optional ``domain`` (str) for per-domain metrics;
- multiclass: ``label`` (str, a name in ``label_names``);
- multilabel: ``labels`` (list[str], names in ``label_names``; may be empty).
Extra string fields are allowed (e.g. ``title``) and are listed in ``text_fields`` when they
hold text that the leakage check must compare.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from lexilab.errors import LexilabError

SPLITS = ("train", "val", "calibration", "test")
KINDS = ("seq2seq", "multiclass", "multilabel")


@dataclass
class Dataset:
    name: str
    kind: str  # one of KINDS
    splits: dict[str, list[dict]]  # keys: SPLITS (every one present; calibration carved from train)
    label_names: list[str] | None = None  # classification kinds; order defines head outputs
    text_fields: list[str] = field(default_factory=lambda: ["text"])
    files: dict[str, str] = field(default_factory=dict)  # file name -> sha256 actually read
    report: dict[str, int] = field(default_factory=dict)  # counts of anything filtered/dropped

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"dataset {self.name}: kind {self.kind!r} not in {KINDS}")


@dataclass(frozen=True)
class DatasetEntry:
    name: str
    kind: str
    loader: Callable[..., Dataset]
    description: str
    files: tuple[str, ...] = ()  # paths relative to the data root (for `data list`)


DATASETS: dict[str, DatasetEntry] = {}


def register_dataset(name: str, kind: str, description: str, files: tuple[str, ...] = ()):
    """Decorator registering ``loader`` under ``name``."""

    def wrap(loader: Callable[..., Dataset]) -> Callable[..., Dataset]:
        if name in DATASETS:
            raise ValueError(f"dataset {name!r} registered twice")
        DATASETS[name] = DatasetEntry(name, kind, loader, description, tuple(files))
        return loader

    return wrap


def did_you_mean(word: str, choices) -> str:
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def get_entry(name: str) -> DatasetEntry:
    _import_builtin_datasets()
    if name not in DATASETS:
        raise LexilabError(
            f"unknown dataset {name!r}{did_you_mean(name, DATASETS)}; known: {', '.join(sorted(DATASETS))}"
        )
    return DATASETS[name]


def load_dataset(spec: str | dict, root: str | Path) -> Dataset:
    """Load a dataset from a name (``"goemotions"``) or a mapping (``{"name": ..., **options}``)."""
    if isinstance(spec, str):
        name, options = spec, {}
    else:
        options = dict(spec)
        name = options.pop("name")
    return get_entry(name).loader(Path(root), **options)


def _import_builtin_datasets() -> None:
    # Importing the package registers every built-in dataset module.
    import lexilab.data.sources  # noqa: F401
    import lexilab.data.synthetic  # noqa: F401
