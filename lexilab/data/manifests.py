"""Pinned manifests: what every named dataset must read (file sha256) and produce (rows per
split, label set), checked each time a dataset loads.

Two kinds of JSON ship in ``lexilab/data/manifests/``:

- ``files.json``: one entry per data file (path relative to the data root) with ``sha256``,
  ``bytes``, the upstream ``url`` it is fetched from and its ``origin`` (repository @ commit,
  path). ``also_sha256`` lists other accepted byte-exact versions (the canonical 20 Newsgroups
  archive); ``content_sha256`` is the sha256 of a ``.gz`` file's decompressed stream (a file
  rebuilt from upstream parts is accepted by its content); ``build`` names a fetch recipe.
- ``<dataset>.json``: ``files`` it reads, ``counts`` per split and ``labels`` under the
  loader's default options.

sha256 sums are computed once per file per process (cached by path, mtime and size).
"""
from __future__ import annotations

import functools
import gzip
import hashlib
import json
import os
from pathlib import Path

from lexilab.data.registry import SPLITS, Dataset
from lexilab.errors import LexilabError
from lexilab.io import atomic_write_json

MANIFEST_DIR = Path(__file__).with_name("manifests")
ENV_ROOT = "LEXILAB_DATA"

_SHA_CACHE: dict[tuple[str, int, int, str], str] = {}


def default_root(cwd: str | Path | None = None) -> Path | None:
    """``$LEXILAB_DATA`` if set, else ``../shared/data`` relative to ``cwd`` if it exists."""
    env = os.environ.get(ENV_ROOT)
    if env:
        return Path(env)
    candidate = Path(cwd or os.getcwd()) / ".." / "shared" / "data"
    return candidate.resolve() if candidate.is_dir() else None


def fetch_hint(name: str, root: str | Path) -> str:
    return f"fetch it with: python -m lexilab data fetch {name} --to {root}"


@functools.lru_cache(maxsize=None)
def file_table() -> dict[str, dict]:
    with open(MANIFEST_DIR / "files.json", encoding="utf-8") as handle:
        return json.load(handle)


@functools.lru_cache(maxsize=None)
def dataset_manifest(name: str) -> dict:
    path = MANIFEST_DIR / f"{name}.json"
    if not path.is_file():
        raise LexilabError(f"{path}: no manifest for dataset {name!r}")
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def manifest_files(name: str) -> tuple[str, ...]:
    """Files (relative to the root) that dataset ``name`` reads, for the registry and `data list`."""
    return tuple(dataset_manifest(name)["files"])


def _hash_stream(handle, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    for block in iter(lambda: handle.read(chunk), b""):
        digest.update(block)
    return digest.hexdigest()


def _cached(path: Path, kind: str, compute) -> str:
    stat = path.stat()
    key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size, kind)
    if key not in _SHA_CACHE:
        _SHA_CACHE[key] = compute()
    return _SHA_CACHE[key]


def sha256_file(path: str | Path) -> str:
    """sha256 of the file's bytes; computed once per (path, mtime, size) in this process."""
    path = Path(path)

    def compute() -> str:
        with open(path, "rb") as handle:
            return _hash_stream(handle)

    return _cached(path, "bytes", compute)


def content_sha256(path: str | Path) -> str:
    """sha256 of a gzip file's decompressed stream (cached like :func:`sha256_file`)."""
    path = Path(path)

    def compute() -> str:
        try:
            with gzip.open(path, "rb") as handle:
                return _hash_stream(handle)
        except (OSError, EOFError) as err:
            raise LexilabError(f"{path}: not a readable gzip file ({err})") from None

    return _cached(path, "content", compute)


def accepted(rel: str, path: Path) -> str | None:
    """The file's sha256 if the manifest accepts it (bytes or, for .gz, content), else None."""
    entry = file_table()[rel]
    actual = sha256_file(path)
    if actual == entry["sha256"] or actual in entry.get("also_sha256", ()):
        return actual
    if entry.get("content_sha256") and content_sha256(path) == entry["content_sha256"]:
        return actual
    return None


def verify_file(name: str, root: Path, rel: str) -> str:
    """Check one file of dataset ``name``; returns its sha256 or raises a one-line error."""
    table = file_table()
    if rel not in table:
        raise LexilabError(f"{MANIFEST_DIR / 'files.json'}: no entry for {rel!r} (dataset {name})")
    path = root / rel
    if not path.is_file():
        raise LexilabError(f"{path}: missing (dataset {name}); {fetch_hint(name, root)}")
    actual = accepted(rel, path)
    if actual is None:
        raise LexilabError(
            f"{path}: sha256 {sha256_file(path)[:16]}… differs from the manifest's "
            f"{table[rel]['sha256'][:16]}… (dataset {name}); {fetch_hint(name, root)}")
    return actual


def verify_files(name: str, root: str | Path, rels: tuple[str, ...] | list[str] | None = None) -> dict[str, str]:
    """Verify the files of dataset ``name`` (default: all its manifest files) → {rel: sha256}."""
    root = Path(root)
    return {rel: verify_file(name, root, rel) for rel in (rels if rels is not None else manifest_files(name))}


def split_counts(dataset: Dataset) -> dict[str, int]:
    return {split: len(dataset.splits.get(split, [])) for split in SPLITS}


def check_against_manifest(dataset: Dataset, manifest_name: str | None = None) -> None:
    """Rows per split and the label set must equal the manifest's (default options only)."""
    name = manifest_name or dataset.name
    manifest = dataset_manifest(name)
    where = MANIFEST_DIR / f"{name}.json"
    counts = split_counts(dataset)
    for split in SPLITS:
        want = manifest["counts"].get(split)
        if want != counts[split]:
            raise LexilabError(
                f"{where}: counts.{split}: dataset {name} has {counts[split]} rows, the manifest says {want}")
    want_labels = manifest.get("labels")
    if want_labels is not None and list(dataset.label_names or []) != list(want_labels):
        missing = sorted(set(want_labels) - set(dataset.label_names or []))
        extra = sorted(set(dataset.label_names or []) - set(want_labels))
        raise LexilabError(
            f"{where}: labels: dataset {name} label set differs (missing {missing}, unexpected {extra}"
            f"{', order differs' if not missing and not extra else ''})")


def build_manifest(dataset: Dataset) -> dict:
    """The manifest a freshly loaded (default-options) dataset implies."""
    return {
        "name": dataset.name,
        "kind": dataset.kind,
        "files": sorted(dataset.files),
        "counts": split_counts(dataset),
        "labels": list(dataset.label_names) if dataset.label_names is not None else None,
        "text_fields": list(dataset.text_fields),
        "report": dict(sorted(dataset.report.items())),
    }


def pin(dataset: Dataset, directory: str | Path = MANIFEST_DIR) -> Path:
    """Write ``<directory>/<name>.json`` for a dataset (maintainers: after a deliberate change)."""
    path = Path(directory) / f"{dataset.name}.json"
    atomic_write_json(path, build_manifest(dataset))
    dataset_manifest.cache_clear()
    return path
