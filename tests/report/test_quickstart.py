"""The quickstart's built-in answer is visible in its own report: the scarce task gains from a
partner that shares its signal, by more than the report's intervals allow chance, and not from a
partner that reads another signal; the arms give it the same budget; the gradcos figure is drawn."""
from __future__ import annotations

import pytest

from lexilab.report.build import generate

SPEC = "experiments/quickstart.yaml"


@pytest.fixture(scope="module")
def quickstart_results(readme_quickstart):
    """The README command's runs of the spec (tests/conftest.py trains them once per session)."""
    done, results = readme_quickstart
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return results


@pytest.mark.slow
def test_sharing_partner_helps_and_is_separated_by_the_reports_intervals(quickstart_results, repo_root, tmp_path):
    report, text, written = generate(repo_root / SPEC, results=quickstart_results, out_dir=tmp_path, n_resamples=2000)
    comps = report.comparisons.set_index("arm")
    assert list(comps["metric"]) == ["scarce/accuracy", "scarce/accuracy"] and set(comps["baseline"]) == {"alone"}
    sharing, unrelated = comps.loc["with_colour"], comps.loc["with_animal"]
    assert sharing["design"] == "paired" and sharing["n"] == 3
    assert sharing["low"] > 0  # the sharing partner helps: its whole 95% interval above zero
    assert sharing["p_adj"] < 0.05
    assert sharing["low"] > unrelated["high"]  # the two answers do not overlap
    assert "compute budget differs" not in text  # matched: the same batches of the scarce task everywhere
    assert isinstance(written["quickstart-gradcos"], list)  # diagnostics on: the figure is drawn

