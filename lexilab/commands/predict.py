"""`python -m lexilab predict RUN_DIR "text" ... | --file FILE`: every task of a trained run."""
from __future__ import annotations

import json
from pathlib import Path

from lexilab.errors import LexilabError


def register(subparsers) -> None:
    parser = subparsers.add_parser("predict", help="run every task of a trained run on new texts",
                                   description="Summaries, labels with scores and topic with confidence for "
                                               "each input, from a finished run directory (one encoder pass).")
    parser.add_argument("run_dir", help="a finished run directory (results/<experiment>/<arm>/seed-<n>)")
    parser.add_argument("texts", nargs="*", help="input texts")
    parser.add_argument("--file", help="a text file with one input per line")
    parser.add_argument("--json", action="store_true", help="print JSON lines instead of a readable listing")
    parser.add_argument("--device", default="auto")
    parser.set_defaults(func=handle)


def _format(text: str, result: dict) -> str:
    lines = [f"> {text[:100]}{'...' if len(text) > 100 else ''}"]
    for task, out in result.items():
        if "summary" in out:
            lines.append(f"  {task}: {out['summary']}")
        elif "confidence" in out:
            lines.append(f"  {task}: {out['label']} ({out['confidence']:.2f})")
        else:
            chosen = ", ".join(f"{x['label']} {x['score']:.2f}" for x in out["labels"]) or "(none above threshold)"
            lines.append(f"  {task}: {chosen}")
    return "\n".join(lines)


def handle(args) -> int:
    from lexilab.inference import load_predictor

    texts = list(args.texts)
    if args.file:
        path = Path(args.file)
        if not path.exists():
            raise LexilabError(f"{path}: no such file")
        texts += [line.rstrip("\n") for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not texts:
        raise LexilabError("predict: give texts as arguments or --file FILE")
    predictor = load_predictor(args.run_dir, args.device)
    for text, result in zip(texts, predictor.predict(texts)):
        print(json.dumps({"text": text, **result}) if args.json else _format(text, result))
    return 0
