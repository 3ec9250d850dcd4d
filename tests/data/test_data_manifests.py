"""Manifests: sha256 sums agree with SOURCE.md; missing/changed files and count drifts are
one-line errors that say how to fetch; sums are computed once per file per process."""
from __future__ import annotations

import gzip
import os
from pathlib import Path

import pytest

from lexilab.data import load_dataset, manifests
from lexilab.data.registry import DATASETS, Dataset, _import_builtin_datasets
from lexilab.errors import LexilabError


def test_file_table_matches_every_source_md(shared_data, source_table):
    table = manifests.file_table()
    checked = 0
    for source in sorted(shared_data.glob("*/SOURCE.md")):
        folder = source.parent.name
        for fname, want in source_table(source).items():
            entry = table[f"{folder}/{fname}"]
            assert (entry["sha256"], entry["bytes"]) == (want["sha256"], want["bytes"]), fname
            checked += 1
    assert checked == len(table) == 19


def test_every_named_dataset_manifest_lists_pinned_files():
    _import_builtin_datasets()
    named = {n for n, e in DATASETS.items() if e.files}
    assert named == {"goemotions", "scitldr", "sumpubmed", "leximind_literary", "leximind_academic",
                     "summaries_mixed", "topics7", "20newsgroups", "ag_news", "arxiv_categories"}
    for name in named:
        manifest = manifests.dataset_manifest(name)
        assert set(manifest["files"]) <= set(manifests.file_table())
        assert set(manifest["counts"]) == {"train", "val", "calibration", "test"}


def linked_root(tmp_path: Path, shared_data: Path, folder: str) -> Path:
    """A data root whose ``folder`` files are symlinks into shared/data (nothing copied)."""
    (tmp_path / folder).mkdir(parents=True)
    for path in (shared_data / folder).iterdir():
        (tmp_path / folder / path.name).symlink_to(path)
    return tmp_path


def test_missing_file_says_how_to_fetch(tmp_path, shared_data):
    root = linked_root(tmp_path, shared_data, "goemotions")
    (root / "goemotions" / "dev.tsv").unlink()
    with pytest.raises(LexilabError) as err:
        load_dataset("goemotions", root)
    message = str(err.value)
    assert "dev.tsv: missing (dataset goemotions)" in message and "\n" not in message
    assert f"python -m lexilab data fetch goemotions --to {root}" in message


def test_changed_file_is_a_sha256_mismatch(tmp_path, shared_data):
    root = linked_root(tmp_path, shared_data, "goemotions")
    target = root / "goemotions" / "emotions.txt"
    text = target.read_text()
    target.unlink()
    target.write_text(text.replace("neutral", "neutrals"))
    with pytest.raises(LexilabError, match=r"emotions\.txt: sha256 [0-9a-f]{16}… differs from the manifest's "
                                           r"45c3ef86782d2a4d…"):
        load_dataset("goemotions", root)


def test_count_and_label_drift_are_errors():
    rows = [{"id": str(i), "text": "t", "labels": []} for i in range(4)]
    ds = Dataset("goemotions", "multilabel", {s: rows for s in ("train", "val", "calibration", "test")},
                 label_names=["a"])
    with pytest.raises(LexilabError, match=r"goemotions\.json: counts\.train: dataset goemotions has 4 rows, "
                                           r"the manifest says 38957"):
        manifests.check_against_manifest(ds)
    counts = manifests.dataset_manifest("goemotions")["counts"]
    ds.splits = {s: [{"id": f"{s}{i}", "text": "t", "labels": []} for i in range(n)] for s, n in counts.items()}
    with pytest.raises(LexilabError, match=r"labels: dataset goemotions label set differs \(missing \['admiration'"):
        manifests.check_against_manifest(ds)


def test_sha256_computed_once_per_file_version(tmp_path, monkeypatch):
    calls = []
    original = manifests._hash_stream
    monkeypatch.setattr(manifests, "_hash_stream", lambda handle: calls.append(1) or original(handle))
    path = tmp_path / "f.bin"
    path.write_bytes(b"abc")
    first = manifests.sha256_file(path)
    assert manifests.sha256_file(path) == first == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert len(calls) == 1
    path.write_bytes(b"abcd")
    os.utime(path, ns=(1, 2))  # a new version: different size and mtime
    assert manifests.sha256_file(path) != first and len(calls) == 2


def test_regzipped_sumpubmed_is_accepted_by_content(tmp_path, shared_data):
    src = shared_data / "sumpubmed" / "sumpubmed_first1500.jsonl.gz"
    (tmp_path / "sumpubmed").mkdir()
    dest = tmp_path / "sumpubmed" / src.name
    with gzip.open(src, "rb") as handle:
        dest.write_bytes(gzip.compress(handle.read(), compresslevel=1, mtime=0))
    assert manifests.sha256_file(dest) != manifests.file_table()["sumpubmed/" + src.name]["sha256"]
    assert manifests.accepted("sumpubmed/" + src.name, dest) == manifests.sha256_file(dest)
    ds = load_dataset("sumpubmed", tmp_path)
    assert sum(len(v) for v in ds.splits.values()) == 1500


def test_default_root_prefers_env(tmp_path, monkeypatch):
    monkeypatch.setenv(manifests.ENV_ROOT, str(tmp_path / "x"))
    assert manifests.default_root() == tmp_path / "x"
    monkeypatch.delenv(manifests.ENV_ROOT)
    (tmp_path / "shared" / "data").mkdir(parents=True)
    (tmp_path / "work").mkdir()
    assert manifests.default_root(tmp_path / "work") == (tmp_path / "shared" / "data").resolve()
    assert manifests.default_root(tmp_path) is None
