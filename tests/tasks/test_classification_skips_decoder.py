"""Classification steps on a T5 backbone run the encoder only: no decoder module (nor the LM
head) runs forward, and the decoder's parameters get no gradient. A seq2seq step through the
same hooks shows that they see the decoder when it runs."""
from __future__ import annotations

import pytest
import torch

from lexilab.data.registry import SPLITS, Dataset
from lexilab.tasks import build_task

ROWS = [("the striker scored twice", "sports", ["joy"]), ("voters chose a new mayor", "politics", []),
        ("cells divide", "science", ["surprise"])]


def _task(kind: str, tokenizer):
    fields = {"multiclass": lambda label, labels: {"label": label},
              "multilabel": lambda label, labels: {"labels": labels},
              "seq2seq": lambda label, labels: {"target": label}}[kind]
    splits = {s: [{"id": str(i), "text": t, **fields(y, ys)} for i, (t, y, ys) in enumerate(ROWS)] for s in SPLITS}
    names = {"multiclass": ["sports", "politics", "science"], "multilabel": ["joy", "surprise"]}.get(kind)
    dataset = Dataset(f"{kind}-dec", kind, splits, names, ["text", "target"] if kind == "seq2seq" else ["text"])
    return build_task("t", {"kind": kind, "max_length": 32}, dataset, tokenizer)


def _decoder_side(backbone) -> dict[str, torch.nn.Module]:
    """Every module only the decoder path uses: the decoder stack and an untied LM head."""
    modules = {f"decoder.{n}" if n else "decoder": m for n, m in backbone.decoder.named_modules()}
    if getattr(backbone, "lm_head", None) is not None:
        modules["lm_head"] = backbone.lm_head
    return modules


def _run(kind, tokenizer, backbone):
    task = _task(kind, tokenizer)
    module = task.build_module(backbone)
    ran = []
    hooks = [m.register_forward_hook(lambda mod, args, out, n=name: ran.append(n))
             for name, m in _decoder_side(backbone).items()]
    try:
        task.loss(backbone, module, task.collate(task.examples("train"))).backward()
    finally:
        for hook in hooks:
            hook.remove()
    return ran


@pytest.mark.parametrize("kind", ["multiclass", "multilabel"])
def test_classification_loss_never_runs_the_decoder(tokenizer, backbone, kind):
    assert _run(kind, tokenizer, backbone) == []
    decoder_params = [n for n, _ in backbone.named_parameters() if n.startswith(("decoder.", "lm_head."))]
    assert decoder_params and all(dict(backbone.named_parameters())[n].grad is None for n in decoder_params)
    assert all(p.grad is not None for p in backbone.encoder.parameters())  # the step did train the encoder


def test_the_hooks_see_the_decoder_of_a_seq2seq_step(tokenizer, backbone):
    ran = _run("seq2seq", tokenizer, backbone)
    assert {f"decoder.block.{i}" for i in range(len(backbone.decoder.block))} <= set(ran)
    assert all(p.grad is not None for p in backbone.decoder.parameters() if p.requires_grad)
