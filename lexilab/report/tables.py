"""LaTeX (booktabs) tables: the results table of a report and the setup table of a spec.

Output is a pure function of the results (no dates, no paths outside the experiment name, fixed
float formatting), so regenerating from the same results gives the same bytes.
"""
from __future__ import annotations

import math
import re
import unicodedata
from pathlib import Path

from lexilab.io import atomic_write_text
from lexilab.report.budget import WARNING_PREFIX as BUDGET_WARNING
from lexilab.report.compare import FIXED_MODELS_CAVEAT, UNPAIRED_MARK, Report, lower_is_better
from lexilab.report.terminal import ci_text, correction_text, dropped_text, fmt, percent, seeds_text

_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
                  "†": r"$^{\dagger}$", "Δ": r"$\Delta$", "—": "---", "–": "--", "×": r"$\times$"}
METRIC_NAMES = {"rouge1": "ROUGE-1", "rouge2": "ROUGE-2", "rougeL": "ROUGE-L", "rougeLsum": "ROUGE-Lsum",
                "accuracy": "accuracy", "subset_accuracy": "subset accuracy", "hamming_loss": "Hamming loss",
                "map": "mAP", "average_precision_micro": "micro AP"}


_MATH = {"∝": r"\propto", "→": r"\to", "←": r"\leftarrow", "≤": r"\leq", "≥": r"\geq", "≈": r"\approx",
         "∈": r"\in", "±": r"\pm", "·": r"\cdot", "∞": r"\infty", "≠": r"\neq", "√": r"\surd", "−": "-"}
_TEXT = {"‘": "`", "’": "'", "“": "``", "”": "''", "…": r"\ldots{}", "\u00a0": "~"}


def escape(text: str) -> str:
    """LaTeX-safe text for pdflatex without extra packages: specials escaped, Greek letters and
    common symbols as math, accented Latin letters as LaTeX accents, anything else as '?'."""
    out = []
    for ch in str(text):
        if ch in _LATEX_SPECIAL:
            out.append(_LATEX_SPECIAL[ch])
        elif ord(ch) < 128:
            out.append(ch)
        elif ch in _MATH:
            out.append(f"${_MATH[ch]}$")
        elif ch in _TEXT:
            out.append(_TEXT[ch])
        else:
            out.append(_unicode(ch))
    return "".join(out)


def _unicode(ch: str) -> str:
    name = unicodedata.name(ch, "")
    greek = re.fullmatch(r"GREEK (SMALL|CAPITAL) LETTER (\w+)", name)
    if greek:
        letter = greek.group(2).lower()
        letter = {"lamda": "lambda"}.get(letter, letter)
        return f"$\\{letter if greek.group(1) == 'SMALL' else letter.capitalize()}$"
    base = unicodedata.normalize("NFD", ch)
    accents = {"\u0301": "'", "\u0300": "`", "\u0308": '"', "\u0302": "^", "\u0303": "~", "\u0327": "c "}
    if len(base) == 2 and ord(base[0]) < 128 and base[1] in accents:
        return f"{{\\{accents[base[1]]}{base[0]}}}"
    return "?"


def metric_label(metric: str) -> str:
    """``emotion/f1_samples`` → ``emotion sample F1``; ``sum/rougeL@literary`` → ``sum ROUGE-L (literary)``."""
    task, _, name = metric.partition("/")
    base, _, domain = name.partition("@")
    if base in METRIC_NAMES:
        pretty = METRIC_NAMES[base]
    else:
        kind, _, average = base.partition("_")
        pretty = {"f1": "F1", "precision": "precision", "recall": "recall", "roc": "ROC-AUC"}.get(kind, kind)
        average = {"samples": "sample", "auc_macro": "macro", "auc_micro": "micro"}.get(average, average)
        pretty = f"{average} {pretty}".strip() if average else pretty
    return f"{task} {pretty}" + (f" ({domain})" if domain else "")


def _cell(report: Report, s, marker: str, bold: bool) -> str:
    if s is None:
        return "--"
    mean = fmt(s.mean)
    mean = rf"\mathbf{{{mean}}}" if bold else mean
    sup = f"^{{{marker}}}" if marker else ""
    if not math.isfinite(s.low):
        return f"${mean}{sup}$"
    if report.ci == "t" or s.ci_method.startswith("degenerate"):
        return rf"${mean}{sup} \pm {fmt((s.high - s.low) / 2)}$"
    return rf"${mean}{sup}$ {{\scriptsize $[{fmt(s.low)}, {fmt(s.high)}]$}}"


def results_table(report: Report, command: str) -> str:
    """The booktabs table of a report (a complete ``table`` environment)."""
    exp = report.experiment
    summary = {(r.arm, r.metric): r for r in report.summary.itertuples()}
    comps = {(r.arm, r.metric): r for r in report.comparisons.itertuples()} if not report.comparisons.empty else {}
    factors = [f for f in exp.factors if len({exp.levels.get(a, {}).get(f) for a in report.arms}) > 1]
    key_headers = [escape(f) for f in factors] or ["Arm"]
    best = {}
    for metric in report.metrics:
        shown = {a: float(fmt(summary[(a, metric)].mean)) for a in report.arms
                 if (a, metric) in summary and math.isfinite(summary[(a, metric)].mean)}
        if shown:
            target = (min if lower_is_better(metric) else max)(shown.values())
            best[metric] = {a for a, v in shown.items() if v == target}
    delta_m = {r.arm: r for r in report.delta_m.itertuples()} if not report.delta_m.empty else {}
    headers = key_headers + [escape(metric_label(m)) + (r" $\downarrow$" if lower_is_better(m) else r" $\uparrow$")
                             for m in report.metrics]
    if delta_m:
        headers.append(r"$\Delta_m$ (\%) $\uparrow$")
    lines = []
    for arm in report.arms:
        keys = [escape(exp.levels.get(arm, {}).get(f, "")) for f in factors] or [escape(arm)]
        if arm == report.baseline:
            keys[-1 if not factors else 0] += r" (baseline)"
        cells = []
        for metric in report.metrics:
            c = comps.get((arm, metric))
            mark = (c.marker + ("" if c.design == "paired" else r"\dagger") + (r"\ddagger" if c.dropped else "")
                    if c is not None else "")
            cells.append(_cell(report, summary.get((arm, metric)), mark, arm in best.get(metric, ())))
        if delta_m:
            r = delta_m.get(arm)
            interval = (rf" {{\scriptsize $[{fmt(r.low, 2, sign=True)}, {fmt(r.high, 2, sign=True)}]$}}"
                        if r is not None and math.isfinite(r.low) else "")
            cells.append(rf"${fmt(r.delta_m, 2, sign=True)}${interval}" if r is not None and math.isfinite(r.delta_m)
                         else "--")
        lines.append(" & ".join(keys + cells) + r" \\")
    spec = "l" * len(key_headers) + "c" * (len(headers) - len(key_headers))
    body = "\n".join([
        f"% Generated by `{command}` from the results of experiment {exp.name}. Do not edit:",
        "% rerun the command (or `python -m lexilab paper`) to regenerate it.",
        r"\begin{table}[tbp]", r"\centering", r"\small",
        rf"\caption{{{caption(report)}}}", rf"\label{{tab:{exp.name}}}",
        rf"\resizebox{{\ifdim\width>\linewidth\linewidth\else\width\fi}}{{!}}{{%",
        rf"\begin{{tabular}}{{{spec}}}", r"\toprule", " & ".join(headers) + r" \\", r"\midrule",
        *lines, r"\bottomrule", r"\end{tabular}}", r"\end{table}", ""])
    return body


def caption(report: Report) -> str:
    exp = report.experiment
    level = escape(percent(report.confidence))
    ci = f"half-width of the {level} t-interval" if report.ci == "t" else f"{level} " + escape(ci_text(report))
    parts = [f"{escape(exp.name)}: {escape(report.split)}-split results, mean $\\pm$ {ci} across seeds "
             f"({escape(seeds_text(report))}). Best mean per column in bold."]
    if not report.comparisons.empty:
        tests = ", ".join(sorted(set(report.comparisons["test"])))
        bases = sorted(set(report.comparisons["baseline"]))
        stars = ", ".join(f"$^{{{m}}}p<{level:g}$" for level, m in reversed(report.markers))
        family = f" (family: {', '.join(report.family)})" if report.family != report.metrics else ""
        parts.append(f"Markers: difference from the baseline ({escape(', '.join(bases))}) by {escape(tests)}, "
                     f"{escape(correction_text(report) + family)}: {stars}")
        if (report.comparisons["design"] != "paired").any():
            parts[-1] += f"; {escape(UNPAIRED_MARK)}unpaired test (fewer than 2 shared seeds)"
        if report.dropped:
            parts[-1] += f"; $^{{\\ddagger}}$paired on the seeds both arms finished, dropped: {escape(dropped_text(report))}"
        parts[-1] += "."
        if any(str(t).startswith("item bootstrap of these trained models") for t in report.comparisons["test"]):
            parts.append(escape(FIXED_MODELS_CAVEAT[0].upper() + FIXED_MODELS_CAVEAT[1:]) + ".")
    if report.deviations:
        parts.append(escape("The analysis deviates from the spec's pre-registered one: " + "; ".join(report.deviations))
                     + ".")
    if not report.delta_m.empty:
        parts.append(r"$\Delta_m$: mean relative change over the listed metrics vs.\ the single-task arms "
                     rf"(Maninis et al., 2019), with a {level} delta-method t-interval over seeds.")
    budget = [n for n in report.notes if n.startswith(BUDGET_WARNING)]  # lexilab.report.budget
    if budget:
        text = "; ".join(budget)
        parts.append(escape(text[0].upper() + text[1:] + "."))
    return " ".join(parts)


def write_results_table(report: Report, out_dir: str | Path, command: str) -> Path:
    path = Path(out_dir) / "tables" / f"{report.experiment.name}.tex"
    atomic_write_text(path, results_table(report, command))
    return path


# --------------------------------------------------------------------------- setup table

# (label, top-level config key it comes from, how to show it)
SETUP_KEYS = [
    ("backbone", "backbone", lambda c: _backbone(c.get("backbone", {}))),
    ("initialisation", "backbone", lambda c: c.get("backbone", {}).get("init")),
    ("frozen", "backbone", lambda c: _frozen(c.get("backbone", {}).get("freeze") or {})),
    ("tasks", "tasks", lambda c: "; ".join(f"{t} ({b.get('kind')}, {_data(b.get('data'))})"
                                          for t, b in (c.get("tasks") or {}).items())),
    ("sampler", "sampler", lambda c: _short(c.get("sampler"))),
    ("loss weighting", "weighting", lambda c: _short(c.get("weighting"))),
    ("optimiser", "optim", lambda c: "AdamW " + _short({k: v for k, v in (c.get("optim") or {}).items()
                                                       if k in ("lr", "weight_decay", "betas", "warmup_steps", "schedule")})),
    ("training", "train", lambda c: _short({k: v for k, v in (c.get("train") or {}).items()
                                            if k in ("epochs", "max_steps", "batch_size", "grad_accum", "precision")})),
]


def _backbone(b: dict) -> str:
    name = b.get("name")
    if isinstance(name, dict):
        return "random T5 " + _short({k: name[k] for k in ("d_model", "num_layers", "num_heads") if k in name})
    return str(name)


def _frozen(f: dict) -> str:
    parts = [k for k in ("embeddings", "encoder") if f.get(k)]
    if f.get("encoder_layers"):
        parts.append(f"bottom {f['encoder_layers']} encoder layers")
    return ", ".join(parts) or "nothing"


def _data(d) -> str:
    if isinstance(d, dict):
        return str(d.get("name")) + (f":{d['task']}" if "task" in d else "")
    return str(d)


def _short(value, nested: bool = False) -> str:
    if isinstance(value, dict):
        text = ", ".join(f"{k}={_short(v, True)}" for k, v in value.items() if v is not None)
        return f"({text})" if nested else text
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return "(" + ", ".join(_short(v, True) for v in value) + ")"
    return str(value)


def setup_table(spec) -> str:
    """Settings shared by every arm, then what each factor level changes, from the spec alone."""
    from lexilab.spec import differences

    base = spec.arms[0].config
    varying = set(differences(spec.arms))
    rows = []
    for label, prefix, get in SETUP_KEYS:
        value = get(base)
        if value in (None, ""):
            continue
        changes = any(k.split(".")[0] == prefix for k in varying)
        rows.append((label, value + (" (first arm; varies, below)" if changes else "")))
    rows.append(("seeds", f"{len(spec.seeds)} ({', '.join(map(str, spec.seeds))})"))
    for factor, levels in spec.factors.items():
        for level, overrides in levels.items():
            text = ", ".join(f"{k}={_short(v)}" for k, v in overrides.items()) or "the base configuration"
            rows.append((f"{factor} = {level}", text))
    description = " ".join((spec.description or "").split())
    lines = [f"% Generated from {Path(spec.path).name} by `python -m lexilab report` / `paper`. Do not edit.",
             r"\begin{table}[tbp]", r"\centering", r"\small",
             rf"\caption{{Setup of {escape(spec.name)}. {escape(description)}}}",
             rf"\label{{tab:{spec.name}-setup}}", r"\begin{tabular}{@{}lp{0.72\linewidth}@{}}", r"\toprule",
             r"Setting & Value \\", r"\midrule"]
    lines += [rf"{escape(k)} & {escape(_wrap(v))} \\" for k, v in rows]
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}", ""]
    return "\n".join(lines)


def _wrap(text: str) -> str:
    # long dotted keys have no break points; let LaTeX break after dots and commas
    return re.sub(r"\s+", " ", text)


def write_setup_table(spec, out_dir: str | Path) -> Path:
    path = Path(out_dir) / "tables" / f"{spec.name}-setup.tex"
    atomic_write_text(path, setup_table(spec))
    return path
