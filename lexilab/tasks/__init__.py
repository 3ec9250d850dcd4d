"""Task kinds (seq2seq, multiclass, multilabel): data → tensors → loss → predictions → metrics.

Importing this package registers the built-in kinds in ``TASK_KINDS``.
"""
from lexilab.tasks.base import TASK_KINDS, ClassificationTask, ClassifierModule, Task, build_task, register_task_kind
from lexilab.tasks import multiclass, multilabel, seq2seq  # noqa: F401,E402  (register the kinds)

__all__ = ["TASK_KINDS", "ClassificationTask", "ClassifierModule", "Task", "build_task", "register_task_kind"]
