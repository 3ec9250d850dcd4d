"""ROUGE against rouge-score called directly and hand-worked cases."""
from __future__ import annotations

import numpy as np
import pytest
from rouge_score import rouge_scorer

from lexilab.metrics import corpus_metric, corpus_metric_fn
from lexilab.metrics.rouge import ROUGE_TYPES, rouge_per_example, rouge_summary


def test_hand_worked_case():
    (score,) = rouge_per_example(["the cat sat"], ["the cat sat on the mat"])
    # unigrams: P = 3/3, R = 3/6 -> F = 2/3; bigrams: P = 2/2, R = 2/5 -> F = 4/7
    assert score["rouge1"] == pytest.approx(2 / 3)
    assert score["rouge2"] == pytest.approx(4 / 7)
    assert score["rougeL"] == pytest.approx(2 / 3)  # LCS = 3 tokens


def test_stemming_and_empty_prediction():
    stemmed, empty = rouge_per_example(["the runners were running"], ["the runner runs"]), rouge_per_example([""], ["a b"])
    assert stemmed[0]["rouge1"] == pytest.approx(2 * (3 / 4) * 1 / (3 / 4 + 1))  # the, runner, run match (Porter)
    assert empty[0] == {name: 0.0 for name in ROUGE_TYPES}


def test_matches_rouge_score_directly_including_lsum_sentences():
    predictions = ["police arrested two men.\nthey were released", "the budget passed", "", "a b c\nd e f"]
    references = ["two men were arrested by police.\nboth were later released on bail", "parliament passed the budget",
                  "nothing here", "d e f\na b c"]
    scorer = rouge_scorer.RougeScorer(list(ROUGE_TYPES), use_stemmer=True)
    ours = rouge_per_example(predictions, references)
    for mine, p, r in zip(ours, predictions, references):
        direct = scorer.score(r, p)
        assert mine == pytest.approx({name: direct[name].fmeasure for name in ROUGE_TYPES})
    # sentences = lines: swapped sentences keep a perfect union-LCS but halve the plain LCS
    assert ours[3]["rougeLsum"] == pytest.approx(1.0) and ours[3]["rougeL"] == pytest.approx(0.5)


def test_corpus_is_mean_of_examples_with_domains_and_resampling():
    records = [{"id": str(i), "prediction": p, "reference": r, "domain": d, **s}
               for i, (p, r, d, s) in enumerate(zip(
                   ["a b", "c d e", "x", "a"], ["a b c", "c e", "y", "a"], ["lit", "acad", "acad", "lit"],
                   rouge_per_example(["a b", "c d e", "x", "a"], ["a b c", "c e", "y", "a"])))]
    metrics, details = rouge_summary(records)
    for name in ROUGE_TYPES:
        assert metrics[name] == pytest.approx(np.mean([r[name] for r in records]))
        assert metrics[f"{name}@lit"] == pytest.approx(np.mean([records[0][name], records[3][name]]))
        assert corpus_metric("seq2seq", f"{name}@acad", records) == metrics[f"{name}@acad"]
    assert details["per_domain_counts"] == {"acad": 2, "lit": 2}
    fn = corpus_metric_fn("seq2seq", "rouge1", records)
    assert fn(np.array([1, 1, 2])) == pytest.approx((2 * records[1]["rouge1"] + records[2]["rouge1"]) / 3)
    assert np.isnan(corpus_metric_fn("seq2seq", "rouge1@lit", records)(np.array([1, 2])))
    with pytest.raises(KeyError):
        corpus_metric("seq2seq", "bleu", records)
