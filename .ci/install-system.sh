#!/usr/bin/env bash
# Debian packages the test suite needs beyond Python: a real single-node SLURM (slurmctld,
# slurmd, munge, slurmdbd + MariaDB) and TeX Live for the paper build.
set -euo pipefail
cd "$(dirname "$0")"
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" -eq 0 ]; then
    apt-get update -qq
fi
bash install-slurm.sh
bash install-latex.sh
bash install-services.sh
