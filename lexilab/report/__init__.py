"""Reports: statistics over an experiment's runs, the terminal table, LaTeX tables and figures.

    from lexilab.report import generate
    report, text, written = generate("experiments/quickstart.yaml", results="results", out_dir="paper")
"""
from lexilab.report.build import generate

__all__ = ["generate"]
