"""A real single-node Slurm cluster for the launcher tests: munged, slurmctld and slurmd from
Debian's slurm-wlm/munge packages (scripts/system-deps.sh installs them: `make system-deps`, .ci/run), started as root on
localhost with a generated slurm.conf, their own munge key and socket, free TCP ports and every
state, spool, pid and log file under one temporary directory, so nothing of the machine's own
configuration is read or changed. Stopped with ``scontrol shutdown`` and by the pids started.

:func:`why_not` says why a cluster cannot start here (the test's visible skip reason)."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

__all__ = ["SlurmCluster", "why_not"]

DAEMONS = {"munged": "/usr/sbin/munged", "slurmctld": "/usr/sbin/slurmctld", "slurmd": "/usr/sbin/slurmd"}
CLIENTS = ("sbatch", "srun", "squeue", "sinfo", "scontrol")
CPUS = 8  # the node advertises 8 CPUs (config_overrides): 8 tasks run at once on a 2-core machine


def why_not() -> str | None:
    """None if a cluster can start here, else the reason."""
    missing = [name for name, path in DAEMONS.items() if not os.access(path, os.X_OK)]
    missing += [name for name in CLIENTS if shutil.which(name) is None]
    if missing:
        return (f"needs Slurm and munge ({', '.join(missing)} not installed; "
                "`make system-deps` installs slurm-wlm and munge, as .ci/run does)")
    if os.geteuid() != 0:
        return "needs root: slurmd runs jobs as their submitting user and the epilog as root"
    return None


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


class SlurmCluster:
    """One controller and one compute node named after this host."""

    def __init__(self, base: Path, *, epilog: Path | None = None) -> None:
        self.base = base
        self.node = socket.gethostname().split(".")[0]
        self.conf = base / "slurm.conf"
        self.env = {**os.environ, "SLURM_CONF": str(self.conf)}
        self.epilog = epilog
        self._procs: list[subprocess.Popen[bytes]] = []

    def _config(self, ctld_port: int, slurmd_port: int) -> str:
        b = self.base
        lines = [
            "ClusterName=depotdelivery-test",
            f"SlurmctldHost={self.node}(127.0.0.1)",
            f"SlurmctldPort={ctld_port}", f"SlurmdPort={slurmd_port}",
            "SlurmUser=root", "SlurmdUser=root",
            "AuthType=auth/munge", "CredType=cred/munge", f"AuthInfo=socket={b}/munge.socket",
            f"StateSaveLocation={b}/state", f"SlurmdSpoolDir={b}/spool",
            f"SlurmctldPidFile={b}/slurmctld.pid", f"SlurmdPidFile={b}/slurmd.pid",
            f"SlurmctldLogFile={b}/log/slurmctld.log", f"SlurmdLogFile={b}/log/slurmd.log",
            # no cgroups in a container: track processes by parent pid, bind no CPUs
            "ProctrackType=proctrack/linuxproc", "TaskPlugin=task/none",
            "SelectType=select/cons_tres", "SelectTypeParameters=CR_CPU",
            "JobAcctGatherType=jobacct_gather/none", "AccountingStorageType=accounting_storage/none",
            "MpiDefault=none", "ReturnToService=2", "SlurmdParameters=config_overrides",
            "MinJobAge=3600",  # finished jobs stay visible to scontrol for the test's checks
            *([f"Epilog={self.epilog}"] if self.epilog else []),
            f"NodeName={self.node} NodeAddr=127.0.0.1 CPUs={CPUS} RealMemory=1000 State=UNKNOWN",
            f"PartitionName=debug Nodes={self.node} Default=YES MaxTime=INFINITE State=UP",
        ]
        return "\n".join(lines) + "\n"

    def start(self, timeout: float = 30.0) -> None:
        b = self.base
        for d in ("state", "spool", "log"):
            (b / d).mkdir(parents=True, exist_ok=True)
        key = b / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
        self.conf.write_text(self._config(*_free_ports(2)))
        self._spawn([DAEMONS["munged"], "--foreground", "--force", f"--socket={b}/munge.socket",
                     f"--key-file={key}", f"--log-file={b}/log/munged.log", f"--pid-file={b}/munged.pid",
                     f"--seed-file={b}/munged.seed"])
        self._wait(lambda: (b / "munge.socket").exists(), timeout, "munged did not create its socket")
        self._spawn([DAEMONS["slurmctld"], "-D", "-i", "-f", str(self.conf)])
        self._spawn([DAEMONS["slurmd"], "-D", "-f", str(self.conf)])
        self._wait(self._idle, timeout, f"node {self.node} did not come up idle")

    def _spawn(self, argv: list[str]) -> None:
        log = open(self.base / "log" / f"{Path(argv[0]).name}.out", "ab")  # noqa: SIM115 (the daemon's)
        self._procs.append(subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                            env=self.env, start_new_session=True))
        log.close()

    def _idle(self) -> bool:
        done = self.run("sinfo", "-h", "-n", self.node, "-o", "%T", check=False)
        return done.returncode == 0 and done.stdout.strip() == "idle"

    def _wait(self, ready, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            dead = [p.args[0] for p in self._procs if p.poll() is not None]
            if dead or time.monotonic() > deadline:
                raise RuntimeError(f"{what} ({', '.join(dead) or 'timeout'} exited); logs:\n{self.logs()}")
            time.sleep(0.1)

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-2000:]}"
                         for p in sorted((self.base / "log").glob("*")))

    def run(self, *argv: str, check: bool = True, **kw) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(argv, env=kw.pop("env", self.env), capture_output=True, text=True,
                              timeout=60, check=False, **kw)
        if check and done.returncode != 0:
            raise AssertionError(f"{' '.join(argv)}: exit {done.returncode}\n{done.stderr}\n{self.logs()}")
        return done

    def sbatch(self, script: Path, *options: str, env: dict[str, str], cwd: Path) -> str:
        """Submit ``script`` (options before it, as a user would type them); the job id."""
        done = self.run("sbatch", "--parsable", *options, str(script), env={**env, "SLURM_CONF": str(self.conf)},
                        cwd=cwd)
        return done.stdout.strip().split(";")[0]

    def wait_all(self, timeout: float = 60.0) -> None:
        """Until no job is pending, running or completing (the epilog ran)."""
        self._wait(lambda: self.run("squeue", "-h", "-o", "%i").stdout.strip() == "", timeout,
                   "jobs did not finish")

    def job_states(self, job: str) -> dict[str, str]:
        """``JobId -> JobState ExitCode`` of a job (every task of an array)."""
        out = self.run("scontrol", "-o", "show", "job", job).stdout
        states = {}
        for line in out.splitlines():
            fields = dict(f.split("=", 1) for f in line.split() if "=" in f)
            states[fields["JobId"]] = f"{fields['JobState']} {fields['ExitCode']}"
        return states

    def stop(self) -> None:
        """``scontrol shutdown`` stops slurmctld and slurmd; munged is terminated (SIGTERM)."""
        self.run("scontrol", "shutdown", check=False)
        for p in reversed(self._procs):  # slurmd, slurmctld, then munged
            if p.args[0] == DAEMONS["munged"]:
                p.terminate()
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
