"""The GPU suite and its benchmarks: the FLOP count behind MFU, and the suite's CPU mode end to end
(so that the one command a CUDA machine runs cannot rot while no GPU is at hand)."""
from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

from bench_common import t5_dims, t5_train_flops  # noqa: E402


@pytest.mark.parametrize("decoder_layers", [2, 3])
def test_train_flops_match_torch_flop_counter(decoder_layers):
    """The MFU numerator against torch's own count of the matmuls in a real training step."""
    from torch.utils.flop_counter import FlopCounterMode

    from lexilab.model import load_backbone

    cfg = {**t5_dims(tiny=True), "dropout_rate": 0.0, "num_decoder_layers": decoder_layers}
    model = load_backbone(cfg, init="random", seed=0).train()
    ids, labels = torch.randint(2, 1000, (2, 24)), torch.randint(2, 1000, (2, 10))
    with FlopCounterMode(display=False) as counter:
        logits = model(ids, torch.ones_like(ids), labels=labels)
        F.cross_entropy(logits.flatten(0, 1), labels.flatten()).backward()
    counted = counter.get_total_flops()
    assert abs(t5_train_flops(cfg, 2, 24, 10) - counted) / counted < 0.02


@pytest.mark.slow  # a few minutes on 2 shared cores: four training runs, two benchmarks, the gpu tests
def test_cpu_mode_runs_every_step_and_writes_the_section(gpu_suite_cpu_mode):
    # `bash benchmarks/gpu_suite.sh --device cpu --tiny --out DIR --data DATA`, started by
    # tests/conftest.py in the background when collection ends
    done, out_dir = gpu_suite_cpu_mode
    assert done.returncode == 0, done.stderr[-3000:]
    text = (out_dir / "gpu_suite.md").read_text()
    for heading in ("## GPU suite: cpu, tiny", "### gpu-marked tests", "#### Training step (cpu)",
                    "#### Generation (cpu)", "#### Gramian path for gradient methods (cpu)",
                    "#### Chunked cross-entropy over the vocabulary (cpu)", "### Multi-task study through the local executor"):
        assert heading in text, heading
    assert re.search(r"pytest -m gpu .*: \d+ skipped", text)  # collected, skipped without CUDA
    assert re.search(r"Logits agree with transformers to \d\.\de-\d\d", text)
    for variant in ("reference eager", "reference sdpa", "lexilab eager", "transformers hand-written loop",
                    "lexilab Trainer"):
        assert re.search(rf"\| {variant} \| [\d,.]+ \| [\d,.]+ \| [\d,.]+ \|", text), variant
    assert text.count("| yes |") == 2  # greedy and beam ids identical to transformers'
    gramian = re.findall(r"^\| ([38]) \|.*\| (\d\.\de[-+]\d\d) \|$", text, flags=re.M)
    assert [t for t, _ in gramian] == ["3", "8"] and all(float(d) < 1e-4 for _, d in gramian)  # same update
    chunked = re.findall(r"^\| chunked, 64 tokens \|.*\| (\d\.\de[-+]\d\d) \|$", text, flags=re.M)
    assert len(chunked) == 1 and float(chunked[0]) < 1e-4  # the chunked loss equals the full one
    assert "Pinning check: passed" in text
    assert len(re.findall(r"\| (equal|uncertainty) \| seed-\d \| done \|", text)) == 4
    assert "topic/accuracy" in text and "summary/rougeL" in text  # the report ran


def test_gramian_path_gives_the_update_of_todays_upgrad():
    """torchjd's Gramian engine + UPGrad's weighting, one weighted backward = lexilab's UPGrad on the
    dense Jacobian (the equality the Gramian benchmark's timings rest on)."""
    from torchjd.autogram import Engine

    from gramian_methods import build, task_losses
    from lexilab.train.weighting import build_weighting, flat_params

    backbone, heads, batches = build(3, True, torch.device("cpu"), 2, 16)
    groups = backbone.shared_parameter_groups()
    shared = flat_params(groups)
    method = build_weighting({"kind": "upgrad"}, ["a", "b", "c"], groups, seed=0)
    method.accumulate(dict(zip("abc", task_losses(backbone, heads, batches))), groups)
    method.finish(1)
    today = torch.cat([p.grad.flatten() for p in shared])
    for p in shared:
        p.grad = None
    engine = Engine(backbone.shared, backbone.encoder, batch_dim=None)  # hooks the forward passes below
    losses = torch.stack(task_losses(backbone, heads, batches))
    losses.backward(method.aggregator.gramian_weighting(engine.compute_gramian(losses)))
    gramian = torch.cat([p.grad.flatten() for p in shared])
    assert (gramian - today).norm() / today.norm() < 1e-5
    losses = task_losses(backbone, heads, batches)  # guard: UPGrad is not plain summation here
    summed = torch.cat([g.flatten() for g in torch.autograd.grad(sum(losses), shared)])
    assert (summed / 3 - today).norm() / today.norm() > 1e-3
