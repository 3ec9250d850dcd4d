"""Training: task samplers, loss weighting / gradient aggregation, gradient diagnostics, trainer.

Kept import-free on purpose: ``import lexilab.train.samplers`` must not pull in torch or torchjd.
Import the submodules you need (``lexilab.train.samplers``, ``lexilab.train.weighting``,
``lexilab.train.diagnostics``, ``lexilab.train.trainer``).
"""
