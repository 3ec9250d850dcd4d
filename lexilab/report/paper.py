"""Regenerate every table and figure the paper inputs, then build the PDF with latexmk.

The paper names what it needs with ``\\lexitable{NAME}`` / ``\\lexifigure{NAME}{...}`` (or plain
``\\input{tables/NAME}`` / ``\\includegraphics{figures/NAME}``) in main.tex and the files it
``\\input``s. ``NAME`` is ``<experiment>`` or ``<experiment>-setup`` for tables and
``<experiment>-<figure kind>`` for figures. Setup tables come from ``experiments/<exp>.yaml``
alone; results tables and figures need finished runs under the results root — an experiment
without them is listed, and main.tex shows a placeholder box until it has run.
"""
from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from lexilab.errors import LexilabError
from lexilab.report.figures import FIGURE_KINDS

_USES = re.compile(r"\\(lexitable|lexifigure)\{([^}]+)\}|\\input\{tables/([^}]+?)(?:\.tex)?\}"
                   r"|\\includegraphics(?:\[[^\]]*\])?\{figures/([^}]+?)(?:\.pdf|\.png)?\}")
_INPUT = re.compile(r"\\input\{((?!tables/)[^}]+?)(?:\.tex)?\}")


@dataclass
class Needs:
    tables: list[str] = field(default_factory=list)   # names under tables/
    figures: list[str] = field(default_factory=list)  # names under figures/ (no extension)

    def experiments(self) -> list[str]:
        names = [t.removesuffix("-setup") for t in self.tables] + [figure_experiment(f) for f in self.figures]
        return list(dict.fromkeys(n for n in names if n))


def figure_experiment(name: str) -> str | None:
    """``pooling_ablation-perclass-f1-emotion`` → ``pooling_ablation`` (by the known figure kinds)."""
    for kind in sorted(FIGURE_KINDS, key=len, reverse=True):
        match = re.fullmatch(rf"(.+)-{re.escape(kind)}(-.+)?", name)
        if match and (match.group(2) is None or kind == "perclass-f1"):
            return match.group(1)
    return None


def scan(main_tex: Path) -> Needs:
    """Tables and figures used by ``main_tex`` and every file it ``\\input``s (comments ignored)."""
    if not main_tex.is_file():
        raise LexilabError(f"{main_tex}: no such file (the paper's main.tex)")
    needs, seen = Needs(), set()

    def visit(path: Path):
        if path in seen or not path.is_file():
            return
        seen.add(path)
        text = re.sub(r"(?<!\\)%.*", "", path.read_text(encoding="utf-8"))
        for match in _USES.finditer(text):
            macro, arg, table, figure = match.groups()
            if macro == "lexitable" or table:
                needs.tables.append(arg or table)
            else:
                needs.figures.append(arg or figure)
        for match in _INPUT.finditer(text):
            visit(main_tex.parent / f"{match.group(1)}.tex")

    visit(main_tex)
    # macro definitions (\newcommand{\lexitable}[1]{... #1 ...}) are not uses
    needs.tables = list(dict.fromkeys(t for t in needs.tables if "#" not in t))
    needs.figures = list(dict.fromkeys(f for f in needs.figures if "#" not in f))
    return needs


def regenerate(paper_dir: Path, results, experiments_dir: Path, n_resamples: int = 10_000) -> tuple[list[str], Needs]:
    """Write what the paper needs; returns one line per experiment and referenced file."""
    from lexilab.report.build import generate
    from lexilab.report.tables import write_setup_table
    from lexilab.results import results_root
    from lexilab.spec import load_spec

    needs = scan(paper_dir / "main.tex")
    lines, not_run = [], []
    for name in needs.experiments():
        spec_path = experiments_dir / f"{name}.yaml"
        spec = None
        if spec_path.is_file():
            try:
                spec = load_spec(spec_path)
            except LexilabError as err:
                lines.append(f"{name}: spec does not load here: {str(err).splitlines()[0]}")
        if spec is not None and f"{name}-setup" in needs.tables:
            write_setup_table(spec, paper_dir)
        root = results_root(results)
        if not (root / name).is_dir():
            not_run.append(name)
            continue
        try:
            _, _, written = generate(spec if spec is not None else name, results=results, out_dir=paper_dir,
                                     n_resamples=n_resamples, command=f"python -m lexilab report {name}")
        except LexilabError as err:
            lines.append(f"{name}: no results table or figures: {str(err).splitlines()[0]}")
            continue
        skipped = [f"{k} ({v})" for k, v in written.items() if isinstance(v, str) and k in needs.figures]
        lines.append(f"{name}: regenerated" + (f"; not drawn: {', '.join(skipped)}" if skipped else ""))
    if not_run:
        lines.append(f"not run yet under {results_root(results)}: {', '.join(not_run)}")
    missing = [f"tables/{t}.tex" for t in needs.tables if not (paper_dir / "tables" / f"{t}.tex").exists()]
    missing += [f"figures/{f}.pdf" for f in needs.figures if not (paper_dir / "figures" / f"{f}.pdf").exists()]
    if missing:
        lines.append(f"{len(missing)} of {len(needs.tables) + len(needs.figures)} inputs not generated "
                     "(placeholder boxes in the PDF)")
    return lines, needs


def build_pdf(paper_dir: Path) -> tuple[int, str]:
    """Run latexmk in ``paper_dir``; (exit status, message). No latexmk: status 0 and a note."""
    latexmk = shutil.which("latexmk")
    if latexmk is None:
        return 0, "latexmk not found: tables and figures regenerated, PDF not built (see .ci/install-latex.sh)"
    proc = subprocess.run([latexmk, "-pdf", "-interaction=nonstopmode", "-halt-on-error", "main.tex"],
                          cwd=paper_dir, capture_output=True, text=True)
    if proc.returncode != 0:
        log = paper_dir / "main.log"
        errors = [l for l in log.read_text(errors="replace").splitlines() if l.startswith("!")] if log.exists() else []
        return proc.returncode, f"latexmk failed ({proc.returncode}): {'; '.join(errors[:3]) or proc.stdout[-500:]}"
    return 0, f"built {paper_dir / 'main.pdf'}"
