"""Download the public originals of a dataset's files, verified against the manifest.

``fetch(name, to)`` gets every file that dataset (or data folder, e.g. ``flan_t5_tokenizer``)
needs from the upstream URL in ``manifests/files.json`` — the repository and commit named in
each SOURCE.md — or, with ``base_url``, from a mirror laid out like the data root
(``<base_url>/<folder>/<file>``). Each download goes to ``<file>.part`` (resumed with an HTTP
Range request when a partial file exists), is retried on network errors and 5xx answers,
and is moved into place (atomic rename) only after its sha256 matches the manifest. Files
already present and valid are left alone. SumPubMed has no single upstream file: its recipe
downloads the 4,500 per-document files at the pinned commit and packs them the same way.
"""
from __future__ import annotations

import gzip
import io
import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

from lexilab.data import manifests
from lexilab.errors import LexilabError

USER_AGENT = "lexilab-fetch/0.1 (python urllib)"
_PERMANENT = {400, 401, 403, 404, 405, 410, 451}
Log = Callable[[str], None]


def targets(name: str) -> list[str]:
    """Files (relative to the root) for a dataset name or a data folder name."""
    from lexilab.data.registry import get_entry  # lazy: importing sources needs the manifests

    table = manifests.file_table()
    folder = sorted(rel for rel in table if rel.split("/", 1)[0] == name)
    if folder:
        return folder
    entry = get_entry(name)  # unknown names: one-line error with a suggestion
    if not entry.files:
        raise LexilabError(f"dataset {name!r} reads no pinned files (nothing to fetch)")
    return list(entry.files)


def rewrite(url: str, url_map: dict[str, str] | None) -> str:
    """Replace the longest matching URL prefix (institutional mirrors, tests)."""
    for prefix in sorted(url_map or {}, key=len, reverse=True):
        if url.startswith(prefix):
            return url_map[prefix] + url[len(prefix):]
    return url


def _open(url: str, timeout: float, offset: int = 0):
    headers = {"User-Agent": USER_AGENT}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)


def _retrying(url: str, what: str, attempt_fn, retries: int, backoff: float):
    """Run ``attempt_fn()``; retry on transient errors; one-line errors otherwise."""
    last: Exception | None = None
    for attempt in range(retries + 1):
        try:
            return attempt_fn()
        except urllib.error.HTTPError as err:
            if err.code in _PERMANENT:
                raise LexilabError(f"{url}: HTTP {err.code} {err.reason} (while fetching {what})") from None
            last = err
        except (urllib.error.URLError, OSError, EOFError) as err:  # refused, reset, timeout, short read
            last = err
        if attempt < retries:
            time.sleep(backoff * 2**attempt)
    reason = getattr(last, "reason", None) or last
    raise LexilabError(f"{url}: download failed after {retries + 1} attempts ({reason}) (while fetching {what})")


def download(url: str, dest: Path, what: str, *, retries: int = 3, backoff: float = 1.0,
             timeout: float = 60.0) -> Path:
    """Fetch ``url`` into ``dest`` + ``.part``, resuming a partial file; returns the .part path."""
    part = dest.with_name(dest.name + ".part")
    part.parent.mkdir(parents=True, exist_ok=True)

    def attempt() -> Path:
        offset = part.stat().st_size if part.exists() else 0
        try:
            response = _open(url, timeout, offset)
        except urllib.error.HTTPError as err:
            if err.code == 416 and offset:  # nothing left past our offset: start over
                part.unlink()
                raise urllib.error.URLError("range not satisfiable; restarting") from None
            raise
        with response:
            resumed = offset and response.status == 206 and \
                response.headers.get("Content-Range", "").startswith(f"bytes {offset}-")
            with open(part, "ab" if resumed else "wb") as handle:
                while True:
                    block = response.read(1 << 16)
                    if not block:
                        break
                    handle.write(block)
                handle.flush()
                os.fsync(handle.fileno())
            length = response.headers.get("Content-Length")
            if length is not None and part.stat().st_size != (offset if resumed else 0) + int(length):
                raise EOFError(f"connection closed after {part.stat().st_size} bytes")
        return part

    return _retrying(url, what, attempt, retries, backoff)


def _place(rel: str, part: Path, dest: Path, url: str) -> None:
    """Move ``part`` to ``dest`` if the manifest accepts it; otherwise delete it and fail."""
    if manifests.accepted(rel, part) is None:
        actual = manifests.sha256_file(part)
        part.unlink()
        want = manifests.file_table()[rel]["sha256"]
        raise LexilabError(f"{url}: sha256 {actual[:16]}… differs from the manifest's {want[:16]}… "
                           f"for {rel}; the file was not placed")
    os.replace(part, dest)


def _fetch_plain(rel: str, url: str, dest: Path, log: Log, **kw) -> None:
    part = dest.with_name(dest.name + ".part")
    resumed = part.exists()
    log(f"  {rel} ← {url}{' (resuming)' if resumed else ''}")
    download(url, dest, rel, **kw)
    if resumed and manifests.accepted(rel, part) is None:
        part.unlink()  # a stale partial file from elsewhere: one clean retry before failing
        log(f"  {rel}: resumed file did not verify; downloading again from the start")
        download(url, dest, rel, **kw)
    _place(rel, part, dest, url)


def _fetch_sumpubmed(rel: str, build: dict, dest: Path, log: Log, url_map, workers: int,
                     retries: int, backoff: float, timeout: float) -> None:
    """Recipe ``sumpubmed_parts``: per-document files → one gzip JSON line per document."""
    base = rewrite(build["base"], url_map)
    count = int(build["count"])
    parts = {"text": "text/text_{i}.txt", "abstract": "abstract/abstract_{i}.txt",
             "shorter_abstract": "shorter_abstract/abst_{i}.txt"}
    log(f"  {rel} ← {count} × {len(parts)} files under {base}")

    def get(job: tuple[int, str]) -> str:
        i, key = job
        url = base + parts[key].format(i=i)

        def attempt() -> str:
            with _open(url, timeout) as response:
                return response.read().decode("utf-8")

        return _retrying(url, rel, attempt, retries, backoff)

    jobs = [(i, key) for i in range(1, count + 1) for key in parts]
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        texts = list(pool.map(get, jobs))
    lines = []
    for n, i in enumerate(range(1, count + 1)):
        record = {"id": i, **{key: texts[n * len(parts) + k] for k, key in enumerate(parts)}}
        lines.append(json.dumps(record, ensure_ascii=False) + "\n")
    buffer = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buffer, mtime=0) as handle:
        handle.write("".join(lines).encode("utf-8"))
    part = dest.with_name(dest.name + ".part")
    part.parent.mkdir(parents=True, exist_ok=True)
    part.write_bytes(buffer.getvalue())
    _place(rel, part, dest, base)


def fetch(name: str, to: str | Path, *, base_url: str | None = None, url_map: dict[str, str] | None = None,
          retries: int = 3, backoff: float = 1.0, timeout: float = 60.0, workers: int = 8,
          log: Log | None = None) -> list[Path]:
    """Download the files of dataset/folder ``name`` under ``to``; returns their paths."""
    log = log or (lambda message: None)
    root = Path(to)
    table = manifests.file_table()
    done = []
    for rel in targets(name):
        dest = root / rel
        if dest.is_file() and manifests.accepted(rel, dest) is not None:
            log(f"  {rel}: present and verified")
            done.append(dest)
            continue
        entry = table[rel]
        kw = {"retries": retries, "backoff": backoff, "timeout": timeout}
        if base_url:
            url = base_url.rstrip("/") + "/" + urllib.parse.quote(rel)
            _fetch_plain(rel, url, dest, log, **kw)
        elif "build" in entry:
            if entry["build"].get("recipe") != "sumpubmed_parts":
                raise LexilabError(f"{manifests.MANIFEST_DIR / 'files.json'}: {rel}: unknown recipe {entry['build']!r}")
            _fetch_sumpubmed(rel, entry["build"], dest, log, url_map, workers, **kw)
        else:
            _fetch_plain(rel, rewrite(entry["url"], url_map), dest, log, **kw)
        done.append(dest)
    return done
