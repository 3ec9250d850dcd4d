"""Training-step throughput of lexilab's T5 against transformers' T5ForConditionalGeneration.

FLAN-T5-base dimensions (tiny ones under --tiny), random T5-initialised weights saved once by lexilab
and loaded bit-identically by transformers; the logits are checked to agree before anything is timed.
One step = forward, cross-entropy over the vocabulary, backward, AdamW (fused where available), on
a batch of 32 x source 512 (a quarter of the positions padding) x target 128, under bf16 autocast on
a GPU (float32 on CPU). Variants, each timed in this run:

- reference eager / reference sdpa: transformers with ``attn_implementation`` eager / sdpa;
- lexilab eager / lexilab compiled (``torch.compile``; off on CPU unless --compile on);
- lexilab compiled flex: ``attention: flex`` (FlexAttention with the bucketed position bias in a
  score_mod; CUDA only, as FlexAttention has no backward on CPU; like every flex run it has no
  dropout on the attention probabilities);
- through lexilab's real ``Trainer``: an MTL mix (seq2seq SciTLDR + multilabel GoEmotions +
  multiclass AG News under temperature sampling, real data from the data root) against a
  hand-written transformers loop (sdpa) over the very same batches.

Every figure is also given as a ratio against the reference (eager for the step, the hand-written
loop for the mix). MFU = model matmul FLOPs (bench_common.t5_train_flops) / step time / the matmul
peak measured on this device in this run. On CUDA an attention-only section follows
(benchmarks/attention_bias.py: the bias gradient, sdpa float bias vs flex vs flash; --no-attention
skips it). Output: a Markdown section on stdout (and --out FILE).

    python benchmarks/train_step.py                       # a CUDA GPU, FLAN-T5-base dims
    python benchmarks/train_step.py --device cpu --tiny   # seconds, the CI smoke mode
"""
from __future__ import annotations

import argparse
import copy
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
import attention_bias  # noqa: E402
from bench_common import (emit, markdown_table, measured_matmul_peak, paired_models,  # noqa: E402
                          peak_gib, reset_peak, resolve_device, section_head, sync, t5_dims, t5_train_flops, timed)

REPO = Path(__file__).resolve().parents[1]


def synthetic_batch(vocab: int, batch: int, source: int, target: int, device: torch.device, seed: int = 0):
    """Random ids; row lengths spread evenly over [source/2, source] so a quarter of the positions are
    padding; full-length targets."""
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(2, vocab, (batch, source), generator=gen)
    lengths = torch.linspace(source // 2, source, batch).round().long()
    mask = (torch.arange(source)[None, :] < lengths[:, None]).long()
    labels = torch.randint(2, vocab, (batch, target), generator=gen)
    return {"input_ids": ids.masked_fill(mask == 0, 0).to(device), "attention_mask": mask.to(device),
            "labels": labels.to(device)}


def adamw(params, device: torch.device, lr: float = 1e-4) -> torch.optim.AdamW:
    return torch.optim.AdamW(params, lr=lr, fused=device.type == "cuda")


def autocast(device: torch.device, dtype: torch.dtype):
    return torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32)


def check_logits(ours, reference, device: torch.device, vocab: int) -> float:
    """Largest logit difference / largest logit, float32, eval mode; exits when above 1e-4."""
    batch = synthetic_batch(vocab, 2, 64, 16, device, seed=1)
    with torch.no_grad():
        a = ours(batch["input_ids"], batch["attention_mask"], labels=batch["labels"])
        b = reference(**batch).logits
    rel = ((a - b).abs().max() / b.abs().max()).item()
    if not rel < 1e-4:
        raise SystemExit(f"logits disagree with transformers: relative difference {rel:.2e} > 1e-4")
    return rel


def step_fn(model, is_reference: bool, batch: dict, device: torch.device, dtype: torch.dtype):
    optimizer = adamw(model.parameters(), device)

    def step():
        with autocast(device, dtype):
            if is_reference:
                loss = model(**batch).loss
            else:
                logits = model(batch["input_ids"], batch["attention_mask"], labels=batch["labels"])
                loss = F.cross_entropy(logits.float().flatten(0, 1), batch["labels"].flatten(), ignore_index=-100)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def micro_benchmark(args, device, dtype, cfg, folder, peak) -> tuple[list[list], float]:
    ours, reference = paired_models(cfg, folder)
    rel = check_logits(ours.to(device), reference("eager").to(device), device, cfg["vocab_size"])
    ours = ours.cpu()
    batch = synthetic_batch(cfg["vocab_size"], args.batch, args.source, args.target, device)
    real_tokens = int(batch["attention_mask"].sum()) + batch["labels"].numel()
    flops = t5_train_flops(cfg, args.batch, args.source, args.target)
    compile_on = compile_enabled(args, device)
    variants = [("reference eager", lambda: reference("eager"), True),
                ("reference sdpa", lambda: reference("sdpa"), True),
                ("lexilab eager", lambda: copy.deepcopy(ours), False)]
    flex_on = compile_on and device.type == "cuda"
    if compile_on:
        variants.append(("lexilab compiled", lambda: torch.compile(copy.deepcopy(ours).to(device)), False))
    if flex_on:
        check_logits(with_flex(ours).to(device), reference("eager").to(device), device, cfg["vocab_size"])
        variants.append(("lexilab compiled flex", lambda: torch.compile(with_flex(ours).to(device)), False))
    rows, base = [], None
    for name, build, is_reference in variants:
        model = build().to(device).train()
        reset_peak(device)
        seconds = timed(step_fn(model, is_reference, batch, device, dtype), device, args.warmup, args.steps)
        memory = peak_gib(device)
        del model
        base = base or seconds
        rows.append([name, seconds * 1e3, args.batch / seconds, real_tokens / seconds, memory,
                     100 * flops / seconds / peak, base / seconds])
    if not compile_on:
        rows.append(["lexilab compiled", None, None, None, None, None, "not run (CPU: --compile on)"])
    if not flex_on:
        why = attention_bias.NOT_RUN if device.type != "cuda" else "not run (--compile off)"
        rows.append(["lexilab compiled flex", None, None, None, None, None, why])
    return rows, rel


def with_flex(model):
    """A copy of ``model`` on the FlexAttention path (T5Config.attention, read at every forward)."""
    flex = copy.deepcopy(model)
    flex.config.attention = "flex"
    return flex


# ---------------------------------------------------------------- the Trainer's MTL mix
def mix_warmup(args, device) -> int:
    """Warm-up steps of the mix: compiled, each task's graph (encoder only, or the whole T5) and its
    first shapes compile on first sight, so every task must have been seen before timing starts."""
    return max(args.warmup, 12) if compile_enabled(args, device) else args.warmup


def compile_enabled(args, device) -> bool:
    return args.compile == "on" or (args.compile == "auto" and device.type == "cuda")


def mix_config(args, device, dtype, cfg) -> dict:
    limit = {"val": args.batch}  # the end-of-fit validation pass stays short
    length = {"max_length": args.source}
    return {
        "seed": 0, "data_root": str(args.data),
        "backbone": {"name": {**cfg, "dropout_rate": 0.0}, "init": "random", "tokenizer": "data:flan_t5_tokenizer"},
        "tasks": {
            "summary": {"kind": "seq2seq", "data": "scitldr", **length, "max_target_length": args.target,
                        "limit": limit},
            "emotion": {"kind": "multilabel", "data": "goemotions", **length, "pooling": "mean", "limit": limit},
            "topic": {"kind": "multiclass", "data": "ag_news", **length, "pooling": "mean", "limit": limit},
        },
        "sampler": {"kind": "temperature", "alpha": 0.5},
        "optim": {"lr": 1e-4, "warmup_steps": 0, "weight_decay": 0.0},
        "train": {"epochs": 1, "max_steps": mix_warmup(args, device) + args.steps, "batch_size": args.batch,
                  "eval_batch_size": args.batch, "device": device.type,
                  "precision": "bf16" if dtype == torch.bfloat16 else "fp32", "checkpoint_every": None,
                  "compile": compile_enabled(args, device),
                  "deterministic": False},
        "tracking": {"mlflow": False},
    }


def draw_batches(trainer, count: int) -> list[tuple[str, dict]]:
    """The (task, collated batch) sequence the trainer's sampler and streams will produce; their state
    is restored afterwards, so fit() then trains on exactly these batches."""
    sampler_state = trainer.sampler.state_dict()
    stream_states = {n: copy.deepcopy(s.state_dict()) for n, s in trainer.streams.items()}
    drawn = []
    for _ in range(count):
        name = trainer.sampler.next()
        drawn.append((name, trainer.tasks[name].collate(trainer.streams[name].next())))
    trainer.sampler.load_state_dict(sampler_state)
    for name, stream in trainer.streams.items():
        stream.load_state_dict(stream_states[name])
    return drawn


def hand_written_loop(tasks, drawn, device, dtype, folder) -> list[float]:
    """transformers (sdpa, from the trainer's initial weights in ``folder``) + mean pooling + linear
    heads, AdamW, the same batches: seconds per step."""
    from transformers import T5ForConditionalGeneration

    model = T5ForConditionalGeneration.from_pretrained(folder, attn_implementation="sdpa").to(device).train()
    heads = torch.nn.ModuleDict({name: torch.nn.Linear(model.config.d_model, len(task.label_names))
                                 for name, task in tasks.items() if task.kind != "seq2seq"}).to(device)
    optimizer = adamw([*model.parameters(), *heads.parameters()], device)
    times = []
    for name, batch in drawn:
        start = time.perf_counter()
        t = {k: v.to(device, non_blocking=True) for k, v in batch.items() if isinstance(v, torch.Tensor)}
        with autocast(device, dtype):
            if name not in heads:
                loss = model(input_ids=t["input_ids"], attention_mask=t["attention_mask"], labels=t["labels"]).loss
            else:
                states = model.encoder(input_ids=t["input_ids"], attention_mask=t["attention_mask"]).last_hidden_state
                keep = t["attention_mask"].unsqueeze(-1).to(states.dtype)
                logits = heads[name]((states * keep).sum(1) / keep.sum(1).clamp(min=1)).float()
                loss = F.cross_entropy(logits, t["label_ids"]) if "label_ids" in t else \
                    F.binary_cross_entropy_with_logits(logits, t["label_matrix"].float())
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        loss.item()  # the trainer reads every loss too
        sync(device)
        times.append(time.perf_counter() - start)
    return times


def trainer_mix(args, device, dtype, cfg, folder) -> list[list]:
    from lexilab.train.trainer import Trainer

    config = mix_config(args, device, dtype, cfg)
    trainer = Trainer(config, Path(folder) / "run", progress=False)
    warm = mix_warmup(args, device)
    drawn = draw_batches(trainer, warm + args.steps)
    initial = str(Path(folder) / "initial")
    trainer.backbone.save_pretrained(initial)  # the hand-written loop starts from the same weights
    tasks = trainer.tasks
    stamps = [time.perf_counter()]

    def on_step(_):
        sync(device)
        stamps.append(time.perf_counter())

    reset_peak(device)
    trainer.fit(on_step=on_step)
    trainer_memory = peak_gib(device)
    ours = [b - a for a, b in zip(stamps, stamps[1:])][warm:warm + args.steps]
    del trainer
    reset_peak(device)
    theirs = hand_written_loop(tasks, drawn, device, dtype, initial)[warm:]
    hand_memory = peak_gib(device)
    examples = sum(len(b["ids"]) for _, b in drawn[warm:]) / args.steps
    tokens = sum(int(b["attention_mask"].sum()) + int((b.get("labels", torch.zeros(0)) != -100).sum())
                 for _, b in drawn[warm:]) / args.steps
    rows = []
    for name, times, memory in (("transformers hand-written loop", theirs, hand_memory),
                                ("lexilab Trainer", ours, trainer_memory)):
        seconds = sum(times) / len(times)
        rows.append([name, seconds * 1e3, examples / seconds, tokens / seconds, memory, None,
                     (sum(theirs) / len(theirs)) / seconds])
    return rows


def main(argv=None) -> str:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--tiny", action="store_true", help="tiny dimensions and batch (CPU smoke test)")
    ap.add_argument("--batch", type=int, default=None)
    ap.add_argument("--source", type=int, default=None)
    ap.add_argument("--target", type=int, default=None)
    ap.add_argument("--warmup", type=int, default=None)
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--compile", choices=["auto", "on", "off"], default="auto")
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data", help="data root (real datasets)")
    ap.add_argument("--no-mix", action="store_true", help="skip the Trainer MTL mix")
    ap.add_argument("--no-attention", action="store_true", help="skip the attention-only bias-gradient section")
    ap.add_argument("--out", type=Path, default=None, help="also write the Markdown section here")
    args = ap.parse_args(argv)
    device = resolve_device(args.device)
    tiny_defaults = dict(batch=4, source=64, target=16, warmup=1, steps=2)
    full_defaults = dict(batch=32, source=512, target=128, warmup=3, steps=10)
    for key, value in (tiny_defaults if args.tiny else full_defaults).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    cfg = t5_dims(args.tiny)
    torch.manual_seed(0)
    peak = measured_matmul_peak(device, dtype)
    header = ["variant", "ms/step", "examples/s", "tokens/s", "peak GiB", "MFU %", "× reference"]
    with tempfile.TemporaryDirectory() as folder:
        rows, rel = micro_benchmark(args, device, dtype, cfg, folder, peak)
        mix = None if args.no_mix else trainer_mix(args, device, dtype, cfg, str(Path(folder) / "mix"))
    dims = ("tiny" if args.tiny else "FLAN-T5-base") + f" ({cfg['num_layers']}+{cfg['num_layers']} layers, " \
        f"d_model {cfg['d_model']}, vocab {cfg['vocab_size']})"
    text = "\n".join([
        *section_head("Training step", "train_step.py", argv, device),
        f"{dims}; batch {args.batch} × source {args.source} (a quarter padding) × target {args.target}; "
        f"{str(dtype).removeprefix('torch.')}; AdamW{' fused' if device.type == 'cuda' else ''}; "
        f"{args.warmup} warm-up + {args.steps} timed steps. Logits agree with transformers to "
        f"{rel:.1e} (relative, float32). Measured matmul peak {peak / 1e12:.3g} TFLOP/s "
        f"({str(dtype).removeprefix('torch.')}). Tokens = non-padding source + target tokens. The flex "
        f"variant has no dropout on the attention probabilities (FlexAttention has none).", "",
        markdown_table(header, rows), ""])
    if mix is not None:
        text += "\n".join([
            "", "MTL mix through lexilab's Trainer (SciTLDR seq2seq + GoEmotions multilabel + AG News "
            "multiclass, temperature sampling α 0.5, real data, padded per batch) vs a hand-written "
            "transformers loop over the same batches:", "", markdown_table(header, mix), ""])
    if not args.no_attention:
        attention_args = argparse.Namespace(device=str(device), tiny=args.tiny, warmup=5, steps=20)
        text += "\n" + attention_bias.section(attention_args, level="###")
    return emit(text, args.out)


if __name__ == "__main__":
    main()
