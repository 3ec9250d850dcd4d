"""Run every task of a trained run on new texts.

    from lexilab.inference import load_predictor
    predictor = load_predictor("results/quickstart/with_colour/seed-0")
    predictor.predict(["some text", ...])  # one dict per text: {task: output}

Tasks that read their input the same way (same prefix and max length — the default) share one
encoder pass; each classification task then pools and classifies those states, and each seq2seq
task decodes from them. Weights are the run's selected checkpoint; multi-label thresholds are
the ones tuned on its calibration split.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch

from lexilab.data.registry import SPLITS, Dataset
from lexilab.errors import LexilabError
from lexilab.io import atomic_write_json, read_json
from lexilab.tasks.collate import pad_sequences

TASKS_FILE = "tasks.json"


def save_task_metadata(trainer) -> None:
    """What inference needs beyond the weights: label names and resolved generation settings."""
    info = {}
    for name, task in trainer.tasks.items():
        entry = {"kind": task.kind, "label_names": task.label_names}
        if task.kind == "seq2seq":
            entry["generation"] = task.generation_settings()
        info[name] = entry
    atomic_write_json(trainer.run_dir / TASKS_FILE, info)


class Predictor:
    def __init__(self, run_dir: str | os.PathLike, device: str = "auto"):
        from lexilab.config import effective_data_root
        from lexilab.runner import read_run_config
        from lexilab.tasks import build_task
        from lexilab.train.assembly import MultiTaskModel, build_backbone, resolve_device
        from lexilab.train.evaluation import load_best_weights

        self.run_dir = Path(run_dir)
        if not (self.run_dir / TASKS_FILE).exists():
            raise LexilabError(f"{self.run_dir}: no {TASKS_FILE} (not a finished lexilab run)")
        config, _ = read_run_config(self.run_dir)
        self.config = config
        info = read_json(self.run_dir / TASKS_FILE)
        self.device = resolve_device(device)
        # the architecture comes from the config; every weight from the run's best checkpoint
        backbone_config = dict(config, backbone={**config["backbone"], "init": "random"})
        backbone, self.tokenizer = build_backbone(backbone_config, effective_data_root(config))
        self.tasks = {}
        for name, task_cfg in config["tasks"].items():
            empty = Dataset(name, task_cfg["kind"], {s: [] for s in SPLITS}, info[name]["label_names"] or None)
            self.tasks[name] = build_task(name, task_cfg, empty, self.tokenizer)
        self.generation = {n: i.get("generation") for n, i in info.items()}
        self.model = MultiTaskModel(backbone, self.tasks)
        if not load_best_weights(self.model, self.run_dir):
            raise LexilabError(f"{self.run_dir}: no checkpoints/best weights")
        self.model.to(self.device).eval()
        thresholds_path = self.run_dir / "thresholds.json"
        self.thresholds = read_json(thresholds_path) if thresholds_path.exists() else {}

    def thresholds_for(self, name: str) -> list[float]:
        """A multi-label task's per-label cut-offs: tuned on calibration, else 0.5."""
        return self.thresholds.get(name) or [0.5] * len(self.tasks[name].label_names)

    @torch.no_grad()
    def predict(self, texts: list[str], top_k: int = 3, tasks: list[str] | None = None) -> list[dict]:
        """One dict per text: {task: output}, for every task or only those named in ``tasks``."""
        from lexilab.model.generation import beam_search, greedy_search

        if not texts:
            return []
        unknown = sorted(set(tasks or ()) - set(self.tasks))
        if unknown:
            raise LexilabError(f"{self.run_dir}: no task {unknown[0]!r} (tasks: {', '.join(self.tasks)})")
        results = [dict() for _ in texts]
        backbone = self.model.backbone
        groups: dict[tuple, list[str]] = {}
        for name, task in self.tasks.items():
            if tasks is not None and name not in tasks:
                continue
            groups.setdefault((task.prefix, task.max_length), []).append(name)
        for (prefix, max_length), names in groups.items():
            ids = self.tokenizer([prefix + t for t in texts], truncation=True, max_length=max_length)["input_ids"]
            input_ids, mask = pad_sequences(ids, self.tokenizer.pad_token_id)
            input_ids, mask = input_ids.to(self.device), mask.to(self.device)
            states = backbone.encode(input_ids, mask)  # the one encoder pass these tasks share
            for name in names:
                task = self.tasks[name]
                if task.kind == "seq2seq":
                    g = self.generation[name]
                    if int(g["num_beams"]) == 1:
                        out = greedy_search(backbone, states, mask, int(g["max_new_tokens"]), int(g["min_new_tokens"]))
                    else:
                        out = beam_search(backbone, states, mask, int(g["num_beams"]), int(g["max_new_tokens"]),
                                          int(g["min_new_tokens"]), float(g["length_penalty"]), True)
                    decoded = self.tokenizer.batch_decode(out.cpu().tolist(), skip_special_tokens=True)
                    for row, text in zip(results, decoded):
                        row[name] = {"summary": text.strip()}
                    continue
                scores = task.activation(self.model.module_for(name)(states, mask).float()).cpu()
                for row, values in zip(results, scores):
                    ranked = sorted(zip(task.label_names, values.tolist()), key=lambda x: -x[1])
                    if task.kind == "multiclass":
                        row[name] = {"label": ranked[0][0], "confidence": ranked[0][1],
                                     "top": [{"label": l, "score": s} for l, s in ranked[:top_k]]}
                    else:
                        cut = dict(zip(task.label_names, self.thresholds_for(name)))
                        labels = [{"label": l, "score": float(values[i]), "threshold": cut[l]}
                                  for i, l in enumerate(task.label_names) if float(values[i]) >= cut[l]]
                        row[name] = {"labels": sorted(labels, key=lambda x: -x["score"]),
                                     "top": [{"label": l, "score": s, "threshold": cut[l]} for l, s in ranked[:top_k]]}
        return results


def load_predictor(run_dir: str | os.PathLike, device: str = "auto") -> Predictor:
    return Predictor(run_dir, device)
