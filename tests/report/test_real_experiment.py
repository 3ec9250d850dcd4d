"""End to end on a tiny REAL experiment (run once per session): report, paper and notebooks."""
from __future__ import annotations

import shutil

import nbformat
import pytest
from nbclient import NotebookClient

from lexilab import results
from lexilab.cli import main
from lexilab.report.build import generate
from lexilab.report.paper import build_pdf, regenerate

pytestmark = pytest.mark.slow
NOTEBOOKS = ["pooling_ablation", "sampling_ablation", "mtl_vs_single", "gradient_conflict"]


def test_results_of_the_real_runs(tiny_results):
    table = results.runs("tiny", results=tiny_results)
    assert len(table) == 12 and set(table["state"]) == {"done"}
    frame = results.load("tiny", results=tiny_results)
    assert {"colour", "labels", "keywords"} <= set(frame["task"])
    assert not results.load_gradcos("tiny", results=tiny_results).empty
    recs = results.records("tiny", results=tiny_results, task="labels")
    assert len(recs) == 6 and all(len(r) == 40 for r in recs.values())


def test_report_command_end_to_end(tiny_results, tmp_path, capsys):
    argv = ["report", "tiny", "--results", str(tiny_results), "--out", str(tmp_path), "--resamples", "1000"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert out.startswith("tiny — split test — 3 seeds per arm — mean [95% CI: t-interval")
    assert "Δm" in out and "mtl (baseline)" in out
    for name in ("tiny-metrics", "tiny-forest", "tiny-gradcos", "tiny-curves", "tiny-domain-rouge",
                 "tiny-perclass-f1-labels"):
        assert (tmp_path / "figures" / f"{name}.pdf").is_file(), name
        assert (tmp_path / "figures" / f"{name}.png").is_file(), name
    first = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    assert main(argv) == 0
    for path, data in first.items():
        assert path.read_bytes() == data, path


def test_item_level_report_on_real_predictions(tiny_results, tmp_path):
    report, _, _ = generate("tiny", results=tiny_results, out_dir=tmp_path, test="items", figures=False,
                            n_resamples=500)
    assert report.comparisons["test"].str.startswith("two-level").all()
    assert report.comparisons["test"].str.contains("3 seeds × 40 items").all()


def test_paper_builds_from_real_results(tiny_results, tmp_path, repo_root):
    paper = tmp_path / "paper"
    shutil.copytree(repo_root / "paper", paper, ignore=shutil.ignore_patterns("*.pdf", "*.png", "*.aux", "*.log",
                                                                              "*.fls", "*.fdb_latexmk", "*.out"))
    tex = paper / "sections" / "quickstart.tex"  # point the appendix at the tiny experiment
    tex.write_text(tex.read_text().replace("quickstart", "tiny"))
    lines, needs = regenerate(paper, tiny_results, repo_root / "experiments", n_resamples=500)
    assert any(line.startswith("tiny: regenerated") for line in lines), lines
    assert (paper / "tables" / "tiny.tex").is_file() and (paper / "figures" / "tiny-metrics.pdf").is_file()
    if not shutil.which("latexmk"):
        pytest.skip("latexmk not installed (.ci/install-latex.sh installs it)")
    status, message = build_pdf(paper)
    assert status == 0, message
    assert (paper / "main.pdf").stat().st_size > 10_000


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_executes(name, tiny_results, repo_root, monkeypatch):
    for key, value in {"LEXILAB_RESULTS": str(tiny_results), "LEXILAB_EXPERIMENT": "tiny",
                       "LEXILAB_FACTOR": "tasks", "LEXILAB_RESAMPLES": "500"}.items():
        monkeypatch.setenv(key, value)
    nb = nbformat.read(repo_root / "analysis" / f"{name}.ipynb", as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(repo_root / "analysis")}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "tiny — split test — 3 seeds per arm" in text
    assert any("image/png" in o.get("data", {}) for o in outputs)
