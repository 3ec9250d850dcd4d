#!/usr/bin/env bash
# Install Debian's SLURM (slurmctld, slurmd, client), munge, and slurmdbd + MariaDB (so that
# sacct works) for the tests that start a single-node SLURM on localhost (tests/dispatch).
# Idempotent and quick when already installed. Needs root (or sudo) and Debian/Ubuntu apt.
# Packages must not start their daemons: the tests start their own, in a temporary folder.
set -euo pipefail

PACKAGES=(slurmctld slurmd slurm-client munge slurmdbd mariadb-server)
BINARIES=(slurmctld slurmd sbatch sacct munged mungekey slurmdbd mariadbd mariadb-install-db)

have_all() {
    local b
    for b in "${BINARIES[@]}"; do
        command -v "$b" >/dev/null 2>&1 || [ -x "/usr/sbin/$b" ] || return 1
    done
}

if have_all; then
    echo "install-slurm: SLURM, munge and MariaDB already installed"
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO="sudo -n"; else
        echo "install-slurm: need root to install ${PACKAGES[*]}; the SLURM tests will be skipped" >&2
        exit 0
    fi
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-slurm: no apt-get here; the SLURM tests will be skipped" >&2
    exit 0
fi

# Keep package scripts from starting daemons (invoke-rc.d honours exit 101); a policy file we
# add is removed again afterwards, one that was there stays.
if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod 755 /usr/sbin/policy-rc.d
    trap '$SUDO rm -f /usr/sbin/policy-rc.d' EXIT
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${PACKAGES[@]}"
have_all || { echo "install-slurm: installed, but some binaries are missing" >&2; exit 1; }
echo "install-slurm: done"
