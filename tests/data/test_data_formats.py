"""Readers: quoting, line numbers in errors, gzip and tar members."""
from __future__ import annotations

import gzip
import io
import json
import tarfile

import pytest

from lexilab.data import formats
from lexilab.errors import LexilabError


def test_tsv_quoted_fields_and_doubled_quotes(tmp_path):
    path = tmp_path / "x.tsv"
    path.write_text('plain text\t1\ta\n"he said ""hi"" to me"\t2,3\tb\n\nlast\t4\tc', encoding="utf-8")
    rows = list(formats.read_tsv(path, ncols=3))
    assert rows == [(1, ["plain text", "1", "a"]), (2, ['he said "hi" to me', "2,3", "b"]), (4, ["last", "4", "c"])]


def test_tsv_wrong_field_count_names_file_and_line(tmp_path):
    path = tmp_path / "bad.tsv"
    path.write_text("a\t1\tx\nb\t2\nc\t3\tz\n", encoding="utf-8")
    with pytest.raises(LexilabError, match=r"bad\.tsv: line 2: expected 3 fields, found 2"):
        list(formats.read_tsv(path, ncols=3))


def test_tsv_malformed_quote_is_an_error_with_line(tmp_path):
    path = tmp_path / "q.tsv"
    path.write_text('ok\t1\tx\n"closed" junk\t2\ty\n', encoding="utf-8")
    with pytest.raises(LexilabError, match=r"q\.tsv: line 2: malformed row"):
        list(formats.read_tsv(path, ncols=3))


def test_csv_multiline_field_reports_start_line(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text('id,text\n1,"two\nlines"\n2,ok\n3\n', encoding="utf-8")
    reader = formats.read_csv(path, header=True)
    assert next(reader) == (2, {"id": "1", "text": "two\nlines"})
    assert next(reader) == (4, {"id": "2", "text": "ok"})
    with pytest.raises(LexilabError, match=r"m\.csv: line 5: expected 2 fields, found 1"):
        next(reader)


def test_jsonl_errors_name_file_and_line(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"a": 1}\n\n{"a": 2,}\n', encoding="utf-8")
    reader = formats.read_jsonl(path)
    assert next(reader) == (1, {"a": 1})
    with pytest.raises(LexilabError, match=r"d\.jsonl: line 3: invalid JSON"):
        next(reader)
    path.write_text('{"a": 1}\n[1, 2]\n', encoding="utf-8")
    with pytest.raises(LexilabError, match=r"d\.jsonl: line 2: expected a JSON object, found list"):
        list(formats.read_jsonl(path))


def test_jsonl_gzip_and_undecodable_bytes(tmp_path):
    path = tmp_path / "d.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        handle.write(json.dumps({"t": "é"}) + "\n" + json.dumps({"t": "x"}) + "\n")
    assert [r for _, r in formats.read_jsonl(path)] == [{"t": "é"}, {"t": "x"}]
    bad = tmp_path / "b.jsonl"
    bad.write_bytes(b'{"t": "ok"}\n{"t": "\xff"}\n')
    with pytest.raises(LexilabError, match=r"b\.jsonl: line 2: not utf-8"):
        list(formats.read_jsonl(bad))


def test_missing_file_and_format_guess(tmp_path):
    with pytest.raises(LexilabError, match="file not found"):
        list(formats.read_jsonl(tmp_path / "nope.jsonl"))
    assert formats.guess_format("a/b.JSONL.gz") == "jsonl"
    assert formats.guess_format("a.tsv") == "tsv"
    with pytest.raises(LexilabError, match="cannot tell the format"):
        formats.guess_format("a.txt")


def test_records_from_csv_header_and_tar_members(tmp_path):
    path = tmp_path / "r.tsv"
    path.write_text("text\tlabel\nhello\tpos\n", encoding="utf-8")
    assert list(formats.read_records(path)) == [(2, {"text": "hello", "label": "pos"})]
    archive = tmp_path / "a.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for name, data in (("top/x.txt", b"one"), ("top/sub/y.txt", b"two")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    assert list(formats.iter_tar_members(archive)) == [("top/x.txt", b"one"), ("top/sub/y.txt", b"two")]
    (tmp_path / "not.tar.gz").write_bytes(b"garbage")
    with pytest.raises(LexilabError, match="not a readable tar archive"):
        list(formats.iter_tar_members(tmp_path / "not.tar.gz"))


def test_tsv_undecodable_line_is_named(tmp_path):
    path = tmp_path / "u.tsv"
    path.write_bytes(b"a\t1\tx\n" * 3000 + b"b\t\xff\ty\n")
    with pytest.raises(LexilabError, match=r"u\.tsv: line 3001: not utf-8 text"):
        list(formats.read_tsv(path, ncols=3))
