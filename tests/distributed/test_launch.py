"""``torchrun --nproc-per-node 2 -m lexilab.runner RUN_DIR`` end to end (CPU, gloo): rank 0 alone
writes the run directory, a SIGKILLed rank ends the run as failed in bounded time, and the
re-run resumes to the metrics of a one-process run with the doubled batch."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lexilab.config import check_config
from lexilab.io import read_json, read_jsonl
from lexilab.runner import run_in_dir
from lexilab.runs import config_hash, read_status, write_run

STEPS = 24  # long enough that rank 1 is killed mid-run (a step takes ~0.1 s)


def _write(root: Path, config: dict, arm: str) -> Path:
    resolved, problems = check_config(config, root)
    assert not problems, [p.line() for p in problems]
    run_dir = root / "results" / "exp" / arm / "seed-0"
    write_run(run_dir, resolved, {"experiment": "exp", "arm": arm, "seed": 0}, config_hash(resolved))
    return run_dir


def _torchrun(run_dir: Path, repo_root: Path) -> subprocess.Popen:
    env = dict(os.environ, OMP_NUM_THREADS="1", LEXILAB_PROGRESS="0")
    return subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                             "-m", "lexilab.runner", str(run_dir)], cwd=repo_root, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _rank_pid(launcher: int, rank: int) -> int | None:
    """The worker of torchrun's agent whose environment says RANK=rank."""
    for task in Path(f"/proc/{launcher}/task").iterdir():
        for pid in (task / "children").read_text().split():
            try:
                environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            except OSError:
                continue
            if f"RANK={rank}".encode() in environ:
                return int(pid)
    return None


def _wait_for(predicate, timeout: float, what: str):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


@pytest.mark.slow
def test_torchrun_run_killed_rank_fails_it_and_the_rerun_resumes_to_the_one_process_metrics(
        make_ddp_config, data_root, metrics_close, tmp_path, repo_root):
    config = make_ddp_config(data_root, "equal", 4, sampler={"kind": "round_robin", "steps_per_epoch": 2})
    config["train"].update(epochs=STEPS // 2, checkpoint_every=1)
    run_dir = _write(tmp_path, config, "ddp")
    launcher = _torchrun(run_dir, repo_root)
    try:
        history = run_dir / "history.jsonl"
        _wait_for(lambda: history.exists() and len(list(read_jsonl(history))) >= 3, 240, "training to start")
        victim = _rank_pid(launcher.pid, 1)
        assert victim is not None
        os.kill(victim, signal.SIGKILL)
        killed = time.time()
        output, _ = launcher.communicate(timeout=120)
    finally:
        if launcher.poll() is None:
            launcher.kill()
    assert launcher.returncode != 0
    status = read_status(run_dir)
    assert status["state"] == "failed", output[:6000]
    assert "RankFailed" in status["error"] and "rank" in status["error"]
    assert time.time() - killed < 120
    assert not (run_dir / "metrics.json").exists()

    rerun = _torchrun(run_dir, repo_root)
    output, _ = rerun.communicate(timeout=400)
    assert rerun.returncode == 0, output[-3000:]
    assert read_status(run_dir)["state"] == "done"
    steps = [r["step"] for r in read_jsonl(run_dir / "history.jsonl") if "split" not in r]
    assert steps == list(range(1, STEPS + 1))  # resumed: no step lost or written twice

    config["train"]["batch_size"] = 8  # one process, the doubled batch
    config["train"]["distributed"]["enabled"] = False
    single = _write(tmp_path, config, "single")
    expected = run_in_dir(single, progress=False)
    metrics_close(read_json(run_dir / "metrics.json"), expected)
    written = sorted(p.relative_to(run_dir).as_posix() for p in run_dir.rglob("*") if p.is_file())
    assert not [p for p in written if "error-" in p or p.endswith(".tmp")]


def test_a_run_without_train_distributed_refuses_a_multi_process_launch(make_ddp_config, data_root, tmp_path,
                                                                       monkeypatch):
    """Before any process group or file: one line naming the file and the key."""
    config = make_ddp_config(data_root, "equal", 4)
    config["train"]["distributed"]["enabled"] = False
    run_dir = _write(tmp_path, config, "plain")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    from lexilab.errors import LexilabError

    with pytest.raises(LexilabError) as caught:
        run_in_dir(run_dir, progress=False)
    message = str(caught.value)
    assert "\n" not in message and "config.yaml: train.distributed.enabled is false" in message
    assert "rank 1 of 2 (torchrun)" in message
    assert read_status(run_dir)["state"] == "pending"
