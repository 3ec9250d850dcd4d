#!/usr/bin/env bash
# Start a single-node SLURM on localhost (slurmctld, slurmd, munge, slurmdbd + MariaDB) with all
# state under one folder (default /tmp/lexilab-slurm, wiped first). Needs root and the packages
# from .ci/install-slurm.sh. Prints the line to point clients at it:
#   eval "$(slurm/start.sh)"          # sets SLURM_CONF
#   slurm/start.sh --dir /tmp/mycluster --cpus 8 --gpus 2 --max-array-size 1001
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${PYTHON:-$here/.venv/bin/python}"
[ -x "$python" ] || python=python3
cd "$here"
exec "$python" -m lexilab.dispatch.localslurm start "$@"
