"""Report numbers against scipy/statsmodels on results trees with known values."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as st
from statsmodels.stats.multitest import multipletests

from lexilab import results
from lexilab.errors import LexilabError
from lexilab.report.compare import build_report, marker

from .conftest import EMOTION, KNOWN

METRICS = ["topic/accuracy", "emotion/f1_samples"]


def _report(root, **kwargs):
    exp = results.experiment("pooling", results=root)
    kwargs.setdefault("metrics", METRICS)
    kwargs.setdefault("baseline", "mean")
    kwargs.setdefault("n_resamples", 2000)
    loader = lambda task, arms: results.records(exp, task=task, arms=arms)  # noqa: E731
    return build_report(exp, results.load(exp), records_loader=loader, **kwargs)


def test_summary_is_mean_and_t_interval(known_results):
    report = _report(known_results)
    row = report.summary.set_index(["arm", "metric"]).loc[("attention", "topic/accuracy")]
    values = np.array(KNOWN["attention"])
    assert row["mean"] == pytest.approx(values.mean())
    assert (row["low"], row["high"]) == pytest.approx(st.t.interval(0.95, 2, loc=values.mean(), scale=st.sem(values)))
    assert row["ci_method"] == "t-interval" and row["n"] == 3


def test_comparisons_paired_t_and_holm_over_family(known_results):
    report = _report(known_results)
    comps = report.comparisons.set_index(["arm", "metric"])
    expected_p = []
    for arm in ("attention", "max"):
        for metric, table in (("topic/accuracy", KNOWN), ("emotion/f1_samples", EMOTION)):
            p = st.ttest_rel(table[arm], table["mean"]).pvalue
            assert comps.loc[(arm, metric), "p"] == pytest.approx(p)
            assert comps.loc[(arm, metric), "diff"] == pytest.approx(np.mean(table[arm]) - np.mean(table["mean"]))
            expected_p.append(p)
    adjusted = multipletests(expected_p, method="holm")[1]
    got = [comps.loc[(a, m), "p_adj"] for a in ("attention", "max") for m in METRICS]
    assert got == pytest.approx(adjusted)
    assert set(comps["design"]) == {"paired"}
    assert comps.loc[("attention", "topic/accuracy"), "marker"] == marker(adjusted[0])


def test_bh_correction_and_other_tests(known_results):
    report = _report(known_results, correction="bh", test="wilcoxon")
    assert report.comparisons["p_adj"].tolist() == pytest.approx(
        multipletests(report.comparisons["p"], method="fdr_bh")[1])
    # three seeds: the smallest exact two-sided Wilcoxon p is 0.25
    assert report.comparisons["p"].min() >= 0.25 - 1e-12
    perm = _report(known_results, test="permutation")
    assert perm.comparisons["test"].str.contains("exact").all()


def test_different_seed_sets_fall_back_to_unpaired(known_results, make):
    make(known_results, "pooling", "max", 5, levels={"pooling": "max"},
         tasks={"topic": "multiclass", "emotion": "multilabel"},
         metrics={"test": {"topic": {"accuracy": 0.81}, "emotion": {"f1_samples": 0.30}}})
    report = _report(known_results)
    row = report.comparisons.set_index(["arm", "metric"]).loc[("max", "topic/accuracy")]
    assert row["design"].startswith("unpaired")
    welch = st.ttest_ind(KNOWN["max"] + [0.81], KNOWN["mean"], equal_var=False)
    assert row["p"] == pytest.approx(welch.pvalue) and row["test"] == "Welch t-test"
    assert any("different seed sets" in n and "unpaired" in n for n in report.notes)


def test_bad_input_is_one_clear_line(known_results, tmp_path, make):
    with pytest.raises(LexilabError, match=r"metric topic/acc not in the test results; available: "
                                           r"emotion/f1_samples, topic/accuracy, topic/f1_macro$"):
        _report(known_results, metrics=["topic/acc"])
    with pytest.raises(LexilabError, match=r"--baseline: arm 'median' has no finished runs"):
        _report(known_results, baseline="median")
    root = tmp_path / "other"
    make(root, "pooling", "mean", 0, levels={}, tasks={"topic": "multiclass"}, state="failed")
    make(root, "pooling", "mean", 1, levels={}, tasks={"topic": "multiclass"}, state="running")
    with pytest.raises(LexilabError, match=r"no finished runs \((1 failed, 1 running|1 running, 1 failed)\)") as err:
        _report(root)
    assert "\n" not in str(err.value)


def test_unfinished_runs_are_named_in_notes(known_results):
    note = [n for n in _report(known_results).notes if n.startswith("not finished")]
    assert note and "1 failed" in note[0] and "mean/seed-3" in note[0] and "attention/seed-3" in note[0]


def test_single_task_baseline_and_delta_m(tmp_path, make):
    root = tmp_path / "results"
    mtl = {"a": [0.60, 0.62, 0.61], "b": [0.40, 0.41, 0.42]}
    single = {"a": [0.58, 0.60, 0.60], "b": [0.44, 0.43, 0.45]}
    for seed in range(3):
        make(root, "mvs", "mtl", seed, levels={"tasks": "mtl"}, tasks={"a": "multiclass", "b": "multiclass"},
             metrics={"test": {"a": {"accuracy": mtl["a"][seed]}, "b": {"accuracy": mtl["b"][seed]}}})
        for task in ("a", "b"):
            make(root, "mvs", f"{task}_only", seed, levels={"tasks": f"{task}_only"}, tasks={task: "multiclass"},
                 metrics={"test": {task: {"accuracy": single[task][seed]}}})
    exp = results.experiment("mvs", results=root)
    report = build_report(exp, results.load(exp), metrics=["a/accuracy", "b/accuracy"], baseline="a_only",
                          n_resamples=2000)
    comps = report.comparisons.set_index(["arm", "metric"])
    assert comps.loc[("mtl", "b/accuracy"), "baseline"] == "b_only"  # a_only does not train b
    assert any("compared with b_only" in n for n in report.notes)
    dm = report.delta_m.set_index("arm").loc["mtl"]
    expected = 100 * np.mean([(np.mean(mtl[t]) - np.mean(single[t])) / np.mean(single[t]) for t in ("a", "b")])
    assert dm["delta_m"] == pytest.approx(expected) and dm["paired"]
    assert dm["low"] <= dm["delta_m"] <= dm["high"]


def test_item_level_test_uses_records(tmp_path, make):
    root = tmp_path / "results"
    rng = np.random.default_rng(0)
    gold = rng.integers(0, 3, 120)
    labels = ["x", "y", "z"]
    for arm, quality in (("base", 0.5), ("better", 0.8)):
        for seed in range(2):
            pred = np.where(rng.random(120) < quality, gold, rng.integers(0, 3, 120))
            recs = [{"id": f"i{k}", "prediction": labels[p], "reference": labels[g],
                     "scores": {n: float(n == labels[p]) for n in labels}} for k, (p, g) in enumerate(zip(pred, gold))]
            recs = recs[::-1] if seed else recs  # order differs between runs: items are aligned by id
            acc = float(np.mean(pred == gold))
            make(root, "items", arm, seed, levels={}, tasks={"t": "multiclass"},
                 metrics={"test": {"t": {"f1_macro": acc}}}, predictions={("test", "t"): recs})
    exp = results.experiment("items", results=root)
    report = build_report(exp, results.load(exp), metrics=["t/f1_macro"], baseline="base", test="items",
                          n_resamples=1000, records_loader=lambda task, arms: results.records(exp, task=task, arms=arms))
    row = report.comparisons.iloc[0]
    assert row["test"].startswith("paired item bootstrap") and "120 items" in row["test"]
    assert row["p"] < 0.01 and row["low"] > 0
