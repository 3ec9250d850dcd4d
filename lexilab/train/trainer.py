"""Train and evaluate one run (one arm, one seed) into a run directory.

The same function serves a single-task baseline and every multi-task arm: the only things
that differ between arms are the values in the config. One optimizer step is a window of
``grad_accum`` micro-batches; a micro-batch is one task's batch chosen by the sampler, or one
batch of every task when the weighting method aggregates per-task gradients.
"""
from __future__ import annotations

import contextlib
import math
import os
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

from lexilab.errors import LexilabError
from lexilab.io import append_jsonl, atomic_write_json, read_jsonl, write_jsonl
from lexilab.train import distributed
from lexilab.train.assembly import Assembly, assemble
from lexilab.train.evaluation import (BEST_DIR, WEIGHTS_FILE, EarlyStopping, evaluate_losses, finalize,
                                      save_best_weights)
from lexilab.train.freezing import apply_freezing
from lexilab.train.optim import build_optimizer, build_scheduler, param_groups
from lexilab.train.state import load_state, rng_state, save_state, seed_everything
from lexilab.train.streams import TaskStream

HISTORY_FILE = "history.jsonl"
GRADCOS_FILE = "gradcos.jsonl"


class NonFiniteLoss(RuntimeError):
    """A NaN/inf loss ended the run (policy ``fail``)."""


def _autocast(device: torch.device, precision: str):
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    if precision == "fp16":
        return torch.autocast(device_type=device.type, dtype=torch.float16)
    return contextlib.nullcontext()


def _truncate_jsonl(path: Path, last_step: int) -> None:
    """On resume, drop records written after the checkpoint (they will be written again)."""
    if path.exists():
        write_jsonl(path, [r for r in read_jsonl(path) if r.get("step", -1) <= last_step])


class Trainer:
    def __init__(self, config: dict, run_dir: str | Path, progress: bool = True):
        from lexilab.config import check_config

        # every entry point trains the resolved config: defaults filled in, problems refused
        config, problems = check_config(config)
        if problems:
            raise LexilabError(f"{Path(run_dir) / 'config.yaml'}: invalid run config: "
                               + "; ".join(p.line() for p in problems))
        self.config = config
        self.run_dir = Path(run_dir)
        # a data-parallel run's process group (set up by the runner), else a world of one
        self.dist = distributed.current()
        if self.dist.enabled and not distributed.distributed_config(config)["enabled"]:
            raise LexilabError(f"{self.run_dir / 'config.yaml'}: train.distributed.enabled is false, but this "
                               f"process is rank {self.dist.rank} of {self.dist.world_size}; enable it or start one process")
        self.progress = progress and self.dist.is_main
        train = config["train"]
        self.train_cfg = train
        if train.get("deterministic", True) and str(train.get("device", "auto")) != "cpu" \
                and torch.cuda.is_available():
            # CUDA has nondeterministic kernels; the CPU kernels used here are deterministic
            # already (tests/train/test_resume.py), and this call costs seconds of imports
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.use_deterministic_algorithms(True, warn_only=True)
            torch.backends.cudnn.benchmark = False
        seed_everything(int(config["seed"]))
        self.parts: Assembly = assemble(config)
        self.device = self.parts.device
        self.model = self.parts.model
        self.tasks = self.parts.tasks
        self.backbone = self.model.backbone
        if self.dist.enabled:
            # the same initial weights on every rank, then each rank its own dropout stream
            self.dist.broadcast_tensors_(list(self.model.state_dict().values()))
            if self.dist.rank:
                seed_everything(int(config["seed"]) + 1_000_003 * self.dist.rank)
        if train.get("compile"):
            # Gradient methods take one backward per task through the same graph
            # (retain_graph=True), which AOTAutograd's donated buffers forbid.
            import torch._functorch.config as functorch_config
            functorch_config.donated_buffer = False
            for module in [self.backbone, *self.model.task_modules.values()]:
                module.compile(dynamic=True)
        self._build_methods()

    # ------------------------------------------------------------------ set-up
    def _build_methods(self) -> None:
        from lexilab.train.samplers import build_sampler, steps_per_epoch
        from lexilab.train.weighting import build_weighting

        cfg, train = self.config, self.train_cfg
        seed = int(cfg["seed"])
        sizes = {name: len(task.dataset.splits["train"]) for name, task in self.tasks.items()}
        # the encoder (with embeddings): what every task's gradient passes through
        self.shared_groups = self.backbone.shared_parameter_groups()
        weighting_cfg = dict(cfg.get("weighting") or {"kind": "equal"})
        if weighting_cfg.get("kind") == "fixed":
            weighting_cfg.setdefault("weights", {n: float(t.get("weight", 1.0)) for n, t in cfg["tasks"].items()})
        self.weighting = build_weighting(weighting_cfg, list(self.tasks), self.shared_groups, seed=seed)
        self.weighting.attach(self.backbone)  # weighting.engine: gramian hooks the backbone's modules
        for param in self.weighting.parameters():
            param.data = param.data.to(self.device)
        if self.dist.enabled:
            self.weighting.reduce_mean = self.dist.mean_
        # one micro-batch is one global batch of W·b examples; each rank trains on its shard
        global_batch = int(train["batch_size"]) * self.dist.world_size
        # a micro-batch holds every task's batch when the method aggregates per-task gradients;
        # "largest" then still means one pass over the largest task
        tasks_per_step = len(self.tasks) if self.weighting.needs_all_tasks else 1
        self.micro_per_epoch = steps_per_epoch(cfg["sampler"].get("steps_per_epoch", "largest"), sizes,
                                               global_batch, tasks_per_step=tasks_per_step)
        accum = int(train.get("grad_accum", 1))
        self.windows_per_epoch = math.ceil(self.micro_per_epoch / accum)
        self.total_steps = self.windows_per_epoch * int(train["epochs"])
        if train.get("max_steps"):
            self.total_steps = min(self.total_steps, int(train["max_steps"]))
        # the sampler draws once per micro-batch: its horizon is the run's micro-batch count,
        # max_steps included, so annealing reaches alpha_end at the last step
        self.sampler = build_sampler(cfg["sampler"], sizes, seed=seed, total_steps=self._total_micro_batches(accum))
        self.streams = {name: TaskStream(task, global_batch, seed * 1000 + index + 1)
                        for index, (name, task) in enumerate(self.tasks.items())}
        groups = param_groups(self.backbone, self.model.task_modules, self.weighting.parameters(), cfg["optim"])
        self.optimizer = build_optimizer(groups, cfg["optim"])
        self.scheduler = build_scheduler(self.optimizer, cfg["optim"], self.total_steps)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=train.get("precision") == "fp16"
                                           and self.device.type == "cuda")
        self.early = EarlyStopping(train.get("early_stopping") or {})
        diag = cfg.get("diagnostics") or {}
        self.diag_every = int(diag.get("grad_cosine_every") or 0)
        self.diag_generator = torch.Generator().manual_seed(seed * 1000 + 999)
        self.step = 0
        self.epoch = 0
        self.window_in_epoch = 0
        self.nonfinite_skipped = 0
        self.last_eval_step = 0
        self.on_evaluate = None  # hook(trainer, val record) after each evaluation (a sweep's pruner)
        # per-task [sum, count] of training losses in the current epoch (DWA uses their means)
        self.epoch_losses: dict[str, list[float]] = {}
        # per-task [examples, optimizer updates] so far: the compute budget each task received,
        # logged cumulatively so the report can compare arms whatever log_every is
        self.task_budget: dict[str, list[int]] = {name: [0, 0] for name in self.tasks}

    def _total_micro_batches(self, accum: int) -> int:
        """Micro-batches of the whole run: full epochs plus the windows of a partial one."""
        epochs, windows = divmod(self.total_steps, self.windows_per_epoch)
        return epochs * self.micro_per_epoch + min(windows * accum, self.micro_per_epoch)

    # ------------------------------------------------------------------ state
    def state(self) -> dict:
        return {
            "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(), "scaler": self.scaler.state_dict(),
            "sampler": self.sampler.state_dict(), "weighting": self.weighting.state_dict(),
            "streams": {n: s.state_dict() for n, s in self.streams.items()},
            "diag_generator": self.diag_generator.get_state(), "early": self.early.state_dict(),
            "step": self.step, "epoch": self.epoch, "window_in_epoch": self.window_in_epoch,
            "nonfinite_skipped": self.nonfinite_skipped, "last_eval_step": self.last_eval_step,
            "epoch_losses": self.epoch_losses, "task_budget": self.task_budget,
            "world_size": self.dist.world_size,
        }

    def save_checkpoint(self) -> None:
        """Rank 0 writes the state; every rank's RNG (dropout) goes into it."""
        ranks_rng = self.dist.all_gather_object(rng_state()) if self.dist.enabled else None
        if self.dist.is_main:
            state = self.state()
            if ranks_rng is not None:
                state["ranks_rng"] = ranks_rng
            save_state(self.run_dir / "checkpoints" / "last", state)

    def maybe_resume(self) -> bool:
        # rank 0 picks the checkpoint (moving unreadable ones aside), then the others read it
        state = load_state(self.run_dir / "checkpoints" / "last") if self.dist.is_main else None
        if self.dist.broadcast(state is not None) and state is None:
            state = load_state(self.run_dir / "checkpoints" / "last")
        if state is None:
            # a fresh start (or a crash before the first checkpoint): the records and the
            # selected weights of an earlier attempt would otherwise be kept and duplicated
            if self.dist.is_main:
                for name in (HISTORY_FILE, GRADCOS_FILE, BEST_DIR / WEIGHTS_FILE):
                    (self.run_dir / name).unlink(missing_ok=True)
            return False
        from lexilab.train.state import set_rng_state

        saved_world = int(state.get("world_size", 1))
        if saved_world != self.dist.world_size:
            # the global batch (and so every later step) depends on the number of processes
            raise LexilabError(f"{self.run_dir / 'checkpoints' / 'last'}: saved by a run on {saved_world} "
                               f"process(es); resume it on {saved_world}, not {self.dist.world_size}")

        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.sampler.load_state_dict(state["sampler"])
        self.weighting.load_state_dict(state["weighting"])
        for name, stream in self.streams.items():
            stream.load_state_dict(state["streams"][name])
        self.diag_generator.set_state(state["diag_generator"])
        self.early.load_state_dict(state["early"])
        self.step, self.epoch = state["step"], state["epoch"]
        self.window_in_epoch = state["window_in_epoch"]
        self.nonfinite_skipped = state["nonfinite_skipped"]
        self.last_eval_step = state["last_eval_step"]
        self.epoch_losses = state["epoch_losses"]
        self.task_budget.update(state.get("task_budget") or {})
        set_rng_state(state["ranks_rng"][self.dist.rank] if "ranks_rng" in state else state["rng"])
        if self.dist.is_main:
            for name in (HISTORY_FILE, GRADCOS_FILE):
                _truncate_jsonl(self.run_dir / name, self.step)
        return True

    # ------------------------------------------------------------------ one step
    def _loss(self, name: str, batch: list[dict]) -> torch.Tensor:
        task = self.tasks[name]
        tensors = task.collate(batch)  # the task moves it to the backbone's device
        with _autocast(self.device, self.train_cfg.get("precision", "fp32")):
            loss = task.loss(self.backbone, self.model.module_for(name), tensors)
        return loss.float()

    def _all_finite(self, names: list[str], values: list[float], per_rank: torch.Tensor | None) -> bool:
        """True when a micro-batch's global losses (``values``, read off the device, in the order
        of ``names``) are finite; else count a skip (policy ``skip``) or raise NonFiniteLoss naming
        the step, the task and, from ``per_rank`` (W × T, None on one process), the rank."""
        for index, (name, value) in enumerate(zip(names, values)):
            if math.isfinite(value):
                continue
            if self.train_cfg.get("on_nonfinite", "fail") == "skip":
                self.nonfinite_skipped += 1
                return False
            where = ""
            if per_rank is not None:
                rank = int((~torch.isfinite(per_rank[:, index])).nonzero()[0])
                value, where = float(per_rank[rank, index]), f" on rank {rank}"
            raise NonFiniteLoss(f"non-finite loss ({value}) at step {self.step} in task {name!r}{where}")
        return True

    def _shard_loss(self, name: str, batch: list[dict]) -> torch.Tensor:
        """This rank's loss on its shard of a global batch, scaled so that the mean over ranks
        is the global batch's mean loss (one process: the batch's loss)."""
        if not self.dist.enabled:
            return self._loss(name, batch)
        part, factor = distributed.shard(batch, self.dist.rank, self.dist.world_size)
        return self._loss(name, part) * factor

    def _global_losses(self, losses: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
        """The global batch's loss per task (mean over ranks of the scaled shard losses), and
        the W × T matrix of every rank's values (None on one process)."""
        if not self.dist.enabled:
            return {n: loss.detach() for n, loss in losses.items()}, None
        per_rank = self.dist.gather(torch.stack([loss.detach() for loss in losses.values()]))
        return {n: per_rank[:, i].mean() for i, n in enumerate(losses)}, per_rank

    def _window(self, size: int) -> dict:
        """One optimizer step (see :meth:`_run_window`); its history record, every value read."""
        record, deferred = self._run_window(size)
        return self._resolved(record, deferred)

    @staticmethod
    def _resolved(record: dict, deferred: dict[str, torch.Tensor]) -> dict:
        """``record`` with the ``deferred`` device values read into it (one host synchronisation)."""
        if deferred:
            record.update(zip(deferred, torch.stack(list(deferred.values())).tolist()))
        return record

    def _run_window(self, size: int) -> tuple[dict, dict[str, torch.Tensor]]:
        """Run ``size`` micro-batches, accumulate their gradients, take one optimizer step.

        The step's gradient is the mean over the micro-batches that survived the non-finite
        check, and the weighting method aggregates once per window (``Weighting.finish``), so
        ``grad_accum = k`` with batch b is the step of ``grad_accum = 1`` with batch k·b.

        Host synchronisations (what a CUDA step waits for): the losses stay on the device while
        the micro-batches run. Policy ``fail`` reads the whole window's losses in one copy after
        the last backward and checks them before the optimizer step; policy ``skip`` reads each
        micro-batch's losses before its backward (the backward is what a skip spares). Returns
        the step's record and, apart, the values still on the device (the clipped gradient norm),
        read when the record is written."""
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        # fp16: the methods get the unscaled losses and the scale (see Weighting.accumulate)
        scale = float(self.scaler.scale(torch.ones((), device=self.device))) if self.scaler.is_enabled() else 1.0
        skip = self.train_cfg.get("on_nonfinite", "fail") == "skip"
        rows: list[tuple[list[str], torch.Tensor | list[float], torch.Tensor | None]] = []
        examples = used = 0
        for _ in range(size):
            names = list(self.tasks) if self.weighting.needs_all_tasks else [self.sampler.next()]
            losses, batches = {}, {}
            for name in names:
                batch = batches[name] = self.streams[name].next()
                losses[name] = self._shard_loss(name, batch)
            values, per_rank = self._global_losses(losses)
            row: torch.Tensor | list[float] = torch.stack(list(values.values()))
            if skip:
                row = row.tolist()
                if not self._all_finite(names, row, per_rank):
                    continue  # a skipped micro-batch adds neither gradient nor examples
            self.weighting.accumulate(losses, self.shared_groups, scale=scale)
            used += 1
            rows.append((names, row, per_rank))
            for name in names:
                examples += len(batches[name])
                self.task_budget[name][0] += len(batches[name])
        seen = self._window_losses(rows)  # policy fail: raises here, before the optimizer step
        grad_norm = None
        if used:  # a window whose every micro-batch was skipped takes no optimizer step
            # data parallel: the mean over ranks of every accumulated gradient (a gradient
            # method's shared-parameter Jacobian is reduced in its finish())
            self.dist.mean_grads_([*self.model.parameters(), *self.weighting.parameters()])
            for param in [*self.model.parameters(), *self.weighting.parameters()]:
                if param.grad is not None:
                    param.grad.div_(used)
            self.weighting.finish(used, scale=scale)
            clip = self.config["optim"].get("clip_norm")
            if self.scaler.is_enabled():
                self.scaler.unscale_(self.optimizer)
            if clip:
                # the model's gradients only: a weighting method's own parameters (uncertainty's
                # log-variances, GradNorm's weights) have gradients of another scale
                params = [p for p in self.model.parameters() if p.grad is not None]
                grad_norm = torch.nn.utils.clip_grad_norm_(params, float(clip)).detach()
            self.scaler.step(self.optimizer)
            self.scaler.update()
        lr = self.optimizer.param_groups[0]["lr"]
        self.scheduler.step()
        record = {"step": self.step + 1, "epoch": self.epoch, "lr": lr, "examples": examples}
        record.update({f"loss/{n}": sum(v) / len(v) for n, v in seen.items()})
        for name in seen:
            self.task_budget[name][1] += 1
        record.update({f"examples_seen/{n}": e for n, (e, _u) in self.task_budget.items()})
        record.update({f"updates/{n}": u for n, (_e, u) in self.task_budget.items()})
        return record, ({} if grad_norm is None else {"grad_norm": grad_norm})

    def _window_losses(self, rows: list[tuple[list[str], torch.Tensor | list[float], torch.Tensor | None]]
                       ) -> dict[str, list[float]]:
        """The window's global losses per task, in micro-batch order, added to the epoch's sums.

        The rows still on the device (policy ``fail``) are read in one copy and checked: the first
        non-finite value raises :class:`NonFiniteLoss` naming the step, the task and the rank."""
        on_device = [row for _names, row, _ranks in rows if isinstance(row, torch.Tensor)]
        read = iter(torch.cat(on_device).tolist() if on_device else ())
        host = [(names, row if isinstance(row, list) else [next(read) for _ in names], per_rank)
                for names, row, per_rank in rows]
        for names, values, per_rank in host:
            self._all_finite(names, values, per_rank)
        seen: dict[str, list[float]] = {}
        for names, values, _ranks in host:
            for name, value in zip(names, values):
                seen.setdefault(name, []).append(value)
                total = self.epoch_losses.setdefault(name, [0.0, 0])
                total[0] += value
                total[1] += 1
        return seen

    def _diagnostics(self) -> None:
        """Per-task gradient cosines on a probe batch per task; RNG and .grad untouched."""
        from lexilab.train.diagnostics import gradient_cosines

        cfg = self.config.get("diagnostics") or {}
        groups = self.backbone.shared_parameter_groups()
        if not cfg.get("include_embeddings"):
            groups = {k: v for k, v in groups.items() if k != "embeddings"}
        groups = {k: [p for p in v if p.requires_grad] for k, v in groups.items()}
        groups = {k: v for k, v in groups.items() if v}
        # probe examples per task (data parallel: sharded over the ranks like a global batch)
        size = int(cfg.get("batch_size") or int(self.train_cfg["batch_size"]) * self.dist.world_size)
        with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
            losses = {}
            for name, task in self.tasks.items():
                rows = task.dataset.splits["train"]
                picks = torch.randperm(len(rows), generator=self.diag_generator)[:size].tolist()
                losses[name] = self._shard_loss(name, [rows[i] for i in picks])
            # data parallel: cosines of the probe batch's global task gradients
            records = gradient_cosines(losses, groups, self.step,
                                       reduce=self.dist.mean_ if self.dist.enabled else None)
        if self.dist.is_main:
            append_jsonl(self.run_dir / GRADCOS_FILE, records)

    # ------------------------------------------------------------------ loop
    def fit(self, on_step=None) -> None:
        train = self.train_cfg
        accum = int(train.get("grad_accum", 1))
        checkpoint_every = int(train.get("checkpoint_every") or 0)
        eval_every = int(train.get("eval_every") or 0)
        log_every = int(train.get("log_every") or 1)
        freeze_cfg = self.config["backbone"].get("freeze") or {}
        bar = tqdm(total=self.total_steps, initial=self.step, desc=f"train {self.run_dir.name}",
                   disable=not self.progress, leave=False)
        started = time.perf_counter()
        from lexilab.dispatch import preemption

        preemption.cooperate()  # a preemption signal waits for the next step boundary
        while self.step < self.total_steps and not self.early.should_stop:
            frozen = apply_freezing(self.backbone, freeze_cfg, self.step)
            first = self.window_in_epoch * accum
            size = min(accum, self.micro_per_epoch - first)  # last window of an epoch may be short
            record, deferred = self._run_window(size)
            self.step += 1
            self.window_in_epoch += 1
            epoch_done = self.window_in_epoch >= self.windows_per_epoch
            if self.step % log_every == 0 or epoch_done:
                record = self._resolved(record, deferred)  # read only for a record that is written
                record.update(frozen)
                record["examples_per_s"] = record["examples"] / max(time.perf_counter() - started, 1e-9)
                if self.dist.is_main:
                    append_jsonl(self.run_dir / HISTORY_FILE, [record])
            started = time.perf_counter()
            if self.diag_every and self.step % self.diag_every == 0:
                self._diagnostics()
            if epoch_done:
                self.epoch += 1
                self.window_in_epoch = 0
                self.weighting.epoch_end({n: s / max(c, 1) for n, (s, c) in self.epoch_losses.items()})
                self.epoch_losses = {}
            if epoch_done or (eval_every and self.step % eval_every == 0):
                self._evaluate()
            if checkpoint_every and self.step % checkpoint_every == 0:
                self.save_checkpoint()
            # SLURM preemption / time limit: save, then requeue (every rank, when one got it)
            if self.dist.any(preemption.stop_requested()):
                self.save_checkpoint()
                bar.close()
                if not preemption.stop_requested():
                    raise SystemExit(0)  # another rank got the signal and requeues the job
                preemption.requeue_now()
            bar.update(1)
            if on_step is not None:
                on_step(self)
        bar.close()
        if self.last_eval_step != self.step:  # max_steps ended mid-epoch: the final weights count too
            self._evaluate()
        self.save_checkpoint()

    def _evaluate(self) -> None:
        """Rank 0 evaluates (the one-process metrics of the same weights) and writes; the other
        ranks take its early-stopping state and a pruning decision from it."""
        self.last_eval_step = self.step
        if not self.dist.enabled:
            return self._evaluate_here()
        from lexilab.sweep.hook import RunPruned

        pruned = None
        if self.dist.is_main:
            try:
                self._evaluate_here()
            except RunPruned as err:
                pruned = err
        outcome = self.dist.broadcast((self.early.state_dict(), None if pruned is None else pruned.step))
        self.early.load_state_dict(outcome[0])
        if pruned is not None:
            raise pruned
        if outcome[1] is not None:
            raise RunPruned(outcome[1])

    def _evaluate_here(self) -> None:
        losses = evaluate_losses(self, "val")
        record = {"step": self.step, "epoch": self.epoch, "split": "val",
                  **{f"val_loss/{n}": v for n, v in losses.items()},
                  "val_loss": sum(losses.values()) / len(losses)}
        value = self.early.value(record, self)
        record["early_stopping_value"] = value
        improved = self.early.update(value, self.step)
        if improved:
            save_best_weights(self)
        append_jsonl(self.run_dir / HISTORY_FILE, [record])
        if self.on_evaluate is not None:  # may raise lexilab.sweep.hook.RunPruned: stop at this step
            self.on_evaluate(self, record)


def train_run(config: dict, run_dir: str | Path, progress: bool = True, on_evaluate=None) -> dict:
    """Train (or resume) one run into ``run_dir`` and return its metrics ({split: {task: ...}})."""
    from lexilab.envinfo import record_environment
    from lexilab.io import remove_orphan_temps
    from lexilab.train.state import discard_previous

    run_dir = Path(run_dir)
    try:
        trainer = Trainer(config, run_dir, progress=progress)
        trainer.on_evaluate = on_evaluate
        main = trainer.dist.is_main  # a data-parallel run: rank 0 alone writes the run directory
        if main:
            # refuses a changed data file before anything is written (data hashes of the first start)
            record_environment(run_dir, trainer.device, trainer.parts.datasets, trainer.config.get("data_root"))
            # temp files of atomic writes a kill interrupted: checkpoints are written by this run
            # only; a recent temp elsewhere may be a live status update by another process
            remove_orphan_temps(run_dir / "checkpoints")
            remove_orphan_temps(run_dir, min_age_s=60.0)
            atomic_write_json(run_dir / "leakage.json", trainer.parts.leakage)
        trainer.dist.broadcast(None)  # nobody reads the run folder before rank 0 has checked it
        trainer.maybe_resume()
        trainer.fit()
        if not main:
            return {}
        metrics = finalize(trainer)
    except BaseException as err:
        # data parallel: another rank's failure broke a collective → raise with its error
        distributed.current().raise_failure(err)
        raise
    discard_previous(run_dir / "checkpoints" / "last")  # finished: no fallback checkpoint needed
    return metrics
