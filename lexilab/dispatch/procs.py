"""Process checks shared by the local pool, status refresh and the local SLURM scripts."""
from __future__ import annotations

from lexilab.claim import pid_alive, process_alive, process_start

__all__ = ["pid_alive", "process_alive", "process_start"]
