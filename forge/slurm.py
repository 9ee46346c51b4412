"""Living inside a SLURM job: the time limit, and requeueing after a safe stop.

- SLURM's `--signal=USR1@N` warning may come up to a minute early, and some SLURM
  versions send it only once per job id, never again after a requeue. So forge also
  arms its own timer: it asks SLURM how much time the job has left and raises the
  same stop request `FORGE_TIME_MARGIN` seconds (default 120) before the limit.
- The warning reaches every process of the job step, the Snakemake that runs the
  rule inside the job too, which USR1 would kill (failing the job even when forge
  finished). `ignore_warning_in_job` makes that Snakemake ignore it; forge
  installs its own handler over the inherited "ignore".
- After stopping for the time limit (USR1 or the timer), forge asks SLURM to requeue
  the job (`scontrol requeue`), which keeps the job id, so Snakemake keeps waiting
  for it and the next start resumes from the checkpoint. After a bare SIGTERM
  (preemption, `scancel`, SLURM's own requeue) it does not: SLURM decided already.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess

from forge.signals import StopRequest

log = logging.getLogger("forge.slurm")

DEFAULT_MARGIN_S = 120
_TIME = re.compile(r"^(?:(?P<d>\d+)-)?(?:(?P<h>\d+):)?(?P<m>\d+):(?P<s>\d+)$")


def job_id() -> str | None:
    return os.environ.get("SLURM_JOB_ID") or None


def ignore_warning_in_job() -> bool:
    """Inside a SLURM job, ignore SIGUSR1 in this process (and, inherited, its children
    until they handle it). Called by the Snakefile, so the in-job Snakemake survives
    the warning; True when it did so."""
    if job_id() is None:
        return False
    signal.signal(signal.SIGUSR1, signal.SIG_IGN)
    return True


def parse_time_left(text: str) -> int | None:
    """Seconds in squeue's %L format ("1-02:03:04", "02:03:04", "03:04"); None if unlimited."""
    match = _TIME.match(text.strip())
    if not match:
        return None
    d, h, m, s = (int(match.group(k) or 0) for k in ("d", "h", "m", "s"))
    return ((d * 24 + h) * 60 + m) * 60 + s


def time_left(job: str) -> int | None:
    try:
        out = subprocess.run(
            ["squeue", "-h", "-j", job, "-o", "%L"], capture_output=True, text=True, timeout=20, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        log.warning("could not read the time left of SLURM job %s: %s", job, exc)
        return None
    return parse_time_left(out)


def arm_time_limit(stop: StopRequest, margin: int | None = None) -> int | None:
    """Request a stop `margin` seconds before this job's time limit; returns the delay armed."""
    job = job_id()
    if job is None:
        return None
    margin = int(os.environ.get("FORGE_TIME_MARGIN", DEFAULT_MARGIN_S)) if margin is None else margin
    left = time_left(job)
    if left is None:
        return None
    delay = max(1, left - margin)
    signal.signal(signal.SIGALRM, stop.handle)
    signal.setitimer(signal.ITIMER_REAL, delay)
    log.info("SLURM job %s has %d s left: will save and stop in %d s", job, left, delay)
    return delay


def disarm_time_limit() -> None:
    signal.setitimer(signal.ITIMER_REAL, 0)


def requeue_after(stop: StopRequest) -> bool:
    """Ask SLURM to requeue this job after a stop for the time limit; True when it accepted."""
    job = job_id()
    if job is None or not stop.for_time_limit:
        return False
    # SLURM answers a requeue with SIGTERM to the whole job: this process is done
    # already, so let it end with its own exit code.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    result = subprocess.run(["scontrol", "requeue", job], capture_output=True, text=True, timeout=30)
    if result.returncode != 0:
        log.warning("scontrol requeue %s failed (%s); a retry will resume instead", job, result.stderr.strip())
        return False
    log.info("requeued SLURM job %s; it resumes from the checkpoint when it starts again", job)
    return True
