"""Exact resume: a run SIGKILLed mid-training and resumed ends bit-identical to one that never stopped."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import torch
from safetensors.torch import load_file

from lexilab.io import read_json, read_jsonl
from lexilab.train.trainer import train_run

# Trains in a child process and SIGKILLs itself right after optimizer step KILL_AT (a checkpoint
# was written at step 4, so steps 5..KILL_AT are lost and must be replayed identically).
CHILD = textwrap.dedent("""
    import json, os, signal, sys
    from lexilab.train.trainer import Trainer
    config = json.load(open(sys.argv[1]))
    trainer = Trainer(config, sys.argv[2], progress=False)
    def hook(t):
        if t.step == int(sys.argv[3]):
            os.kill(os.getpid(), signal.SIGKILL)
    trainer.fit(on_step=hook)
""")


def _history(run_dir):
    return [{k: v for k, v in r.items() if k != "examples_per_s"} for r in read_jsonl(run_dir / "history.jsonl")]


def test_sigkill_then_resume_equals_uninterrupted(make_config, tmp_path):
    # dropout on, accumulation, a warm-up/decay schedule, a seeded sampler, learnable loss
    # weights and diagnostics: every piece of state that could drift is in play
    config = make_config(("topic", "emotion", "summary"), sampler={"kind": "temperature", "alpha": 0.5,
                         "steps_per_epoch": 8}, weighting={"kind": "uncertainty"},
                         train__grad_accum=2, train__epochs=2, train__checkpoint_every=4,
                         diagnostics={"grad_cosine_every": 3})
    reference = tmp_path / "ref" / "a" / "seed-0"
    expected = train_run(config, reference, progress=False)

    resumed = tmp_path / "killed" / "a" / "seed-0"
    config_file = tmp_path / "config.json"
    config_file.write_text(json.dumps(config))
    env = dict(os.environ, PYTHONPATH=os.getcwd())
    child = subprocess.run([sys.executable, "-c", CHILD, str(config_file), str(resumed), "6"], env=env,
                           capture_output=True, text=True, timeout=600)
    assert child.returncode == -9, child.stderr[-2000:]
    assert (resumed / "checkpoints" / "last" / "state.pt").exists()
    assert max(r["step"] for r in read_jsonl(resumed / "history.jsonl")) == 6  # steps 5-6 done, then lost

    metrics = train_run(config, resumed, progress=False)
    assert metrics == expected
    a = load_file(reference / "checkpoints" / "best" / "model.safetensors")
    b = load_file(resumed / "checkpoints" / "best" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    last_a = torch.load(reference / "checkpoints" / "last" / "state.pt", weights_only=True)["model"]
    last_b = torch.load(resumed / "checkpoints" / "last" / "state.pt", weights_only=True)["model"]
    assert all(torch.equal(last_a[k], last_b[k]) for k in last_a)
    assert _history(resumed) == _history(reference)  # no duplicated or missing records
    assert list(read_jsonl(resumed / "gradcos.jsonl")) == list(read_jsonl(reference / "gradcos.jsonl"))
    assert read_json(resumed / "thresholds.json") == read_json(reference / "thresholds.json")
