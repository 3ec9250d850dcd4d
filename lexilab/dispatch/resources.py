"""Resources of a submission: cluster profiles (slurm/profiles/<name>.yaml) merged with overrides.

A profile and the `resources` of a spec or the command line share one vocabulary (RESOURCE_KEYS);
later sources win: profile < spec resources < command line. `slurm_parameters` turns the result
into submitit AutoExecutor arguments.
"""
from __future__ import annotations

import difflib
import os
import re
import shlex
from pathlib import Path
from typing import Any

import yaml

from lexilab.dispatch.preemption import GRACE_ENV
from lexilab.errors import LexilabError

# key -> (type check, what is allowed); None values mean "unset".
RESOURCE_KEYS: dict[str, str] = {
    "partition": "a partition name",
    "account": "an account name",
    "qos": "a QOS name",
    "time": "minutes (int) or [D-]HH:MM[:SS]",
    "gpus_per_node": "an integer >= 0",
    "nodes": "nodes per run (an integer >= 1; a train.distributed run spans them)",
    "tasks_per_node": "processes per node of a train.distributed run (an integer >= 1; default gpus_per_node)",
    "cpus_per_task": "an integer >= 1",
    "mem": "memory per node, e.g. 32G, 16000M, or a number of GB",
    "mem_per_cpu": "memory per CPU, e.g. 4G",
    "mem_per_gpu": "memory per GPU, e.g. 40G",
    "constraint": "a node feature expression, e.g. a100|h100",
    "exclude": "nodes to avoid, e.g. node[01-03]",
    "nodelist": "nodes to use",
    "gres": "a generic resource string, e.g. gpu:a100:1",
    "job_name": "a job name",
    "sbatch": "extra sbatch options: a list of '--key=value' strings or a mapping",
    "setup": "shell lines run before the job (module load, venv activation)",
    "signal_delay_s": "seconds between the requeue signal and the time limit (integer)",
    "max_requeues": "how many time-limit requeues a run may use (integer)",
    "array_parallelism": "at most this many tasks of one array run at once (integer)",
    "python": "the command that starts Python in the job (default: this interpreter)",
    "visible_gpus": "local executor: GPU ids to use, e.g. [0, 1] (default: all visible)",
}
ALIASES = {"timeout_min": "time", "gpus": "gpus_per_node", "cpus": "cpus_per_task",
           "mem_gb": "mem", "name": "job_name"}
INT_KEYS = ("gpus_per_node", "nodes", "tasks_per_node", "cpus_per_task", "signal_delay_s", "max_requeues", "array_parallelism")
LIST_KEYS = ("setup",)
PROFILE_DIR = Path("slurm") / "profiles"


def _problem(source: str, key: str, what: str) -> LexilabError:
    return LexilabError(f"{source}: {key}: {what}")


def parse_time(value: Any, source: str = "resources", key: str = "time") -> int:
    """SLURM time (minutes, MM:SS, HH:MM:SS, D-HH[:MM[:SS]]) -> whole minutes (rounded up)."""
    if isinstance(value, bool):
        raise _problem(source, key, f"found {value!r}; allowed: {RESOURCE_KEYS['time']}")
    if isinstance(value, (int, float)):
        if value <= 0:
            raise _problem(source, key, f"found {value!r}; allowed: a positive number of minutes")
        return int(-(-value // 1))
    text = str(value).strip()
    match = re.fullmatch(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?", text)
    if not match:
        raise _problem(source, key, f"found {value!r}; allowed: {RESOURCE_KEYS['time']}")
    days, first, second, third = (int(g) if g is not None else None for g in match.groups())
    if days is not None:  # D-HH[:MM[:SS]]
        seconds = days * 86400 + first * 3600 + (second or 0) * 60 + (third or 0)
    elif third is not None:  # HH:MM:SS
        seconds = first * 3600 + second * 60 + third
    elif second is not None:  # MM:SS
        seconds = first * 60 + second
    else:  # MM
        seconds = first * 60
    if seconds <= 0:
        raise _problem(source, key, f"found {value!r}; allowed: a positive duration")
    return -(-seconds // 60)


def parse_mem(value: Any, source: str, key: str) -> str:
    """Memory for sbatch: numbers are GB; strings keep their unit (K, M, G, T)."""
    if isinstance(value, bool):
        raise _problem(source, key, f"found {value!r}; allowed: {RESOURCE_KEYS[key]}")
    if isinstance(value, (int, float)):
        if value <= 0:
            raise _problem(source, key, f"found {value!r}; allowed: a positive amount")
        return f"{int(value)}G" if value == int(value) else f"{int(value * 1024)}M"
    text = str(value).strip().upper().replace("GB", "G").replace("MB", "M").replace("TB", "T")
    if not re.fullmatch(r"\d+[KMGT]?", text):
        raise _problem(source, key, f"found {value!r}; allowed: {RESOURCE_KEYS[key]}")
    return text


def _sbatch_options(value: Any, source: str) -> dict[str, Any]:
    """Extra sbatch lines -> {option: value or True} for submitit's additional_parameters."""
    options: dict[str, Any] = {}
    if isinstance(value, dict):
        for name, item in value.items():
            options[str(name).lstrip("-").replace("_", "-")] = True if item is None else item
        return options
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise _problem(source, "sbatch", f"found {value!r}; allowed: {RESOURCE_KEYS['sbatch']}")
    for line in value:
        text = str(line).strip()
        if text.startswith("#SBATCH"):
            text = text[len("#SBATCH"):].strip()
        for token in shlex.split(text):
            if not token.startswith("--"):
                raise _problem(source, "sbatch", f"found {line!r}; allowed: long options like --mail-type=FAIL")
            name, sep, item = token[2:].partition("=")
            options[name] = item if sep else True
    return options


def normalize(resources: dict | None, source: str = "resources") -> dict[str, Any]:
    """Check and canonicalise one resources mapping (unknown keys and bad values: one line each)."""
    if resources is None:
        return {}
    if not isinstance(resources, dict):
        raise LexilabError(f"{source}: found {type(resources).__name__}; allowed: a mapping of resources")
    out: dict[str, Any] = {}
    for raw_key, value in resources.items():
        key = ALIASES.get(str(raw_key), str(raw_key))
        if key not in RESOURCE_KEYS:
            close = difflib.get_close_matches(key, list(RESOURCE_KEYS) + list(ALIASES), n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise _problem(source, str(raw_key), f"unknown resource{hint}; allowed: {', '.join(RESOURCE_KEYS)}")
        if value is None:
            out[key] = None
            continue
        if key == "time":
            value = parse_time(value, source, str(raw_key))
        elif key in ("mem", "mem_per_cpu", "mem_per_gpu"):
            value = parse_mem(value, source, key)
        elif key in INT_KEYS:
            least = 1 if key in ("cpus_per_task", "nodes", "tasks_per_node") else 0
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise _problem(source, str(raw_key), f"found {value!r}; allowed: {RESOURCE_KEYS[key]}")
        elif key in LIST_KEYS:
            if isinstance(value, str):
                value = [value]
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise _problem(source, key, f"found {value!r}; allowed: {RESOURCE_KEYS[key]}")
        elif key == "sbatch":
            value = _sbatch_options(value, source)
        elif key == "visible_gpus":
            if isinstance(value, (int, str)) and not isinstance(value, bool):
                value = [v for v in str(value).split(",") if v.strip()]
            if not isinstance(value, list):
                raise _problem(source, key, f"found {value!r}; allowed: {RESOURCE_KEYS[key]}")
            value = [str(v).strip() for v in value]
        elif not isinstance(value, (str, int)) or isinstance(value, bool):
            raise _problem(source, key, f"found {value!r}; allowed: {RESOURCE_KEYS[key]}")
        else:
            value = str(value)
        out[key] = value
    return out


def profile_path(profile: str | os.PathLike) -> Path:
    """A profile name (looked up in ./slurm/profiles, then the repository's) or a YAML path."""
    candidate = Path(profile)
    if candidate.suffix in (".yaml", ".yml") or candidate.parent != Path("."):
        if candidate.is_file():
            return candidate
        raise LexilabError(f"{candidate}: cluster profile not found")
    repo_profiles = Path(__file__).resolve().parents[2] / PROFILE_DIR
    folders = [Path.cwd() / PROFILE_DIR, repo_profiles]
    for folder in folders:
        for suffix in (".yaml", ".yml"):
            path = folder / f"{profile}{suffix}"
            if path.is_file():
                return path
    known = sorted({p.stem for folder in folders if folder.is_dir() for p in folder.glob("*.y*ml")})
    close = difflib.get_close_matches(str(profile), known, n=1)
    hint = f" (did you mean {close[0]}?)" if close else ""
    raise LexilabError(f"slurm/profiles/{profile}.yaml: cluster profile not found{hint}; "
                       f"known: {', '.join(known) or 'none'}")


def load_profile(profile: str | os.PathLike) -> dict[str, Any]:
    """Read and check a cluster profile: a mapping of RESOURCE_KEYS."""
    path = profile_path(profile)
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = f"line {mark.line + 1}" if mark is not None else "YAML"
        raise LexilabError(f"{path}: {line}: not valid YAML ({getattr(error, 'problem', error)})") from None
    return normalize(document or {}, str(path))


def merge_resources(profile: str | os.PathLike | None, *overrides: dict | None) -> dict[str, Any]:
    """profile < each override in turn; a None value in an override unsets the key."""
    merged = load_profile(profile) if profile else {}
    for index, override in enumerate(overrides):
        merged.update(normalize(override, "resources" if index == 0 else "command line resources"))
    return {k: v for k, v in merged.items() if v is not None}


def slurm_parameters(resources: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(AutoExecutor constructor kwargs, update_parameters kwargs) for cluster="slurm"."""
    ctor: dict[str, Any] = {"slurm_max_num_timeout": resources.get("max_requeues", 3)}
    if "python" in resources:
        ctor["slurm_python"] = resources["python"]
    time_min = resources.get("time", 60)
    # the requeue signal must come before the limit; submitit's 90 s exceeds short limits
    delay = resources.get("signal_delay_s", min(90, max(10, time_min * 60 // 4)))
    params: dict[str, Any] = {
        "timeout_min": time_min,
        "name": resources.get("job_name", "lexilab"),
        "slurm_signal_delay_s": delay,
        # a trainer deferring the signal to its next step (dispatch/preemption.py) waits at most this
        "slurm_setup": [f"export {GRACE_ENV}={max(1, delay // 2)}", *resources.get("setup", [])],
    }
    for key in ("cpus_per_task", "gpus_per_node", "nodes", "tasks_per_node"):
        if key in resources:
            params[key] = resources[key]
    for key in ("partition", "account", "qos", "constraint", "exclude", "nodelist", "gres",
                "mem", "mem_per_cpu", "mem_per_gpu", "array_parallelism"):
        if key in resources:
            params[f"slurm_{key}"] = resources[key]
    if resources.get("sbatch"):
        params["slurm_additional_parameters"] = dict(resources["sbatch"])
    return ctor, params
