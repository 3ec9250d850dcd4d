"""The REST API through FastAPI's test client, on a tiny study trained once per session.

The truth the answers are checked against: an independent ``load_predictor(...).predict(...)``,
the run directory's own files (thresholds.json, metrics.json, recorded test predictions) and
the datasets read directly."""
from __future__ import annotations

import re
import threading
import time

import pytest
from fastapi.testclient import TestClient

from lexilab.data import load_dataset
from lexilab.io import read_json, read_jsonl
from lexilab.runner import read_run_config
from lexilab.serve import check_run_dirs, create_app
from lexilab.serve.app import STATIC_DIR

MTL, SOLO = "mtl/seed-0", "topic_only/seed-0"
MAX_BATCH, MAX_CHARS = 4, 200
TEXTS = ["red dog north table chair", "blue cat south house garden", "green horse cold road year"]


def make_app(trained_study, arms=("mtl", "topic_only"), **options):
    return create_app(check_run_dirs([str(trained_study[a]) for a in arms]), device="cpu",
                      max_batch=MAX_BATCH, max_chars=MAX_CHARS, **options)


@pytest.fixture(scope="module")
def client(trained_study):
    app = make_app(trained_study)
    with TestClient(app) as client:
        assert app.state.service.ready.wait(120), "the weights did not load in 120 s"
        yield client


def test_health_is_ready_only_after_the_weights_load(trained_study):
    said = []
    app = make_app(trained_study, arms=("topic_only",), announce=said.append)
    service = app.state.service
    release, load = threading.Event(), service.load
    service.load = lambda: (release.wait(60), load())  # hold the real loading back until we have asked
    with TestClient(app) as client:
        loading = client.get("/health")
        assert loading.status_code == 503 and loading.json()["status"] == "loading"
        assert client.get("/runs").status_code == 503
        refused = client.post("/predict", json={"texts": ["a"]})
        assert refused.status_code == 503 and refused.json()["detail"].startswith("server: not ready")
        release.set()
        assert service.ready.wait(120), "the weights did not load in 120 s"
        health = client.get("/health").json()
        assert health["status"] == "ready" and health["runs"] == [SOLO]
        assert service.workers[SOLO].predictor.model.training is False
    assert len(said) == 1 and re.fullmatch(r"lexilab serve: ready \(1 run\(s\) loaded in [0-9.]+ s\)", said[0])


def test_weights_that_fail_to_load_leave_the_server_up_saying_why(trained_study, tmp_path):
    import shutil

    run = tmp_path / "servetiny" / "topic_only" / "seed-0"
    shutil.copytree(trained_study["topic_only"], run, ignore=shutil.ignore_patterns("last"))
    (run / "checkpoints" / "best" / "model.safetensors").write_bytes(b"not a safetensors file")
    said = []
    app = create_app(check_run_dirs([str(run)]), device="cpu", announce=said.append)  # passes the start checks
    with TestClient(app) as client:
        assert app.state.service.ready.wait(120)
        health = client.get("/health")
        assert health.status_code == 503 and health.json()["status"] == "error"
        assert health.json()["error"].startswith(f"{SOLO}: ") and "\n" not in health.json()["error"]
        refused = client.post("/predict", json={"texts": ["a"]})
        assert refused.status_code == 503 and refused.json()["detail"].startswith("server: not ready (error: ")
    assert said == [f"lexilab serve: error: {health.json()['error']}"]


def test_runs_describe_each_run_from_its_directory(client, trained_study):
    body = client.get("/runs").json()
    assert [r["name"] for r in body["runs"]] == [MTL, SOLO]
    assert body["limits"] == {"max_batch": MAX_BATCH, "max_chars": MAX_CHARS, "max_texts": 16 * MAX_BATCH}
    runs = {r["name"]: r for r in body["runs"]}
    for name, arm in ((MTL, "mtl"), (SOLO, "topic_only")):
        run, path = runs[name], trained_study[arm]
        config, meta = read_run_config(path)
        assert (run["experiment"], run["arm"], run["seed"]) == ("servetiny", arm, 0)
        assert run["config_hash"] == meta["config_hash"] and run["device"] == "cpu"
        assert run["test_metrics"] == read_json(path / "metrics.json")["test"]
        assert set(run["tasks"]) == set(config["tasks"])
        for task, info in run["tasks"].items():
            data = load_dataset(config["tasks"][task]["data"], config["data_root"])
            assert info["kind"] == config["tasks"][task]["kind"]
            assert info["label_names"] == (data.label_names or [])
            # examples: the first texts of the run's recorded test predictions, with references
            ids = [r["id"] for r in read_jsonl(path / "predictions" / "test" / f"{task}.jsonl")][:3]
            rows = {r["id"]: r for r in data.splits["test"]}
            mine = [e for e in run["examples"] if e["task"] == task]
            assert [e["text"] for e in mine] == [rows[i]["text"] for i in ids]
    emotion = runs[MTL]["tasks"]["emotion"]
    tuned = read_json(trained_study["mtl"] / "thresholds.json")["emotion"]
    assert emotion["thresholds"] == dict(zip(emotion["label_names"], tuned))
    generation = runs[MTL]["tasks"]["summary"]["generation"]
    assert generation["num_beams"] == 2 and generation["max_new_tokens"] == 6


def test_predict_equals_load_predictor(client, predictors, trained_study):
    response = client.post("/predict", json={"texts": TEXTS, "top_k": 4})
    assert response.status_code == 200
    body = response.json()
    assert body["runs"] == [MTL, SOLO] and [r["text"] for r in body["results"]] == TEXTS
    for name in (MTL, SOLO):
        expected = predictors[name].predict(TEXTS, top_k=4)
        assert [r["runs"][name] for r in body["results"]] == expected
    # the multi-label set is exactly the labels at or above the calibrated thresholds
    cut = dict(zip(["A", "B", "C", "D"], read_json(trained_study["mtl"] / "thresholds.json")["emotion"]))
    for result in body["results"]:
        emotion = result["runs"][MTL]["emotion"]
        above = {x["label"] for x in emotion["top"] if x["score"] >= cut[x["label"]]}
        assert {x["label"] for x in emotion["labels"]} == above
        assert all(x["threshold"] == cut[x["label"]] for x in emotion["labels"])
        assert result["runs"][MTL]["summary"]["summary"] == result["runs"][MTL]["summary"]["summary"].strip()


def test_runs_and_tasks_select_outputs(client, predictors):
    body = client.post("/predict", json={"texts": TEXTS[:1], "tasks": ["emotion"]}).json()
    assert body["results"][0]["runs"] == {MTL: {"emotion": predictors[MTL].predict(TEXTS[:1])[0]["emotion"]},
                                          SOLO: {}}  # topic_only has no emotion task
    body = client.post("/predict", json={"texts": TEXTS[:1], "runs": [SOLO], "tasks": ["topic"], "top_k": 1}).json()
    assert body["runs"] == [SOLO]
    assert body["results"][0]["runs"] == {SOLO: predictors[SOLO].predict(TEXTS[:1], top_k=1)[0]}


def test_a_large_request_is_cut_into_passes_of_max_batch(client, predictors):
    texts = [f"{t} {i}" for i in range(3) for t in TEXTS]  # 9 texts, --max-batch 4
    before = client.get("/health").json()["batching"][MTL]
    body = client.post("/predict", json={"texts": texts, "runs": [MTL]}).json()
    after = client.get("/health").json()["batching"][MTL]
    assert after["passes"] - before["passes"] == 3 and after["texts"] - before["texts"] == 9
    assert after["largest_batch"] <= MAX_BATCH
    expected = [row for i in range(0, 9, MAX_BATCH) for row in predictors[MTL].predict(texts[i:i + MAX_BATCH])]
    assert [r["runs"][MTL] for r in body["results"]] == expected


def test_waiting_requests_share_one_encoder_pass(client, predictors):
    worker = client.app.state.service.workers[MTL]
    before = worker.stats()["passes"]
    with worker.model_lock:  # the model is busy: three single-text requests queue up meanwhile
        futures = [worker.submit([text], None, 3)[0] for text in TEXTS]
    answers = [f.result(timeout=60)[0] for f in futures]
    assert worker.stats()["passes"] - before == 1  # one pass for all three
    assert answers == predictors[MTL].predict(TEXTS)  # ... and each request got its own rows back


def test_the_event_loop_answers_while_the_model_is_busy(client, predictors):
    worker = client.app.state.service.workers[MTL]
    received, answer = worker.stats()["received"], {}
    with worker.model_lock:  # the model is busy: a predict request waits for it ...
        waiting = threading.Thread(target=lambda: answer.update(r=client.post("/predict", json={"texts": TEXTS[:1]})))
        waiting.start()
        for _ in range(600):
            if worker.stats()["received"] > received:
                break
            time.sleep(0.05)
        assert client.get("/health").status_code == 200  # ... and the server still answers meanwhile
        assert "r" not in answer
    waiting.join(60)
    assert answer["r"].status_code == 200
    assert answer["r"].json()["results"][0]["runs"][MTL] == predictors[MTL].predict(TEXTS[:1])[0]


BAD = [
    ({"texts": []}, 422, "texts"),
    ({"texts": ["fine", 3]}, 422, "texts[1]"),
    ({"texts": "not a list"}, 422, "texts"),
    ({"texts": ["ok", "   "]}, 422, "texts[1]"),
    ({"texts": ["x" * (MAX_CHARS + 1)]}, 413, "texts[0]"),
    ({"texts": ["a"] * (16 * MAX_BATCH + 1)}, 413, "texts"),
    ({"texts": ["a"], "runs": ["nope/seed-0"]}, 422, "runs[0]"),
    ({"texts": ["a"], "runs": [MTL, MTL]}, 422, "runs[1]"),
    ({"texts": ["a"], "runs": []}, 422, "runs"),
    ({"texts": ["a"], "tasks": ["topic", "nope"]}, 422, "tasks[1]"),
    ({"texts": ["a"], "top_k": 0}, 422, "top_k"),
    ({"texts": ["a"], "top_k": "3"}, 422, "top_k"),
    ({"texts": ["a"], "colour": "red"}, 422, "colour"),
    ({}, 422, "texts"),
    ([["a"]], 422, "body"),
]


@pytest.mark.parametrize("payload,status,field", BAD, ids=[f"{b[2]}-{i}" for i, b in enumerate(BAD)])
def test_bad_input_is_one_line_naming_the_field(client, payload, status, field):
    response = client.post("/predict", json=payload)
    assert response.status_code == status, response.text
    body = response.json()
    assert body["field"] == field and body["detail"].startswith(f"{field}: ") and "\n" not in body["detail"]
    assert client.get("/health").status_code == 200


def test_malformed_json_names_the_body(client):
    response = client.post("/predict", content=b'{"texts": ["a"', headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert response.json()["detail"].startswith("body: malformed JSON at character")
    service = client.app.state.service  # a body larger than any valid request is refused unread
    huge = b'{"texts": ["' + b"a" * service.max_body + b'"]}'
    response = client.post("/predict", content=huge, headers={"content-type": "application/json"})
    assert response.status_code == 413 and response.json()["detail"].startswith(f"body: {len(huge)} bytes; at most")
    assert client.get("/health").status_code == 200


def test_page_static_files_and_docs(client):
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert '<script src="/static/app.js">' in page.text and 'href="/static/style.css"' in page.text
    assert client.get("/static/app.js").headers["content-type"].split(";")[0] in ("text/javascript",
                                                                                 "application/javascript")
    assert client.get("/static/style.css").headers["content-type"].startswith("text/css")
    for path in STATIC_DIR.iterdir():  # the page works offline: nothing is fetched from elsewhere
        text = path.read_text()
        assert not re.search(r"https?://|//[a-z0-9-]+\.[a-z]{2,}|@import", text, re.I), path.name
        assert all(url.startswith("/") for url in re.findall(r'(?:src|href)="([^"]*)"', text)), path.name
    schema = client.get("/openapi.json").json()
    assert {"/health", "/runs", "/predict"} <= set(schema["paths"])
    assert "texts" in schema["components"]["schemas"]["PredictRequest"]["properties"]
    docs = client.get("/docs")
    assert docs.status_code == 200 and "swagger-ui-bundle.js" in docs.text
    assert not re.findall(r'(?:src|href)="(https?:[^"]*)"', docs.text), "/docs must not load from a CDN"
    for url in re.findall(r"(?:src|href)=\"(/[^\"]*)\"|url: '(/[^']*)'", docs.text):
        assert client.get(next(u for u in url if u)).status_code == 200


def test_the_page_ships_as_package_data(repo_root):
    import fnmatch
    import tomllib

    patterns = tomllib.loads((repo_root / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    shipped = patterns["lexilab.serve"]
    for path in STATIC_DIR.iterdir():  # an installed (non-editable) lexilab serves the same page
        assert any(fnmatch.fnmatch(f"static/{path.name}", p) for p in shipped), path.name
