"""Generic `file` datasets: field mappings over JSONL/CSV/TSV, and their one-line errors."""
from __future__ import annotations

import json

import pytest

from lexilab.data import SPLITS, load_dataset
from lexilab.errors import LexilabError


def write_jsonl(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def rows_of(ds):
    return [ex for s in SPLITS for ex in ds.splits[s]]


def test_jsonl_multiclass_with_hash_split(tmp_path):
    write_jsonl(tmp_path / "d.jsonl", [{"rid": f"r{i}", "body": f"text number {i}", "y": "pos" if i % 3 else "neg"}
                                       for i in range(400)])
    spec = {"name": "file", "path": "d.jsonl", "kind": "multiclass", "fields": {"text": "body", "label": "y", "id": "rid"}}
    ds = load_dataset(spec, tmp_path)
    assert ds.name == "file:d" and ds.label_names == ["neg", "pos"]
    assert sorted(ex["id"] for ex in rows_of(ds)) == sorted(f"r{i}" for i in range(400))
    assert all(ex["label"] == ("pos" if int(ex["id"][1:]) % 3 else "neg") for ex in rows_of(ds))
    again = load_dataset(spec, tmp_path)
    assert {s: [e["id"] for e in again.splits[s]] for s in SPLITS} == {s: [e["id"] for e in ds.splits[s]] for s in SPLITS}


def test_csv_multilabel_label_sep_and_official_splits(tmp_path):
    (tmp_path / "train.csv").write_text("text,tags\n" + "".join(f"doc {i},a;b\n" for i in range(200)), encoding="utf-8")
    (tmp_path / "test.tsv").write_text("text\ttags\nheld out one\tb\nheld out two\t\n", encoding="utf-8")
    ds = load_dataset({"name": "file", "splits": {"train": "train.csv", "test": "test.tsv"}, "kind": "multilabel",
                       "fields": {"text": "text", "labels": "tags"}, "label_sep": ";", "dataset_name": "tags"},
                      tmp_path)
    assert ds.name == "tags" and ds.label_names == ["a", "b"]
    assert [ex["labels"] for ex in ds.splits["test"]] == [["b"], []]
    assert [ex["id"] for ex in ds.splits["test"]] == ["test.tsv:2", "test.tsv:3"]
    assert len(ds.splits["train"]) + len(ds.splits["val"]) + len(ds.splits["calibration"]) == 200


def test_seq2seq_extra_text_fields_are_checked_for_leakage(tmp_path):
    write_jsonl(tmp_path / "s.jsonl", [{"src": f"source {i}", "tgt": f"summary {i}", "head": f"title {i}"}
                                       for i in range(100)])
    ds = load_dataset({"name": "file", "path": str(tmp_path / "s.jsonl"), "kind": "seq2seq",
                       "fields": {"text": "src", "target": "tgt", "title": "head"}}, "/nonexistent-root")
    assert ds.text_fields == ["text", "target", "title"] and rows_of(ds)[0]["title"].startswith("title")


def test_missing_field_names_file_line_and_field(tmp_path):
    write_jsonl(tmp_path / "d.jsonl", [{"body": "a", "y": "x"}, {"body": "b"}])
    with pytest.raises(LexilabError) as err:
        load_dataset({"name": "file", "path": "d.jsonl", "kind": "multiclass",
                      "fields": {"text": "body", "label": "y"}}, tmp_path)
    assert str(err.value).endswith("d.jsonl: line 2: field 'y' (fields.label) missing; fields present: body")
    (tmp_path / "c.csv").write_text("body,y\nhello,x\n", encoding="utf-8")
    with pytest.raises(LexilabError, match=r"c\.csv: line 2: field 'text' \(fields\.text\) missing"):
        load_dataset({"name": "file", "path": "c.csv", "kind": "multiclass",
                      "fields": {"text": "text", "label": "y"}}, tmp_path)


def test_unknown_label_names_file_and_line(tmp_path):
    write_jsonl(tmp_path / "d.jsonl", [{"t": f"x{i}", "y": "pos"} for i in range(5)] + [{"t": "bad", "y": "postive"}])
    with pytest.raises(LexilabError, match=r"d\.jsonl: line 6: field 'y': unknown label 'postive' \(did you mean 'pos'\?\)"):
        load_dataset({"name": "file", "path": "d.jsonl", "kind": "multiclass", "label_names": ["neg", "pos"],
                      "fields": {"text": "t", "label": "y"}}, tmp_path)


def test_empty_split_and_bad_options_are_clear(tmp_path):
    write_jsonl(tmp_path / "tiny.jsonl", [{"t": "only one row", "y": "a"}])
    with pytest.raises(LexilabError, match=r"dataset file:tiny: split '(val|calibration|test)' has no rows"):
        load_dataset({"name": "file", "path": "tiny.jsonl", "kind": "multiclass",
                      "fields": {"text": "t", "label": "y"}}, tmp_path)
    with pytest.raises(LexilabError, match="option kind must be one of"):
        load_dataset({"name": "file", "path": "tiny.jsonl", "kind": "regression",
                      "fields": {"text": "t", "label": "y"}}, tmp_path)
    with pytest.raises(LexilabError, match=r"fields must map at least 'text' and 'target'"):
        load_dataset({"name": "file", "path": "tiny.jsonl", "kind": "seq2seq", "fields": {"text": "t"}}, tmp_path)
    with pytest.raises(LexilabError, match=r"nope\.jsonl: file not found \(dataset file, split train\)"):
        load_dataset({"name": "file", "path": "nope.jsonl", "kind": "multiclass",
                      "fields": {"text": "t", "label": "y"}}, tmp_path)
    (tmp_path / "bad.jsonl").write_text('{"t": "a", "y": "b"}\n{"t": \n', encoding="utf-8")
    with pytest.raises(LexilabError, match=r"bad\.jsonl: line 2: invalid JSON"):
        load_dataset({"name": "file", "path": "bad.jsonl", "kind": "multiclass",
                      "fields": {"text": "t", "label": "y"}}, tmp_path)
