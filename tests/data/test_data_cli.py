"""`python -m lexilab data list|check|fetch` through the subcommand's own parser."""
from __future__ import annotations

import argparse
import json

from lexilab.commands import data as data_cmd


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m lexilab")
    data_cmd.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return args.func(args)


def test_list_shows_names_kinds_presence(shared_data, tmp_path, capsys):
    assert run(["data", "list", "--root", str(shared_data)]) == 0
    out = capsys.readouterr().out
    assert f"data root: {shared_data}" in out
    line = next(l for l in out.splitlines() if l.startswith("goemotions "))
    assert "multilabel" in line and " yes " in line and "goemotions/" in line
    assert "flan_t5_tokenizer (yes)" in out
    (tmp_path / "ag_news").mkdir()
    assert run(["data", "list", "--root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert " no " in next(l for l in out.splitlines() if l.startswith("goemotions "))


def test_check_reports_counts_and_leakage(shared_data, tmp_path, capsys):
    report = tmp_path / "check.json"
    code = run(["data", "check", "--root", str(shared_data), "--datasets", "scitldr", "ag_news",
                "--json", str(report), "--pairs", "3"])
    out = capsys.readouterr().out
    assert code == 0
    scitldr = next(l for l in out.splitlines() if l.startswith("scitldr "))
    assert scitldr.split()[2:6] == ["1797", "619", "195", "618"] and "ok" in scitldr
    assert "scitldr/train ~ scitldr/test" in out and "train-eval" in out
    saved = json.loads(report.read_text())
    assert saved["datasets"]["ag_news"]["counts"]["test"] == 773
    assert saved["leakage"]["counts"]["scitldr/train ~ scitldr/test"]["exact"] > 0
    assert run(["data", "check", "--root", str(shared_data), "--datasets", "scitldr", "--policy", "fail"]) == 1


def test_check_marks_a_broken_dataset_and_fails(shared_data, tmp_path, capsys):
    (tmp_path / "ag_news").mkdir()
    (tmp_path / "ag_news" / "test.csv").write_text("label,title,description\n1,a,b\n")
    assert run(["data", "check", "--root", str(tmp_path), "--datasets", "ag_news", "--no-leakage"]) == 1
    out = capsys.readouterr().out
    assert "FAILED" in out and "differs from the manifest" in out and "data fetch ag_news" in out


def test_fetch_command_with_base_url(server, shared_data, tmp_path, capsys):
    server.serve_tree("/mirror/ag_news", shared_data / "ag_news")
    assert run(["data", "fetch", "ag_news", "--to", str(tmp_path), "--base-url", server.url + "/mirror"]) == 0
    assert "ag_news: 1 file(s) in place and verified" in capsys.readouterr().out
    assert (tmp_path / "ag_news" / "test.csv").read_bytes() == (shared_data / "ag_news" / "test.csv").read_bytes()
