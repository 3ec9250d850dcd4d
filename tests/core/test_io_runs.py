"""Atomic writes never leave half a file; status updates from many processes are not lost."""
import json
import multiprocessing as mp

import pytest

from lexilab.io import append_jsonl, atomic_write_json, read_jsonl
from lexilab.runs import config_hash, read_status, update_status


def test_atomic_write_keeps_old_file_on_crash(tmp_path, monkeypatch):
    path = tmp_path / "m.json"
    atomic_write_json(path, {"a": 1})

    class Boom:  # not JSON serialisable: the write fails midway
        pass

    with pytest.raises(TypeError):
        atomic_write_json(path, {"a": Boom()})
    assert json.loads(path.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]  # no temp file left behind


def test_read_jsonl_skips_only_a_truncated_last_line(tmp_path):
    path = tmp_path / "h.jsonl"
    append_jsonl(path, [{"step": 1}, {"step": 2}])
    with open(path, "a") as handle:
        handle.write('{"step": 3')  # a crash mid-append
    assert [r["step"] for r in read_jsonl(path)] == [1, 2]
    path.write_text('{"step": 1}\n{bad\n{"step": 3}\n')
    with pytest.raises(json.JSONDecodeError):
        list(read_jsonl(path))


def test_config_hash_ignores_key_order():
    a = {"x": 1, "y": {"b": 2, "a": [1, 2]}}
    b = {"y": {"a": [1, 2], "b": 2}, "x": 1}
    assert config_hash(a) == config_hash(b)
    assert config_hash(a) != config_hash({**a, "x": 2})


def _bump(args):
    run_dir, key = args
    update_status(run_dir, **{key: True})


def test_concurrent_status_updates_are_not_lost(tmp_path):
    keys = [f"k{i}" for i in range(24)]
    with mp.get_context("fork").Pool(4) as pool:
        pool.map(_bump, [(tmp_path, k) for k in keys])
    status = read_status(tmp_path)
    assert all(status.get(k) for k in keys)
    assert status["state"] == "pending"


def test_atomic_files_get_the_umask_mode_not_private(tmp_path):
    import os

    old = os.umask(0o022)
    try:
        atomic_write_json(tmp_path / "s.json", {"a": 1})
    finally:
        os.umask(old)
    assert (tmp_path / "s.json").stat().st_mode & 0o777 == 0o644
