"""Shared pieces of the GPU-suite benchmarks: model dimensions, identical lexilab/transformers pairs,
timing with device synchronisation, the measured matmul peak, model FLOPs, Markdown tables."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import torch

# FLAN-T5-base (google/flan-t5-base config.json); dropout as in fine-tuning
FLAN_T5_BASE = {"vocab_size": 32128, "d_model": 768, "d_kv": 64, "d_ff": 2048, "num_layers": 12,
                "num_heads": 12, "feed_forward_proj": "gated-gelu", "tie_word_embeddings": False,
                "dropout_rate": 0.1}
TINY = {"vocab_size": 32128, "d_model": 64, "d_kv": 16, "d_ff": 128, "num_layers": 2, "num_heads": 4,
        "feed_forward_proj": "gated-gelu", "tie_word_embeddings": False, "dropout_rate": 0.1}


def t5_dims(tiny: bool) -> dict:
    return dict(TINY if tiny else FLAN_T5_BASE)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit(f"--device {name}: torch {torch.__version__} sees no CUDA device")
    return torch.device(name)


def paired_models(config: dict, folder: str, seed: int = 0):
    """lexilab's T5 with T5 initialisation, saved into ``folder``, and a loader of transformers'
    T5ForConditionalGeneration from that folder (the same weights, bit for bit), in eval mode on CPU."""
    from transformers import T5ForConditionalGeneration
    from transformers.utils import logging

    from lexilab.model import load_backbone

    logging.set_verbosity_error()  # its "not tying a distinct lm_head" warning is the intended layout
    logging.disable_progress_bar()
    ours = load_backbone(dict(config), init="random", seed=seed)
    ours.save_pretrained(folder)

    def reference(attn_implementation: str = "eager"):
        return T5ForConditionalGeneration.from_pretrained(folder, attn_implementation=attn_implementation).eval()

    return ours.eval(), reference


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(step: Callable[[], object], device: torch.device, warmup: int, repeats: int) -> float:
    """Mean seconds per call after ``warmup`` calls (compilation and allocator warm-up excluded)."""
    for _ in range(warmup):
        step()
    sync(device)
    start = time.perf_counter()
    for _ in range(repeats):
        step()
    sync(device)
    return (time.perf_counter() - start) / repeats


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def peak_gib(device: torch.device) -> float | None:
    """Peak allocated memory since the last reset (CUDA only; None on CPU)."""
    return torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None


def measured_matmul_peak(device: torch.device, dtype: torch.dtype) -> float:
    """FLOP/s of the best of a few square matmuls in ``dtype``: the MFU denominator measured on this
    device in this run (not a datasheet figure)."""
    n = 8192 if device.type == "cuda" else 1024
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    best = float("inf")
    for _ in range(3):
        best = min(best, timed(lambda: a @ b, device, warmup=1, repeats=5 if device.type == "cuda" else 2))
    return 2 * n**3 / best


def t5_train_flops(cfg: dict, batch: int, source: int, target: int) -> float:
    """Matmul FLOPs of one training step (forward + backward = 3 x forward) over every position,
    padding included (the dense kernels compute it): linear layers, attention scores and values,
    and the output projection."""
    d, inner, d_ff, heads, d_kv = cfg["d_model"], cfg["num_heads"] * cfg["d_kv"], cfg["d_ff"], cfg["num_heads"], \
        cfg["d_kv"]
    ff = (3 if cfg["feed_forward_proj"].startswith("gated") else 2) * d * d_ff
    enc_tokens, dec_tokens = batch * source, batch * target
    encoder = cfg["num_layers"] * (enc_tokens * (4 * d * inner + ff) + 2 * 2 * batch * heads * source**2 * d_kv)
    decoder_layers = cfg.get("num_decoder_layers") or cfg["num_layers"]
    decoder = decoder_layers * (dec_tokens * (4 * d * inner + 2 * d * inner + ff) + enc_tokens * 2 * d * inner
                                + 2 * 2 * batch * heads * (target**2 + target * source) * d_kv)
    head = dec_tokens * d * cfg["vocab_size"]
    return 3 * 2 * (encoder + decoder + head)


def markdown_table(header: list[str], rows: list[list[object]]) -> str:
    def cell(value: object) -> str:
        if value is None:
            return "—"
        if isinstance(value, float):
            return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"
        return str(value)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def section_head(title: str, script: str, argv: list[str] | None, device: torch.device) -> list[str]:
    """The first lines of a benchmark's Markdown section: heading, the command that made it, the
    environment line (``argv`` None: this process's arguments)."""
    import sys

    command = f"python benchmarks/{script} " + " ".join(argv if argv is not None else sys.argv[1:])
    return [f"### {title} ({device.type})", "", f"`{command.strip()}`", "", environment_line(device), ""]


def environment_line(device: torch.device) -> str:
    """Device, driver and versions in one line (the header of every benchmark's output)."""
    import platform

    import transformers

    parts = [f"torch {torch.__version__}", f"transformers {transformers.__version__}",
             f"python {platform.python_version()}"]
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        parts = [f"{props.name} ({props.total_memory / 2**30:.0f} GiB)", f"CUDA {torch.version.cuda}"] + parts
        try:
            import subprocess

            driver = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                    capture_output=True, text=True, timeout=30).stdout.strip().splitlines()
            if driver:
                parts.insert(1, f"driver {driver[0]}")
        except (OSError, subprocess.SubprocessError):
            pass
    else:
        parts = [f"CPU {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"] + parts
    return " · ".join(parts)


def emit(text: str, out: Path | None) -> str:
    """Print a benchmark's Markdown section and, with ``out``, also write it there."""
    print(text)
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
    return text
