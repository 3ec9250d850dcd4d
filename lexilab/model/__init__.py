"""Backbones (from-scratch T5, BERT-family wrappers), tokenizers, pooling and heads.

Public API: ``load_backbone``, ``load_tokenizer``, ``T5Config``, ``T5Model``, ``build_pooling``,
``POOLINGS``, ``build_head``.
"""
from lexilab.model.checkpoint import load_backbone
from lexilab.model.heads import build_head
from lexilab.model.pooling import POOLINGS, build_pooling
from lexilab.model.t5 import T5Config, T5Model
from lexilab.model.tokenizer import load_tokenizer

__all__ = ["load_backbone", "load_tokenizer", "T5Config", "T5Model", "build_pooling", "POOLINGS", "build_head"]
