"""Cluster profiles and resources: parsing, merging, and the sbatch script they produce."""
from __future__ import annotations

import os

import pytest
import submitit

from lexilab.dispatch.resources import (
    load_profile,
    merge_resources,
    normalize,
    parse_mem,
    parse_time,
    slurm_parameters,
)
from lexilab.errors import LexilabError


@pytest.mark.parametrize("value, minutes", [
    (90, 90), (1.5, 2), ("45", 45), ("10:30", 11), ("02:00:00", 120), ("1-00:00:00", 1440),
    ("2-12", 3600), ("1-01:30", 1530), ("00:00:59", 1),
])
def test_parse_time_follows_slurm_formats(value, minutes):
    # hand-worked: MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM, D-HH:MM:SS (partial minutes round up)
    assert parse_time(value) == minutes


@pytest.mark.parametrize("value", ["1h", "-5", 0, "1:2:3:4", True, "abc"])
def test_parse_time_rejects_nonsense_in_one_line(value):
    with pytest.raises(LexilabError) as err:
        parse_time(value)
    assert "\n" not in str(err.value) and str(err.value).startswith("resources: time:")


@pytest.mark.parametrize("value, text", [(32, "32G"), (1.5, "1536M"), ("16gb", "16G"), ("8000M", "8000M"),
                                         ("1T", "1T")])
def test_parse_mem(value, text):
    assert parse_mem(value, "resources", "mem") == text


def test_unknown_key_names_the_source_and_suggests():
    with pytest.raises(LexilabError, match=r"^resources: cpu_per_task: unknown resource \(did you mean cpus_per_task\?\)"):
        normalize({"cpu_per_task": 4})


def test_aliases_and_types():
    out = normalize({"gpus": 2, "cpus": 4, "timeout_min": 30, "mem_gb": 12, "name": "x", "setup": "module load x"})
    assert out == {"gpus_per_node": 2, "cpus_per_task": 4, "time": 30, "mem": "12G", "job_name": "x",
                   "setup": ["module load x"]}
    with pytest.raises(LexilabError, match="gpus_per_node"):
        normalize({"gpus_per_node": "two"})
    with pytest.raises(LexilabError, match="cpus_per_task"):
        normalize({"cpus_per_task": 0})


def test_sbatch_lines_as_list_or_mapping():
    assert normalize({"sbatch": ["--mail-type=FAIL", "#SBATCH --requeue", "--reservation=r1 --exclusive"]})["sbatch"] == {
        "mail-type": "FAIL", "requeue": True, "reservation": "r1", "exclusive": True}
    assert normalize({"sbatch": {"mail_type": "END", "--requeue": None}})["sbatch"] == {"mail-type": "END", "requeue": True}
    with pytest.raises(LexilabError, match="long options"):
        normalize({"sbatch": ["-p gpu"]})


def test_profiles_shipped_in_the_repo_load(repo_root, monkeypatch):
    monkeypatch.chdir(repo_root)
    example = load_profile("example-cluster")
    assert example["partition"] == "gpu" and example["time"] == 24 * 60 and example["gpus_per_node"] == 1
    assert example["sbatch"]["mail-type"] == "FAIL"
    assert load_profile("local")["partition"] == "debug"


def test_profile_found_from_another_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # falls back to the repository's slurm/profiles
    assert load_profile("local")["partition"] == "debug"


def test_profile_errors_are_one_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(LexilabError, match=r"slurm/profiles/locl.yaml: cluster profile not found \(did you mean local\?\)"):
        load_profile("locl")
    bad = tmp_path / "bad.yaml"
    bad.write_text("partition: gpu\nqos: [unclosed\n")
    with pytest.raises(LexilabError, match=r"bad.yaml: line \d+: not valid YAML"):
        load_profile(str(bad))
    typo = tmp_path / "typo.yaml"
    typo.write_text("partiton: gpu\n")
    with pytest.raises(LexilabError, match=r"typo.yaml: partiton: unknown resource \(did you mean partition\?\)"):
        load_profile(str(typo))


def test_overrides_win_key_by_key_and_none_unsets(tmp_path):
    profile = tmp_path / "p.yaml"
    profile.write_text("partition: gpu\ntime: '04:00:00'\ngpus_per_node: 1\naccount: lab\n")
    merged = merge_resources(str(profile), {"time": 30, "account": None}, {"gpus_per_node": 2})
    assert merged == {"partition": "gpu", "time": 30, "gpus_per_node": 2}


def test_sbatch_script_carries_every_profile_setting(tmp_path, monkeypatch):
    """The parameters we build turn, through submitit itself, into the sbatch lines a user expects."""
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    (fake_bin / "srun").write_text("#!/bin/sh\nexit 0\n")  # submitit's slurm executor checks srun exists
    (fake_bin / "srun").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake_bin}:{os.environ['PATH']}")
    resources = normalize({"partition": "gpu", "account": "lab", "qos": "high", "time": "02:00:00",
                           "gpus_per_node": 1, "cpus_per_task": 8, "mem": "64G", "constraint": "a100",
                           "sbatch": ["--mail-type=FAIL"], "setup": ["module load cuda"],
                           "signal_delay_s": 120, "max_requeues": 5})
    ctor, params = slurm_parameters(resources)
    executor = submitit.AutoExecutor(folder=tmp_path / "jobs", cluster="slurm", **ctor)
    executor.update_parameters(**params)
    assert executor._executor.max_num_timeout == 5
    script = executor._executor._make_submission_file_text("CMD", "uid").splitlines()
    for line in ("#SBATCH --partition=gpu", "#SBATCH --account=lab", "#SBATCH --qos=high", "#SBATCH --time=120",
                 "#SBATCH --gpus-per-node=1", "#SBATCH --cpus-per-task=8", "#SBATCH --mem=64G",
                 "#SBATCH --constraint=a100", "#SBATCH --mail-type=FAIL", "#SBATCH --signal=USR2@120",
                 "module load cuda", "export LEXILAB_PREEMPT_GRACE_S=60"):
        assert line in script, line


def test_signal_delay_fits_short_time_limits():
    # submitit's default 90 s would exceed a 1-minute limit: the signal must come before the end
    assert slurm_parameters({"time": 1})[1]["slurm_signal_delay_s"] < 60
    assert slurm_parameters({"time": 600})[1]["slurm_signal_delay_s"] == 90
