"""Known-answer synthetic tasks: small text tasks whose labels follow documented rules.

Generative process (one corpus per ``seed``; every task labels the same texts):
examples of split ``s`` are drawn in order from one NumPy PCG64 stream seeded by (seed, s)
(exact use of the uniform draws: ``make_texts``):
1. four latent binary features z = (z_A, z_B, z_C, z_D), each Bernoulli(1/2), independent;
2. for each feature f, ``signal_words`` words drawn uniformly (with replacement) from the word
   group ``SIGNAL_WORDS[f][z_f]`` (the groups of a feature are disjoint);
3. ``n_filler`` ~ Uniform{6..14} filler words drawn uniformly from ``FILLER_WORDS`` (no
   filler is a signal word);
4. all words shuffled by a uniform random permutation and joined by single spaces.
z is therefore exactly recoverable from the text (``features_of``). Labels apply a task rule to
z, then noise from a second stream seeded by (seed, s, crc32(task)) (C uniform draws per
example, C = max(number of labels, 2)):
- binary tasks (label names ["no", "yes"]): the label is flipped with probability ``noise``;
- ``multiclass4`` (4 classes "B0C0", "B0C1", "B1C0", "B1C1"): with probability ``noise`` the
  label is replaced by one of the 3 other classes, uniformly;
- ``multilabel`` (labels "A", "B", "C", "D"; label f present iff z_f = 1): each label is
  flipped independently with probability ``noise`` (rows may have no label);
- ``seq2seq_keywords``: the target is the signal words in their order in the text (no noise).
Option ``as_seq2seq: true`` turns a multiclass task into a seq2seq one whose target is the
(noisy) label name, e.g. "yes"/"no": seq2seq tasks share the decoder and LM head, so two such
tasks read the encoder through the same output parameters (see the relatedness note below).
Bayes-optimal accuracy (``bayes_accuracy``): 1 − noise for the binary tasks and multiclass4
(noise < 3/4) and per label of multilabel (Hamming loss = noise, subset accuracy (1−noise)^4);
a ROUGE of 1 for seq2seq_keywords.

Relatedness by design (same seed → same texts; different seeds → independent texts):
shared_a and shared_b both use z_A (aligned signal: transfer expected); disjoint_a uses z_B and
disjoint_b z_C (disjoint signals); conflict_a uses z_D and conflict_b 1 − z_D (opposite use of
the same feature). Pairs from different families use disjoint features. A label flip can be
absorbed by an independent head (w_b → −w_a), so the conflict shows as a negative gradient
cosine on the shared encoder when the two tasks read the encoder through the same (tied or
identically initialised) head; through independent random heads the expected cosine is 0.
With ``as_seq2seq`` the head is the shared decoder and LM head: conflict_a and conflict_b on
the same texts then ask for opposite words from the same outputs, and the flip cannot be
absorbed (experiments/quickstart_conflict.yaml).
"""
from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np

from lexilab.data.registry import SPLITS, Dataset, did_you_mean, register_dataset
from lexilab.errors import LexilabError

FEATURES = ("A", "B", "C", "D")
SIGNAL_WORDS: dict[str, dict[int, tuple[str, ...]]] = {
    "A": {1: ("red", "orange", "yellow", "pink"), 0: ("blue", "green", "purple", "gray")},
    "B": {1: ("sun", "warm", "dry", "summer"), 0: ("rain", "snow", "cold", "winter")},
    "C": {1: ("dog", "horse", "cow", "sheep"), 0: ("cat", "bird", "fish", "bear")},
    "D": {1: ("north", "up", "high", "top"), 0: ("south", "down", "low", "bottom")},
}
FILLER_WORDS = (
    "table", "chair", "door", "window", "road", "city", "house", "paper", "book", "letter", "music",
    "song", "game", "market", "office", "garden", "kitchen", "school", "church", "bridge", "train",
    "car", "boat", "phone", "picture", "story", "morning", "evening", "week", "year", "people",
    "family", "friend", "child", "teacher", "doctor", "water", "bread", "coffee", "money", "time",
)
FILLER_RANGE = (6, 14)  # inclusive
WORD_FEATURE = {w: (f, v) for f, groups in SIGNAL_WORDS.items() for v, words in groups.items() for w in words}
VOCAB = tuple(WORD_FEATURE) + FILLER_WORDS  # signal words (feature, then group 1 before 0), fillers
_GROUP_START = {(f, v): VOCAB.index(SIGNAL_WORDS[f][v][0]) for f in FEATURES for v in (0, 1)}
BINARY = ["no", "yes"]
MULTICLASS4 = ["B0C0", "B0C1", "B1C0", "B1C1"]

# task -> (kind, label names, clean rule z -> label index | label-index list | None, description)
TASKS = {
    "shared_a": ("multiclass", BINARY, lambda z: z[0], "yes iff z_A = 1 (warm colour word)"),
    "shared_b": ("multiclass", BINARY, lambda z: z[0], "yes iff z_A = 1 (same signal as shared_a)"),
    "disjoint_a": ("multiclass", BINARY, lambda z: z[1], "yes iff z_B = 1 (dry-weather word)"),
    "disjoint_b": ("multiclass", BINARY, lambda z: z[2], "yes iff z_C = 1 (farm-animal word)"),
    "conflict_a": ("multiclass", BINARY, lambda z: z[3], "yes iff z_D = 1 (up-direction word)"),
    "conflict_b": ("multiclass", BINARY, lambda z: 1 - z[3], "yes iff z_D = 0 (opposite of conflict_a)"),
    "multiclass4": ("multiclass", MULTICLASS4, lambda z: 2 * z[1] + z[2], "class B<z_B>C<z_C>"),
    "multilabel": ("multilabel", list(FEATURES), lambda z: [k for k in range(4) if z[k]], "label f iff z_f = 1"),
    "seq2seq_keywords": ("seq2seq", None, None, "target = the signal words in text order"),
}
DEFAULT_NOISE = 0.1
DEFAULT_N = {"train": 800, "val": 200, "calibration": 200, "test": 200}
SPLIT_CODE = {split: k for k, split in enumerate(SPLITS)}


def _where(key: str) -> str:
    return f"dataset synthetic: {key}"


def _check_task(task, as_seq2seq) -> None:
    if task not in TASKS:
        raise LexilabError(f"{_where('task')}: unknown task {task!r}{did_you_mean(task, TASKS)}; known: {', '.join(TASKS)}")
    if not isinstance(as_seq2seq, bool):
        raise LexilabError(f"{_where('as_seq2seq')}: expected true or false, got {as_seq2seq!r}")
    if as_seq2seq and TASKS[task][0] != "multiclass":
        multiclass = [t for t, spec in TASKS.items() if spec[0] == "multiclass"]
        raise LexilabError(f"{_where('as_seq2seq')}: task {task} is {TASKS[task][0]}; only multiclass tasks "
                           f"become seq2seq ({', '.join(multiclass)})")


def _check_options(task, n, seed, noise, signal_words) -> dict[str, int]:
    sizes = dict(DEFAULT_N)
    if isinstance(n, int) and not isinstance(n, bool):
        sizes = {split: n for split in SPLITS}
    elif isinstance(n, dict):
        unknown = sorted(set(n) - set(SPLITS))
        if unknown:
            raise LexilabError(f"{_where('n')}: unknown split(s) {unknown}; known: {', '.join(SPLITS)}")
        sizes.update(n)
    elif n is not None:
        raise LexilabError(f"{_where('n')}: expected an integer or a mapping split -> integer, got {n!r}")
    for split, value in sizes.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise LexilabError(f"{_where('n.' + split)}: expected an integer >= 0, got {value!r}")
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise LexilabError(f"{_where('seed')}: expected an integer >= 0, got {seed!r}")
    if isinstance(noise, bool) or not isinstance(noise, (int, float)) or not 0.0 <= noise <= 0.5:
        raise LexilabError(f"{_where('noise')}: expected a number in [0, 0.5], got {noise!r}")
    if not isinstance(signal_words, int) or isinstance(signal_words, bool) or signal_words < 1:
        raise LexilabError(f"{_where('signal_words')}: expected an integer >= 1, got {signal_words!r}")
    return sizes


def draws_per_example(signal_words: int) -> int:
    """Uniform draws one example consumes: z, signal words, filler count, filler words, order keys."""
    n_signal = len(FEATURES) * signal_words
    return len(FEATURES) + n_signal + 1 + FILLER_RANGE[1] + n_signal + FILLER_RANGE[1]


def make_texts(seed: int, split: str, n: int, signal_words: int = 1) -> list[tuple[str, list[int]]]:
    """(text, z) of the first ``n`` examples of a split.

    One PCG64 stream per (seed, split); example i reads the i-th row of a (n, K) matrix of
    uniforms u (K = ``draws_per_example``), so the first k examples depend neither on n nor on
    the task. From its row: z_f = [u < 1/2]; signal word = group[floor(4u)]; n_filler =
    6 + floor(9u); filler words = FILLER_WORDS[floor(41u)]; word order = argsort of one key u
    per word (a uniform random permutation).
    """
    n_features, n_signal, max_filler = len(FEATURES), len(FEATURES) * signal_words, FILLER_RANGE[1]
    u = np.random.default_rng([seed, SPLIT_CODE[split]]).random((n, draws_per_example(signal_words)))
    cut = np.cumsum([n_features, n_signal, 1, max_filler, n_signal + max_filler])
    z = (u[:, : cut[0]] < 0.5).astype(int)
    signal_pick = np.floor(u[:, cut[0] : cut[1]] * 4).astype(int).reshape(n, n_features, signal_words)
    n_filler = FILLER_RANGE[0] + np.floor(u[:, cut[1]] * (FILLER_RANGE[1] - FILLER_RANGE[0] + 1)).astype(int)
    filler_pick = np.floor(u[:, cut[2] : cut[3]] * len(FILLER_WORDS)).astype(int)
    # word codes into VOCAB: signal words first (feature-major), then fillers; unused slots -1
    group_start = np.array([[_GROUP_START[(f, v)] for f in FEATURES] for v in (0, 1)])  # (2, F)
    signal_codes = group_start[z, np.arange(n_features)][:, :, None] + signal_pick  # (n, F, sw)
    filler_codes = len(WORD_FEATURE) + filler_pick
    filler_codes[np.arange(max_filler)[None, :] >= n_filler[:, None]] = -1
    codes = np.concatenate([signal_codes.reshape(n, n_signal), filler_codes], axis=1)
    keys = np.where(codes >= 0, u[:, cut[3] : cut[4]], 2.0)  # unused slots sort last
    codes = np.take_along_axis(codes, np.argsort(keys, axis=1, kind="stable"), axis=1)
    lengths = (n_signal + n_filler).tolist()
    return [(" ".join([VOCAB[c] for c in row[:length]]), zi)
            for row, length, zi in zip(codes.tolist(), lengths, z.tolist())]


def features_of(text: str) -> list[int]:
    """Recover z from a text (the Bayes decoder): the value of the signal words of each feature."""
    z: dict[str, set[int]] = {f: set() for f in FEATURES}
    for word in text.split():
        if word in WORD_FEATURE:
            feature, value = WORD_FEATURE[word]
            z[feature].add(value)
    if any(len(values) != 1 for values in z.values()):
        raise ValueError(f"not a synthetic text (signal words per feature: {z}): {text!r}")
    return [z[f].pop() for f in FEATURES]


def keywords_of(text: str) -> str:
    """The seq2seq_keywords target: the signal words of ``text`` in order."""
    return " ".join(w for w in text.split() if w in WORD_FEATURE)


def clean_label(task: str, z: list[int]):
    """The noise-free label index (multiclass), index list (multilabel) or None (seq2seq)."""
    return TASKS[task][2](z) if TASKS[task][2] else None


def bayes_accuracy(task: str, noise: float) -> float:
    """Bayes-optimal accuracy (per label for multilabel; 1.0 = exact targets for seq2seq)."""
    return 1.0 if TASKS[task][0] == "seq2seq" else 1.0 - float(noise)


def noisy_labels(kind: str, clean: np.ndarray, draws: np.ndarray, noise: float, n_labels: int) -> np.ndarray:
    """Apply label noise row by row from uniform ``draws`` (n, max(n_labels, 2)).

    multiclass: row keeps its clean label when draws[:, 0] >= noise, else takes the
    floor(draws[:, 1]·(C−1))-th of the other classes (uniform). multilabel: cell k is flipped
    when draws[:, k] < noise. ``clean`` is (n,) label indices or an (n, C) 0/1 matrix.
    """
    if kind == "multilabel":
        return np.asarray(clean, dtype=bool) ^ (draws[:, :n_labels] < noise)
    other = np.minimum(np.floor(draws[:, 1] * (n_labels - 1)).astype(int), n_labels - 2)
    other = np.where(other < clean, other, other + 1)
    return np.where(draws[:, 0] >= noise, clean, other)


def make_split(task: str, seed: int, split: str, n: int, noise: float, signal_words: int = 1,
               as_seq2seq: bool = False) -> list[dict]:
    """The first ``n`` examples of ``split`` for ``task`` (``as_seq2seq``: the label name as ``target``)."""
    kind, label_names, _, _ = TASKS[task]
    texts = make_texts(seed, split, n, signal_words)
    examples = [{"id": f"syn{seed}-{split}-{i:06d}", "text": text} for i, (text, _) in enumerate(texts)]
    if kind == "seq2seq":
        for example, (text, z) in zip(examples, texts):
            example["target"] = keywords_of(text)
            example["domain"] = "up" if z[3] else "down"
        return examples
    # the noise stream depends on the task (crc32 of its name: stable across processes)
    noise_rng = np.random.default_rng([seed, SPLIT_CODE[split], zlib.crc32(task.encode())])
    draws = noise_rng.random((n, max(len(label_names), 2)))
    if kind == "multiclass":
        clean = np.array([clean_label(task, z) for _, z in texts], dtype=int).reshape(n)
        field = "target" if as_seq2seq else "label"
        for example, k in zip(examples, noisy_labels(kind, clean, draws, noise, len(label_names)).tolist()):
            example[field] = label_names[k]
    else:
        clean = np.array([[k in clean_label(task, z) for k in range(len(label_names))] for _, z in texts],
                         dtype=bool).reshape(n, len(label_names))
        for example, row in zip(examples, noisy_labels(kind, clean, draws, noise, len(label_names)).tolist()):
            example["labels"] = [name for name, on in zip(label_names, row) if on]
    return examples


@register_dataset(
    "synthetic", kind="multiclass|multilabel|seq2seq",
    description="known-answer synthetic tasks (options: task, n, seed, noise, signal_words, as_seq2seq); no files",
)
def load_synthetic(root: Path | None = None, task: str = "shared_a", n=None, seed: int = 0,
                   noise: float | None = None, signal_words: int = 1, as_seq2seq: bool = False) -> Dataset:
    """Generate the synthetic dataset ``task`` (offline; ``root`` is unused). ``noise``
    defaults to 0.1 for classification tasks; seq2seq_keywords has no label noise.
    ``as_seq2seq``: a multiclass task as seq2seq, its (noisy) label name as the target."""
    _check_task(task, as_seq2seq)
    if TASKS[task][0] == "seq2seq" and noise:
        raise LexilabError(f"{_where('noise')}: task {task} has no label noise (leave noise unset or 0)")
    noise = DEFAULT_NOISE if noise is None else noise
    sizes = _check_options(task, n, seed, noise, signal_words)
    splits = {split: make_split(task, seed, split, sizes[split], float(noise), signal_words, as_seq2seq)
              for split in SPLITS}
    kind = kind_for(task, as_seq2seq)
    label_names = None if kind == "seq2seq" else TASKS[task][1]
    text_fields = ["text", "target"] if kind == "seq2seq" else ["text"]
    name = f"synthetic-{task}" + ("-seq2seq" if as_seq2seq else "")
    return Dataset(name, kind, splits, list(label_names) if label_names else None, text_fields)


def kind_for(task: str = "shared_a", as_seq2seq: bool = False, **_options) -> str:
    """The kind of ``task`` without generating data (config checks call ``loader.kind_for``)."""
    _check_task(task, as_seq2seq)
    return "seq2seq" if as_seq2seq else TASKS[task][0]


load_synthetic.kind_for = kind_for
