"""Ground-truth models for the calibration tests and ``benchmarks/stats_calibration.py``.

Two-level data: arms × seeds × test items with a known population difference of accuracy.
Each item i has a difficulty b_i; each arm an item-specific skill g_{a,i} (the arms differ on
particular items: the test set's own sampling error); each (arm, seed) a training shift u_{a,s}
plus a shift shared by both arms of a seed (same data order); per-item correctness is Bernoulli.
The population accuracy of arm a is E[sigmoid(mu_a + b + g + u)] with b + g + u normal, a 1-D
Gauss-Hermite integral — the truth every interval is checked against.
"""
from __future__ import annotations

import numpy as np

# logit-scale sds: item difficulty, arm × item skill, training seed (per arm), seed shared by arms.
# The per-seed accuracy of an arm then varies by ~1.5 points between seeds (seed shift + its
# own item noise), and the difference of two arms by ~3 points.
SD = {"item": 2.0, "arm_item": 0.6, "seed": 0.12, "seed_shared": 0.05}
MU = 1.0


def population_accuracy(mu: float, sd: dict = SD) -> float:
    """E[sigmoid(mu + Z)], Z ~ N(0, Σ sd²), by 80-point Gauss-Hermite quadrature."""
    x, w = np.polynomial.hermite_e.hermegauss(80)
    scale = np.sqrt(sum(v ** 2 for v in sd.values()))
    return float(np.sum(w / np.sqrt(2 * np.pi) / (1 + np.exp(-(mu + scale * x)))))


def accuracy_items(rng: np.random.Generator, sims: int, seeds: int, items: int, delta_logit: float,
                   sd: dict = SD) -> tuple[np.ndarray, float]:
    """(sims, 2 arms, seeds, items, 2) per-item (correct, 1) statistics of a baseline arm and a
    treatment arm ``delta_logit`` better on the logit scale, and the true accuracy difference."""
    mus = np.array([MU, MU + delta_logit])
    b = rng.normal(0, sd["item"], (sims, 1, 1, items))
    g = rng.normal(0, sd["arm_item"], (sims, 2, 1, items))
    u = rng.normal(0, sd["seed"], (sims, 2, seeds, 1)) + rng.normal(0, sd["seed_shared"], (sims, 1, seeds, 1))
    correct = rng.random((sims, 2, seeds, items)) < 1 / (1 + np.exp(-(mus[:, None, None] + b + g + u)))
    stats = np.stack([correct, np.ones_like(correct)], axis=-1).astype(np.float32)
    return stats, population_accuracy(mus[1], sd) - population_accuracy(mus[0], sd)


def accuracy(s: np.ndarray) -> np.ndarray:
    """finalize for :func:`accuracy_items`: summed (correct, count) → accuracy."""
    return s[..., 0] / s[..., 1]


def seed_metrics(rng: np.random.Generator, sims: int, n: int, mtl_means, single_means, sd_seed: float = 0.02,
                 sd_shared: float = 0.015):
    """Per-seed metrics of an MTL arm and the single-task arms for K tasks: (sims, K, n) each.
    A seed shift shared by every arm of that seed makes the arms correlated (paired design)."""
    mtl_means, single_means = np.asarray(mtl_means, float), np.asarray(single_means, float)
    k = len(mtl_means)
    shared = rng.normal(0, sd_shared, (sims, k, n))
    mtl = mtl_means[:, None] + shared + rng.normal(0, sd_seed, (sims, k, n))
    single = single_means[:, None] + shared + rng.normal(0, sd_seed, (sims, k, n))
    return mtl, single
