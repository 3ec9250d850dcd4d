#!/usr/bin/env bash
# Stop the single-node SLURM started by slurm/start.sh: every daemon by the PID in its pid file.
#   slurm/stop.sh [--dir /tmp/lexilab-slurm]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${PYTHON:-$here/.venv/bin/python}"
[ -x "$python" ] || python=python3
cd "$here"
exec "$python" -m lexilab.dispatch.localslurm stop "$@"
