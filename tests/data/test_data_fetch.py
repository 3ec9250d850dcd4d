"""`fetch` over real HTTP against a local server (127.0.0.1, random port) serving shared/data."""
from __future__ import annotations

import gzip
import hashlib
import json

import pytest

from lexilab.data import fetch as fetch_mod
from lexilab.data import load_dataset, manifests
from lexilab.errors import LexilabError

GH = "https://raw.githubusercontent.com"


def test_mirror_fetch_verifies_places_and_loads(server, shared_data, tmp_path):
    server.serve_tree("/mirror/goemotions", shared_data / "goemotions")
    messages = []
    paths = fetch_mod.fetch("goemotions", tmp_path, base_url=server.url + "/mirror/", log=messages.append)
    assert sorted(p.name for p in paths) == ["dev.tsv", "emotions.txt", "test.tsv", "train.tsv"]
    for path in paths:
        assert path.read_bytes() == (shared_data / "goemotions" / path.name).read_bytes()
    assert not list(tmp_path.rglob("*.part"))
    ds = load_dataset("goemotions", tmp_path)
    assert len(ds.splits["test"]) == 5427
    requests = len(server.log)
    fetch_mod.fetch("goemotions", tmp_path, base_url=server.url + "/mirror", log=messages.append)
    assert len(server.log) == requests and messages[-1].endswith("present and verified")


def test_corrupted_download_is_not_placed(server, shared_data, tmp_path):
    data = (shared_data / "ag_news" / "test.csv").read_bytes()
    server.routes["/m/ag_news/test.csv"] = data[:1000] + b"X" + data[1001:]
    with pytest.raises(LexilabError) as err:
        fetch_mod.fetch("ag_news", tmp_path, base_url=server.url + "/m", backoff=0)
    message = str(err.value)
    assert "/m/ag_news/test.csv: sha256 " in message and "differs from the manifest's 72b844642f92fb74" in message
    assert "the file was not placed" in message and "\n" not in message
    assert not (tmp_path / "ag_news" / "test.csv").exists() and not list(tmp_path.rglob("*.part"))


def test_404_is_a_clear_error(server, tmp_path):
    with pytest.raises(LexilabError, match=r"/m/ag_news/test\.csv: HTTP 404 Not Found \(while fetching ag_news/test\.csv\)"):
        fetch_mod.fetch("ag_news", tmp_path, base_url=server.url + "/m", backoff=0)
    with pytest.raises(LexilabError, match="unknown dataset 'ag_new'"):
        fetch_mod.fetch("ag_new", tmp_path, base_url=server.url)


def test_transient_error_is_retried(server, shared_data, tmp_path):
    server.serve_tree("/m/ag_news", shared_data / "ag_news")
    server.fail_once.add("/m/ag_news/test.csv")
    fetch_mod.fetch("ag_news", tmp_path, base_url=server.url + "/m", backoff=0)
    assert [p for p, _ in server.log].count("/m/ag_news/test.csv") == 2
    assert (tmp_path / "ag_news" / "test.csv").read_bytes() == (shared_data / "ag_news" / "test.csv").read_bytes()
    server.fail_once.add("/m/ag_news/test.csv")
    (tmp_path / "ag_news" / "test.csv").unlink()
    with pytest.raises(LexilabError, match=r"download failed after 1 attempts"):
        fetch_mod.fetch("ag_news", tmp_path, base_url=server.url + "/m", retries=0, backoff=0)


def test_partial_download_is_resumed(server, shared_data, tmp_path):
    data = (shared_data / "ag_news" / "test.csv").read_bytes()
    server.routes["/m/ag_news/test.csv"] = data
    (tmp_path / "ag_news").mkdir()
    (tmp_path / "ag_news" / "test.csv.part").write_bytes(data[:700000])
    fetch_mod.fetch("ag_news", tmp_path, base_url=server.url + "/m", backoff=0)
    assert server.log == [("/m/ag_news/test.csv", "bytes=700000-")]
    assert (tmp_path / "ag_news" / "test.csv").read_bytes() == data


def test_stale_partial_file_is_restarted(server, shared_data, tmp_path):
    data = (shared_data / "ag_news" / "test.csv").read_bytes()
    server.routes["/m/ag_news/test.csv"] = data
    (tmp_path / "ag_news").mkdir()
    (tmp_path / "ag_news" / "test.csv.part").write_bytes(b"garbage from another file")
    fetch_mod.fetch("ag_news", tmp_path, base_url=server.url + "/m", backoff=0)
    assert [r for _, r in server.log] == ["bytes=25-", None]
    assert (tmp_path / "ag_news" / "test.csv").read_bytes() == data


def test_upstream_urls_with_prefix_rewrite(server, shared_data, tmp_path):
    table = manifests.file_table()
    for rel in fetch_mod.targets("leximind_discovery"):
        assert table[rel]["url"].startswith(GH + "/OliverPerrin/LexiMind/7aa03a09ba31385c63a80397c58b3a43480c1ff5/")
        server.routes[table[rel]["url"].replace(GH, "/gh")] = (shared_data / rel).read_bytes()
    paths = fetch_mod.fetch("leximind_discovery", tmp_path, url_map={GH: server.url + "/gh"})
    assert len(paths) == 3 and all(p.read_bytes() == (shared_data / p.relative_to(tmp_path)).read_bytes() for p in paths)


def _serve_sumpubmed_parts(server, shared_data, count):
    build = manifests.file_table()["sumpubmed/sumpubmed_first1500.jsonl.gz"]["build"]
    prefix = build["base"].replace(GH, "/gh")
    with gzip.open(shared_data / "sumpubmed" / "sumpubmed_first1500.jsonl.gz", "rb") as handle:
        lines = [handle.readline().rstrip(b"\n") for _ in range(count)]
    for line in lines:
        record = json.loads(line)
        i = record["id"]
        server.routes[f"{prefix}text/text_{i}.txt"] = record["text"].encode("utf-8")
        server.routes[f"{prefix}abstract/abstract_{i}.txt"] = record["abstract"].encode("utf-8")
        server.routes[f"{prefix}shorter_abstract/abst_{i}.txt"] = record["shorter_abstract"].encode("utf-8")
    return lines


def test_sumpubmed_recipe_packs_parts(server, shared_data, tmp_path, monkeypatch):
    lines = _serve_sumpubmed_parts(server, shared_data, 12)
    rel = "sumpubmed/sumpubmed_first1500.jsonl.gz"
    table = json.loads(json.dumps(manifests.file_table()))
    content = b"".join(line + b"\n" for line in lines)
    table[rel].update(sha256="0" * 64, content_sha256=hashlib.sha256(content).hexdigest())
    table[rel]["build"]["count"] = 12
    monkeypatch.setattr(manifests, "file_table", lambda: table)
    (path,) = fetch_mod.fetch("sumpubmed", tmp_path, url_map={GH: server.url + "/gh"}, workers=4)
    assert gzip.decompress(path.read_bytes()) == content


@pytest.mark.slow
def test_sumpubmed_recipe_reproduces_the_pinned_content(server, shared_data, tmp_path):
    _serve_sumpubmed_parts(server, shared_data, 1500)
    (path,) = fetch_mod.fetch("sumpubmed", tmp_path, url_map={GH: server.url + "/gh"})
    assert manifests.accepted("sumpubmed/sumpubmed_first1500.jsonl.gz", path) is not None
    assert len(load_dataset("sumpubmed", tmp_path).splits["test"]) == manifests.dataset_manifest("sumpubmed")["counts"]["test"]
