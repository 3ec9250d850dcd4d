"""The run config: defaults, deep-merge, schema, normalisation and the identity hash.

``check_config(raw, base_dir)`` turns the config of one run (as written in a spec, after its
factor overrides) into the fully resolved config that goes to ``config.yaml``, together with
every problem found, each a :class:`Problem` (dotted key path + message). Nothing is silently
ignored: an unknown key is a problem (with a "did you mean"), a key that the task kind or the
chosen method does not use is a problem, and names are looked up in the registries of the
modules that implement them (cross-field checks live in :mod:`lexilab.config_checks`).
"""
from __future__ import annotations

import copy
import importlib
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from lexilab.data.registry import did_you_mean
from lexilab.runs import config_hash as _sha

SPLITS = ("train", "val", "calibration", "test")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_FLOAT_RE = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a config: ``path`` is the dotted key ("" for the whole config)."""

    path: str
    message: str

    def line(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class _Bad(Exception):
    """A value has the wrong type or range; ``what`` is allowed, ``hint`` a did-you-mean."""

    def __init__(self, what: str, hint: str = ""):
        super().__init__(what)
        self.what, self.hint = what, hint

    def line(self, value: Any) -> str:
        return f"expected {self.what}, found {_found(value)}{self.hint}"


def _found(value: Any) -> str:
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{text} ({type(value).__name__})" if value is not None else "null"


# --------------------------------------------------------------------------- leaf validators
# Each returns the normalised value or raises _Bad(what is allowed).

# Every integer of a config is bounded: a count past int32 is a typo, and huge ones (10**400)
# would overflow the float checks or the C libraries they reach
MAX_INT = 2**31 - 1
MAX_SEED = 2**32 - 1  # numpy's seed range; the trainer derives its streams' seeds from it
MAX_PAD_MULTIPLE = 8192  # tasks.<name>.pad_to_multiple_of (64 suits torch.compile and tensor cores)


def number(lo=None, hi=None, *, integer=False, nullable=False, lo_open=False, hi_open=False):
    what = "an integer" if integer else "a number"
    if lo is not None:
        what += f" {'>' if lo_open else '≥'} {lo}"
    if hi is not None:
        what += f"{' and' if lo is not None else ''} {'<' if hi_open else '≤'} {hi}"
    if nullable:
        what += " or null"

    def check(value):
        if value is None and nullable:
            return None
        # PyYAML reads 3e-5 (no dot) as a string; YAML 1.2 and every reader expect a number
        if isinstance(value, str) and not integer and _FLOAT_RE.match(value.strip()):
            value = float(value)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _Bad(what)
        if integer and hi is None and abs(value) > MAX_INT:
            raise _Bad(f"{what} and ≤ {MAX_INT}")
        if integer and not (isinstance(value, int) or float(value).is_integer()):
            raise _Bad(what)
        if isinstance(value, int) and abs(value) > 2**53:  # a float would round it, or overflow
            raise _Bad(what)
        if not math.isfinite(value):
            raise _Bad(what)
        if lo is not None and (value < lo or (lo_open and value == lo)):
            raise _Bad(what)
        if hi is not None and (value > hi or (hi_open and value == hi)):
            raise _Bad(what)
        return int(value) if integer else float(value)

    return check


def boolean(value):
    if not isinstance(value, bool):
        raise _Bad("true or false")
    return value



def string(*, nullable=False, choices: tuple | Callable[[], tuple] | None = None):
    def allowed() -> tuple | None:
        return choices() if callable(choices) else choices

    def check(value):
        if value is None and nullable:
            return None
        options = allowed()
        if not isinstance(value, str) or not value:
            raise _Bad(_one_of(options, nullable) if options else "a non-empty string" + (" or null" if nullable else ""))
        if options and value not in options:
            raise _Bad(_one_of(options, nullable), did_you_mean(value, options))
        return value

    return check


def _one_of(options, nullable=False) -> str:
    return "one of " + ", ".join(map(str, options)) + (" or null" if nullable else "")


def number_list(length=None, lo=None, hi=None, hi_open=False):
    item = number(lo, hi, hi_open=hi_open)
    what = f"a list of {length or 'one or more'} numbers" + (f" in [{lo}, {hi}{')' if hi_open else ']'}" if lo is not None else "")

    def check(value):
        if isinstance(value, tuple):
            value = list(value)
        if not isinstance(value, list) or not value or (length and len(value) != length):
            raise _Bad(what)
        try:
            return [item(v) for v in value]
        except _Bad:
            raise _Bad(what) from None

    return check


def weights_spec(value):
    """class_weights / pos_weight: null, "balanced", one number, or one number per label."""
    if value is None or value == "balanced":
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
        return float(value)
    if isinstance(value, list) and value and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0 for v in value
    ):
        return [float(v) for v in value]
    raise _Bad("null, 'balanced', a positive number or a list of non-negative numbers")


def bucket_rule(value):
    """Length bucketing: true/false, or the chunk size in batches (an int ≥ 1)."""
    if isinstance(value, bool) or (isinstance(value, int) and 1 <= value <= MAX_INT):
        return value
    raise _Bad("true, false or a chunk size in batches ≥ 1")


def chunk_rule(value):
    """Chunked cross-entropy (seq2seq): true/false, or the chunk size in tokens (an int ≥ 1)."""
    if isinstance(value, bool) or (isinstance(value, int) and 1 <= value <= MAX_INT):
        return value
    raise _Bad("true, false or a chunk size in tokens ≥ 1")


def device_name(value):
    if isinstance(value, str) and re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", value):
        return value
    raise _Bad("auto, cpu, mps, cuda or cuda:N")


def str_or_mapping(value):
    """A name or a mapping (backbone config fields; dataset with options)."""
    if isinstance(value, str) and value:
        return value
    if isinstance(value, dict) and value:
        return copy.deepcopy(value)
    raise _Bad("a name or a non-empty mapping")


def unfreeze_list(value):
    what = "a list of {step: int ≥ 0, encoder_layers: int ≥ 0} in increasing step order"
    if not isinstance(value, list):
        raise _Bad(what)
    out, last = [], -1
    step_ok, layers_ok = number(0, integer=True), number(0, integer=True)
    for entry in value:
        if not isinstance(entry, dict) or set(entry) != {"step", "encoder_layers"}:
            raise _Bad(what)
        step, layers = step_ok(entry["step"]), layers_ok(entry["encoder_layers"])
        if step <= last:
            raise _Bad(what)
        last = step
        out.append({"step": step, "encoder_layers": layers})
    return out


# Names live with the code that implements them; looked up when a config is checked.
REGISTRIES = {
    "sampler": ("lexilab.train.samplers", "SAMPLERS"), "weighting": ("lexilab.train.weighting", "WEIGHTINGS"),
    "head": ("lexilab.model.heads", "HEADS"), "pooling": ("lexilab.model.pooling", "POOLINGS"),
    "task kind": ("lexilab.tasks", "TASK_KINDS"), "schedule": ("lexilab.train.optim", "SCHEDULES"),
    "leakage policy": ("lexilab.data.leakage", "POLICIES"),
    "threshold metric": ("lexilab.metrics.thresholds", "TUNING_METRICS"),
    "attention": ("lexilab.model.t5", "ATTENTIONS"),
}


def registry(label: str):
    """The registry (or tuple of names) behind ``label``, e.g. ``registry("sampler")``."""
    module, attribute = REGISTRIES[label]
    return getattr(importlib.import_module(module), attribute)


def names(label: str) -> Callable[[], tuple]:
    return lambda: tuple(registry(label))


# --------------------------------------------------------------------------- schema + defaults
# A dict is a block with fixed keys; a callable is a leaf. The "method" blocks (sampler,
# weighting, head) and the tasks mapping are handled in code below.
_INT0, _INT1 = number(0, integer=True), number(1, integer=True)
_INT1N = number(1, integer=True, nullable=True)

SCHEMA: dict[str, Any] = {
    "seed": number(0, MAX_SEED, integer=True),
    "data_root": string(nullable=True),
    "backbone": {
        "name": str_or_mapping,
        "init": string(choices=("pretrained", "random")),
        "tokenizer": string(nullable=True),
        "dropout": number(0, 1, hi_open=True, nullable=True),
        "attention": string(choices=names("attention")),  # no default entry: configs without it keep their hash
        "freeze": {"embeddings": boolean, "encoder_layers": _INT0, "encoder": boolean, "unfreeze": unfreeze_list},
    },
    "optim": {
        "lr": number(0, lo_open=True), "head_lr": number(0, lo_open=True, nullable=True),
        "weight_decay": number(0), "betas": number_list(2, 0, 1, hi_open=True),
        "eps": number(0, lo_open=True), "warmup_steps": _INT0, "schedule": string(choices=names("schedule")),
        "min_lr_ratio": number(0, 1), "clip_norm": number(0, lo_open=True, nullable=True),
    },
    "train": {
        "epochs": _INT1, "max_steps": _INT1N, "batch_size": _INT1, "eval_batch_size": _INT1,
        "grad_accum": _INT1, "precision": string(choices=("fp32", "bf16", "fp16")), "compile": boolean,
        "deterministic": boolean, "device": device_name,
        "early_stopping": {"patience": number(0, integer=True, nullable=True), "metric": string(),
                           "mode": string(nullable=True, choices=("min", "max"))},
        "checkpoint_every": _INT1N, "eval_every": _INT1N, "log_every": _INT1,
        "leakage": string(choices=names("leakage policy")), "on_nonfinite": string(choices=("fail", "skip")),
        "distributed": {"enabled": boolean, "backend": string(choices=("auto", "gloo", "nccl")),
                        "timeout_s": _INT1},
    },
    "diagnostics": {"grad_cosine_every": _INT0, "include_embeddings": boolean, "batch_size": _INT1N},
    "tracking": {"mlflow": boolean, "tracking_uri": string(nullable=True),
                 "artifact_location": string(nullable=True)},
}
TOP_KEYS = ("seed", "data_root", "backbone", "tasks", "sampler", "weighting", "optim", "train",
            "diagnostics", "tracking")

DEFAULTS: dict[str, Any] = {
    "seed": 0,
    "data_root": None,  # → $LEXILAB_DATA → ../shared/data (from the working directory)
    "backbone": {"init": "pretrained", "tokenizer": None, "dropout": None,
                 "freeze": {"embeddings": False, "encoder_layers": 0, "encoder": False, "unfreeze": []}},
    "optim": {"lr": 3.0e-5, "head_lr": None, "weight_decay": 0.01, "betas": [0.9, 0.999], "eps": 1.0e-8,
              "warmup_steps": 0, "schedule": "cosine", "min_lr_ratio": 0.0, "clip_norm": 1.0},
    "train": {"epochs": 1, "max_steps": None, "batch_size": 8, "eval_batch_size": 32, "grad_accum": 1,
              "precision": "fp32", "compile": False, "deterministic": True, "device": "auto",
              "early_stopping": {"patience": 3, "metric": "val_loss", "mode": None}, "checkpoint_every": 100,
              "eval_every": None, "log_every": 1, "leakage": "warn", "on_nonfinite": "fail",
              "distributed": {"enabled": False, "backend": "auto", "timeout_s": 1800}},
    "diagnostics": {"grad_cosine_every": 0, "include_embeddings": False, "batch_size": None},
    "tracking": {"mlflow": True, "tracking_uri": None, "artifact_location": None},
}
SAMPLER_DEFAULTS = {"kind": "temperature", "steps_per_epoch": "largest"}
WEIGHTING_DEFAULTS = {"kind": "equal"}

TASK_SCHEMA: dict[str, Any] = {
    "kind": string(choices=names("task kind")),
    "data": str_or_mapping,
    "prefix": string(nullable=True),
    "pooling": string(nullable=True),
    "head": "method",
    "weight": number(0),
    "max_length": _INT1,
    "max_target_length": _INT1N,
    "bucket": bucket_rule,
    # no default (absent = no rounding), so configs without it keep their identity hash
    "pad_to_multiple_of": number(1, MAX_PAD_MULTIPLE, integer=True, nullable=True),
    "limit": {split: _INT1N for split in SPLITS},
    "loss": {"label_smoothing": number(0, 1, hi_open=True), "focal_gamma": number(0, nullable=True),
             "class_weights": weights_spec, "pos_weight": weights_spec,
             # no default: unset, the task decides per batch, and existing config hashes stay
             "chunked": chunk_rule},
    "threshold": {"tune": string(choices=("none", "global", "per_class")), "default": number(0, 1, lo_open=True, hi_open=True),
                  "metric": string(nullable=True, choices=names("threshold metric"))},
    "generation": {"num_beams": _INT1, "max_new_tokens": _INT1N, "min_new_tokens": _INT0,
                   "length_penalty": number()},
    "early_stopping_metric": string(nullable=True),
}
TASK_COMMON_DEFAULTS: dict[str, Any] = {
    "prefix": None, "pooling": None, "head": None, "weight": 1.0, "max_length": 512, "max_target_length": None,
    "bucket": False, "limit": {split: None for split in SPLITS},
    "loss": {"label_smoothing": 0.0, "focal_gamma": None, "class_weights": None, "pos_weight": None},
    "threshold": None, "generation": None, "early_stopping_metric": None,
}
TASK_KIND_DEFAULTS: dict[str, dict[str, Any]] = {
    "seq2seq": {"max_target_length": 256,
                "generation": {"num_beams": 4, "max_new_tokens": None, "min_new_tokens": 0, "length_penalty": 1.0}},
    "multiclass": {"pooling": "mean", "head": {"kind": "linear"}},
    "multilabel": {"pooling": "mean", "head": {"kind": "linear"}, "threshold": {"tune": "per_class", "default": 0.5, "metric": None}},
}
# keys (and loss keys) that only some kinds use; setting them on another kind is a problem
KIND_ONLY = {"pooling": ("multiclass", "multilabel"), "head": ("multiclass", "multilabel"),
             "threshold": ("multilabel",), "generation": ("seq2seq",), "max_target_length": ("seq2seq",)}
LOSS_KIND_ONLY = {"label_smoothing": ("seq2seq", "multiclass"), "focal_gamma": ("multiclass", "multilabel"),
                  "class_weights": ("multiclass",),
                  "pos_weight": ("multilabel",), "chunked": ("seq2seq",)}


# --------------------------------------------------------------------------- merge
def deep_merge(base: dict, override: dict) -> dict:
    """A new dict: ``override`` on top of ``base``; mappings merge key by key, all else replaces."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


# --------------------------------------------------------------------------- checking
def _check_block(schema: dict, value: Any, path: str, problems: list[Problem]) -> dict:
    """Validate a fixed-key block (already merged with its defaults); returns it normalised."""
    if not isinstance(value, dict):
        problems.append(Problem(path, f"expected a mapping with keys {', '.join(schema)}, found {_found(value)}"))
        return {}
    out = {}
    for key, item in value.items():
        where = f"{path}.{key}" if path else str(key)
        if key not in schema:
            problems.append(Problem(where, f"unknown key{did_you_mean(key, schema)}; allowed: {', '.join(schema)}"))
            continue
        spec = schema[key]
        if isinstance(spec, dict):
            out[key] = None if item is None and key in ("threshold", "generation") else _check_block(spec, item, where, problems)
        elif spec == "method":
            out[key] = item
        else:
            try:
                out[key] = spec(item)
            except _Bad as bad:
                problems.append(Problem(where, bad.line(item)))
    return {key: out[key] for key in schema if key in out}  # schema order: config.yaml reads the same every time


def method_options(cls: Any) -> tuple[tuple[str, ...] | None, dict[str, Any]]:
    """The option names and defaults of a registered method class (sampler, weighting, ...).

    A class that lists ``options`` is authoritative; otherwise the keyword parameters of its
    constructor are (None when it takes ``**kwargs``: options cannot be checked)."""
    import inspect

    try:
        params = inspect.signature(cls).parameters
    except (TypeError, ValueError):
        return None, {}
    defaults = {n: p.default for n, p in params.items() if p.default is not inspect.Parameter.empty}
    names = getattr(cls, "options", None)
    if names is None:
        if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
            return None, {}
        names = tuple(defaults)
    names = tuple(names)
    return names, {n: copy.deepcopy(v) for n, v in defaults.items() if n in names}


def _check_method(block: Any, path: str, label: str, defaults: dict, common: dict,
                  problems: list[Problem]) -> dict:
    """A ``{kind: NAME, **options}`` block: the kind must be registered, options must be the
    method's own; the method's option defaults are filled in so config.yaml shows them."""
    if block is None:
        block = {}
    if not isinstance(block, dict):
        problems.append(Problem(path, f"expected a mapping {{kind: ..., options}}, found {_found(block)}"))
        return dict(defaults)
    block = {**defaults, **block}
    kind = block.get("kind")
    known = registry(label)
    if not isinstance(kind, str):
        problems.append(Problem(f"{path}.kind", f"expected a {label} name, found {_found(kind)}"
                                f"; known: {', '.join(sorted(known))}"))
        return block
    out = {"kind": kind}
    for key, check in common.items():
        try:
            out[key] = check(block[key])
        except _Bad as bad:
            problems.append(Problem(f"{path}.{key}", bad.line(block[key])))
    if kind not in known:
        problems.append(Problem(f"{path}.kind", f"unknown {label} {kind!r}{did_you_mean(kind, known)}; "
                                f"known: {', '.join(sorted(known))}"))
        return block
    names, option_defaults = method_options(known[kind])
    given = {k: v for k, v in block.items() if k != "kind" and k not in common}
    if names is not None:
        for key in given:
            if key not in names:
                problems.append(Problem(f"{path}.{key}", f"not an option of {label} {kind!r}"
                                        f"{did_you_mean(key, names)}; its options: {', '.join(names) or 'none'}"))
    for key, value in given.items():  # the method checks its options' meaning; sizes are bounded here
        if not _bounded(value):
            problems.append(Problem(f"{path}.{key}", f"expected finite numbers (integers within ±{MAX_INT}), "
                                    f"found {_found(value)}"))
    out.update({**option_defaults, **given})
    return out


def _bounded(value) -> bool:
    """Whether every number in ``value`` (a method option: number, list or mapping) is finite,
    and every integer within ±MAX_INT."""
    if isinstance(value, bool):
        return True
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, int):
        return abs(value) <= MAX_INT
    if isinstance(value, (list, tuple)):
        return all(_bounded(v) for v in value)
    if isinstance(value, dict):
        return all(_bounded(v) for v in value.values())
    return True


def _steps_rule(value):
    if value in ("largest", "sum"):
        return value
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_INT:
        return value
    raise _Bad(f"largest, sum or an integer from 1 to {MAX_INT}")


def _check_task(name: str, raw: Any, problems: list[Problem]) -> dict | None:
    path = f"tasks.{name}"
    if not isinstance(raw, dict):
        problems.append(Problem(path, f"expected a task mapping (kind, data, ...), found {_found(raw)}"))
        return None
    kind = raw.get("kind")
    if "kind" not in raw or "data" not in raw:
        missing = [k for k in ("kind", "data") if k not in raw]
        problems.append(Problem(path, f"missing {' and '.join(missing)} (every task needs kind and data)"))
        return None
    try:
        kind = TASK_SCHEMA["kind"](kind)
    except _Bad as bad:
        problems.append(Problem(f"{path}.kind", bad.line(kind)))
        return None
    for key, kinds in KIND_ONLY.items():
        if raw.get(key) is not None and kind not in kinds:
            problems.append(Problem(f"{path}.{key}", f"{key} is for {' and '.join(kinds)} tasks only; "
                                    f"task {name!r} is {kind} (remove the key)"))
    loss = raw.get("loss") if isinstance(raw.get("loss"), dict) else {}
    for key, kinds in LOSS_KIND_ONLY.items():
        if loss.get(key) not in (None, 0) and kind not in kinds:
            problems.append(Problem(f"{path}.loss.{key}", f"{key} is for {' and '.join(kinds)} tasks only; "
                                    f"task {name!r} is {kind} (remove the key)"))
    defaults = deep_merge(TASK_COMMON_DEFAULTS, TASK_KIND_DEFAULTS[kind])
    relevant = {k: v for k, v in raw.items() if not (k in KIND_ONLY and kind not in KIND_ONLY[k])}
    merged = deep_merge(defaults, {k: v for k, v in relevant.items() if k != "head"})
    if "head" in relevant:  # a head mapping replaces the default head (its kind decides its options)
        merged["head"] = relevant["head"]
    task = _check_block(TASK_SCHEMA, merged, path, problems)
    if kind in KIND_ONLY["head"]:
        task["head"] = _check_method(task.get("head"), f"{path}.head", "head", {"kind": "linear"}, {}, problems)
    return task


def check_config(raw: Any, base_dir: str | os.PathLike | None = None) -> tuple[dict, list[Problem]]:
    """Resolve one run's config (defaults, normalised values, method option defaults) and
    collect every problem. Relative ``data_root`` and local backbone paths resolve against
    ``base_dir`` (the spec's folder)."""
    from lexilab.config_checks import cross_checks

    problems: list[Problem] = []
    if not isinstance(raw, dict):
        return {}, [Problem("", f"expected a mapping (the run config), found {_found(raw)}")]
    for key in raw:
        if key not in TOP_KEYS:
            problems.append(Problem(str(key), f"unknown key{did_you_mean(key, TOP_KEYS)}; allowed: {', '.join(TOP_KEYS)}"))
    fixed = {k: v for k, v in raw.items() if k in SCHEMA}
    for key, value in fixed.items():
        if isinstance(SCHEMA[key], dict) and not isinstance(value, dict):
            problems.append(Problem(key, f"expected a mapping with keys {', '.join(SCHEMA[key])}, found {_found(value)}"))
    fixed = {k: v for k, v in fixed.items() if not isinstance(SCHEMA[k], dict) or isinstance(v, dict)}
    if not isinstance((fixed.get("backbone") or {}).get("name"), (str, dict)):
        problems.append(Problem("backbone.name", "missing: a hub id, a local directory, or a mapping of T5 config fields"
                                if "name" not in (fixed.get("backbone") or {}) else
                                f"expected a hub id, a local directory or a mapping of T5 config fields, "
                                f"found {_found(fixed['backbone']['name'])}"))
    config = _check_block(SCHEMA, deep_merge(DEFAULTS, fixed), "", problems)
    tasks = raw.get("tasks")
    config["tasks"] = {}
    if not isinstance(tasks, dict) or not tasks:
        problems.append(Problem("tasks", f"expected a non-empty mapping task name → task block, found {_found(tasks)}"))
    else:
        for name, block in tasks.items():
            if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]*", name):
                problems.append(Problem(f"tasks.{name}", "a task name is letters, digits, _ and - "
                                        "(it names files and metrics)"))
                continue
            task = _check_task(name, block, problems)
            if task is not None:
                config["tasks"][name] = task
    config["sampler"] = _check_method(raw.get("sampler"), "sampler", "sampler", SAMPLER_DEFAULTS,
                                      {"steps_per_epoch": _steps_rule}, problems)
    config["weighting"] = _check_method(raw.get("weighting"), "weighting", "weighting", WEIGHTING_DEFAULTS, {}, problems)
    config = {key: config[key] for key in TOP_KEYS if key in config}
    _resolve_paths(config, base_dir)
    problems.extend(cross_checks(config))
    return config, problems


def _resolve_paths(config: dict, base_dir: str | os.PathLike | None) -> None:
    base = Path(base_dir) if base_dir is not None else Path.cwd()
    if config.get("data_root"):
        config["data_root"] = str((base / Path(config["data_root"]).expanduser()).resolve())
    elif "data_root" in config:  # fixed now, so a job's working directory does not matter
        config["data_root"] = str(effective_data_root(config))
    backbone = config.get("backbone") or {}
    for key in ("name", "tokenizer"):
        value = backbone.get(key)
        if isinstance(value, str) and is_local_path(value, base):
            backbone[key] = str((base / Path(value).expanduser()).resolve())


def is_local_path(value: str, base: Path) -> bool:
    """``./x``, ``../x``, ``/x``, ``~/x`` or an existing folder are paths; else a hub id.
    (``data:NAME`` means a folder under the data root; the runner resolves it.)"""
    if value.startswith(("./", "../", "/", "~")):
        return True
    return not value.startswith("data:") and (base / value).is_dir()


def effective_data_root(config: dict) -> Path:
    """Where the data is read from: data_root, else $LEXILAB_DATA, else ../shared/data."""
    root = config.get("data_root") or os.environ.get("LEXILAB_DATA") or "../shared/data"
    return Path(root).expanduser().resolve()


# --------------------------------------------------------------------------- identity
HASH_EXCLUDED = ("data_root", "tracking")  # where data / the MLflow mirror live is not what a run is


def identity_hash(config: dict) -> str:
    """The run's identity: the config hash of the resolved config without machine-local keys
    (``data_root``, ``tracking``). Stable across key order and processes — except the order of
    ``tasks``, which is part of what a run does (round-robin order, head initialisation order)."""
    identity = {k: v for k, v in config.items() if k not in HASH_EXCLUDED}
    identity["task_order"] = list(config.get("tasks") or {})
    return _sha(identity)
