"""A real single-node SLURM cluster on loopback, for the `slurm` tests and bench/slurm_jobs.py.

`local_cluster(state)` installs Debian's slurmctld, slurmd and munge when they are missing
(root only), writes a slurm.conf for this machine into `state` (linked from
/etc/slurm/slurm.conf, where SLURM's clients inside jobs look for it), starts munged,
slurmctld and slurmd in the foreground as its own child processes, waits for the node, and
on the way out stops exactly those processes by PID and removes what it created.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

PACKAGES = ("slurmctld", "slurmd", "slurm-client", "munge")
SLURM_CONF = Path("/etc/slurm/slurm.conf")
PARTITION = "debug"

CONF = """\
ClusterName=forgetest
SlurmctldHost={host}(127.0.0.1)
SlurmUser=root
AuthType=auth/munge
AuthInfo=cred_expire=10
StateSaveLocation={state}/ctld
SlurmdSpoolDir={state}/d
SlurmctldPidFile={state}/slurmctld.pid
SlurmdPidFile={state}/slurmd.pid
SlurmctldLogFile={state}/slurmctld.log
SlurmdLogFile={state}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1024
ReturnToService=2
MinJobAge=300
KillWait=30
SchedulerType=sched/backfill
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
{node}
PartitionName={partition} Nodes=ALL Default=YES MaxTime=INFINITE State=UP
"""


class ClusterError(RuntimeError):
    """The local cluster cannot be set up here (said in one line)."""


@dataclass
class Cluster:
    conf: Path
    state: Path
    partition: str = PARTITION


def _run(*cmd: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def _ensure_packages() -> None:
    if all(shutil.which(b) for b in ("slurmctld", "slurmd", "sbatch", "munged")):
        return
    for cmd in (
        ["apt-get", "update", "-qq"],
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *PACKAGES],
    ):
        result = subprocess.run(
            cmd, capture_output=True, text=True, timeout=600, env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        )
        if result.returncode != 0:
            raise ClusterError(f"could not install SLURM ({' '.join(cmd)}): {result.stderr[-2000:]}")


def _node_line(host: str) -> str:
    probe = _run("slurmd", "-C").stdout.splitlines()[0]
    fields = dict(item.split("=", 1) for item in probe.split())
    memory = int(int(fields["RealMemory"]) * 0.95)
    keep = ("CPUs", "Boards", "SocketsPerBoard", "CoresPerSocket", "ThreadsPerCore")
    return (
        f"NodeName={host} NodeAddr=127.0.0.1 "
        + " ".join(f"{k}={fields[k]}" for k in keep if k in fields)
        + (f" RealMemory={memory} State=UNKNOWN")
    )


def _wait_until(predicate, timeout: float, what: str) -> None:
    deadline = time.time() + timeout
    while not predicate():
        if time.time() > deadline:
            raise ClusterError(f"SLURM test cluster: timed out waiting for {what}")
        time.sleep(0.5)


@contextmanager
def local_cluster(state: Path, stale_root: str | None = None) -> Iterator[Cluster]:
    """Start the cluster with its files in the (empty) folder `state`. A
    /etc/slurm/slurm.conf link into `stale_root` is one an earlier, killed session left:
    it is replaced; any other file there is a real cluster's and stops the start."""
    if os.geteuid() != 0:
        raise ClusterError("the local SLURM cluster installs and starts daemons, which needs root")
    _ensure_packages()
    if _run("pgrep", "-x", "slurmctld").returncode == 0:
        raise ClusterError("a slurmctld is already running on this machine; stop it first")

    host = socket.gethostname().split(".")[0]
    for sub in ("ctld", "d"):
        (state / sub).mkdir()
    conf = state / "slurm.conf"
    conf.write_text(CONF.format(host=host, state=state, node=_node_line(host), partition=PARTITION))

    created: list[Path] = []
    SLURM_CONF.parent.mkdir(parents=True, exist_ok=True)
    if stale_root and SLURM_CONF.is_symlink() and os.readlink(SLURM_CONF).startswith(stale_root):
        SLURM_CONF.unlink()  # left by an earlier session that was killed before its teardown
    if SLURM_CONF.exists() or SLURM_CONF.is_symlink():
        raise ClusterError(f"{SLURM_CONF} exists already; a real cluster's config is not overwritten")
    SLURM_CONF.symlink_to(conf)
    created.append(SLURM_CONF)

    hosts = Path("/etc/hosts")
    hosts_before = hosts.read_text()
    if _run("getent", "hosts", host).returncode != 0:
        hosts.write_text(hosts_before + f"\n127.0.0.1 {host}\n")

    munge_run = Path("/run/munge")
    munge_run.mkdir(parents=True, exist_ok=True)
    shutil.chown(munge_run, "munge", "munge")
    procs: list[subprocess.Popen] = []
    log = (state / "daemons.log").open("w")
    try:
        # munged must run as the munge user; started directly (no runuser) so it is our child
        procs.append(
            subprocess.Popen(
                ["munged", "-F", "--force"], user="munge", group="munge", stdout=log, stderr=subprocess.STDOUT
            )
        )
        _wait_until(lambda: _run("munge", "-n").returncode == 0, 30, "munged")
        env = {**os.environ, "SLURM_CONF": str(conf)}
        for daemon in ("slurmctld", "slurmd"):
            procs.append(
                subprocess.Popen([daemon, "-D", "-f", str(conf)], stdout=log, stderr=subprocess.STDOUT, env=env)
            )
        _wait_until(
            lambda: _run("sinfo", "-h", "-o", "%T").stdout.strip() in {"idle", "mixed", "allocated"}, 90, "an idle node"
        )
        yield Cluster(conf=conf, state=state)
    finally:
        if procs:  # end the jobs first: their step daemons would outlive slurmd
            _run("scancel", "--user", "root", timeout=30)
            deadline = time.time() + 60
            while _run("squeue", "-h").stdout.strip() and time.time() < deadline:
                time.sleep(1)
        for proc in reversed(procs):
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.close()
        for path in created:
            path.unlink(missing_ok=True)
        if hosts.read_text() != hosts_before:
            hosts.write_text(hosts_before)
