"""Named datasets, manifests, splits, leakage checks and synthetic known-answer tasks."""
from lexilab.data.registry import DATASETS, SPLITS, Dataset, load_dataset, register_dataset

__all__ = ["DATASETS", "SPLITS", "Dataset", "load_dataset", "register_dataset"]
