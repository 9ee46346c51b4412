"""run_metadata.json: what ran, where, with what, and how each attempt ended."""

from __future__ import annotations

import logging
import os
import secrets
import socket
import subprocess
import sys
import time
from enum import Enum
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

from forge import distributed
from forge.run.files import atomic_write_json, keep_damaged, read_json
from forge.run.layout import RunDir

log = logging.getLogger("forge.run")

PACKAGES = ("forge", "torch", "transformers", "datasets", "tokenizers", "accelerate", "peft", "trl", "wandb")


class Outcome(str, Enum):
    """How an attempt ended: the `outcome` of its record in run_metadata.json, beside the
    exit code and a sentence for people (`exit_reason`). `forge status` reads this."""

    COMPLETED = "completed"  # the run is complete
    STAGE_DONE = "stage done"  # the stages it was asked for are done (a Snakemake job)
    PREEMPTED = "preempted"  # stopped by SIGTERM at a safe checkpoint
    TIME_LIMIT = "time limit"  # stopped by SIGUSR1 or forge's SLURM timer at a safe checkpoint
    INTERRUPTED = "interrupted"  # Ctrl-C
    ERROR = "error"  # a problem forge names (a bad input, a missing file)
    FAILED = "failed"  # an unexpected exception

    @property
    def stopped_safely(self) -> bool:
        return self in (Outcome.PREEMPTED, Outcome.TIME_LIMIT)

    @classmethod
    def of(cls, attempt: dict) -> Outcome | None:
        """An ended attempt's outcome (None while it has not ended). Attempts recorded before
        forge kept the outcome have only their exit_reason, whose first words name it."""
        value = attempt.get("outcome")
        if value is not None:
            try:
                return cls(value)
            except ValueError:
                return None
        reason = attempt.get("exit_reason")
        if not isinstance(reason, str):
            return None
        return next((o for o in cls if reason.startswith(o.value)), None)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def git_commit() -> str | None:
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def slurm_info() -> dict[str, Any]:
    job = os.environ.get("SLURM_JOB_ID")
    if not job:
        return {}
    restarts = os.environ.get("SLURM_RESTART_COUNT")
    return {
        "slurm_job_id": job,
        "slurm_array_task_id": os.environ.get("SLURM_ARRAY_TASK_ID"),
        "slurm_restart_count": int(restarts) if restarts else _restart_count(job),
    }


def _restart_count(job: str) -> int | None:
    """Snakemake's SLURM job step drops SLURM_RESTART_COUNT; ask SLURM instead."""
    try:
        out = subprocess.run(["scontrol", "show", "job", job], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    for field in out.split():
        if field.startswith("Restarts="):
            return int(field.removeprefix("Restarts="))
    return None


def identity(cfg) -> dict[str, Any]:
    """What `forge status` shows of a run's config (a ForgeConfig): task, model, mode, max_steps."""
    return {
        "task": cfg.task.name,
        "model": cfg.student.name,
        "mode": cfg.mode,
        "max_steps": cfg.training.max_steps if cfg.training.max_steps > 0 else None,
    }


class RunMetadata:
    def __init__(self, run: RunDir, data: dict[str, Any] | None = None):
        self.run = run
        self.data: dict[str, Any] = data or {}

    @classmethod
    def read_or_rebuild(cls, run: RunDir, cfg) -> RunMetadata:
        """An existing run's record. One that is missing (the run was stopped between its
        config.yaml and its first attempt) or damaged (cut short, not JSON) is begun again:
        its config hash from `cfg`, a new W&B id, no attempts; a damaged file is kept beside
        it (run_metadata.json.damaged) and a warning says so. Nothing is written here."""
        from forge.config import config_hash

        try:
            data = read_json(run.metadata)
            if data is not None and not isinstance(data, dict):
                raise ValueError("not a JSON object")
        except (ValueError, UnicodeDecodeError) as exc:
            kept = keep_damaged(run.metadata)
            log.warning(
                "%s is damaged (%s): begun again, the old file kept as %s; earlier attempts are not listed",
                run.metadata, type(exc).__name__, kept.name,
            )  # fmt: skip
            data = None
        if data is not None:
            return cls(run, data)
        return cls(run, {"created_at": None, "config_path": None, "config_hash": config_hash(cfg),
                         "wandb_run_id": secrets.token_hex(4), "attempts": [], "rebuilt_at": _now()})  # fmt: skip

    @property
    def wandb_run_id(self) -> str:
        return self.data["wandb_run_id"]

    def create(self, config_path: str | None, config_hash: str) -> None:
        self.data = {
            "created_at": _now(),
            "config_path": config_path,
            "config_hash": config_hash,
            "wandb_run_id": secrets.token_hex(4),
            "attempts": [],
        }
        self.save()

    def start_attempt(self, stage: str | None = None) -> None:
        self.data.setdefault("attempts", []).append(
            {
                "attempt": len(self.data.get("attempts", [])) + 1,
                "stage": stage or "pipeline",
                "started_at": _now(),
                "ended_at": None,
                "exit_reason": None,
                "exit_code": None,
                "command": sys.argv,
                "cwd": os.getcwd(),
                "host": socket.gethostname(),
                "pid": os.getpid(),
                "processes": distributed.world_size(),  # torchrun's ranks (rank 0 records)
                "git_commit": git_commit(),
                **slurm_info(),
                "packages": package_versions(),
            }
        )
        self.save()

    def end_attempt(self, outcome: Outcome, reason: str, exit_code: int) -> None:
        attempt = self.data["attempts"][-1]
        attempt.update(ended_at=_now(), outcome=outcome.value, exit_reason=reason, exit_code=exit_code)
        self.save()

    def note(self, key: str, value: Any) -> None:
        self.data[key] = value
        self.save()

    def save(self) -> None:
        atomic_write_json(self.run.metadata, self.data)
