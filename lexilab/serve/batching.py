"""Dynamic batching: one worker thread per served run owns its model.

Requests put their texts on the worker's queue (at most ``max_batch`` per job; a bigger request
is cut into several jobs) and wait on a future, so the event loop never runs the model. Each
time the model is free, the worker takes every job waiting — up to ``max_batch`` texts — and
runs them as one ``Predictor.predict`` call: concurrent requests share encoder passes (the
dynamic batching of serving systems such as Clipper, Crankshaw et al., NSDI 2017), and only
this thread ever touches the model, so concurrent requests are safe.
"""
from __future__ import annotations

import queue
import threading
from concurrent.futures import Future
from dataclasses import dataclass, field

_STOP = object()


@dataclass
class Job:
    texts: list[str]
    tasks: frozenset[str] | None  # None: every task of the run
    top_k: int
    future: Future = field(default_factory=Future)


class BatchWorker:
    def __init__(self, predictor, max_batch: int, name: str = "run"):
        self.predictor = predictor
        self.max_batch = max_batch
        self.model_lock = threading.Lock()  # held while the model runs (tests hold it to queue jobs)
        self.received = 0    # texts submitted (by the event loop only)
        self.passes = 0      # predict calls made
        self.texts = 0       # texts predicted
        self.largest = 0     # most texts in one call
        self._queue: queue.Queue = queue.Queue()
        self._carry: Job | None = None
        self._thread = threading.Thread(target=self._loop, name=f"lexilab-serve-{name}", daemon=True)
        self._thread.start()

    def submit(self, texts: list[str], tasks: frozenset[str] | None, top_k: int) -> list[Future]:
        """Queue ``texts``; one future per job of at most ``max_batch`` texts, in order."""
        jobs = [Job(texts[i:i + self.max_batch], tasks, top_k) for i in range(0, len(texts), self.max_batch)]
        self.received += len(texts)
        for job in jobs:
            self._queue.put(job)
        return [job.future for job in jobs]

    def stats(self) -> dict[str, int]:
        return {"received": self.received, "passes": self.passes, "texts": self.texts, "largest_batch": self.largest,
                "queued_jobs": self._queue.qsize()}

    def close(self, timeout: float = 10.0) -> None:
        self._queue.put(_STOP)
        self._thread.join(timeout)

    def _loop(self) -> None:
        while True:
            first = self._carry if self._carry is not None else self._queue.get()
            self._carry = None
            if first is _STOP:
                return
            with self.model_lock:
                # gather what waits now, so requests that queued during the last pass share this one
                batch, size = [first], len(first.texts)
                while True:
                    try:
                        job = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if job is _STOP or size + len(job.texts) > self.max_batch:
                        self._carry = job
                        break
                    batch.append(job)
                    size += len(job.texts)
                self._run([job for job in batch if job.future.set_running_or_notify_cancel()])

    def _run(self, batch: list[Job]) -> None:
        if not batch:
            return
        texts = [text for job in batch for text in job.texts]
        wanted = None if any(job.tasks is None for job in batch) else sorted(set().union(*(j.tasks for j in batch)))
        try:
            rows = self.predictor.predict(texts, top_k=max(job.top_k for job in batch), tasks=wanted)
        except Exception as err:  # the requests fail, the worker lives on
            for job in batch:
                job.future.set_exception(err)
            return
        self.passes += 1
        self.texts += len(texts)
        self.largest = max(self.largest, len(texts))
        start = 0
        for job in batch:
            mine = rows[start:start + len(job.texts)]
            start += len(job.texts)
            job.future.set_result([_trim(row, job.tasks, job.top_k) for row in mine])


def _trim(row: dict, tasks: frozenset[str] | None, top_k: int) -> dict:
    """A job's own view of a shared pass: its tasks, its top-k (the pass used the largest k)."""
    out = {}
    for name, value in row.items():
        if tasks is not None and name not in tasks:
            continue
        out[name] = {**value, "top": value["top"][:top_k]} if "top" in value else value
    return out
