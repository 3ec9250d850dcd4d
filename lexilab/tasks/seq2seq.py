"""Sequence-to-sequence tasks (summarisation): encoder-decoder with the LM head.

Loss: token-level cross-entropy over the non-padded target tokens of the batch (mean), with
optional label smoothing (Szegedy et al. 2016, "Rethinking the Inception Architecture").
``loss.chunked`` (true, false or tokens per chunk; unset: chunks of 1024 once a batch has more target
tokens than that) computes it through the output projection chunk by chunk
(lexilab.tasks.chunked_ce), never holding the batch's B×T×V logits; same value and gradients.
Evaluation: generation (beam search by default) then ROUGE (lexilab.metrics.rouge).
``max_new_tokens: null`` fits the targets: the 99th percentile of the tokenised train-target
lengths (EOS included, before truncation), capped by ``max_target_length``.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lexilab.errors import LexilabError
from lexilab.metrics.rouge import rouge_per_example, rouge_summary
from lexilab.tasks.base import DEFAULT_MAX_TARGET_LENGTH, Task, register_task_kind
from lexilab.tasks.chunked_ce import DEFAULT_CHUNK_TOKENS, linear_cross_entropy
from lexilab.tasks.collate import IGNORE_INDEX, pad_sequences

DEFAULT_GENERATION = {"num_beams": 4, "max_new_tokens": None, "min_new_tokens": 0, "length_penalty": 1.0}
TARGET_PERCENTILE = 99


@register_task_kind("seq2seq")
class Seq2SeqTask(Task):
    needs_decoder = True

    def validate(self) -> None:
        self.max_target_length = int(self.cfg.get("max_target_length") or DEFAULT_MAX_TARGET_LENGTH)
        loss = self.loss_cfg()
        for key in ("focal_gamma", "class_weights", "pos_weight"):
            if loss.get(key) is not None:
                raise LexilabError(f"{self.key('loss', key)}: not used by seq2seq tasks (set it to null)")
        self.label_smoothing = float(loss.get("label_smoothing") or 0.0)
        if not 0.0 <= self.label_smoothing < 1.0:
            raise LexilabError(f"{self.key('loss', 'label_smoothing')}: must be in [0, 1), got {self.label_smoothing}")
        self.chunked, self.chunk_tokens = self._chunking(loss.get("chunked"))
        self.generation_cfg = self._merge_generation(DEFAULT_GENERATION, self.cfg.get("generation"), "generation")
        for split, rows in self.dataset.splits.items():
            for example in rows:
                if not isinstance(example.get("target"), str):
                    raise self.example_error(example, f"split {split}: seq2seq example without a string 'target'")
        self._fitted_max_new_tokens: int | None = None

    def _chunking(self, value) -> tuple[bool | None, int]:
        """(always / never / None = when a batch has more target tokens than one chunk, chunk size)."""
        if value is None or isinstance(value, bool):
            return value, DEFAULT_CHUNK_TOKENS
        if isinstance(value, int) and value >= 1:
            return True, value
        raise LexilabError(f"config.yaml: {self.key('loss', 'chunked')}: expected true, false or a chunk size in "
                           f"tokens >= 1, got {value!r}")

    def _merge_generation(self, base: dict, override: dict | None, where: str) -> dict:
        merged = dict(base)
        for key, value in (override or {}).items():
            if key not in DEFAULT_GENERATION:
                raise LexilabError(f"{self.key(where, key)}: unknown generation setting; known: {', '.join(DEFAULT_GENERATION)}")
            if value is not None or key == "max_new_tokens":
                merged[key] = value
        return merged

    # ------------------------------------------------------------ generation settings
    def fitted_max_new_tokens(self) -> int:
        """99th-percentile tokenised train-target length (EOS included), capped by max_target_length."""
        if self._fitted_max_new_tokens is None:
            targets = [e["target"] for e in self.examples("train")]
            if not targets:
                raise LexilabError(f"dataset {self.dataset.name}: empty train split; set {self.key('generation', 'max_new_tokens')}")
            # no truncation here: the percentile must see the real lengths
            lengths = [len(ids) for ids in self.tokenizer(text_target=targets)["input_ids"]]
            p99 = int(np.percentile(lengths, TARGET_PERCENTILE, method="higher"))
            self._fitted_max_new_tokens = max(1, min(p99, self.max_target_length))
        return self._fitted_max_new_tokens

    def generation_settings(self, generation: dict | None = None) -> dict:
        """The settings predict uses: defaults ← cfg ``generation`` ← ``generation`` (non-null
        values), with ``max_new_tokens: null`` resolved to the fitted value."""
        settings = dict(self.generation_cfg)
        for key, value in (generation or {}).items():
            if key not in DEFAULT_GENERATION:
                raise ValueError(f"unknown generation setting {key!r}; known: {', '.join(DEFAULT_GENERATION)}")
            if value is not None:
                settings[key] = value
        if settings["max_new_tokens"] is None:
            settings["max_new_tokens"] = self.fitted_max_new_tokens()
            settings["max_new_tokens_rule"] = (
                f"p{TARGET_PERCENTILE} of train target lengths capped at max_target_length={self.max_target_length}"
            )
        else:
            settings["max_new_tokens_rule"] = "configured"
        return settings

    # ------------------------------------------------------------ batches
    def collate(self, examples: list[dict]) -> dict:
        batch = self.encode_inputs(examples)
        targets = self.tokenize([e["target"] for e in examples], self.max_target_length, target=True)
        batch["labels"], _ = pad_sequences(targets, IGNORE_INDEX, self.pad_to_multiple_of)
        batch["ids"] = [str(e["id"]) for e in examples]
        return batch

    def build_module(self, backbone: nn.Module) -> None:
        if not getattr(backbone, "is_encoder_decoder", False):
            raise LexilabError(f"{self.key('kind')}: a seq2seq task needs an encoder-decoder backbone")
        return None

    def loss(self, backbone: nn.Module, module: nn.Module | None, batch: dict) -> torch.Tensor:
        batch = self.to_device(batch, self.device_of(backbone))
        labels = batch["labels"]
        # unset: chunk only a batch with more than one chunk of tokens; a smaller one is a single
        # chunk anyway, and the full path saves the chunked path's second matmul in backward
        if self.chunked or (self.chunked is None and labels.numel() > self.chunk_tokens):
            hidden = backbone(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=labels,
                              project=False)
            return linear_cross_entropy(hidden, backbone.output_weight(), labels, ignore_index=IGNORE_INDEX,
                                        label_smoothing=self.label_smoothing, chunk_tokens=self.chunk_tokens)
        logits = backbone(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=labels)
        return F.cross_entropy(
            logits.float().reshape(-1, logits.shape[-1]), labels.reshape(-1),
            ignore_index=IGNORE_INDEX, label_smoothing=self.label_smoothing,
        )

    def predict(self, backbone: nn.Module, module: nn.Module | None, batch: dict, generation: dict | None = None) -> list[dict]:
        settings = self.generation_settings(generation)
        batch = self.to_device(batch, self.device_of(backbone))
        with torch.no_grad():
            out = backbone.generate(
                batch["input_ids"], batch["attention_mask"], max_new_tokens=int(settings["max_new_tokens"]),
                num_beams=int(settings["num_beams"]), length_penalty=float(settings["length_penalty"]),
                min_new_tokens=int(settings["min_new_tokens"]),
            )
        texts = self.tokenizer.batch_decode(out.cpu().tolist(), skip_special_tokens=True)
        return [{"id": i, "prediction": t.strip(), "generation": settings} for i, t in zip(batch["ids"], texts)]

    # ------------------------------------------------------------ metrics
    def evaluate(self, predictions: list[dict], split: str, thresholds=None) -> tuple[dict, list[dict]]:
        if thresholds is not None:
            raise ValueError(f"task {self.name}: thresholds apply to multilabel tasks only")
        references = [self.example_by_id(split, p["id"]) for p in predictions]
        texts = [str(p["prediction"]) for p in predictions]
        scores = rouge_per_example(texts, [e["target"] for e in references])
        records = []
        for p, example, text, score in zip(predictions, references, texts, scores):
            record = {"id": str(p["id"]), "prediction": text, "reference": example["target"], **score}
            if example.get("domain") is not None:
                record["domain"] = example["domain"]
            records.append(record)
        metrics, details = rouge_summary(records)
        if predictions and "generation" in predictions[0]:
            details["generation"] = predictions[0]["generation"]
        metrics["details"] = details
        return metrics, records

