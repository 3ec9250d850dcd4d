"""A single-node SLURM on localhost (Debian's slurmctld, slurmd, munge, slurmdbd + MariaDB).

Used by the test suite and for trying the `slurm` executor on one machine. Every file (config,
state, spool, logs, munge key and socket, database) lives under one folder; daemons are started
in the background and stopped by the PIDs in their pid files, never by name.

    python -m lexilab.dispatch.localslurm start [--dir DIR] [--cpus 8] [--gpus 0] [--max-array-size N]
    python -m lexilab.dispatch.localslurm stop [--dir DIR]

`start` prints `export SLURM_CONF=...`: clients (sbatch, sacct, submitit) find the cluster
through that variable. Needs root (slurmd and munged switch users). See slurm/start.sh.
"""
from __future__ import annotations

import argparse
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from lexilab.dispatch.procs import pid_alive

DEFAULT_DIR = Path("/tmp/lexilab-slurm")
PARTITION = "debug"
CLUSTER_NAME = "lexilab"
CORE_BINARIES = ("slurmctld", "slurmd", "munged", "mungekey", "sbatch", "sacct", "scontrol", "sinfo",
                 "squeue", "scancel", "srun")
ACCOUNTING_BINARIES = ("slurmdbd", "mariadbd", "mariadb-install-db")
# Daemons in start order; stopped in reverse.
DAEMONS = ("munged", "mariadbd", "slurmdbd", "slurmctld", "slurmd")


def unavailable_reason(accounting: bool = True) -> str | None:
    """Why a local cluster cannot start here (None when it can)."""
    if os.geteuid() != 0:
        return "a local SLURM needs root (slurmd and munged switch users)"
    needed = CORE_BINARIES + (ACCOUNTING_BINARIES if accounting else ())
    missing = [b for b in needed if _which(b) is None]
    if missing:
        return f"missing {', '.join(missing)} (install with .ci/install-slurm.sh)"
    return None


def _which(name: str) -> str | None:
    # the daemons live in /usr/sbin, which is not on every user's PATH
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LocalSlurm:
    """One throw-away SLURM cluster with all its state under ``root``."""

    def __init__(self, root: str | os.PathLike = DEFAULT_DIR, *, cpus: int = 8, gpus: int = 0,
                 max_array_size: int = 1001, accounting: bool = True) -> None:
        self.root = Path(root).resolve()
        self.cpus = cpus
        self.gpus = gpus
        self.max_array_size = max_array_size
        self.accounting = accounting
        self.ports: dict[str, int] = {}
        self.node = socket.gethostname().split(".")[0]

    # -- paths -----------------------------------------------------------------------------
    @property
    def conf(self) -> Path:
        return self.root / "etc" / "slurm.conf"

    @property
    def munge_socket(self) -> Path:
        return self.root / "munge" / "munge.socket.2"

    def pid_file(self, daemon: str) -> Path:
        return self.root / "run" / f"{daemon}.pid"

    def env(self) -> dict[str, str]:
        """Environment for clients: ``os.environ`` plus SLURM_CONF."""
        return {**os.environ, "SLURM_CONF": str(self.conf)}

    # -- start / stop ----------------------------------------------------------------------
    def start(self, timeout: float = 60.0) -> "LocalSlurm":
        reason = unavailable_reason(self.accounting)
        if reason:
            raise RuntimeError(f"cannot start a local SLURM: {reason}")
        if self.root.exists():
            if any(self.root.iterdir()) and not (self.root / "cluster.json").exists():
                raise RuntimeError(f"{self.root} exists and is not a local SLURM folder: not wiping it")
            LocalSlurm.attach(self.root).stop()
            shutil.rmtree(self.root)
        for sub in ("etc", "run", "log", "state", "spool", "munge", "dev"):
            (self.root / sub).mkdir(parents=True)
        # munge and mysql run as their own users and must traverse every folder above
        self.root.chmod(0o755)
        for path in self.root.parents:
            if (path.stat().st_mode & 0o001) == 0:
                raise RuntimeError(f"{path} is not searchable by other users (munged and mariadbd run as "
                                   f"their own users): choose a folder under /tmp")
        self.ports = {name: _free_port() for name in ("slurmctld", "slurmd", "slurmdbd", "mysql")}
        self._save_meta()
        try:
            self._start_munge()
            if self.accounting:
                self._start_mariadb(timeout)
                self._write_dbd_conf()
                self._spawn("slurmdbd", [_which("slurmdbd")])
                self._wait_port(self.ports["slurmdbd"], timeout, "slurmdbd")
            self._write_slurm_conf()
            self._save_meta()
            self._start_slurm(clear=True, timeout=timeout)
        except BaseException:
            self.stop()
            raise
        return self

    @classmethod
    def attach(cls, root: str | os.PathLike = DEFAULT_DIR) -> "LocalSlurm":
        """The cluster a previous ``start`` left under ``root`` (for ``stop``)."""
        root = Path(root).resolve()
        meta_path = root / "cluster.json"
        meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
        cluster = cls(root, cpus=meta.get("cpus", 8), gpus=meta.get("gpus", 0),
                      max_array_size=meta.get("max_array_size", 1001),
                      accounting=meta.get("accounting", True))
        cluster.ports = meta.get("ports", {})
        return cluster

    def stop(self, timeout: float = 20.0) -> None:
        """Cancel leftover jobs, then stop every daemon by the PID in its pid file (reverse order)."""
        self._cancel_jobs(timeout)
        for daemon in reversed(DAEMONS):
            self._stop_daemon(daemon, timeout)

    def _cancel_jobs(self, timeout: float) -> None:
        # job steps (slurmstepd and the job's processes) outlive slurmd: end them through SLURM
        if not self.running() or not self.pid_file("slurmd").exists():
            return  # clients would retry for 10-20 s against a dead slurmctld
        squeue = [_which("squeue"), "-h", "-o", "%i"]
        jobs = subprocess.run(squeue, env=self.env(), capture_output=True, text=True, timeout=30).stdout.split()
        if not jobs:
            return
        subprocess.run([_which("scancel"), "--full", *jobs], env=self.env(), capture_output=True, timeout=30)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if not subprocess.run(squeue, env=self.env(), capture_output=True, text=True, timeout=30).stdout.strip():
                return
            time.sleep(0.2)

    def reconfigure(self, *, gpus: int | None = None, max_array_size: int | None = None,
                    timeout: float = 60.0) -> None:
        """Restart slurmctld and slurmd with new settings (job ids and accounting carry on)."""
        changed = False
        if gpus is not None and gpus != self.gpus:
            self.gpus, changed = gpus, True
        if max_array_size is not None and max_array_size != self.max_array_size:
            self.max_array_size, changed = max_array_size, True
        if not changed:
            return
        self._stop_daemon("slurmd", timeout)
        self._stop_daemon("slurmctld", timeout)
        self._write_slurm_conf()
        self._save_meta()
        self._start_slurm(clear=False, timeout=timeout)

    # -- pieces ----------------------------------------------------------------------------
    def _save_meta(self) -> None:
        meta = {"cpus": self.cpus, "gpus": self.gpus, "max_array_size": self.max_array_size,
                "accounting": self.accounting, "ports": self.ports}
        (self.root / "cluster.json").write_text(json.dumps(meta, indent=2))

    def _spawn(self, name: str, argv: list[str], user: str | None = None) -> None:
        log = open(self.root / "log" / f"{name}.out", "ab")
        kwargs: dict = {}
        if user is not None:
            entry = pwd.getpwnam(user)
            kwargs = {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}
        # own session: the daemons outlive the starter and ignore its terminal's signals
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=self.env(), start_new_session=True, **kwargs)
        log.close()
        if name in ("mariadbd",):
            # runs in the foreground: its PID is ours
            self.pid_file(name).write_text(f"{proc.pid}\n")
            return
        # the others fork into the background and write their pid file; reap the parent
        try:
            code = proc.wait(timeout=30)
        except subprocess.TimeoutExpired as error:
            raise RuntimeError(f"{name} did not daemonize; see {self.root / 'log'}") from error
        if code != 0:
            raise RuntimeError(f"{name} exited with {code}: {self._tail(name)}")

    def _tail(self, name: str) -> str:
        lines: list[str] = []
        for path in sorted((self.root / "log").glob(f"{name}*")):
            lines += path.read_text(errors="replace").splitlines()[-5:]
        return " | ".join(lines)

    def _start_munge(self) -> None:
        munge_dir = self.root / "munge"
        key = munge_dir / "munge.key"
        subprocess.run([_which("mungekey"), "--create", f"--keyfile={key}"], check=True,
                       capture_output=True)
        entry = pwd.getpwnam("munge")
        for path in (munge_dir, key):
            os.chown(path, entry.pw_uid, entry.pw_gid)
        munge_dir.chmod(0o755)  # munged refuses a socket folder others can write to or not read
        key.chmod(0o600)
        self._spawn("munged", [
            _which("munged"), f"--socket={self.munge_socket}", f"--key-file={key}",
            f"--pid-file={munge_dir / 'munged.pid'}", f"--seed-file={munge_dir / 'munged.seed'}",
            f"--log-file={munge_dir / 'munged.log'}",
        ], user="munge")
        shutil.copy(munge_dir / "munged.pid", self.pid_file("munged"))

    def _start_mariadb(self, timeout: float) -> None:
        data = self.root / "mysql"
        data.mkdir()
        entry = pwd.getpwnam("mysql")
        os.chown(data, entry.pw_uid, entry.pw_gid)
        small = ["--innodb-log-file-size=8M", "--innodb-buffer-pool-size=32M"]
        subprocess.run([_which("mariadb-install-db"), "--no-defaults", f"--datadir={data}",
                        "--user=mysql", "--auth-root-authentication-method=normal", "--skip-test-db",
                        *small], check=True, capture_output=True)
        self._spawn("mariadbd", [
            _which("mariadbd"), "--no-defaults", f"--datadir={data}", "--user=mysql",
            f"--port={self.ports['mysql']}", "--bind-address=127.0.0.1",
            f"--socket={data / 'mysqld.sock'}", "--skip-log-bin", *small,
        ])
        self._wait_port(self.ports["mysql"], timeout, "mariadbd")

    def _wait_port(self, port: int, timeout: float, name: str) -> None:
        deadline = time.time() + timeout
        pid_file = self.pid_file(name)
        while time.time() < deadline:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    return
            if pid_file.exists() and not pid_alive(int(pid_file.read_text().split()[0])):
                break  # died: no point waiting
            time.sleep(0.1)
        raise RuntimeError(f"{name} did not listen on port {port}: {self._tail(name)}")

    def _write_dbd_conf(self) -> None:
        path = self.root / "etc" / "slurmdbd.conf"
        path.write_text("\n".join([
            "AuthType=auth/munge",
            f"AuthInfo=socket={self.munge_socket}",
            "DbdHost=localhost",
            "DbdAddr=127.0.0.1",
            f"DbdPort={self.ports['slurmdbd']}",
            "SlurmUser=root",
            "StorageType=accounting_storage/mysql",
            "StorageHost=127.0.0.1",
            f"StoragePort={self.ports['mysql']}",
            "StorageUser=root",
            "StorageLoc=slurm_acct_db",
            f"PidFile={self.pid_file('slurmdbd')}",
            f"LogFile={self.root / 'log' / 'slurmdbd.log'}",
            "",
        ]))
        path.chmod(0o600)  # slurmdbd refuses a config others can read

    def _write_slurm_conf(self) -> None:
        root = self.root
        lines = [
            f"ClusterName={CLUSTER_NAME}",
            f"SlurmctldHost={self.node}(127.0.0.1)",
            "SlurmUser=root",
            "SlurmdUser=root",
            f"SlurmctldPort={self.ports['slurmctld']}",
            f"SlurmdPort={self.ports['slurmd']}",
            "AuthType=auth/munge",
            # cred_expire: a requeued job is otherwise held for 120 s
            f"AuthInfo=socket={self.munge_socket},cred_expire=5",
            "CredType=cred/munge",
            f"StateSaveLocation={root / 'state'}",
            f"SlurmdSpoolDir={root / 'spool'}",
            f"SlurmctldPidFile={self.pid_file('slurmctld')}",
            f"SlurmdPidFile={self.pid_file('slurmd')}",
            f"SlurmctldLogFile={root / 'log' / 'slurmctld.log'}",
            f"SlurmdLogFile={root / 'log' / 'slurmd.log'}",
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            "MpiDefault=none",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_Core",
            "JobAcctGatherType=jobacct_gather/none",
            # batch_sched_delay=0 saves ~3 s per job
            "SchedulerParameters=batch_sched_delay=0,sched_interval=2,bf_interval=1",
            "SlurmdParameters=config_overrides",  # advertise more CPUs than the machine has
            "ReturnToService=2",
            "MailProg=/bin/true",
            "KillWait=5",
            f"MaxArraySize={self.max_array_size}",
        ]
        if self.gpus:
            lines.append("GresTypes=gpu")
        if self.accounting:
            lines += [
                "AccountingStorageType=accounting_storage/slurmdbd",
                "AccountingStorageHost=127.0.0.1",
                f"AccountingStoragePort={self.ports['slurmdbd']}",
                # with munge on its own socket this must name it (else the default socket is used)
                f"AccountingStoragePass={self.munge_socket}",
            ]
        memory = _real_memory_mb()
        gres = f" Gres=gpu:{self.gpus}" if self.gpus else ""
        lines += [
            f"NodeName={self.node} NodeAddr=127.0.0.1 CPUs={self.cpus} Boards=1 SocketsPerBoard=1 "
            f"CoresPerSocket={self.cpus} ThreadsPerCore=1 RealMemory={memory}{gres} State=UNKNOWN",
            f"PartitionName={PARTITION} Nodes=ALL Default=YES MaxTime=INFINITE State=UP",
            "",
        ]
        self.conf.write_text("\n".join(lines))
        gres_lines = []
        if self.gpus:
            # character devices: with plain files SLURM schedules by count but never sets
            # CUDA_VISIBLE_DEVICES
            for index in range(self.gpus):
                device = root / "dev" / f"nvidia{index}"
                if not device.exists():
                    os.mknod(device, 0o666 | 0o020000, os.makedev(195, index))
            gres_lines.append(f"Name=gpu File={root / 'dev'}/nvidia[0-{self.gpus - 1}]")
        (root / "etc" / "gres.conf").write_text("\n".join(gres_lines) + "\n")

    def _start_slurm(self, clear: bool, timeout: float) -> None:
        ctld = [_which("slurmctld"), "-f", str(self.conf)] + (["-c"] if clear else [])
        self._spawn("slurmctld", ctld)
        self._spawn("slurmd", [_which("slurmd"), "-f", str(self.conf), "-N", self.node])
        self.wait_idle(timeout)

    def wait_idle(self, timeout: float = 60.0) -> None:
        """Wait until the node is idle (registered and schedulable)."""
        deadline = time.time() + timeout
        state = ""
        while time.time() < deadline:
            result = subprocess.run([_which("sinfo"), "-h", "-N", "-o", "%T"], env=self.env(),
                                    capture_output=True, text=True, timeout=30)
            state = result.stdout.strip()
            if state == "idle":
                return
            time.sleep(0.2)
        raise RuntimeError(f"node not idle after {timeout:.0f} s (state {state!r}): "
                           f"{self._tail('slurmctld')} {self._tail('slurmd')}")

    def _stop_daemon(self, daemon: str, timeout: float) -> None:
        path = self.pid_file(daemon)
        if not path.exists():
            return
        try:
            pid = int(path.read_text().split()[0])
        except (ValueError, IndexError):
            path.unlink()
            return
        if pid_alive(pid):
            os.kill(pid, signal.SIGTERM)
            deadline = time.time() + timeout
            while pid_alive(pid) and time.time() < deadline:
                time.sleep(0.05)
            if pid_alive(pid):
                os.kill(pid, signal.SIGKILL)
                while pid_alive(pid):
                    time.sleep(0.05)
        # mariadbd is our child when started in this process: reap it
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        path.unlink(missing_ok=True)

    def running(self) -> bool:
        path = self.pid_file("slurmctld")
        return path.exists() and pid_alive(int(path.read_text().split()[0]))


def _real_memory_mb() -> int:
    with open("/proc/meminfo", encoding="utf-8") as handle:
        for line in handle:
            if line.startswith("MemTotal:"):
                # a little below what slurmd -C reports, or the node is drained
                return max(1, int(line.split()[1]) // 1024 - 512)
    return 1024


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lexilab.dispatch.localslurm",
                                     description="Start or stop a single-node SLURM on localhost.")
    parser.add_argument("action", choices=["start", "stop", "status"])
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR, help="folder for all state (wiped on start)")
    parser.add_argument("--cpus", type=int, default=8, help="CPUs the node advertises")
    parser.add_argument("--gpus", type=int, default=0, help="fake GPUs (character devices) on the node")
    parser.add_argument("--max-array-size", type=int, default=1001)
    parser.add_argument("--no-accounting", action="store_true", help="skip slurmdbd + MariaDB (no sacct)")
    args = parser.parse_args(argv)
    if args.action == "start":
        cluster = LocalSlurm(args.dir, cpus=args.cpus, gpus=args.gpus,
                             max_array_size=args.max_array_size, accounting=not args.no_accounting)
        try:
            cluster.start()
        except RuntimeError as error:
            print(f"error: {error}", file=sys.stderr)
            return 1
        print(f"export SLURM_CONF={cluster.conf}")
        return 0
    cluster = LocalSlurm.attach(args.dir)
    if args.action == "stop":
        cluster.stop()
        return 0
    print("running" if cluster.running() else "stopped")
    return 0 if cluster.running() else 1


if __name__ == "__main__":
    sys.exit(main())
