"""Robust readers for the file formats the datasets ship in: TSV, CSV, JSONL (plain or gzip)
and members of tar.gz archives.

Every reader yields ``(line_number, record)`` so that a bad record is reported as
``<file>: line <n>: <what is wrong>`` (one line, :class:`LexilabError`). Line numbers are
1-based physical lines where the record *starts* (a quoted CSV field may span lines).
"""
from __future__ import annotations

import csv
import gzip
import json
import tarfile
from pathlib import Path
from typing import Iterator

from lexilab.errors import LexilabError

FORMATS = ("jsonl", "csv", "tsv")


def guess_format(path: str | Path) -> str:
    """``jsonl`` | ``csv`` | ``tsv`` from the file name (``.gz`` is looked through)."""
    name = Path(path).name.lower()
    if name.endswith(".gz"):
        name = name[:-3]
    for suffix, fmt in ((".jsonl", "jsonl"), (".json", "jsonl"), (".ndjson", "jsonl"),
                        (".csv", "csv"), (".tsv", "tsv"), (".tab", "tsv")):
        if name.endswith(suffix):
            return fmt
    raise LexilabError(f"{path}: cannot tell the format from the file name; give format: jsonl|csv|tsv")


def _open_binary(path: Path):
    if not path.is_file():
        raise LexilabError(f"{path}: file not found")
    return gzip.open(path, "rb") if path.name.endswith(".gz") else open(path, "rb")


def _decoded_lines(path: Path, encoding: str) -> Iterator[str]:
    """Lines decoded one at a time, so a decoding error names its exact line."""
    with _open_binary(path) as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                yield raw.decode(encoding)
            except UnicodeDecodeError as err:
                raise LexilabError(f"{path}: line {number}: not {encoding} text ({err.reason})") from None


def _delimited(path: Path, delimiter: str, encoding: str) -> Iterator[tuple[int, list[str]]]:
    reader = csv.reader(_decoded_lines(path, encoding), delimiter=delimiter, quotechar='"', strict=True)
    start = 1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as err:
            raise LexilabError(f"{path}: line {reader.line_num}: malformed row ({err})") from None
        yield start, row
        start = reader.line_num + 1


def read_delimited(path: str | Path, delimiter: str, *, ncols: int | None = None,
                   header: bool = False, encoding: str = "utf-8") -> Iterator[tuple[int, list[str] | dict]]:
    """Rows of a TSV/CSV file (csv module, ``"`` quoting with doubled inner quotes).

    ``header=True`` yields dicts keyed by the header; a row whose field count differs from the
    header's (or from ``ncols``) is an error naming the file and line. Blank lines are skipped.
    """
    path = Path(path)
    names: list[str] | None = None
    for line, row in _delimited(path, delimiter, encoding):
        if not row or (len(row) == 1 and not row[0].strip()):
            continue  # blank line
        if header and names is None:
            names = [c.strip() for c in row]
            if len(set(names)) != len(names):
                raise LexilabError(f"{path}: line {line}: duplicate column names in header {names}")
            continue
        want = len(names) if names is not None else ncols
        if want is not None and len(row) != want:
            raise LexilabError(f"{path}: line {line}: expected {want} fields, found {len(row)}")
        yield line, (dict(zip(names, row)) if names is not None else row)
    if header and names is None:
        raise LexilabError(f"{path}: line 1: empty file (no header row)")


def read_tsv(path: str | Path, **kwargs) -> Iterator[tuple[int, list[str] | dict]]:
    return read_delimited(path, "\t", **kwargs)


def read_csv(path: str | Path, **kwargs) -> Iterator[tuple[int, list[str] | dict]]:
    return read_delimited(path, ",", **kwargs)


def read_jsonl(path: str | Path, encoding: str = "utf-8") -> Iterator[tuple[int, dict]]:
    """Objects of a JSON-lines file (``.gz`` allowed); blank lines skipped; each line an object."""
    path = Path(path)
    with _open_binary(path) as handle:
        line = 0
        while True:
            try:
                raw = handle.readline()
            except (OSError, EOFError) as err:  # truncated / corrupt gzip stream
                raise LexilabError(f"{path}: line {line + 1}: cannot read ({err})") from None
            if not raw:
                return
            line += 1
            try:
                text = raw.decode(encoding)
            except UnicodeDecodeError as err:
                raise LexilabError(f"{path}: line {line}: not {encoding} text ({err.reason})") from None
            if not text.strip():
                continue
            try:
                record = json.loads(text)
            except json.JSONDecodeError as err:
                raise LexilabError(f"{path}: line {line}: invalid JSON ({err.msg} at column {err.colno})") from None
            if not isinstance(record, dict):
                raise LexilabError(f"{path}: line {line}: expected a JSON object, found {type(record).__name__}")
            yield line, record


def read_records(path: str | Path, fmt: str | None = None) -> Iterator[tuple[int, dict]]:
    """Dict records of a JSONL, or a CSV/TSV with a header row."""
    fmt = fmt or guess_format(path)
    if fmt == "jsonl":
        return read_jsonl(path)
    if fmt == "csv":
        return read_csv(path, header=True)
    if fmt == "tsv":
        return read_tsv(path, header=True)
    raise LexilabError(f"{path}: format {fmt!r} is not one of {', '.join(FORMATS)}")


def iter_tar_members(path: str | Path) -> Iterator[tuple[str, bytes]]:
    """``(member name, content)`` of every regular file in a (gzip) tar archive, in archive order."""
    path = Path(path)
    if not path.is_file():
        raise LexilabError(f"{path}: file not found")
    try:
        with tarfile.open(path, "r:*") as archive:
            for member in archive:
                if not member.isfile():
                    continue
                handle = archive.extractfile(member)
                yield member.name, handle.read() if handle is not None else b""
    except (tarfile.TarError, OSError, EOFError) as err:
        raise LexilabError(f"{path}: not a readable tar archive ({err})") from None
