"""Deterministic splits by hashing each example's id.

An example goes to a split by ``u = sha256(salt, purpose, key) / 2**64`` (the first 8 bytes),
so membership never depends on file order, on the other rows, or on a random state, and it is
stable when rows are added. The salt is the name of the *source* the row comes from (for
single-source datasets: the dataset name). Datasets built from the same source rows
(``topics7`` and ``20newsgroups``, ``leximind_literary`` and ``summaries_mixed``, ...) therefore put
a shared row in the same split, which keeps one dataset's test rows out of another's train split.

Fractions (documented defaults, overridable per dataset):

- sources without an official split: test 10 %, val 10 %, train the rest;
- sources with train/test only: val carved from train, 10 % of it;
- calibration (for multi-label thresholds): carved from train only, 10 % of what train holds
  after val was carved — never from val or test.
"""
from __future__ import annotations

import hashlib
from typing import Callable, Iterable

from lexilab.data.registry import SPLITS
from lexilab.errors import LexilabError

VAL_FRACTION = 0.1
TEST_FRACTION = 0.1
CALIBRATION_FRACTION = 0.1

Key = Callable[[dict], str]


def _by_id(example: dict) -> str:
    return str(example["id"])


def unit_hash(salt: str, purpose: str, key: str) -> float:
    """A number in [0, 1) fixed by (salt, purpose, key); independent across purposes."""
    digest = hashlib.sha256(f"{salt}\x1f{purpose}\x1f{key}".encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def _check_fraction(name: str, value: float) -> float:
    value = float(value)
    if not 0.0 <= value < 1.0:
        raise LexilabError(f"split fraction {name}={value}: must be in [0, 1)")
    return value


def hash_split(examples: Iterable[dict], salt: str, *, val: float = VAL_FRACTION,
               test: float = TEST_FRACTION, key: Key = _by_id) -> dict[str, list[dict]]:
    """train / val / test from one hash per example: [0, test) → test, [test, test+val) → val."""
    val, test = _check_fraction("val", val), _check_fraction("test", test)
    if val + test >= 1.0:
        raise LexilabError(f"split fractions val={val} + test={test} leave no training rows")
    out: dict[str, list[dict]] = {"train": [], "val": [], "test": []}
    for example in examples:
        u = unit_hash(salt, "split", key(example))
        out["test" if u < test else "val" if u < test + val else "train"].append(example)
    return out


def carve(examples: Iterable[dict], salt: str, purpose: str, fraction: float,
          key: Key = _by_id) -> tuple[list[dict], list[dict]]:
    """(kept, carved): an example is carved when its ``purpose`` hash is below ``fraction``."""
    fraction = _check_fraction(purpose, fraction)
    kept: list[dict] = []
    carved: list[dict] = []
    for example in examples:
        (carved if unit_hash(salt, purpose, key(example)) < fraction else kept).append(example)
    return kept, carved


def assemble(official: dict[str, list[dict]], salt: str, *, val: float = VAL_FRACTION,
             test: float = TEST_FRACTION, calibration: float = CALIBRATION_FRACTION,
             key: Key = _by_id) -> dict[str, list[dict]]:
    """Fill in the four splits from whatever the source provides.

    ``official`` holds ``train`` and any of ``val``/``test``/``calibration`` that the source
    defines. Missing val and test → one hash split of train; a missing val (or test) alone →
    carved from train; a missing calibration → carved from what train then holds.
    """
    unknown = set(official) - set(SPLITS)
    if unknown or "train" not in official:
        raise ValueError(f"official splits must include train and only {SPLITS}; got {sorted(official)}")
    out = {name: list(rows) for name, rows in official.items()}
    if "val" not in out and "test" not in out:
        parts = hash_split(out["train"], salt, val=val, test=test, key=key)
        out.update(parts)
    else:
        for name, fraction in (("test", test), ("val", val)):
            if name not in out:
                out["train"], out[name] = carve(out["train"], salt, name, fraction, key)
    if "calibration" not in out:
        out["train"], out["calibration"] = carve(out["train"], salt, "calibration", calibration, key)
    return {name: out[name] for name in SPLITS}


def check_splits(dataset: str, splits: dict[str, list[dict]]) -> None:
    """Every split present and non-empty; ids unique across the whole dataset."""
    seen: dict[str, str] = {}
    for name in SPLITS:
        rows = splits.get(name)
        if not rows:
            raise LexilabError(f"dataset {dataset}: split {name!r} has no rows")
        for example in rows:
            ident = example.get("id")
            if not isinstance(ident, str) or not ident:
                raise LexilabError(f"dataset {dataset}: split {name!r}: an example has no string id")
            if ident in seen:
                raise LexilabError(
                    f"dataset {dataset}: id {ident!r} occurs twice (splits {seen[ident]!r} and {name!r})")
            seen[ident] = name
    extra = set(splits) - set(SPLITS)
    if extra:
        raise LexilabError(f"dataset {dataset}: unknown split(s) {sorted(extra)}; splits are {SPLITS}")
