"""tests/prefetch.py, the background runner of the suite's expensive artefacts: jobs run one
after another in plan order, each folder gets its output and then its return code, and a job
past its timeout is killed and reported as 124."""
from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import time
from pathlib import Path

RUNNER = Path(__file__).resolve().parents[1] / "prefetch.py"
_spec = importlib.util.spec_from_file_location("prefetch_under_test", RUNNER)
prefetch = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(prefetch)


def _job(tmp_path: Path, name: str, code: str, timeout: float = 60) -> dict:
    return {"name": name, "argv": [sys.executable, "-c", code], "cwd": str(tmp_path), "env": {}, "timeout": timeout,
            "folder": str(tmp_path / name)}


def test_jobs_run_in_plan_order_one_at_a_time_and_end_with_their_return_code(tmp_path):
    stamp = "import sys, time; print(time.time()); time.sleep(0.3); print(time.time()); sys.exit({})"
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps([_job(tmp_path, "first", stamp.format(0)), _job(tmp_path, "second", stamp.format(3))]))
    done = subprocess.run([sys.executable, str(RUNNER), str(plan)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    spans = {n: [float(v) for v in (tmp_path / n / "stdout").read_text().split()] for n in ("first", "second")}
    assert spans["first"][1] <= spans["second"][0]  # the second started after the first had ended
    assert [(tmp_path / n / "returncode").read_text() for n in ("first", "second")] == ["0", "3"]
    assert not list(tmp_path.rglob("*.tmp"))


def test_a_job_past_its_timeout_is_killed_and_ends_with_124(tmp_path):
    job = _job(tmp_path, "stuck", "import sys, time; print('started', file=sys.stderr, flush=True); time.sleep(60)",
               timeout=1)
    started = time.time()
    assert prefetch.run_job(job) == prefetch.TIMED_OUT == 124
    assert time.time() - started < 30
    assert (tmp_path / "stuck" / "returncode").read_text() == "124"
    assert "started" in (tmp_path / "stuck" / "stderr").read_text()
    assert "stuck killed after its 1 s timeout" in (tmp_path / "stuck" / "stderr").read_text()
