"""Tokenizers through ``transformers.AutoTokenizer`` (a checkpoint or tokenizer folder, or a hub id)."""
from __future__ import annotations

import os
from pathlib import Path

from lexilab.errors import LexilabError

# files of which a tokenizer folder has at least one (fast tokenizer, SentencePiece, WordPiece, BPE)
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "spiece.model", "sentencepiece.bpe.model",
                   "vocab.txt", "vocab.json")


def load_tokenizer(name_or_path: str | os.PathLike):
    """The tokenizer of a local folder (tokenizer.json / spiece.model + tokenizer_config.json) or hub id.

    One-line LexilabError for a missing path, a folder without tokenizer files, or a hub id that
    cannot be fetched (offline or unknown).
    """
    from transformers import AutoTokenizer

    if isinstance(name_or_path, dict):
        raise LexilabError("tokenizer: a mapping of config fields has no tokenizer: give backbone.tokenizer a path")
    name = str(name_or_path)
    path = Path(name).expanduser()
    local = path.exists()
    if not local and (name.startswith((".", "/", "~")) or name.count("/") > 1 or not name.strip()):
        raise LexilabError(f"{name}: tokenizer path does not exist")
    if local and not path.is_dir():
        raise LexilabError(f"{name}: not a directory (expected a folder with tokenizer.json)")
    if local and not any((path / f).is_file() for f in TOKENIZER_FILES):
        raise LexilabError(f"{name}: no tokenizer files here (expected one of {', '.join(TOKENIZER_FILES)})")
    try:
        return AutoTokenizer.from_pretrained(str(path) if local else name)
    except (OSError, ValueError, KeyError, TypeError) as err:
        if local:
            detail = " ".join(str(err).split()) or type(err).__name__
            raise LexilabError(f"{name}: cannot load a tokenizer from this folder: {detail}") from None
        offline = os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes", "on")
        why = "HF_HUB_OFFLINE is set" if offline else "the hub is unreachable or has no such repository"
        raise LexilabError(f"{name}: not a local folder and not in the local cache ({why})") from None
