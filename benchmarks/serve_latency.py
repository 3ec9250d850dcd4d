"""Latency of `python -m lexilab serve` under concurrent clients, against the model called directly.

Starts a real server on 127.0.0.1 (a free port) for the given run directories, sends
``--clients`` × ``--requests`` POST /predict (one text each, every run, every task) from
concurrent client threads, and prints one JSON line: all answered, none lost, the server healthy
after, p50/p95/max latency, throughput, and how many texts the server's dynamic batching put
in one encoder pass. The reference, measured in the same run: the same texts through
``load_predictor(...).predict([text])`` one at a time in this process (no HTTP, no batching).
Exit status 1 when a request is lost or the server is unhealthy after.

    python -m lexilab run experiments/quickstart.yaml --seeds 1 --results /tmp/bench
    python benchmarks/serve_latency.py /tmp/bench/quickstart/ARM/seed-0 [another finished run ...]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import httpx
import numpy as np

from lexilab.serve.loadtest import client_text, run_clients, serve_process


def direct_reference(run_dirs: list[str], texts: list[str], device: str) -> list[float]:
    """Seconds per text for every run's predictor, called one text at a time, in order."""
    from lexilab.inference import load_predictor

    predictors = [load_predictor(path, device) for path in run_dirs]
    for predictor in predictors:
        predictor.predict(texts[:1])  # warm-up, as the server's first request is not timed either
    seconds = []
    for text in texts:
        start = time.perf_counter()
        for predictor in predictors:
            predictor.predict([text])
        seconds.append(time.perf_counter() - start)
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dirs", nargs="+")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=25, help="per client")
    parser.add_argument("--max-batch", type=int, default=64)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    with serve_process(args.run_dirs, "--max-batch", str(args.max_batch), "--device", args.device) as server:
        run_clients(server.url, clients=1, requests=2)  # warm-up
        before = httpx.get(f"{server.url}/health").json()["batching"]
        report = run_clients(server.url, clients=args.clients, requests=args.requests)
        health = httpx.get(f"{server.url}/health")
        after = health.json()["batching"]
    passes = {name: after[name]["passes"] - before[name]["passes"] for name in after}
    texts = [client_text(c, r) for c in range(args.clients) for r in range(args.requests)]
    direct = direct_reference(args.run_dirs, texts, args.device)
    direct_rps = len(direct) / sum(direct)
    served_rps = report.answered / report.seconds
    print(json.dumps({
        "command": " ".join([os.path.basename(sys.executable), *sys.argv]),
        "device": args.device, "cpu": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
        "omp_threads": os.environ.get("OMP_NUM_THREADS"), "runs": len(args.run_dirs),
        "clients": args.clients, "requests": report.sent, "answered": report.answered, "lost": report.lost,
        "failures": report.failures[:3], "healthy_after": health.status_code == 200,
        "latency_s": {"p50": round(report.percentile(50), 4), "p95": round(report.percentile(95), 4),
                      "max": round(max(report.latencies, default=float("nan")), 4)},
        "served_requests_per_s": round(served_rps, 1),
        "texts_per_encoder_pass": {n: round(report.answered / p, 2) if p else None for n, p in passes.items()},
        "reference_direct_predict_s": {"p50": round(float(np.percentile(direct, 50)), 4),
                                       "p95": round(float(np.percentile(direct, 95)), 4)},
        "reference_direct_requests_per_s": round(direct_rps, 1),
        "throughput_ratio_served_over_direct": round(served_rps / direct_rps, 2),
    }))
    return 0 if report.lost == 0 and health.status_code == 200 else 1


if __name__ == "__main__":
    sys.exit(main())
