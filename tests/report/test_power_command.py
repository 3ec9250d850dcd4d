"""`python -m lexilab power` on a results tree with known values."""
from __future__ import annotations

import argparse

import numpy as np
import pytest
from statsmodels.stats.power import TTestPower

from lexilab.cli import main
from lexilab.commands import power as power_command

from .conftest import KNOWN


def _run(argv, capsys):
    parser = argparse.ArgumentParser()
    power_command.register(parser.add_subparsers())
    args = parser.parse_args(["power", *argv])
    assert args.func(args) == 0
    return capsys.readouterr().out


def _row(out, arm, metric):
    return next(line.split() for line in out.splitlines() if line.startswith(f"{arm} vs") and metric in line)


def test_seeds_needed_for_a_difference(known_results, capsys):
    out = _run(["pooling", "--results", str(known_results), "--metrics", "topic/accuracy", "emotion/f1_samples",
                "--baseline", "mean", "--delta", "0.01"], capsys)
    assert "α=0.05/4 = 0.0125 per comparison (holm over 4 comparisons" in out
    sd = np.std(np.array(KNOWN["attention"]) - np.array(KNOWN["mean"]), ddof=1)
    n = int(_row(out, "attention", "topic/accuracy")[-1])
    effect = 0.01 / sd
    assert TTestPower().power(effect_size=effect, nobs=n, alpha=0.0125) >= 0.8
    assert TTestPower().power(effect_size=effect, nobs=n - 1, alpha=0.0125) < 0.8


def test_minimum_detectable_difference_at_n_seeds(known_results, capsys):
    out = _run(["pooling", "--results", str(known_results), "--metrics", "topic/accuracy", "--baseline", "mean",
                "--seeds", "10", "--correction", "none"], capsys)
    assert "MDD at 10 seeds" in out and "α=0.05;" in out
    assert "deviates from the spec's pre-registered one: --correction none" in out
    sd = np.std(np.array(KNOWN["max"]) - np.array(KNOWN["mean"]), ddof=1)
    mdd = float(_row(out, "max", "topic/accuracy")[-1])
    assert mdd == pytest.approx(TTestPower().solve_power(nobs=10, alpha=0.05, power=0.8) * sd, abs=5e-4)


def test_delta_and_seeds_are_exclusive_and_checked(known_results, capsys):
    assert main(["power", "pooling", "--results", str(known_results), "--seeds", "1"]) == 2
    assert "--seeds: a paired t-test needs at least 2 seeds" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["power", "pooling", "--delta", "0.1", "--seeds", "5"])
