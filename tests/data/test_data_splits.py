"""Hash splits: deterministic, order-free, stable under additions, calibration from train only."""
from __future__ import annotations

import hashlib
import random

import pytest

from lexilab.data import splits
from lexilab.errors import LexilabError


def rows(n: int, prefix: str = "r") -> list[dict]:
    return [{"id": f"{prefix}{i}", "text": f"text {i}"} for i in range(n)]


def test_unit_hash_is_sha256_of_salt_purpose_key():
    digest = hashlib.sha256("ds\x1fsplit\x1fabc".encode()).digest()
    assert splits.unit_hash("ds", "split", "abc") == int.from_bytes(digest[:8], "big") / 2**64
    assert splits.unit_hash("ds", "split", "abc") != splits.unit_hash("other", "split", "abc")


def test_hash_split_fractions_within_binomial_bounds():
    n = 20000
    out = splits.hash_split(rows(n), "salt", val=0.1, test=0.2)
    for name, p in (("test", 0.2), ("val", 0.1), ("train", 0.7)):
        sd = (n * p * (1 - p)) ** 0.5
        assert abs(len(out[name]) - n * p) < 5 * sd, name
    assert sum(len(v) for v in out.values()) == n


def test_membership_ignores_order_and_other_rows():
    base = rows(3000)
    first = splits.assemble({"train": base}, "salt")
    shuffled = base[:]
    random.Random(1).shuffle(shuffled)
    grown = splits.assemble({"train": shuffled + rows(500, "new")}, "salt")
    where = {ex["id"]: name for name, part in grown.items() for ex in part}
    for name, part in first.items():
        assert all(where[ex["id"]] == name for ex in part)


def test_official_test_untouched_and_calibration_only_from_train():
    train, val, test = rows(4000, "tr"), rows(300, "va"), rows(300, "te")
    out = splits.assemble({"train": train, "val": val, "test": test}, "salt", calibration=0.25)
    assert out["test"] == test and out["val"] == val
    assert {ex["id"] for ex in out["calibration"]} <= {ex["id"] for ex in train}
    assert len(out["train"]) + len(out["calibration"]) == 4000
    assert 850 < len(out["calibration"]) < 1150


def test_val_carved_from_train_when_only_test_given():
    out = splits.assemble({"train": rows(2000), "test": rows(100, "te")}, "salt", val=0.1, calibration=0.1)
    assert out["test"] == rows(100, "te")
    assert sum(len(out[s]) for s in ("train", "val", "calibration")) == 2000
    assert all(ex["id"].startswith("r") for ex in out["val"] + out["calibration"])


def test_bad_fractions_and_split_checks():
    with pytest.raises(LexilabError, match="leave no training rows"):
        splits.hash_split(rows(10), "s", val=0.5, test=0.5)
    with pytest.raises(LexilabError, match="must be in"):
        splits.carve(rows(10), "s", "calibration", 1.5)
    good = {"train": rows(2), "val": rows(1, "v"), "calibration": rows(1, "c"), "test": rows(1, "t")}
    splits.check_splits("toy", good)
    with pytest.raises(LexilabError, match="dataset toy: split 'val' has no rows"):
        splits.check_splits("toy", {**good, "val": []})
    with pytest.raises(LexilabError, match="id 'r0' occurs twice"):
        splits.check_splits("toy", {**good, "test": rows(1)})
