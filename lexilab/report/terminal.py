"""The report as plain text for the terminal: arm × metric, mean [CI], Δ vs baseline, adjusted p."""
from __future__ import annotations

import math

from lexilab.report.compare import DROPPED_MARK, FIXED_MODELS_CAVEAT, POWER, TESTS, UNPAIRED_MARK, Report

WIDTH = 150  # wider tables are printed one metric at a time
CORRECTION_NAMES = {"holm": "Holm", "bh": "Benjamini-Hochberg", "bonferroni": "Bonferroni", "none": "no"}


def fmt(value: float, digits: int | None = None, sign: bool = False) -> str:
    """Three decimals for scores below 10, two above (metrics here are mostly in [0, 1])."""
    if value is None or not math.isfinite(value):
        return "—"
    digits = digits if digits is not None else (3 if abs(value) < 10 else 2)
    return f"{value:+.{digits}f}" if sign else f"{value:.{digits}f}"


def fmt_p(p: float) -> str:
    if p is None or not math.isfinite(p):
        return "—"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def percent(level: float) -> str:
    return f"{100 * level:g}%"


def correction_text(report: Report) -> str:
    """'Holm-adjusted over 4 comparisons' — or 'unadjusted (no correction; 4 comparisons)'."""
    n = report.family_size
    many = f"{n} comparison{'s' * (n != 1)}"
    if report.correction == "none":
        return f"unadjusted (no multiple-comparison correction; {many})"
    return f"{CORRECTION_NAMES[report.correction]}-adjusted over {many}"


def dropped_text(report: Report) -> str:
    """'max: seed 3 (mean/seed-3 failed); ...' — seeds left out to pair arms on shared seeds."""
    return "; ".join(f"{arm}: " + ", ".join(f"seed {s} ({why})" for s, why in sorted(seeds.items()))
                     for arm, seeds in report.dropped.items())


def seeds_text(report: Report) -> str:
    counts = report.n_seeds
    return f"{counts[0]} seed{'s' * (counts[0] != 1)} per arm" if len(counts) == 1 else \
        f"{min(counts)}–{max(counts)} seeds per arm"


def ci_text(report: Report) -> str:
    methods = sorted(set(report.summary["ci_method"]) - {"degenerate (all seeds equal)"})
    return " / ".join(methods) or "none"


def render(report: Report, extra: list[str] = ()) -> str:
    """The whole report: header, table, Δm, ``extra`` blocks (e.g. the compute budget), the
    legend and the notes."""
    lines = [f"{report.experiment.name} — split {report.split} — {seeds_text(report)} — "
             f"mean [{percent(report.confidence)} CI: {ci_text(report)} across seeds]"]
    if report.deviations:
        lines.append("analysis deviates from the spec's pre-registered one: " + "; ".join(report.deviations))
    headers = ["arm"]
    for metric in report.metrics:
        headers += [metric, "Δ vs baseline", report.p_label, "MDD"]
    rows = []
    summary = {(r.arm, r.metric): r for r in report.summary.itertuples()}
    comps = {(r.arm, r.metric): r for r in report.comparisons.itertuples()} if not report.comparisons.empty else {}
    bases = {r.metric: r.baseline for r in comps.values()}
    for arm in report.arms:
        row = [arm + (" (baseline)" if arm == report.baseline else "")]
        for metric in report.metrics:
            s = summary.get((arm, metric))
            row.append(f"{fmt(s.mean)} [{fmt(s.low)}, {fmt(s.high)}]" if s else "—")
            c = comps.get((arm, metric))
            if c is not None:
                mark = ("" if c.design == "paired" else UNPAIRED_MARK) + (DROPPED_MARK if c.dropped else "")
                row += [f"{fmt(c.diff, sign=True)}{mark}", f"{fmt_p(c.p_adj)} {c.marker}".rstrip(), fmt(c.mdd)]
            elif bases.get(metric) == arm:
                row += ["(reference)", "", ""]
            else:
                row += ["", "", ""]
        rows.append(row)
    wide = table(headers, rows)
    if max(len(line) for line in wide.splitlines()) <= WIDTH:
        lines += ["", wide]
    else:  # too wide for a terminal: one block per metric
        for k, metric in enumerate(report.metrics):
            block = [[row[0], *row[1 + 4 * k:5 + 4 * k]] for row in rows]
            lines += ["", table(["arm", *headers[1 + 4 * k:5 + 4 * k]], block)]
    if report.dropped:
        lines.append(f"{DROPPED_MARK} paired on the seeds both arms finished; dropped {dropped_text(report)}")
    if not report.delta_m.empty:
        lines += ["", "Δm (mean relative change vs single-task arms, %, sign by metric direction; Maninis et al. 2019):"]
        for r in report.delta_m.itertuples():
            lines.append(f"  {r.arm}: {fmt(r.delta_m, 2, sign=True)}% [{fmt(r.low, 2, sign=True)}, "
                         f"{fmt(r.high, 2, sign=True)}] over {', '.join(r.metrics)} — {r.method}")
    if extra:
        lines += ["", *extra]
    lines += ["", legend(report)]
    lines += [f"note: {n}" for n in report.notes]
    return "\n".join(lines)


def legend(report: Report) -> str:
    n = len(report.comparisons)
    tests = sorted(set(report.comparisons["test"])) if n else [TESTS[report.test]]
    stars = ", ".join(f"{m} p<{level:g}" for level, m in reversed(report.markers))
    family = f" (family: {', '.join(report.family)})" if report.family != report.metrics else ""
    text = (f"Δ: difference of means vs the baseline (treatment − baseline) on the seeds both share; "
            f"{report.p_label}: {', '.join(tests)}, {correction_text(report)}{family}; {stars}; "
            f"{UNPAIRED_MARK} unpaired (fewer than 2 shared seeds); {DROPPED_MARK} seeds dropped to pair; "
            f"MDD: minimum detectable difference of the paired t-test over these seeds (power {POWER:g}, "
            f"α={report.alpha:g} {'per family' if report.correction != 'none' else 'per test'}).")
    if any(str(t).startswith("item bootstrap of these trained models") for t in tests):
        text += f" Caution: {FIXED_MODELS_CAVEAT}."
    return text


def table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]
    out = ["  ".join(str(c).ljust(w) for c, w in zip(headers, widths)).rstrip(),
           "  ".join("-" * w for w in widths)]
    out += ["  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows]
    return "\n".join(out)
