"""Padding to a multiple (``tasks.<name>.pad_to_multiple_of``): shapes are multiples, and the
padded positions are masked so completely that every loss and gradient on a tiny T5 equals the
one of the batch padded to its longest sequence only (the reference: today's dynamic padding)."""
from __future__ import annotations

import pytest
import torch

from lexilab.config import check_config, identity_hash
from lexilab.data.registry import SPLITS, Dataset
from lexilab.errors import LexilabError
from lexilab.tasks import build_task
from lexilab.tasks.collate import pad_sequences

ROWS = [  # lengths from 3 to ~25 tokens: one batch pads every row but the longest
    ("the match ended in a late goal after a long and tiring evening for both teams", "late goal", "sports", ["joy"]),
    ("voters chose a new mayor", "new mayor", "politics", []),
    ("cells divide", "cells divide", "science", ["surprise", "joy"]),
    ("parliament passed the budget after a bitter debate", "budget passed", "politics", ["anger"]),
]
LABELS = {"multiclass": ["sports", "politics", "science"], "multilabel": ["joy", "anger", "surprise"]}


def dataset(kind: str) -> Dataset:
    def row(i, text, target, label, labels):
        extra = {"seq2seq": {"target": target}, "multiclass": {"label": label}, "multilabel": {"labels": labels}}
        return {"id": str(i), "text": text, **extra[kind]}

    splits = {split: [row(i, *r) for i, r in enumerate(ROWS)] for split in SPLITS}
    return Dataset(f"{kind}-pad", kind, splits, LABELS.get(kind), ["text", "target"] if kind == "seq2seq" else ["text"])


def task_cfg(kind: str, **extra) -> dict:
    if kind == "seq2seq":
        return {"kind": kind, "max_length": 64, "max_target_length": 16, **extra}
    # attention pooling: a masked softmax over positions, the most padding-sensitive pooling
    return {"kind": kind, "pooling": "attention" if kind == "multilabel" else "mean", "max_length": 64, **extra}


def test_pad_sequences_rounds_the_length_up_to_the_multiple():
    ids, mask = pad_sequences([[5, 6, 7], [8]], pad_value=0, multiple_of=4)
    assert ids.tolist() == [[5, 6, 7, 0], [8, 0, 0, 0]] and mask.tolist() == [[1, 1, 1, 0], [1, 0, 0, 0]]
    assert pad_sequences([[1, 2, 3, 4]], -100, multiple_of=4)[0].tolist() == [[1, 2, 3, 4]]  # already a multiple
    assert pad_sequences([[1] * 65], 0, multiple_of=64)[0].shape == (1, 128)
    assert pad_sequences([[1, 2]], 0)[0].shape == (1, 2)  # default: the longest, as before
    for bad in (0, -64, 2.5, True):
        with pytest.raises(ValueError, match="multiple_of"):
            pad_sequences([[1]], 0, multiple_of=bad)


def _loss_and_grads(task, backbone, module, batch):
    backbone.zero_grad(set_to_none=True)
    if module is not None:
        module.zero_grad(set_to_none=True)
    loss = task.loss(backbone, module, batch)
    loss.backward()
    named = [*backbone.named_parameters(), *((module.named_parameters()) if module is not None else [])]
    return loss.detach(), {n: p.grad.clone() for n, p in named if p.grad is not None}


@pytest.mark.parametrize("kind", ["seq2seq", "multiclass", "multilabel"])
def test_padding_to_64_leaves_losses_and_gradients_unchanged(tokenizer, backbone, kind):
    plain = build_task("t", task_cfg(kind), dataset(kind), tokenizer)
    padded = build_task("t", task_cfg(kind, pad_to_multiple_of=64), dataset(kind), tokenizer)
    torch.manual_seed(0)
    module = plain.build_module(backbone)  # one head for both, so only the padding differs
    examples = plain.examples("train")
    reference, padded_batch = plain.collate(examples), padded.collate(examples)

    tensors = ["input_ids", "attention_mask"] + (["labels"] if kind == "seq2seq" else [])
    assert reference["input_ids"].shape[1] % 64 != 0  # the reference really is padded less
    for key in tensors:
        got, ref = padded_batch[key], reference[key]
        assert got.shape[0] == ref.shape[0] and got.shape[1] % 64 == 0 and got.shape[1] >= ref.shape[1], key
        assert torch.equal(got[:, : ref.shape[1]], ref), key
        fill = {"input_ids": tokenizer.pad_token_id, "attention_mask": 0, "labels": -100}[key]
        assert bool((got[:, ref.shape[1]:] == fill).all()), key

    loss, grads = _loss_and_grads(plain, backbone, module, reference)
    loss_padded, grads_padded = _loss_and_grads(padded, backbone, module, padded_batch)
    torch.testing.assert_close(loss_padded, loss, rtol=1e-6, atol=0)
    assert grads_padded.keys() == grads.keys()
    for name, grad in grads.items():
        torch.testing.assert_close(grads_padded[name], grad, rtol=1e-5, atol=1e-7, msg=lambda m, n=name: f"{n}: {m}")


def test_bad_multiple_is_refused_naming_the_key(tokenizer):
    with pytest.raises(LexilabError, match=r"^config\.yaml: tasks\.t\.pad_to_multiple_of: expected null or an integer from 1 to 8192, got 0$"):
        build_task("t", task_cfg("multiclass", pad_to_multiple_of=0), dataset("multiclass"), tokenizer)


def _run_config(shared_data, **task_extra) -> dict:
    return {"seed": 0, "data_root": str(shared_data),
            "backbone": {"name": {"d_model": 32, "d_ff": 64, "num_layers": 1, "num_heads": 4, "d_kv": 8,
                                  "vocab_size": 32128}, "init": "random", "tokenizer": "data:flan_t5_tokenizer"},
            "tasks": {"topic": {"kind": "multiclass", "data": {"name": "synthetic", "task": "shared_a"}, **task_extra}},
            "tracking": {"mlflow": False}}


def test_run_config_key_is_checked_and_absent_by_default(shared_data, tmp_path):
    from lexilab.train.trainer import Trainer

    config, problems = check_config(_run_config(shared_data))
    assert problems == [] and "pad_to_multiple_of" not in config["tasks"]["topic"]  # hashes of older configs hold
    set_to_64, problems = check_config(_run_config(shared_data, pad_to_multiple_of=64))
    assert problems == [] and set_to_64["tasks"]["topic"]["pad_to_multiple_of"] == 64
    assert identity_hash(set_to_64) != identity_hash(config)
    for bad, found in ((0, "0 (int)"), (64.5, "64.5 (float)"), ("64", "'64' (str)"), (10**6, "1000000 (int)")):
        run_dir = tmp_path / "e" / "a" / "seed-0"
        with pytest.raises(LexilabError) as err:
            Trainer(_run_config(shared_data, pad_to_multiple_of=bad), run_dir, progress=False)
        assert str(err.value) == (f"{run_dir / 'config.yaml'}: invalid run config: tasks.topic.pad_to_multiple_of: "
                                  f"expected an integer ≥ 1 and ≤ 8192 or null, found {found}")
