"""The FastAPI app: `/health`, `/runs`, `/predict`, the page at `/` and its static files.

Weights load in a background thread once the server is up, so `/health` can say ``loading``
(503) until every run's model is in memory, then ``ready``. The model runs on one
:class:`~lexilab.serve.batching.BatchWorker` thread per run, never on the event loop.
"""
from __future__ import annotations

import asyncio
import threading
import time
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline

from lexilab.serve.batching import BatchWorker
from lexilab.serve.runs import ServedRun, describe, example_texts
from lexilab.serve.schemas import PredictRequest, PredictResponse, Problem, RunsResponse

STATIC_DIR = Path(__file__).parent / "static"
BATCHES_PER_REQUEST = 16  # a request may hold up to 16 × --max-batch texts
BODY_SLACK = 64 * 1024     # bytes of JSON around the texts (keys, runs, tasks)


class InputError(Exception):
    def __init__(self, field: str, message: str, status: int = 422):
        super().__init__(f"{field}: {message}")
        self.field, self.status = field, status


class Service:
    """The served runs, their predictors and workers, and whether they are loaded yet."""

    def __init__(self, runs: list[ServedRun], device: str = "auto", max_batch: int = 64, max_chars: int = 20000,
                 announce=None):
        self.runs = {run.name: run for run in runs}
        self.device, self.max_batch, self.max_chars = device, max_batch, max_chars
        self.max_texts = max_batch * BATCHES_PER_REQUEST
        # a JSON string escapes a character in at most 6 bytes (\uXXXX); larger bodies are refused unread
        self.max_body = self.max_texts * (6 * max_chars + 4) + BODY_SLACK
        self.announce = announce or (lambda line: None)
        self.state, self.error = "loading", None
        self.workers: dict[str, BatchWorker] = {}
        self.descriptions: dict[str, dict] = {}
        self.ready = threading.Event()

    def load(self) -> None:
        from lexilab.inference import load_predictor

        started = time.time()
        try:
            for name, run in self.runs.items():
                predictor = load_predictor(run.path, self.device)
                thresholds = {t: predictor.thresholds_for(t) for t, task in predictor.tasks.items()
                              if task.kind == "multilabel"}
                self.descriptions[name] = {**describe(run, thresholds, str(predictor.device)),
                                           "examples": example_texts(run, predictor.config)}
                self.workers[name] = BatchWorker(predictor, self.max_batch, name)
        except Exception as err:  # the server stays up and says why in /health
            first_line = str(err).splitlines()[0] if str(err) else ""
            self.state, self.error = "error", f"{name}: {type(err).__name__}: {first_line}"
            self.announce(f"lexilab serve: error: {self.error}")
        else:
            self.state = "ready"
            self.announce(f"lexilab serve: ready ({len(self.runs)} run(s) loaded in {time.time() - started:.1f} s)")
        self.ready.set()

    def close(self) -> None:
        for worker in self.workers.values():
            worker.close()

    def require_ready(self) -> None:
        if self.state != "ready":
            raise InputError("server", f"not ready ({self.state}{': ' + self.error if self.error else ''})", 503)

    def check(self, body: PredictRequest) -> tuple[list[str], dict[str, frozenset[str] | None]]:
        """The runs to ask and each run's tasks; InputError naming the first bad field."""
        if not body.texts:
            raise InputError("texts", "must hold at least one text")
        if len(body.texts) > self.max_texts:
            raise InputError("texts", f"{len(body.texts)} texts; at most {self.max_texts} per request "
                                      f"({BATCHES_PER_REQUEST} × --max-batch {self.max_batch})", 413)
        for i, text in enumerate(body.texts):
            if not text.strip():
                raise InputError(f"texts[{i}]", "empty text")
            if len(text) > self.max_chars:
                raise InputError(f"texts[{i}]", f"{len(text)} characters; at most {self.max_chars} (--max-chars)", 413)
        names = list(self.runs) if body.runs is None else body.runs
        if not names:
            raise InputError("runs", "must name at least one run (or be left out for every run)")
        for i, name in enumerate(names):
            if name not in self.runs:
                raise InputError(f"runs[{i}]", f"unknown run {name!r} (served: {', '.join(self.runs)})")
            if names.index(name) != i:
                raise InputError(f"runs[{i}]", f"run {name!r} named twice")
        if body.tasks is None:
            return names, {name: None for name in names}
        if not body.tasks:
            raise InputError("tasks", "must name at least one task (or be left out for every task)")
        offered = {name: set(self.runs[name].info) for name in names}
        for i, task in enumerate(body.tasks):
            if not any(task in tasks for tasks in offered.values()):
                every = sorted(set().union(*offered.values()))
                raise InputError(f"tasks[{i}]", f"unknown task {task!r} (tasks of the runs asked: {', '.join(every)})")
        wanted = set(body.tasks)
        return names, {name: frozenset(wanted & offered[name]) for name in names}


def _field(loc) -> str:
    parts = [p for p in loc if p != "body"]
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "body"


def _validation_problem(err: RequestValidationError) -> tuple[str, str]:
    first = err.errors()[0]
    kind, loc = first.get("type", ""), first.get("loc", ())
    if kind == "json_invalid":
        position = loc[-1] if loc and isinstance(loc[-1], int) else None
        where = f" at character {position}" if position is not None else ""
        return "body", f"malformed JSON{where} ({first.get('ctx', {}).get('error', 'cannot be parsed')})"
    field = _field(loc)
    if kind == "missing":
        return field, "is required"
    if kind == "extra_forbidden":
        return field, "unknown field (fields: texts, runs, tasks, top_k)"
    if kind == "model_attributes_type":
        return "body", "must be a JSON object {\"texts\": [...]}"
    if kind == "string_type":
        return field, "must be a string"
    if kind == "list_type":
        return field, "must be a list of strings"
    return field, first.get("msg", "invalid")


def create_app(runs: list[ServedRun], device: str = "auto", max_batch: int = 64, max_chars: int = 20000,
               announce=None) -> FastAPI:
    """The ASGI app; ``announce(line)`` is told when the weights are loaded (or fail to load)."""
    service = Service(runs, device, max_batch, max_chars, announce)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        threading.Thread(target=service.load, name="lexilab-serve-load", daemon=True).start()
        yield
        service.close()

    # FastAPIOffline serves the Swagger UI assets itself: /docs works without internet.
    app = FastAPIOffline(title="lexilab serve", lifespan=lifespan, redoc_url=None,
                  description="Every task of trained lexilab runs, side by side: summaries, top-k labels with "
                              "probabilities, multi-label sets under each run's calibrated thresholds.")
    app.state.service = service

    @app.middleware("http")
    async def refuse_huge_bodies(request: Request, call_next):
        length = request.headers.get("content-length", "")
        if length.isdigit() and int(length) > service.max_body:
            return JSONResponse({"detail": f"body: {length} bytes; at most {service.max_body} "
                                           f"(--max-chars × texts per request)", "field": "body"}, status_code=413)
        return await call_next(request)

    @app.exception_handler(InputError)
    async def input_error(request: Request, err: InputError):
        return JSONResponse({"detail": str(err), "field": err.field}, status_code=err.status)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, err: RequestValidationError):
        field, message = _validation_problem(err)
        return JSONResponse({"detail": f"{field}: {message}", "field": field}, status_code=422)

    @app.get("/health", responses={503: {"description": "weights still loading, or loading failed"}})
    async def health():
        body = {"status": service.state, "runs": list(service.runs),
                "batching": {name: w.stats() for name, w in service.workers.items()}}
        if service.error:
            body["error"] = service.error
        return JSONResponse(body, status_code=200 if service.state == "ready" else 503)

    @app.get("/runs", response_model=RunsResponse, responses={503: {"model": Problem}})
    async def list_runs():
        service.require_ready()
        return {"runs": [service.descriptions[name] for name in service.runs],
                "limits": {"max_batch": service.max_batch, "max_chars": service.max_chars,
                           "max_texts": service.max_texts}}

    @app.post("/predict", response_model=PredictResponse, response_model_exclude_none=True,
              responses={413: {"model": Problem}, 422: {"model": Problem}, 503: {"model": Problem}})
    async def predict(body: PredictRequest):
        service.require_ready()
        names, tasks = service.check(body)
        futures = {name: service.workers[name].submit(body.texts, tasks[name], body.top_k) for name in names}
        rows = {}
        for name, parts in futures.items():
            chunks = await asyncio.gather(*(asyncio.wrap_future(f) for f in parts))
            rows[name] = [row for chunk in chunks for row in chunk]
        return {"runs": names,
                "results": [{"text": text, "runs": {name: rows[name][i] for name in names}}
                            for i, text in enumerate(body.texts)]}

    @app.get("/", include_in_schema=False)
    async def page():
        return FileResponse(STATIC_DIR / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app
