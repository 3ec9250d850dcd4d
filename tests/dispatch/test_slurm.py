"""Against a real single-node SLURM (slurmctld, slurmd, munge, slurmdbd + MariaDB on localhost):
lexilab submits its real job function for tiny runs and reads states back from sacct.

The session's cluster has MaxArraySize=3, so a submission of 4 runs must be split into two
arrays (a single array of 4 is refused by sbatch).
"""
from __future__ import annotations

import itertools
import shutil
import subprocess
import time

import pytest

from lexilab.dispatch import dispatch, refresh_status
from lexilab.dispatch.localslurm import LocalSlurm
from lexilab.dispatch.procs import pid_alive
from lexilab.dispatch.slurm import job_states, max_array_size
from lexilab.errors import LexilabError
from lexilab.io import read_json
from lexilab.runs import read_status

pytestmark = pytest.mark.slurm
TIMEOUT = 240  # seconds for a handful of tiny runs on 2 loaded cores


def _all_job_ids() -> set[str]:
    out = subprocess.run(["sacct", "-X", "-n", "-P", "-o", "JobID", "--starttime=2000-01-01"],
                         capture_output=True, text=True, check=True).stdout
    return set(out.split())


def _spec(base: dict) -> dict:
    return {
        "name": "tiny",
        "description": "two pooling arms x two seeds",
        "base": base,
        "factors": {"pooling": {"mean": {"tasks.colour.pooling": "mean"},
                                "max": {"tasks.colour.pooling": "max"}}},
        "seeds": 2,
    }


def test_spec_runs_go_out_as_arrays_below_max_array_size_and_all_finish(slurm, runs, wait_for):
    dirs = runs.from_spec(_spec(runs.base()))
    assert len(dirs) == 4 and max_array_size() == slurm.max_array_size == 3
    submitted = time.time()
    result = dispatch(dirs, "slurm", profile="local", log_dir=runs.root / "logs")
    assert time.time() - submitted < 30  # returns once submitted, not when the runs end
    # 4 runs, MaxArraySize 3: an array of 3 tasks and a single job
    arrays = {}
    for job_id in result.job_ids:
        arrays.setdefault(job_id.split("_")[0], []).append(job_id)
    assert sorted(len(v) for v in arrays.values()) == [1, 3]
    assert [read_status(r)["job_id"] for r in dirs] == result.job_ids
    assert all(read_status(r)["executor"] == "slurm" for r in dirs)
    final = result.wait(timeout=TIMEOUT, poll_s=0.5)
    assert set(final.values()) == {"done"}, {str(r): read_status(r).get("error") for r in dirs}
    for run_dir in dirs:
        metrics = read_json(run_dir / "metrics.json")
        assert 0.0 <= metrics["test"]["colour"]["accuracy"] <= 1.0
        assert read_status(run_dir)["slurm_job_id"]  # the runner ran inside a SLURM job
    # the run records `done` just before its job process exits
    wait_for(lambda: set(job_states(result.job_ids).values()) == {"COMPLETED"}, 60, "sacct to say COMPLETED", 0.5)


def test_a_failing_run_is_recorded_while_the_others_finish(slurm, runs):
    bad, good = runs.broken(), runs.write("good")
    result = dispatch([bad, good], "slurm", profile="local", log_dir=runs.root / "logs")
    final = result.wait(timeout=TIMEOUT, poll_s=0.5)
    assert final[bad.resolve()] == "failed" and final[good.resolve()] == "done"
    status = read_status(bad)
    assert "no-such-tokenizer" in status["traceback"] and status["error"]
    assert (good / "metrics.json").exists()


def test_a_cancelled_run_is_shown_as_cancelled(slurm, runs, wait_for):
    run_dir = runs.write("long", config=runs.base(max_steps=100000, checkpoint_every=None))
    result = dispatch([run_dir], "slurm", profile="local", log_dir=runs.root / "logs")
    wait_for(lambda: read_status(run_dir)["state"] == "running", TIMEOUT, "the run to start", 0.2)
    subprocess.run(["scancel", result.job_ids[0]], check=True)
    # the job dies without writing anything; sacct knows, and refresh_status records it
    wait_for(lambda: refresh_status([run_dir])[run_dir]["state"] == "cancelled", 60, "state cancelled", 0.5)
    status = read_status(run_dir)
    assert status["state"] == "cancelled" and result.job_ids[0] in status["error"]
    assert job_states(result.job_ids)[result.job_ids[0]] == "CANCELLED"
    # the killed process must not overwrite the record afterwards
    wait_for(lambda: not pid_alive(status["job_pid"]), 30, "the job's process to end")
    assert read_status(run_dir)["state"] == "cancelled"


def test_a_preempted_run_is_requeued_and_resumes_to_the_same_metrics(slurm, runs, wait_for):
    # the first checkpoint comes at step 5; 75 steps after it leave time to interrupt
    base = runs.base(max_steps=80, checkpoint_every=5)
    interrupted, reference = runs.write("interrupted", config=base), runs.write("reference", config=base)
    result = dispatch([interrupted, reference], "slurm", profile="local", log_dir=runs.root / "logs")
    job = result.handles[0].job
    checkpoint = interrupted / "checkpoints" / "last" / "state.pt"
    wait_for(checkpoint.exists, TIMEOUT, "the first checkpoint", 0.05)
    assert not (interrupted / "metrics.json").exists()  # mid-training
    job._interrupt()  # what SLURM does on preemption: SIGTERM, then USR2 to the job's steps
    final = result.wait(timeout=TIMEOUT, poll_s=0.5)
    assert set(final.values()) == {"done"}, {str(r): read_status(r).get("error") for r in final}
    status = read_status(interrupted)
    assert status["requeues"] == 1 and status["attempts"] == 2
    assert status["started_with_checkpoint"] is True  # the second attempt found the checkpoint
    assert read_status(reference)["attempts"] == 1
    assert read_json(interrupted / "metrics.json") == read_json(reference / "metrics.json")


def test_a_gpu_request_on_a_node_without_gpus_is_refused_in_one_line(slurm, runs):
    run_dir = runs.write("gpu")
    before = read_status(run_dir)
    known = _all_job_ids()
    with pytest.raises(LexilabError) as err:
        dispatch([run_dir], "slurm", profile="local", resources={"gpus_per_node": 1}, log_dir=runs.root / "logs")
    message = str(err.value)
    assert "\n" not in message and message.startswith("slurm: gpus_per_node=1: no node in partition 'debug'")
    after = read_status(run_dir)
    assert after["state"] == before["state"] == "pending" and not after.get("job_id")
    assert _all_job_ids() == known  # nothing reached the queue


def test_one_run_per_gpu_with_fake_gpus(slurm_gpus, runs):
    dirs = [runs.write(f"gpu{i}") for i in range(2)]
    result = dispatch(dirs, "slurm", profile="local", resources={"gpus_per_node": 1}, log_dir=runs.root / "logs")
    final = result.wait(timeout=TIMEOUT, poll_s=0.5)
    assert set(final.values()) == {"done"}, {str(r): read_status(r).get("error") for r in dirs}
    statuses = {r: read_status(r) for r in dirs}
    devices = {r: s["cuda_visible_devices"] for r, s in statuses.items()}
    assert set(devices.values()) <= {"0", "1"}, devices  # exactly one GPU each
    spans = {r: (s["started"], s["finished"]) for r, s in statuses.items()}
    pairs = [(a, b) for a, b in itertools.combinations(dirs, 2)
             if spans[a][0] < spans[b][1] and spans[b][0] < spans[a][1]]
    assert pairs, spans  # two GPUs, two runs: side by side
    for a, b in pairs:
        assert devices[a] != devices[b], (devices, spans)


def test_local_cluster_starts_and_stops_by_pid(tmp_path):
    # a second, accounting-free cluster beside the session's: own ports, own folder
    from lexilab.dispatch.localslurm import unavailable_reason

    if unavailable_reason(accounting=False):
        pytest.skip(unavailable_reason(accounting=False))
    cluster = LocalSlurm(f"/tmp/lexilab-slurm-test-{tmp_path.name}", cpus=2, accounting=False).start()
    try:
        pids = {d: int(cluster.pid_file(d).read_text()) for d in ("munged", "slurmctld", "slurmd")}
        assert all(pid_alive(p) for p in pids.values())
        info = subprocess.run(["sinfo", "-h", "-o", "%T %c"], env=cluster.env(), capture_output=True, text=True)
        assert info.stdout.split() == ["idle", "2"]
    finally:
        cluster.stop()
        shutil.rmtree(cluster.root, ignore_errors=True)
    assert not any(pid_alive(p) for p in pids.values())
    assert not any(cluster.pid_file(d).exists() for d in pids)
