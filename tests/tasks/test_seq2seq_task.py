"""The seq2seq task kind: collation, loss (hand-computed label smoothing), generation and ROUGE."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from rouge_score import rouge_scorer

from lexilab.data.registry import SPLITS, Dataset
from lexilab.errors import LexilabError
from lexilab.tasks import build_task

ROWS = [
    ("the committee met on tuesday to discuss the new park and voted to fund it", "committee funds new park", "news"),
    ("researchers trained a small model on text and found that it summarises well", "small model summarises well", "science"),
    ("rain is expected all week", "rainy week ahead", "news"),
    ("the cells were cultured for ten days before the measurement of growth rates", "cells cultured ten days; growth measured", "science"),
    ("a short note", "note", "news"),
]


def summary_dataset() -> Dataset:
    splits = {split: [{"id": f"{split}-{i}", "text": t, "target": y, "domain": d} for i, (t, y, d) in enumerate(ROWS)]
              for split in SPLITS}
    return Dataset("summaries-test", "seq2seq", splits, None, ["text", "target"])


def cfg(**extra) -> dict:
    return {"kind": "seq2seq", "max_length": 64, "max_target_length": 32,
            "generation": {"num_beams": 4, "max_new_tokens": None, "min_new_tokens": 0, "length_penalty": 1.0}, **extra}


def test_collate_pads_targets_with_ignore_index(tokenizer):
    task = build_task("summ", cfg(max_target_length=4, prefix="summarize: "), summary_dataset(), tokenizer)
    examples = task.examples("train")
    batch = task.collate(examples)
    targets = [tokenizer(text_target=e["target"], truncation=True, max_length=4)["input_ids"] for e in examples]
    assert batch["labels"].shape == (len(examples), max(map(len, targets)))
    for row, ids in enumerate(targets):
        assert batch["labels"][row, : len(ids)].tolist() == ids
        assert set(batch["labels"][row, len(ids):].tolist()) <= {-100}
    prefixed = tokenizer("summarize: " + examples[0]["text"])["input_ids"]
    assert batch["input_ids"][0, : len(prefixed)].tolist() == prefixed
    assert task.needs_decoder is True


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_loss_matches_hand_computation(tokenizer, backbone, smoothing):
    task = build_task("summ", cfg(loss={"label_smoothing": smoothing}), summary_dataset(), tokenizer)
    batch = task.collate(task.examples("train"))
    loss = task.loss(backbone, None, batch)
    labels = batch["labels"]
    decoder_in = torch.full_like(labels, 0)  # T5: decoder start = pad = 0, then labels shifted right
    decoder_in[:, 1:] = labels[:, :-1].clamp_min(0)
    logits = backbone(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                      decoder_input_ids=decoder_in).double()
    logp = torch.log_softmax(logits, dim=-1)
    keep = labels != -100
    nll = -logp.gather(-1, labels.clamp_min(0).unsqueeze(-1)).squeeze(-1)
    per_token = (1 - smoothing) * nll + smoothing * (-logp.mean(dim=-1))
    assert loss.item() == pytest.approx(per_token[keep].mean().item(), rel=1e-5)


def test_fitted_max_new_tokens_is_p99_capped(tokenizer):
    task = build_task("summ", cfg(), summary_dataset(), tokenizer)
    lengths = sorted(len(tokenizer(text_target=y)["input_ids"]) for _, y, _ in ROWS)
    p99 = lengths[math.ceil(0.99 * (len(lengths) - 1))]  # the "higher" order statistic
    assert task.generation_settings()["max_new_tokens"] == min(p99, 32)
    capped = build_task("summ", cfg(max_target_length=3), summary_dataset(), tokenizer)
    assert capped.generation_settings()["max_new_tokens"] == 3
    fixed = build_task("summ", cfg(generation={"max_new_tokens": 7}), summary_dataset(), tokenizer)
    settings = fixed.generation_settings({"num_beams": 2})
    assert (settings["max_new_tokens"], settings["num_beams"], settings["max_new_tokens_rule"]) == (7, 2, "configured")


def test_predict_equals_backbone_generate(tokenizer, backbone):
    task = build_task("summ", cfg(), summary_dataset(), tokenizer)
    batch = task.collate(task.examples("val"))
    generation = {"num_beams": 2, "max_new_tokens": 6, "min_new_tokens": 2, "length_penalty": 0.8}
    predictions = task.predict(backbone, None, batch, generation)
    direct = backbone.generate(batch["input_ids"], batch["attention_mask"], max_new_tokens=6, num_beams=2,
                               length_penalty=0.8, min_new_tokens=2)
    texts = [t.strip() for t in tokenizer.batch_decode(direct, skip_special_tokens=True)]
    assert [p["prediction"] for p in predictions] == texts
    assert [p["id"] for p in predictions] == batch["ids"]
    metrics, records = task.evaluate(predictions, "val")
    assert metrics["details"]["generation"]["num_beams"] == 2
    assert metrics["details"]["generation"]["max_new_tokens"] == 6


def test_evaluate_matches_rouge_score_and_domains(tokenizer):
    task = build_task("summ", cfg(early_stopping_metric="rouge2@science"), summary_dataset(), tokenizer)
    outputs = ["committee votes to fund park", "model summarizes text well", "", "cells grown ten days\ngrowth measured",
               "a note"]
    predictions = [{"id": f"test-{i}", "prediction": text} for i, text in enumerate(outputs)]
    metrics, records = task.evaluate(predictions, "test")
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL", "rougeLsum"], use_stemmer=True)
    direct = [scorer.score(y, p) for p, (_, y, _) in zip(outputs, ROWS)]
    for name in ("rouge1", "rouge2", "rougeL", "rougeLsum"):
        values = [d[name].fmeasure for d in direct]
        assert [r[name] for r in records] == pytest.approx(values)
        assert metrics[name] == pytest.approx(np.mean(values))
        for domain in ("news", "science"):
            subset = [v for v, (_, _, d) in zip(values, ROWS) if d == domain]
            assert metrics[f"{name}@{domain}"] == pytest.approx(np.mean(subset))
    assert records[2]["rouge1"] == 0.0 and metrics["details"]["empty_predictions"] == 1
    assert records[0]["domain"] == "news" and records[0]["reference"] == ROWS[0][1]
    assert task.val_objective(metrics) == metrics["rouge2@science"] and task.val_mode == "max"


def test_seq2seq_config_errors(tokenizer):
    with pytest.raises(LexilabError, match="focal_gamma"):
        build_task("summ", cfg(loss={"focal_gamma": 2.0}), summary_dataset(), tokenizer)
    with pytest.raises(LexilabError, match="generation.beams"):
        build_task("summ", cfg(generation={"beams": 2}), summary_dataset(), tokenizer)
    with pytest.raises(LexilabError, match="early_stopping_metric"):
        build_task("summ", cfg(early_stopping_metric="accuracy"), summary_dataset(), tokenizer)

    class EncoderOnly(torch.nn.Module):
        is_encoder_decoder = False

    task = build_task("summ", cfg(), summary_dataset(), tokenizer)
    with pytest.raises(LexilabError, match="encoder-decoder"):
        task.build_module(EncoderOnly())
