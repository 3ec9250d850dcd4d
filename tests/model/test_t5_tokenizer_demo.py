"""load_tokenizer on the real FLAN-T5 tokenizer files, its errors, and the `demo` subcommand."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from lexilab.cli import main
from lexilab.errors import LexilabError
from lexilab.model import load_tokenizer


def test_flan_t5_tokenizer_gives_the_documented_ids(flan_tokenizer_dir):
    tokenizer = load_tokenizer(flan_tokenizer_dir)
    # the id sequence the Hugging Face T5 documentation gives for this sentence
    assert tokenizer("translate English to German: The house is wonderful.")["input_ids"] == \
        [13959, 1566, 12, 2968, 10, 37, 629, 19, 1627, 5, 1]
    assert tokenizer.pad_token_id == 0 and tokenizer.eos_token_id == 1 and len(tokenizer) == 32100
    assert tokenizer.decode([8774, 296, 1], skip_special_tokens=True) == "Hello world"


def test_tokenizer_errors_are_one_line(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "file").write_text("x")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "tokenizer.json").write_text("{not json")
    for source, expected in ((tmp_path / "missing", "tokenizer path does not exist"),
                             (tmp_path / "file", "not a directory"),
                             (tmp_path / "empty", "no tokenizer files here"),
                             (tmp_path / "broken", "cannot load a tokenizer from this folder"),
                             ({"d_model": 8}, "has no tokenizer")):
        with pytest.raises(LexilabError, match=expected) as err:
            load_tokenizer(source)
        assert "\n" not in str(err.value)


def test_offline_tokenizer_hub_id_is_one_line(tmp_path):
    code = ("import sys\nfrom lexilab.errors import LexilabError\nfrom lexilab.model import load_tokenizer\n"
            "try:\n    load_tokenizer('google/flan-t5-small')\nexcept LexilabError as err:\n"
            "    print(err)\n    sys.exit(3)\n")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf-home")}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 3, done.stderr
    assert done.stdout.strip().splitlines() == [
        "google/flan-t5-small: not a local folder and not in the local cache (HF_HUB_OFFLINE is set)"]


def test_demo_runs_with_the_flan_tokenizer(flan_tokenizer_dir, capsys):
    assert main(["demo", "--tokenizer", str(flan_tokenizer_dir), "--max-new-tokens", "3", "--num-beams", "2"]) == 0
    out = capsys.readouterr().out
    assert "input_ids (2, 15)" in out and "logits (2, 4, 32128)" in out
    assert "greedy: (2, 4)" in out and "beam search (2 beams): (2, " in out
    assert "[13959, 1566, 12, 2968, 10, 37, 629, 19, 1627, 5, 1, 0, 0, 0, 0]" in out


def test_demo_bad_tokenizer_is_a_cli_error(tmp_path, capsys):
    assert main(["demo", "--tokenizer", str(tmp_path / "nope")]) == 2
    assert "tokenizer path does not exist" in capsys.readouterr().err
