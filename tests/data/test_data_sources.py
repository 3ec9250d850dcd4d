"""Every named dataset loads from ../shared/data with the row counts its SOURCE.md states.

Expected numbers come from the SOURCE.md files or from independent readers (pandas, json,
tarfile), never from the loaders under test.
"""
from __future__ import annotations

import json
import re
import tarfile
from collections import Counter

import pandas as pd
import pytest

from lexilab.data import SPLITS, load_dataset
from lexilab.data.sources import arxiv, topics7
from lexilab.errors import LexilabError


def all_rows(ds) -> list[dict]:
    return [ex for split in SPLITS for ex in ds.splits[split]]


def split_of(ds) -> dict[str, str]:
    return {ex["id"]: split for split in SPLITS for ex in ds.splits[split]}


def test_goemotions_counts_labels_and_quoting(load, shared_data):
    ds = load("goemotions")
    assert len(ds.splits["train"]) + len(ds.splits["calibration"]) == 43410
    assert (len(ds.splits["val"]), len(ds.splits["test"])) == (5426, 5427)
    names = (shared_data / "goemotions" / "emotions.txt").read_text().split("\n")
    assert ds.label_names == names and len(names) == 28 and names[27] == "neutral"
    # LexiMind's head order is alphabetical (neutral at 20): same names, mapped by name
    leximind = json.loads((shared_data / "leximind_discovery" / "leximind_labels.json").read_text())["emotion"]
    assert sorted(ds.label_names) == leximind and leximind.index("neutral") == 20
    # an independent reader: pandas with tab separator and default quoting
    by_id = {ex["id"]: ex for ex in all_rows(ds)}
    for fname, split_names in (("train.tsv", {"train", "calibration"}), ("dev.tsv", {"val"}), ("test.tsv", {"test"})):
        frame = pd.read_csv(shared_data / "goemotions" / fname, sep="\t", header=None, dtype=str,
                            keep_default_na=False)
        assert len(frame) == sum(len(ds.splits[s]) for s in split_names)
        for text, ids, cid in frame.itertuples(index=False):
            ex = by_id[cid]
            assert ex["text"] == text
            assert ex["labels"] == [names[int(i)] for i in ids.split(",")]
    assert by_id["eebbqej"]["labels"] == ["neutral"]  # first train row, raw id 27
    multi = Counter(s if s != "calibration" else "train" for s in SPLITS for ex in ds.splits[s] if len(ex["labels"]) > 1)
    assert multi == {"train": 7102, "val": 878, "test": 837}  # SOURCE.md


def test_scitldr_targets_and_references(load, shared_data):
    ds = load("scitldr")
    assert len(ds.splits["train"]) + len(ds.splits["calibration"]) == 1992
    assert (len(ds.splits["val"]), len(ds.splits["test"])) == (619, 618)
    raw = [json.loads(line) for line in open(shared_data / "scitldr" / "SciTLDR-A_test.jsonl", encoding="utf-8")]
    by_id = {ex["id"]: ex for ex in ds.splits["test"]}
    for record in raw:
        ex = by_id[record["paper_id"]]
        assert ex["text"] == " ".join(s.strip() for s in record["source"])
        assert ex["target"] == record["target"][0].strip() and len(ex["references"]) == len(record["target"])
    # SOURCE.md: on average 2.35 (dev) and 3.18 (test) TLDRs per paper
    for split, mean in (("val", 2.35), ("test", 3.18)):
        got = sum(len(ex["references"]) for ex in ds.splits[split]) / len(ds.splits[split])
        assert round(got, 2) == mean
    assert all(len(ex["references"]) == 1 for ex in ds.splits["train"])


def test_sumpubmed_and_discovery_gold_fields(load, shared_data):
    ds = load("sumpubmed")
    assert len(all_rows(ds)) == 1500 and ds.report == {"empty_rows_dropped": 0}
    raw = [json.loads(line) for line in open(shared_data / "leximind_discovery" / "discovery_dataset.jsonl",
                                                encoding="utf-8")]
    gold = {r["id"]: r for r in raw}
    for name, domain in (("leximind_literary", "literary"), ("leximind_academic", "academic")):
        part = load(name)
        rows = all_rows(part)
        assert len(rows) == 500 and {r["domain"] for r in rows} == {domain}
        for ex in rows:
            assert ex["target"] == gold[ex["id"]]["reference_summary"]  # the gold field
            assert ex["text"] == gold[ex["id"]]["text"] and gold[ex["id"]]["source_type"] == domain
            assert not {"topic", "emotion", "generated_summary"} & set(ex)  # LexiMind predictions
    mixed = load("summaries_mixed")
    assert Counter(ex["domain"] for ex in all_rows(mixed)) == {"academic": 500, "literary": 500}
    where = split_of(mixed)
    for name in ("leximind_literary", "leximind_academic"):
        for ex_id, split in split_of(load(name)).items():
            assert where[f"{name}:{ex_id}"] == split  # the same row sits in the same split


def _source_group_counts(shared_data) -> dict[str, tuple[int, int]]:
    text = (shared_data / "20newsgroups" / "SOURCE.md").read_text(encoding="utf-8")
    line = text[text.index("Counts per group"):].split("\n", 1)[0]
    return {g: (int(a), int(b)) for g, a, b in re.findall(r"([a-z.\-]+) (\d+)/(\d+)", line)}


def test_20newsgroups_counts_and_groups(load, shared_data):
    expected = _source_group_counts(shared_data)
    assert len(expected) == 20
    found = Counter()
    with tarfile.open(shared_data / "20newsgroups" / "20news-bydate.tar.gz") as tar:  # independent count
        for member in tar:
            parts = member.name.split("/")
            if member.isfile() and len(parts) == 3:
                found[(parts[1], parts[0].rsplit("-", 1)[1])] += 1
    assert {g: (found[(g, "train")], found[(g, "test")]) for g in expected} == expected
    ds = load("20newsgroups")
    assert ds.label_names == sorted(expected)
    empty = ds.report["empty_after_header_strip"]
    train_total = sum(len(ds.splits[s]) for s in ("train", "val", "calibration"))
    assert train_total + len(ds.splits["test"]) + empty == 11314 + 7532
    assert all(ex["id"].split("/")[0] == "test" for ex in ds.splits["test"])


def test_ag_news_balanced_four_classes(load):
    ds = load("ag_news")
    counts = Counter(ex["label"] for ex in all_rows(ds))
    assert counts == {"World": 1900, "Sports": 1900, "Business": 1900, "Sci/Tech": 1900}
    texts = " ".join(ex["text"] for ex in all_rows(ds))
    assert "#39;" not in texts and " quot;" not in texts and "\\" not in texts


def _primary_counts(shared_data) -> dict[str, int]:
    text = (shared_data / "arxiv_metadata_sample" / "SOURCE.md").read_text(encoding="utf-8")
    line = text[text.index("Top-level primary archive counts"):].split("\n", 1)[0]
    return {a: int(n) for a, n in re.findall(r"([a-z][a-z\-]+) (\d+)", line.split(":", 1)[1])}


def test_arxiv_categories_rule_and_counts(load, shared_data):
    records = arxiv.read_arxiv(shared_data / arxiv.CSV)
    assert records[0]["id"] == "0704.0001" and records[9]["id"] == "0704.0010"
    assert Counter(arxiv.archive(r["categories"][0]) for r in records) == _primary_counts(shared_data)
    # SOURCE.md: LexiMind's map gives Science 1,911, Technology 76, Business 13
    assert Counter(topics7.arxiv_topic(r["categories"]) for r in records) == \
        {"Science": 1911, "Technology": 76, "Business": 13}
    ds = load("arxiv_categories")
    assert len(all_rows(ds)) == 2000 and len(ds.label_names) == 18
    frame = pd.read_csv(shared_data / arxiv.CSV, dtype=str)
    archives = [sorted({c.split(".")[0] for c in cats.split()}) for cats in frame["categories"]]
    by_pos = {f"0704.{i + 1:04d}": a for i, a in enumerate(archives)}
    assert all(sorted(ex["labels"]) == by_pos[ex["id"]] for ex in all_rows(ds))


def test_topics7_balanced_mapped_and_consistent(load):
    ds = load("topics7")
    assert ds.label_names == ["Arts", "Business", "Fiction", "History", "Philosophy", "Science", "Technology"]
    for split in SPLITS:
        counts = Counter(ex["label"] for ex in ds.splits[split])
        assert len(counts) == 7 and len(set(counts.values())) == 1, split
    # SOURCE.md counts of the two excluded groups (train + test)
    assert ds.report["20newsgroups.excluded_group.talk.politics.guns"] == 546 + 364
    assert ds.report["20newsgroups.excluded_group.talk.politics.misc"] == 465 + 310
    assert set(topics7.NEWSGROUP_TOPIC) == set(load("20newsgroups").label_names)
    ng, ax, lit = split_of(load("20newsgroups")), split_of(load("arxiv_categories")), split_of(load("leximind_literary"))
    for split in SPLITS:
        for ex in ds.splits[split]:
            source, ident = ex["id"].split(":", 1)
            assert 100 < len(ex["text"]) <= 1500
            if source == "20ng":
                assert ex["label"] == topics7.NEWSGROUP_TOPIC[ident.split("/")[1]] and ng[ident] == split
            elif source == "arxiv":
                assert ax[ident] == split and ex["label"] in {"Science", "Technology", "Business"}
            else:
                assert source == "gutenberg" and ex["label"] == "Fiction" and lit[ident] == split


def test_topics7_leximind_map_and_balance_options(shared_data):
    assert topics7.LEXIMIND_NEWSGROUP_TOPIC["talk.politics.guns"] == "History"
    assert topics7.LEXIMIND_NEWSGROUP_TOPIC["sci.crypt"] == "Science"
    ds = load_dataset({"name": "topics7", "newsgroup_map": "leximind", "balance": "none"}, shared_data)
    assert not any(k.startswith("20newsgroups.excluded_group") for k in ds.report)
    assert not any(k.startswith("balance_dropped") for k in ds.report)
    history = [ex for ex in ds.splits["test"] if ex["label"] == "History"]
    assert {ex["id"].split("/")[1] for ex in history} == {
        "talk.politics.guns", "talk.politics.mideast", "talk.politics.misc"}


def test_unknown_dataset_and_option_are_one_line_errors(shared_data):
    with pytest.raises(LexilabError, match=r"unknown dataset 'goemotion' \(did you mean 'goemotions'\?\)"):
        load_dataset("goemotion", shared_data)
    with pytest.raises(LexilabError, match=r"dataset goemotions: unknown option 'calibraton' \(did you mean"):
        load_dataset({"name": "goemotions", "calibraton": 0.2}, shared_data)


def test_non_default_options_skip_counts_but_still_split(shared_data):
    ds = load_dataset({"name": "goemotions", "calibration": 0.2}, shared_data)
    assert len(ds.splits["train"]) + len(ds.splits["calibration"]) == 43410
    assert 0.18 < len(ds.splits["calibration"]) / 43410 < 0.22


def test_goemotions_unknown_label_id_names_file_and_line(tmp_path):
    from lexilab.data.sources import goemotions

    path = tmp_path / "train.tsv"
    path.write_text("fine\t27\tid1\nbad one\t3,28\tid2\n", encoding="utf-8")
    names = [f"l{i}" for i in range(28)]
    with pytest.raises(LexilabError, match=r"train\.tsv: line 2: unknown label id '28' \(emotions\.txt has ids 0–27\)"):
        goemotions.read_split(path, names)
    path.write_text("fine\t27,27,3\tid1\n", encoding="utf-8")
    assert goemotions.read_split(path, names) == [{"id": "id1", "text": "fine", "labels": ["l27", "l3"]}]
