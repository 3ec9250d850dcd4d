"""Process checks shared by the local pool, status refresh and the local SLURM scripts."""
from __future__ import annotations


def pid_alive(pid: int) -> bool:
    """True when ``pid`` runs and is not a zombie (``kill -0`` succeeds on zombies)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as handle:
            stat = handle.read()
    except (FileNotFoundError, ProcessLookupError):
        return False
    # the state letter follows the parenthesised command name
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")
