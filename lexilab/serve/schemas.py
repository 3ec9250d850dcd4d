"""Request and response bodies of the REST API (they are also what /docs and /openapi.json show)."""
from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr


class PredictRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    texts: list[StrictStr] = Field(description="input texts (each non-empty, at most --max-chars characters)",
                                   examples=[["red dog north table chair"]])
    runs: list[StrictStr] | None = Field(None, description="served run names (GET /runs); default: every run")
    tasks: list[StrictStr] | None = Field(None, description="task names; default: every task of each run")
    top_k: StrictInt = Field(3, ge=1, le=1000, description="labels listed with their probability per class task")


class Scored(BaseModel):
    label: str
    score: float = Field(description="the label's probability (softmax for one-of-k, sigmoid for multi-label)")
    threshold: float | None = Field(None, description="multi-label: the run's calibrated cut-off for this label")


class TaskOutput(BaseModel):
    summary: str | None = Field(None, description="seq2seq: the generated text")
    label: str | None = Field(None, description="multiclass: the most probable label")
    confidence: float | None = Field(None, description="multiclass: its probability")
    labels: list[Scored] | None = Field(None, description="multi-label: every label at or above its threshold")
    top: list[Scored] | None = Field(None, description="classification: the top-k labels by probability")


class TextResult(BaseModel):
    text: str
    runs: dict[str, dict[str, TaskOutput]] = Field(description="run name → task → output")


class PredictResponse(BaseModel):
    runs: list[str]
    results: list[TextResult]


class Problem(BaseModel):
    detail: str = Field(description="one line naming the field and what is wrong")
    field: str | None = None


class RunsResponse(BaseModel):
    runs: list[dict[str, Any]]
    limits: dict[str, int]
