"""Data parallelism over several processes (``train.distributed``), exact for every weighting.

One run trains on W processes (torchrun's or SLURM's tasks): NCCL on CUDA, gloo on CPU. Every
rank holds the same model, sampler, task streams and weighting state; each micro-batch is one
*global* batch of W·b examples (the batch a one-process run with batch W·b would draw), of
which rank r takes the r-th contiguous shard. A rank's loss is its shard's mean scaled by
``n_r·W/N`` (n_r its examples, N the global batch's), so the mean over ranks of the scaled
losses — and of their gradients — is the global batch's mean loss and gradient, even for a short
last batch. A rank whose shard is empty computes the loss of one example times 0: every rank
runs the same graph, so every collective matches.

What is reduced (averaged over ranks), per optimizer step:

- every ``.grad`` the window accumulated (the model's and the weighting method's own parameters:
  uncertainty's log-variances) — loss weightings need nothing else (plain DDP's volume);
- the gradient methods' window Jacobian (T × n_shared) before aggregation, so every rank
  aggregates the same matrix (T× plain DDP on the shared parameters; a Gramian alone does not
  suffice: ``G = J Jᵀ`` of the mean Jacobian needs the cross terms between ranks);
- GradNorm's per-task last-layer gradients and losses (T × n_last + T);
- the micro-batch's per-task losses (all-gathered, W × T floats): logged values, DWA's epoch
  means, GradNorm's loss ratios and the non-finite check are global, so every rank takes the
  same decision.

We reduce explicitly instead of wrapping the model in ``DistributedDataParallel``: DDP's hooks
do not fire for ``torch.autograd.grad``, which the per-task Jacobian path uses.
"""
from __future__ import annotations

import datetime
import os
import re
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import torch
import torch.distributed as dist
from torch import Tensor

from lexilab.errors import LexilabError

BUCKET_ELEMENTS = 1 << 24  # gradients are flattened and reduced in buckets of ≤ 16M floats
_ERROR_KEY = "error/{}"


class RankFailed(RuntimeError):
    """Another rank of this run failed; the message is that rank's error."""


class Terminated(RuntimeError):
    """SIGTERM from the launcher (torchrun stops the other ranks when one has failed)."""


@dataclass(frozen=True)
class LaunchEnv:
    """Where this process sits in a multi-process launch, read from the launcher's environment."""

    rank: int
    world_size: int
    local_rank: int
    master_addr: str
    master_port: int
    source: str  # "torchrun" or "slurm"
    agent_store: bool = False  # torchrun's agent hosts the rendezvous store


def first_host(nodelist: str) -> str:
    """The first host of a SLURM node list: ``gpu[07-09,12],cpu3`` → ``gpu07``."""
    depth, end = 0, len(nodelist)
    for index, char in enumerate(nodelist):  # the first entry at bracket depth 0
        depth += {"[": 1, "]": -1}.get(char, 0)
        if char == "," and depth == 0:
            end = index
            break
    entry = nodelist[:end].strip()
    # every bracket group's first value, zero padding kept ("rack[2-3]-n[01-04]" → "rack2-n01")
    return re.sub(r"\[([^\]]*)\]", lambda m: re.split(r"[,-]", m.group(1))[0], entry)


def launch_env(environ: dict | None = None) -> LaunchEnv | None:
    """The launch this process belongs to, or None for a single process.

    torchrun sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT; a SLURM step with
    several tasks sets SLURM_PROCID, SLURM_STEP_NUM_TASKS (SLURM_NTASKS) and SLURM_LOCALID, and
    the rendezvous is the first host of the step's node list on MASTER_PORT (else a port
    derived from the job id)."""
    env = os.environ if environ is None else environ
    if "WORLD_SIZE" in env and "RANK" in env:
        world = int(env["WORLD_SIZE"])
        if world <= 1:
            return None
        return LaunchEnv(int(env["RANK"]), world, int(env.get("LOCAL_RANK", 0)),
                         env.get("MASTER_ADDR", "127.0.0.1"), int(env.get("MASTER_PORT", 29500)), "torchrun",
                         agent_store=env.get("TORCHELASTIC_USE_AGENT_STORE") == "True")
    # only inside an srun step: a batch script (or `lexilab run` in an allocation) of a job
    # with --ntasks > 1 also sees SLURM_NTASKS, but is one process
    stepped = "SLURM_STEP_ID" in env or "SLURM_STEPID" in env
    if stepped and "SLURM_PROCID" in env and ("SLURM_STEP_NUM_TASKS" in env or "SLURM_NTASKS" in env):
        world = int(env.get("SLURM_STEP_NUM_TASKS") or env["SLURM_NTASKS"])
        if world <= 1:
            return None
        nodes = env.get("SLURM_STEP_NODELIST") or env.get("SLURM_JOB_NODELIST") or env.get("SLURM_NODELIST") \
            or "127.0.0.1"
        job = int(env.get("SLURM_JOB_ID", "0") or 0)
        port = int(env.get("MASTER_PORT") or 20000 + job % 20000)
        return LaunchEnv(int(env["SLURM_PROCID"]), world, int(env.get("SLURM_LOCALID", 0)),
                         env.get("MASTER_ADDR") or first_host(nodes), port, "slurm")
    if env.get("SUBMITIT_EXECUTOR") == "local" and int(env.get("SUBMITIT_LOCAL_NTASKS", "1") or 1) > 1:
        # the local executor's several slots for one run: submitit's local tasks on this host
        world = int(env["SUBMITIT_LOCAL_NTASKS"])
        port = int(env.get("MASTER_PORT") or 20000 + int(env.get("SUBMITIT_LOCAL_JOB_ID", "0") or 0) % 20000)
        return LaunchEnv(int(env.get("SUBMITIT_LOCAL_GLOBALID", 0)), world, int(env.get("SUBMITIT_LOCAL_LOCALID", 0)),
                         "127.0.0.1", port, "local")
    return None


def distributed_config(config: dict) -> dict:
    """The run config's ``train.distributed`` block with its defaults (older configs lack it)."""
    block = dict((config.get("train") or {}).get("distributed") or {})
    return {"enabled": bool(block.get("enabled", False)), "backend": block.get("backend") or "auto",
            "timeout_s": int(block.get("timeout_s") or 1800)}


class Dist:
    """This process's view of the run's process group; a world of 1 makes every call a no-op."""

    def __init__(self, rank: int = 0, world_size: int = 1, local_rank: int = 0, backend: str | None = None,
                 store: Any = None) -> None:
        self.rank, self.world_size, self.local_rank = rank, world_size, local_rank
        self.backend = backend
        self.store = store
        self.comm_device = torch.device("cuda", local_rank) if backend == "nccl" else torch.device("cpu")
        self.failing = False

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    # -- collectives ------------------------------------------------------------------------
    def mean_(self, tensor: Tensor) -> Tensor:
        """Average ``tensor`` over the ranks, in place (through the backend's device)."""
        if not self.enabled:
            return tensor
        buffer = tensor if tensor.device == self.comm_device else tensor.to(self.comm_device)
        dist.all_reduce(buffer)
        buffer.div_(self.world_size)
        if buffer is not tensor:
            tensor.copy_(buffer)
        return tensor

    def mean_grads_(self, params: Iterable[Tensor]) -> int:
        """Average the ``.grad`` of ``params`` over the ranks in flat buckets; returns the number
        of elements reduced. Every rank must hold gradients for the same parameters (they run the
        same graph)."""
        grads = [p.grad for p in params if p.grad is not None]
        if not self.enabled or not grads:
            return sum(g.numel() for g in grads)
        total = 0
        for bucket in _buckets(grads):
            flat = torch.cat([g.reshape(-1) for g in bucket])
            self.mean_(flat)
            offset = 0
            for g in bucket:
                g.copy_(flat[offset: offset + g.numel()].view_as(g))
                offset += g.numel()
            total += flat.numel()
        return total

    def broadcast_tensors_(self, tensors: Iterable[Tensor]) -> None:
        """Overwrite ``tensors`` with rank 0's values (the initial weights)."""
        if not self.enabled:
            return
        for t in tensors:
            buffer = t if t.device == self.comm_device else t.to(self.comm_device)
            dist.broadcast(buffer, src=0)
            if buffer is not t:
                t.copy_(buffer)

    def gather(self, vector: Tensor) -> Tensor:
        """Every rank's ``vector`` (same shape), stacked: a W × len tensor on every rank."""
        if not self.enabled:
            return vector.unsqueeze(0)
        local = vector.to(self.comm_device)
        out = [torch.empty_like(local) for _ in range(self.world_size)]
        dist.all_gather(out, local)
        return torch.stack(out).to(vector.device)

    def broadcast(self, obj: Any = None) -> Any:
        """Rank 0's ``obj`` on every rank (pickled)."""
        if not self.enabled:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0, device=self.comm_device if self.backend == "nccl" else None)
        return box[0]

    def all_gather_object(self, obj: Any) -> list:
        if not self.enabled:
            return [obj]
        out: list = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    def any(self, flag: bool) -> bool:
        """True on every rank when it is True on one."""
        if not self.enabled:
            return bool(flag)
        value = torch.tensor([1.0 if flag else 0.0], device=self.comm_device)
        dist.all_reduce(value, op=dist.ReduceOp.MAX)
        return bool(value.item() > 0)

    # -- failures ---------------------------------------------------------------------------
    def publish_error(self, message: str) -> None:
        """Leave this rank's error in the rendezvous store, where rank 0 finds it."""
        if self.store is not None:
            try:
                self.store.set(_ERROR_KEY.format(self.rank), message)
            except Exception:  # the store's host is gone: nothing left to tell
                pass

    def peer_error(self) -> str | None:
        """The first error another rank published, as ``rank R: message``."""
        if self.store is None:
            return None
        for rank in range(self.world_size):
            key = _ERROR_KEY.format(rank)
            try:
                if rank != self.rank and self.store.check([key]):
                    return f"rank {rank}: {self.store.get(key).decode('utf-8', 'replace')}"
            except Exception:
                return None
        return None

    def raise_failure(self, err: BaseException) -> None:
        """Called with this rank's exception: publish it, or — when it is a collective that
        broke because another rank failed — raise :class:`RankFailed` with that rank's error."""
        if not self.enabled or isinstance(err, (KeyboardInterrupt, SystemExit)):
            return
        self.failing = True  # from here on a launcher's SIGTERM must not cut the status write short
        own = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}".rstrip(": ")
        if _is_collective_error(err):
            peer = self.peer_error()
            if peer is None:
                peer = (f"a rank of this run ended without reporting an error (killed?); rank {self.rank} "
                        f"saw: {own}")
            raise RankFailed(peer) from err
        self.publish_error(own)


SINGLE = Dist()


def _is_collective_error(err: BaseException) -> bool:
    backend_error = getattr(dist, "DistBackendError", ())
    text = str(err).lower()
    return isinstance(err, (backend_error, Terminated)) or (isinstance(err, RuntimeError) and any(
        word in text for word in ("gloo", "nccl", "connection closed", "connection reset", "timed out")))


def _buckets(tensors: Sequence[Tensor]) -> Iterable[list[Tensor]]:
    bucket: list[Tensor] = []
    size = 0
    for t in tensors:
        if bucket and (size + t.numel() > BUCKET_ELEMENTS or t.dtype != bucket[0].dtype
                       or t.device != bucket[0].device):
            yield bucket
            bucket, size = [], 0
        bucket.append(t)
        size += t.numel()
    if bucket:
        yield bucket


def shard(batch: list, rank: int, world: int) -> tuple[list, float]:
    """Rank ``rank``'s contiguous share of a global batch, and the factor ``n_r·W/N`` that makes
    the mean over ranks of the shards' scaled mean losses the global batch's mean loss. An empty
    share is one example with factor 0 (every rank must run the same graph)."""
    n = len(batch)
    base, extra = divmod(n, world)
    start = rank * base + min(rank, extra)
    part = batch[start: start + base + (1 if rank < extra else 0)]
    if not part:
        return batch[:1], 0.0
    return part, len(part) * world / n


# ------------------------------------------------------------------------------ set-up
_current: Dist | None = None


def current() -> Dist:
    """The process group this process trains in (set up by :func:`setup`), else a world of 1."""
    return _current if _current is not None else SINGLE


def resolve_backend(backend: str, device_name: str | None) -> str:
    if backend not in ("auto", "gloo", "nccl"):
        raise LexilabError(f"config.yaml: train.distributed.backend: {backend!r} is not auto, gloo or nccl")
    if backend != "auto":
        return backend
    wants_cpu = str(device_name or "auto") == "cpu"
    return "nccl" if torch.cuda.is_available() and not wants_cpu and dist.is_nccl_available() else "gloo"


def setup(env: LaunchEnv, backend: str = "auto", timeout_s: int = 1800, device_name: str | None = None) -> Dist:
    """Join the run's process group (rendezvous at ``env.master_addr:port``, every collective
    bounded by ``timeout_s``): rank 0 hosts the store unless torchrun's agent does."""
    global _current
    backend = resolve_backend(backend, device_name)
    timeout = datetime.timedelta(seconds=timeout_s)
    if backend == "nccl":
        torch.cuda.set_device(env.local_rank)  # "cuda" is then this rank's own GPU
    is_host = env.rank == 0 and not env.agent_store
    store = dist.TCPStore(env.master_addr, env.master_port, env.world_size, is_master=is_host,
                          timeout=timeout, wait_for_workers=False)
    store = dist.PrefixStore("lexilab/", store)
    dist.init_process_group(backend, store=dist.PrefixStore("pg/", store), rank=env.rank,
                            world_size=env.world_size, timeout=timeout)
    _current = Dist(env.rank, env.world_size, env.local_rank, backend, store)
    return _current


def teardown() -> None:
    global _current
    if dist.is_initialized():
        dist.destroy_process_group()
    _current = None
