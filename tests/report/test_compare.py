"""Report numbers against scipy/statsmodels on results trees with known values."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as st
from sklearn.metrics import f1_score
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


def test_one_failed_seed_pairs_on_shared_seeds(known_results, make):
    """mean/seed-3 failed, max/seed-3 finished: max vs mean stays a paired test on seeds 0-2
    (not Welch over all seeds), and the dropped seed is named with why, per arm, in the
    terminal table, the .tex caption and the notes."""
    from lexilab.report.tables import caption
    from lexilab.report.terminal import render

    make(known_results, "pooling", "max", 3, levels={"pooling": "max"},
         tasks={"topic": "multiclass", "emotion": "multilabel"},
         metrics={"test": {"topic": {"accuracy": 0.70}, "emotion": {"f1_samples": 0.30}}})
    report = _report(known_results)
    row = report.comparisons.set_index(["arm", "metric"]).loc[("max", "topic/accuracy")]
    assert row["design"] == "paired" and row["n"] == 3 and row["seeds"] == [0, 1, 2]
    assert row["p"] == pytest.approx(st.ttest_rel(KNOWN["max"], KNOWN["mean"]).pvalue)
    assert row["diff"] == pytest.approx(np.mean(KNOWN["max"]) - np.mean(KNOWN["mean"]))
    assert row["dropped"] == {"max": {3: "mean/seed-3 failed"}}
    assert report.dropped == {"max": {3: "mean/seed-3 failed"}}
    assert any("max vs mean paired on the seeds both finished ({0, 1, 2}); dropped max seed 3 (mean/seed-3 failed)"
               in n for n in report.notes)
    text = render(report)
    assert "‡ paired on the seeds both arms finished; dropped max: seed 3 (mean/seed-3 failed)" in text
    assert [line for line in text.splitlines() if line.startswith("max ")][0].count("‡") == 2
    assert "dropped: max: seed 3 (mean/seed-3 failed)" in caption(report)
    # the arm's own summary still uses all four of its seeds
    assert report.summary.set_index(["arm", "metric"]).loc[("max", "topic/accuracy"), "n"] == 4


def test_fewer_than_two_shared_seeds_fall_back_to_unpaired(tmp_path, make):
    root = tmp_path / "results"
    a, b = [0.80, 0.82, 0.81], [0.84, 0.85, 0.86]
    for seed, value in enumerate(a):
        make(root, "x", "a", seed, levels={}, tasks={"t": "multiclass"}, metrics={"test": {"t": {"accuracy": value}}})
    for seed, value in enumerate(b):
        make(root, "x", "b", seed + 2, levels={}, tasks={"t": "multiclass"}, metrics={"test": {"t": {"accuracy": value}}})
    exp = results.experiment("x", results=root)
    report = build_report(exp, results.load(exp), metrics=["t/accuracy"], baseline="a", n_resamples=500)
    row = report.comparisons.iloc[0]
    assert row["design"].startswith("unpaired") and row["test"] == "Welch t-test"
    assert row["p"] == pytest.approx(st.ttest_ind(b, a, equal_var=False).pvalue)
    assert any("fewer than 2 shared seeds" in n and "unpaired" in n for n in report.notes)


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


def _item_experiment(tmp_path, make, seeds=3):
    root = tmp_path / "results"
    rng = np.random.default_rng(0)
    gold = rng.integers(0, 3, 120)
    labels = ["x", "y", "z"]
    preds = {}
    for arm, quality in (("base", 0.5), ("better", 0.8)):
        for seed in range(seeds):
            pred = np.where(rng.random(120) < quality, gold, rng.integers(0, 3, 120))
            preds[(arm, seed)] = pred
            recs = [{"id": f"i{k}", "prediction": labels[p], "reference": labels[g],
                     "scores": {n: float(n == labels[p]) for n in labels}} for k, (p, g) in enumerate(zip(pred, gold))]
            recs = recs[::-1] if seed else recs  # order differs between runs: items are aligned by id
            make(root, "items", arm, seed, levels={}, tasks={"t": "multiclass"},
                 metrics={"test": {"t": {"f1_macro": f1_score(gold, pred, average="macro")}}},
                 predictions={("test", "t"): recs})
    exp = results.experiment("items", results=root)
    return exp, gold, preds


def _item_report(exp, test):
    return build_report(exp, results.load(exp), metrics=["t/f1_macro"], baseline="base", test=test, n_resamples=1000,
                        records_loader=lambda task, arms: results.records(exp, task=task, arms=arms))


def test_items_is_the_two_level_test(tmp_path, make):
    """`--test items`: seeds × items; its Δ is the mean over seeds of the per-seed macro-F1
    difference (scikit-learn), and its interval is wider than the fixed-model one because it
    adds the seed-to-seed spread."""
    exp, gold, preds = _item_experiment(tmp_path, make)
    row = _item_report(exp, "items").comparisons.iloc[0]
    assert row["test"].startswith("two-level") and "3 seeds × 120 items" in row["test"]
    per_seed = [f1_score(gold, preds[("better", s)], average="macro") - f1_score(gold, preds[("base", s)], average="macro")
                for s in range(3)]
    assert row["diff"] == pytest.approx(np.mean(per_seed))
    assert row["ci_method"] == "two-level t-interval (seeds × items)"
    fixed = _item_report(exp, "these-models").comparisons.iloc[0]
    assert fixed["test"].startswith("item bootstrap of these trained models") and "120 items" in fixed["test"]
    assert fixed["p"] < 0.01 and fixed["low"] > 0
    assert row["high"] - row["low"] > fixed["high"] - fixed["low"]


def test_these_models_says_so_in_caption(tmp_path, make):
    from lexilab.report.tables import caption
    from lexilab.report.terminal import render

    exp, _, _ = _item_experiment(tmp_path, make, seeds=2)
    report = _item_report(exp, "these-models")
    assert "describes these trained models and ignores seed-to-seed variance" in caption(report)
    assert "describes these trained models" in render(report)


def _registered(root, block):
    exp = results.experiment("pooling", results=root)
    exp.report_defaults = {"metrics": METRICS, "baseline": "mean", **block}  # what a spec's report: block gives
    return exp


def test_spec_report_block_is_the_analysis(known_results):
    exp = _registered(known_results, {"test": "wilcoxon", "correction": "bonferroni", "alpha": 0.1,
                                      "confidence": 0.9, "ci": "bootstrap"})
    report = build_report(exp, results.load(exp), n_resamples=500)
    assert (report.test, report.correction, report.alpha, report.confidence, report.ci) == \
        ("wilcoxon", "bonferroni", 0.1, 0.9, "bootstrap")
    assert report.deviations == []
    assert report.comparisons["test"].str.startswith("Wilcoxon").all()
    assert report.comparisons["p_adj"].tolist() == pytest.approx(
        multipletests(report.comparisons["p"], method="bonferroni")[1])
    row = report.comparisons.set_index(["arm", "metric"]).loc[("attention", "topic/accuracy")]
    d = np.array(KNOWN["attention"]) - np.array(KNOWN["mean"])
    assert (row["diff_t_low"], row["diff_t_high"]) == pytest.approx(
        st.t.interval(0.9, 2, loc=d.mean(), scale=st.sem(d)))
    assert report.markers[-1] == (0.1, "*")


def test_override_is_reported_as_a_deviation(known_results):
    from lexilab.report.tables import caption
    from lexilab.report.terminal import render

    exp = _registered(known_results, {"test": "t", "correction": "holm"})
    report = build_report(exp, results.load(exp), test="permutation", correction="holm", n_resamples=500)
    assert report.deviations == ["--test permutation instead of the spec's t"]
    line = render(report).splitlines()[1]
    assert line == "analysis deviates from the spec's pre-registered one: --test permutation instead of the spec's t"
    assert "deviates from the spec's pre-registered one" in caption(report)


def test_narrower_metrics_keep_the_spec_family(known_results):
    """Showing one metric of a two-metric pre-registered family still corrects over both."""
    exp = _registered(known_results, {})
    full = build_report(exp, results.load(exp), n_resamples=500)
    narrow = build_report(exp, results.load(exp), metrics=["topic/accuracy"], n_resamples=500)
    assert narrow.family_size == 4 and narrow.family == METRICS and narrow.deviations == []
    wide = full.comparisons.set_index(["arm", "metric"])["p_adj"]
    for r in narrow.comparisons.itertuples():
        assert r.p_adj == pytest.approx(wide[(r.arm, r.metric)])
    assert set(narrow.comparisons["metric"]) == {"topic/accuracy"}
    own = build_report(exp, results.load(exp), metrics=["topic/accuracy"], family=["topic/accuracy"], n_resamples=500)
    assert own.family_size == 2 and own.deviations
    assert own.comparisons["p_adj"].tolist() == pytest.approx(multipletests(own.comparisons["p"], method="holm")[1])


def test_correction_none_is_labelled_p(known_results):
    from lexilab.report.tables import caption
    from lexilab.report.terminal import render

    report = _report(known_results, correction="none")
    text = render(report)
    assert "no-adjusted" not in text and "no-adjusted" not in caption(report)
    header = next(line for line in text.splitlines() if line.startswith("arm "))
    assert " p " in f" {header} " and "p_adj" not in header
    assert "unadjusted" in text and report.comparisons["p_adj"].tolist() == report.comparisons["p"].tolist()


def test_minimum_detectable_difference_under_each_comparison(known_results):
    from statsmodels.stats.power import TTestPower

    report = _report(known_results)
    row = report.comparisons.set_index(["arm", "metric"]).loc[("attention", "topic/accuracy")]
    sd = np.std(np.array(KNOWN["attention"]) - np.array(KNOWN["mean"]), ddof=1)
    # at the MDD, statsmodels' power of the paired t-test at α/4 (Holm over 4) is 0.8
    assert TTestPower().power(effect_size=row["mdd"] / sd, nobs=3, alpha=0.05 / 4) == pytest.approx(0.8, abs=1e-6)
    from lexilab.report.terminal import render
    assert "MDD" in next(line for line in render(report).splitlines() if line.startswith("arm "))
