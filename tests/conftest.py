"""Suite-wide fixtures: offline Hugging Face, the shared data folder, GPU skipping."""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

# Tests never reach the hub; a missing model then fails in seconds, not a minute.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Tiny test models gain nothing from intra-op threads, and OpenMP threads spin-wait when the
# cores are shared (pytest + SLURM jobs + executors): one thread per process is ~10x faster here.
# Set before torch is imported; inherited by the subprocesses and jobs the tests start.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"{SHARED_DATA} not present (tests read the shared data beside the repo)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def flan_tokenizer_dir(shared_data: Path) -> Path:
    return shared_data / "flan_t5_tokenizer"


@pytest.fixture
def cli_of(monkeypatch, capsys):
    """cli_of(*command_modules) -> cli(*argv) -> (exit code, stdout, stderr) through
    lexilab.cli.main in this process. Named modules are the only subcommands registered (so a
    test reads only the commands it drives); none keeps lexilab.cli.COMMAND_MODULES."""
    import lexilab.cli

    def make(*modules: str):
        if modules:
            monkeypatch.setattr(lexilab.cli, "COMMAND_MODULES", list(modules))

        def call(*argv):
            code = lexilab.cli.main([str(a) for a in argv])
            out = capsys.readouterr()
            return code, out.out, out.err

        return call

    return make


# ---- Expensive artefacts made in the background -------------------------------------------
# Each is one command whose outputs several tests read. The suite's pytest process trains on one
# core and leaves the second idle, so when collection ends the commands that the selected tests
# need start in one background process (tests/prefetch.py, one after another), and the modules
# that read them run last (their fixture then waits for the command to end). The commands are
# those the tests ran themselves before; each runs once per session either way.
PREFETCH_RUNNER = Path(__file__).with_name("prefetch.py")
_prefetch_runner = importlib.util.spec_from_file_location("lexilab_tests_prefetch", PREFETCH_RUNNER)
prefetch = importlib.util.module_from_spec(_prefetch_runner)
_prefetch_runner.loader.exec_module(prefetch)
_PREFETCH = pytest.StashKey[dict]()


def _artefact_jobs(folder: Path) -> dict[str, dict]:
    """Fixture name -> the command making that artefact in folder/NAME."""
    data = {**os.environ, "LEXILAB_DATA": str(SHARED_DATA), "LEXILAB_PROGRESS": "0", "HF_HUB_OFFLINE": "1"}
    jobs = {
        # the README's main command, as the README writes it (the results root from the environment)
        "readme_quickstart": ([sys.executable, "-m", "lexilab", "run", "experiments/quickstart.yaml", "--seeds", "3"],
                              {**data, "LEXILAB_RESULTS": str(folder / "readme_quickstart" / "results")}, 900),
        # tests/report/tiny_experiment.yaml: 4 arms x 3 seeds of a tiny random T5 on synthetic tasks
        "tiny_experiment_run": ([sys.executable, "-m", "lexilab", "run", str(REPO_ROOT / "tests/report/tiny_experiment.yaml"),
                                 "--executor", "inline", "--results", str(folder / "tiny_experiment_run" / "results")],
                                data, 1800),
        "quickstart_conflict_run": ([sys.executable, "-m", "lexilab", "run", "experiments/quickstart_conflict.yaml",
                                     "--results", str(folder / "quickstart_conflict_run" / "results")], data, 1800),
        # benchmarks/gpu_suite.sh's CPU mode, end to end (its section: folder/NAME/gpu_suite.md)
        "gpu_suite_cpu_mode": (["bash", str(REPO_ROOT / "benchmarks" / "gpu_suite.sh"), "--device", "cpu", "--tiny",
                                "--out", str(folder / "gpu_suite_cpu_mode"), "--data", str(SHARED_DATA)],
                               {**os.environ, "OMP_NUM_THREADS": "1"}, 1200),
    }
    return {name: {"name": name, "argv": argv, "cwd": str(REPO_ROOT), "env": env, "timeout": timeout,
                   "folder": str(folder / name)} for name, (argv, env, timeout) in jobs.items()}


ARTEFACTS = tuple(_artefact_jobs(Path("/nonexistent")))


def _artefacts_read(item) -> list[str]:
    return [name for name in ARTEFACTS if name in getattr(item, "fixturenames", ())]


def _move_artefact_readers_last(items: list) -> None:
    """Whole modules, in their order, so that no module-scoped fixture is set up twice."""
    late = {item.nodeid.split("::")[0] for item in items if _artefacts_read(item)}
    items[:] = ([i for i in items if i.nodeid.split("::")[0] not in late]
                + [i for i in items if i.nodeid.split("::")[0] in late])


def pytest_collection_finish(session):
    """Start the artefacts the selected tests read, in the order they are first read."""
    if session.config.option.collectonly or not SHARED_DATA.is_dir():
        return
    wanted = list(dict.fromkeys(n for item in session.items for n in _artefacts_read(item)))
    if not wanted:
        return
    folder = Path(tempfile.mkdtemp(prefix="lexilab-prefetch-"))
    jobs = _artefact_jobs(folder)
    plan = folder / "plan.json"
    plan.write_text(json.dumps([jobs[n] for n in wanted]))
    with open(folder / "runner.log", "w") as log:  # own session: stopped as a group if pytest stops early
        runner = subprocess.Popen([sys.executable, str(PREFETCH_RUNNER), str(plan)], cwd=REPO_ROOT, stdout=log,
                                  stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    session.config.stash[_PREFETCH] = {"folder": folder, "jobs": {n: jobs[n] for n in wanted}, "runner": runner}


def pytest_sessionfinish(session):
    state = session.config.stash.get(_PREFETCH, None)
    if state is None:
        return
    runner = state["runner"]
    if runner.poll() is None:  # pytest stopped before every artefact was read: stop the rest
        try:
            os.killpg(runner.pid, signal.SIGTERM)  # the runner's own group: it and its jobs
            runner.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(runner.pid, signal.SIGKILL)
            runner.wait()
        except ProcessLookupError:  # it ended meanwhile
            pass
    shutil.rmtree(state["folder"], ignore_errors=True)


def _artefact(config, name: str, tmp_path_factory) -> tuple[subprocess.CompletedProcess, Path]:
    """(the finished command, its folder); waits for the background runner, or runs the command
    here where it was not planned (a fixture reached through request.getfixturevalue)."""
    state = config.stash.get(_PREFETCH, None)
    if state is None or name not in state["jobs"]:
        job = _artefact_jobs(tmp_path_factory.mktemp("artefacts"))[name]
        prefetch.run_job(job)
    else:
        job, runner = state["jobs"][name], state["runner"]
        done = Path(job["folder"]) / "returncode"
        while not done.exists():
            if runner.poll() is not None and not done.exists():
                raise RuntimeError(f"tests/prefetch.py ended before {name}: "
                                   + (state["folder"] / "runner.log").read_text()[-3000:])
            time.sleep(0.2)
    folder = Path(job["folder"])
    finished = subprocess.CompletedProcess(job["argv"], int((folder / "returncode").read_text()),
                                           (folder / "stdout").read_text(), (folder / "stderr").read_text())
    return finished, folder


@pytest.fixture(scope="session")
def readme_quickstart(pytestconfig, tmp_path_factory, shared_data):
    """The README's main command (`python -m lexilab run experiments/quickstart.yaml --seeds 3`)
    in a fresh process from the repository root, results under a temporary LEXILAB_RESULTS:
    (the finished process, the results root). The README test checks the command; the
    quickstart's known-answer test reports on the same 3 arms x 3 seeds."""
    done, folder = _artefact(pytestconfig, "readme_quickstart", tmp_path_factory)
    return done, folder / "results"


@pytest.fixture(scope="session")
def tiny_experiment_run(pytestconfig, tmp_path_factory, shared_data):
    """`python -m lexilab run tests/report/tiny_experiment.yaml --executor inline`: (process, results root)."""
    done, folder = _artefact(pytestconfig, "tiny_experiment_run", tmp_path_factory)
    return done, folder / "results"


@pytest.fixture(scope="session")
def quickstart_conflict_run(pytestconfig, tmp_path_factory, shared_data):
    """`python -m lexilab run experiments/quickstart_conflict.yaml`: (process, results root)."""
    done, folder = _artefact(pytestconfig, "quickstart_conflict_run", tmp_path_factory)
    return done, folder / "results"


@pytest.fixture(scope="session")
def gpu_suite_cpu_mode(pytestconfig, tmp_path_factory, shared_data):
    """`bash benchmarks/gpu_suite.sh --device cpu --tiny`: (process, the folder of its gpu_suite.md)."""
    return _artefact(pytestconfig, "gpu_suite_cpu_mode", tmp_path_factory)


def pytest_collection_modifyitems(config, items):
    import torch

    _move_artefact_readers_last(items)
    if torch.cuda.is_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)
