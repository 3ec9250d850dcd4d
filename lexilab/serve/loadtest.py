"""A real `serve` process on localhost and concurrent clients against it.

Used by ``benchmarks/serve_latency.py`` and the live-server tests:

    with serve_process([run_dir], "--max-batch", "16") as server:   # python -m lexilab serve ... --port 0
        report = run_clients(server.url, clients=8, requests=25)
    report.answered, report.lost, report.percentile(50), report.percentile(95)
"""
from __future__ import annotations

import os
import selectors
import signal
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import httpx
import numpy as np

WORDS = "red blue green dog cat horse north south table chair garden road cold story bread".split()


@dataclass
class LiveServer:
    url: str
    pid: int


@contextmanager
def serve_process(run_dirs: list, *options: str, timeout: float = 180.0,
                  log: str | os.PathLike | None = None) -> Iterator[LiveServer]:
    """Start ``python -m lexilab serve RUN_DIR... --port 0``, wait until /health says ready,
    and stop the process by its PID (SIGTERM, then SIGKILL) when the block ends."""
    stderr = open(log, "w") if log else subprocess.DEVNULL  # noqa: SIM115 (closed below)
    proc = subprocess.Popen([sys.executable, "-m", "lexilab", "serve", *map(str, run_dirs), "--port", "0", *options],
                            stdout=subprocess.PIPE, stderr=stderr, text=True)
    try:
        url = _announced_url(proc, timeout)
        deadline = time.time() + timeout
        while not _healthy(url):
            if proc.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"lexilab serve did not become ready (exit {proc.poll()}){_tail(log)}")
            time.sleep(0.2)
        yield LiveServer(url, proc.pid)
    finally:
        stop(proc)
        if log:
            stderr.close()


def stop(proc: subprocess.Popen, grace: float = 20.0) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)  # uvicorn shuts down cleanly on SIGTERM
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
    if proc.stdout:
        proc.stdout.close()


def _announced_url(proc: subprocess.Popen, timeout: float) -> str:
    """The first stdout line is ``lexilab serve: http://HOST:PORT/ — ...`` (the port it bound)."""
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        if not sel.select(timeout):
            raise RuntimeError(f"lexilab serve printed no address in {timeout:.0f} s")
    line = proc.stdout.readline()
    if not line.startswith("lexilab serve: http"):
        proc.wait(timeout)
        raise RuntimeError(f"lexilab serve did not start (exit {proc.returncode}): {line.strip()!r}")
    return line.split()[2].rstrip("/")


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def _tail(log) -> str:
    return ": " + Path(log).read_text()[-2000:].strip() if log and Path(log).exists() else ""


@dataclass
class LoadReport:
    sent: int = 0
    answered: int = 0                  # 200 with one result per text sent, for the text sent
    failures: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)  # seconds, answered requests
    seconds: float = 0.0

    @property
    def lost(self) -> int:
        return self.sent - self.answered

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.latencies, q)) if self.latencies else float("nan")


def client_text(client: int, request: int) -> str:
    """A distinct text per (client, request), so a mixed-up answer is caught."""
    picks = [WORDS[(client * 7 + request * 3 + k) % len(WORDS)] for k in range(6)]
    return " ".join(picks + [f"c{client}r{request}"])


def run_clients(url: str, clients: int = 8, requests: int = 25, texts_per_request: int = 1,
                timeout: float = 120.0) -> LoadReport:
    """``clients`` threads, each sending ``requests`` POST /predict one after another."""
    report, lock = LoadReport(), threading.Lock()

    def client(index: int) -> None:
        with httpx.Client(base_url=url, timeout=timeout) as http:
            for r in range(requests):
                texts = [client_text(index, r * texts_per_request + k) for k in range(texts_per_request)]
                started = time.perf_counter()
                try:
                    response = http.post("/predict", json={"texts": texts})
                    ok = response.status_code == 200 and [x["text"] for x in response.json()["results"]] == texts
                    problem = None if ok else f"HTTP {response.status_code}: {response.text[:200]}"
                except httpx.HTTPError as err:
                    problem = f"{type(err).__name__}: {err}"
                elapsed = time.perf_counter() - started
                with lock:
                    report.sent += 1
                    if problem:
                        report.failures.append(problem)
                    else:
                        report.answered += 1
                        report.latencies.append(elapsed)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    report.seconds = time.perf_counter() - start
    return report
