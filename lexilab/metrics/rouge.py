"""ROUGE for seq2seq tasks, through Google's `rouge-score` package (Lin 2004, "ROUGE: A
Package for Automatic Evaluation of Summaries").

Conventions (those of rouge-score, kept so numbers compare with published ones):
- F-measure of ROUGE-1, ROUGE-2, ROUGE-L (LCS over the whole text) and ROUGE-Lsum (union-LCS
  over sentences, sentences = lines of the text split on ``\\n``; a text without newlines is
  one sentence, so there Lsum equals L);
- rouge-score's tokenizer (lower-case, non-alphanumeric → space) with the Porter stemmer on;
- an empty prediction or reference scores 0;
- the corpus value is the MEAN of the per-example F-measures (not an F of summed counts).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL", "rougeLsum")


def _scorer():
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(list(ROUGE_TYPES), use_stemmer=True)


def rouge_per_example(predictions: Sequence[str], references: Sequence[str]) -> list[dict[str, float]]:
    """One ``{rouge1, rouge2, rougeL, rougeLsum}`` F-measure dict per (prediction, reference) pair."""
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions but {len(references)} references")
    scorer = _scorer()
    out = []
    for prediction, reference in zip(predictions, references):
        # rouge-score's signature is score(target, prediction)
        scores = scorer.score(reference, prediction)
        out.append({name: float(scores[name].fmeasure) for name in ROUGE_TYPES})
    return out


def split_metric(metric: str) -> tuple[str, str | None]:
    """``"rougeL@academic"`` → ``("rougeL", "academic")``; ``"rougeL"`` → ``("rougeL", None)``."""
    base, _, domain = metric.partition("@")
    return base, (domain or None)


def rouge_corpus_fn(metric: str, records: Sequence[dict]):
    """A function of resample indices (positions in ``records``) giving the corpus value of
    ``metric`` (mean of per-example F; ``@domain`` restricts to records of that domain).
    NaN when the (restricted) resample is empty."""
    base, domain = split_metric(metric)
    if base not in ROUGE_TYPES:
        raise KeyError(f"unknown seq2seq metric {metric!r}; known: {', '.join(ROUGE_TYPES)} (optionally @domain)")
    values = np.array([float(r[base]) for r in records], dtype=float)
    if domain is None:
        mask = np.ones(len(records), dtype=bool)
    else:
        mask = np.array([r.get("domain") == domain for r in records], dtype=bool)

    def compute(indices: np.ndarray) -> float:
        keep = indices[mask[indices]]
        return float(values[keep].mean()) if keep.size else float("nan")

    return compute


def rouge_summary(records: Sequence[dict]) -> tuple[dict[str, float], dict]:
    """Corpus metrics (overall and ``<type>@<domain>`` for every domain seen) + details."""
    everything = np.arange(len(records))
    metrics = {name: rouge_corpus_fn(name, records)(everything) for name in ROUGE_TYPES}
    domains = sorted({r["domain"] for r in records if r.get("domain") is not None})
    for domain in domains:
        for name in ROUGE_TYPES:
            metrics[f"{name}@{domain}"] = rouge_corpus_fn(f"{name}@{domain}", records)(everything)
    details = {
        "n_examples": len(records),
        "per_domain_counts": {d: sum(1 for r in records if r.get("domain") == d) for d in domains},
        "empty_predictions": sum(1 for r in records if not str(r["prediction"]).strip()),
        "corpus_convention": "mean of per-example F-measure (rouge-score, Porter stemmer; Lsum splits on newlines)",
    }
    return metrics, details
