"""Fixtures for the data tests: cached loads of the named datasets and a local HTTP server."""
from __future__ import annotations

import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from lexilab.data import load_dataset

_CACHE: dict[str, object] = {}


@pytest.fixture(scope="session")
def load(shared_data: Path):
    """``load(name)`` → the dataset under default options, loaded once per session."""

    def get(name: str):
        if name not in _CACHE:
            _CACHE[name] = load_dataset(name, shared_data)
        return _CACHE[name]

    return get


def _source_table(path: Path) -> dict[str, dict]:
    out = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 3 and re.fullmatch(r"[0-9a-f]{64}", cells[-1]):
            out[cells[0]] = {"bytes": int(cells[1].replace(",", "")), "sha256": cells[-1]}
    return out


@pytest.fixture(scope="session")
def source_table():
    """``source_table(SOURCE.md path)`` → {file: {bytes, sha256}} from its ``| file | bytes | ... |`` table."""
    return _source_table


class Server:
    """A threaded HTTP server on 127.0.0.1 (random free port) answering from ``routes``.

    ``routes`` maps a URL path to bytes (200, Range requests honoured) or to an int status.
    ``fail_once`` holds paths whose first request gets a 503. ``log`` records (path, Range).
    """

    def __init__(self) -> None:
        self.routes: dict[str, bytes | int] = {}
        self.fail_once: set[str] = set()
        self.log: list[tuple[str, str | None]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # keep test output quiet
                pass

            def do_GET(self) -> None:  # noqa: N802 (http.server API)
                path = self.path.split("?", 1)[0]
                outer.log.append((path, self.headers.get("Range")))
                if path in outer.fail_once:
                    outer.fail_once.discard(path)
                    self.send_error(503, "try again")
                    return
                body = outer.routes.get(path, 404)
                if isinstance(body, int):
                    self.send_error(body)
                    return
                start = 0
                match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
                if match and int(match.group(1)) < len(body):
                    start = int(match.group(1))
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(body) - start))
                self.end_headers()
                self.wfile.write(body[start:])

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def serve_tree(self, prefix: str, folder: Path) -> None:
        """Serve every file under ``folder`` at ``<prefix>/<relative path>``."""
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                self.routes[f"{prefix}/{path.relative_to(folder).as_posix()}"] = path.read_bytes()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    srv = Server()
    yield srv
    srv.close()
