"""The launch environment (torchrun's and SLURM's variables), the shard arithmetic and the
``train.distributed`` config block — no process group needed."""
from __future__ import annotations

import numpy as np
import pytest

from lexilab.config import check_config
from lexilab.train.distributed import first_host, launch_env, shard


@pytest.mark.parametrize("nodelist, host", [
    ("node07", "node07"), ("gpu[07-09,12]", "gpu07"), ("gpu[12,3-4],cpu1", "gpu12"),
    ("a100-[001-004]", "a100-001"), ("rack[2-3]-n[01-04],x", "rack2-n01"), ("cpu3,gpu[1-2]", "cpu3"),
])
def test_first_host_of_a_slurm_node_list(nodelist, host):
    assert first_host(nodelist) == host


def test_launch_env_from_torchrun():
    env = launch_env({"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1", "MASTER_ADDR": "10.0.0.2",
                      "MASTER_PORT": "29511", "TORCHELASTIC_USE_AGENT_STORE": "True"})
    assert (env.rank, env.world_size, env.local_rank, env.master_addr, env.master_port, env.source,
            env.agent_store) == (3, 4, 1, "10.0.0.2", 29511, "torchrun", True)


def test_launch_env_from_slurm_tasks():
    env = launch_env({"SLURM_PROCID": "5", "SLURM_NTASKS": "8", "SLURM_LOCALID": "1", "SLURM_STEP_ID": "0",
                      "SLURM_JOB_NODELIST": "gpu[03-04]", "SLURM_JOB_ID": "123456"})
    assert (env.rank, env.world_size, env.local_rank, env.master_addr, env.source) == (5, 8, 1, "gpu03", "slurm")
    assert env.master_port == 20000 + 123456 % 20000 and not env.agent_store


@pytest.mark.parametrize("environ", [{}, {"RANK": "0", "WORLD_SIZE": "1"},
                                     {"SLURM_PROCID": "0", "SLURM_NTASKS": "1", "SLURM_STEP_ID": "0"},
                                     # a batch script of a --ntasks 4 job: one process, no srun step
                                     {"SLURM_PROCID": "0", "SLURM_NTASKS": "4", "SLURM_JOB_NODELIST": "n1"}])
def test_one_process_is_no_distributed_launch(environ):
    assert launch_env(environ) is None


@pytest.mark.parametrize("n, world", [(8, 2), (5, 2), (7, 3), (2, 4), (1, 2)])
def test_shards_partition_the_batch_and_their_scaled_means_average_to_its_mean(n, world):
    """Contiguous shards cover the batch once; mean over ranks of (shard mean × factor) is the
    batch mean (numpy), also when some shards are empty (factor 0, one stand-in example)."""
    values = np.random.default_rng(n * 10 + world).normal(size=n)
    batch = list(range(n))
    parts = [shard(batch, rank, world) for rank in range(world)]
    covered = [i for part, factor in parts if factor > 0 for i in part]
    assert covered == batch
    scaled = [factor * values[part].mean() for part, factor in parts]
    assert np.mean(scaled) == pytest.approx(values.mean(), rel=1e-12)
    assert max(len(p) for p, f in parts if f) - min(len(p) for p, f in parts if f) <= 1


def _problems(config: dict) -> list[str]:
    return [p.line() for p in check_config(config)[1]]


def test_train_distributed_is_off_by_default_and_validated():
    base = {"backbone": {"name": "t5-small"}, "tasks": {"t": {"kind": "multiclass", "data": "topics7"}}}
    resolved, problems = check_config(base)
    assert resolved["train"]["distributed"] == {"enabled": False, "backend": "auto", "timeout_s": 1800}
    bad = _problems({**base, "train": {"distributed": {"enabled": "yes", "backend": "mpi", "timeout": 5}}})
    joined = "\n".join(bad)
    assert "train.distributed.enabled" in joined and "train.distributed.backend" in joined
    assert "train.distributed.timeout" in joined and "did you mean 'timeout_s'" in joined
