"""lexilab: an experiment and ablation harness for multi-task learning studies in NLP."""

__version__ = "0.1.0"
