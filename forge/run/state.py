"""The resume decision, in one place.

A run is resumed like this:

1. `pipeline_complete` exists → nothing to do.
2. Otherwise the stages without a `stages/<stage>.done` marker are still to run.
3. Training restarts from the latest *safe* checkpoint. A checkpoint is safe once
   forge wrote `forge_complete.json` into it, which happens only after the trainer
   returned from saving it and every file was flushed to disk; the mark lists each
   file's size, so a file truncated later is caught too. The `latest_checkpoint`
   marker names the newest safe checkpoint; when it is missing, stale or points at
   a damaged checkpoint, the `checkpoint-*` folders are scanned newest first.

Only rank 0 writes any of these files.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from forge.run.files import atomic_write_json, atomic_write_text, follow_umask, fsync_dir, read_json
from forge.run.layout import STAGES, RunDir, checkpoint_step

log = logging.getLogger("forge.run")

COMPLETE_MARK = "forge_complete.json"
# Written by transformers.Trainer last among its own files; resuming needs it.
TRAINER_STATE = "trainer_state.json"


# ---------------------------------------------------------------- checkpoints


def mark_checkpoint_complete(path: Path, step: int, world_size: int = 1) -> None:
    """Flush every file of a finished checkpoint to disk, then record it as complete
    (with the number of processes that wrote it: one RNG state file each)."""
    follow_umask(path)  # the trainer's files as readable as the user's umask allows
    files: dict[str, int] = {}
    for file in sorted(p for p in path.rglob("*") if p.is_file() and p.name != COMPLETE_MARK):
        with file.open("rb") as fh:
            os.fsync(fh.fileno())
        files[str(file.relative_to(path))] = file.stat().st_size
    fsync_dir(path)
    mark = {"step": step, "world_size": world_size, "files": files, "time": time.time()}
    atomic_write_json(path / COMPLETE_MARK, mark)


def checkpoint_world_size(path: Path) -> int:
    """How many processes trained up to this (safe) checkpoint; 1 for marks older than the field."""
    return int((read_json(path / COMPLETE_MARK, {}) or {}).get("world_size", 1))


def checkpoint_problem(path: Path) -> str | None:
    """Why `path` is not a safe checkpoint, or None when it is."""
    if not path.is_dir():
        return "it does not exist"
    try:
        mark = json.loads((path / COMPLETE_MARK).read_text())
        files = mark["files"]
    except FileNotFoundError:
        return "it was never marked complete (interrupted while saving?)"
    except (ValueError, KeyError, TypeError):
        return f"its {COMPLETE_MARK} is unreadable"
    if TRAINER_STATE not in files:
        return f"it has no {TRAINER_STATE}"
    for name, size in files.items():
        file = path / name
        if not file.is_file():
            return f"{name} is missing"
        if file.stat().st_size != size:
            return f"{name} is {file.stat().st_size} bytes, {size} were written"
    return None


def is_safe_checkpoint(path: Path) -> bool:
    return checkpoint_problem(path) is None


def find_resume_checkpoint(run: RunDir) -> Path | None:
    """The newest safe checkpoint, or None to start training from scratch."""
    checkpoints = run.checkpoints()
    marked = _read_latest_marker(run)
    if marked is not None:
        problem = checkpoint_problem(marked)
        newest = checkpoints[0][1] if checkpoints else None
        if problem is None and marked == newest:
            return marked
        if problem is not None:
            log.warning("latest_checkpoint names %s, but %s; scanning checkpoints", marked.name, problem)
    for _step, path in checkpoints:
        problem = checkpoint_problem(path)
        if problem is None:
            return path
        log.warning("skipping %s: %s", path.name, problem)
    return None


def _read_latest_marker(run: RunDir) -> Path | None:
    try:
        name = run.latest_checkpoint.read_text().strip()
    except FileNotFoundError:
        return None
    return run.root / name if name else None


def set_latest_checkpoint(run: RunDir, path: Path) -> None:
    atomic_write_text(run.latest_checkpoint, path.name + "\n")


def discard_checkpoints_after(run: RunDir, step: int | None) -> None:
    """Remove checkpoint folders newer than the resume point: they are unsafe leftovers
    of an interrupted save, and the trainer would otherwise write into them."""
    for ckpt_step, path in run.checkpoints():
        if step is None or ckpt_step > step:
            log.warning("removing %s: incomplete, training resumes from an earlier point", path.name)
            shutil.rmtree(path)


def prune_checkpoints(run: RunDir, keep: int) -> None:
    """Keep the `keep` newest safe checkpoints (never the only safe one away)."""
    safe = [path for _step, path in run.checkpoints() if is_safe_checkpoint(path)]
    for path in safe[keep:]:
        shutil.rmtree(path, ignore_errors=True)


# ---------------------------------------------------------------- run progress


@dataclass
class TrainingState:
    """The contents of training_state.json: the step training reached and the best evaluation
    metrics so far. (Which stages are done is the markers' to say, the newest safe checkpoint
    the checkpoints'; files written by earlier versions also mirror those, and are read as
    they are.)"""

    global_step: int = 0
    max_steps: int | None = None
    peak_metrics: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def load(cls, run: RunDir) -> TrainingState:
        try:
            data = read_json(run.state, default={}) or {}
            if not isinstance(data, dict):
                raise ValueError("not a JSON object")
            return cls(int(data.get("global_step", 0)), data.get("max_steps"), dict(data.get("peak_metrics", {})))
        except (ValueError, TypeError, UnicodeDecodeError) as exc:  # cut short, garbage: rebuilt from the run
            return cls._rebuilt(run, exc)

    @classmethod
    def _rebuilt(cls, run: RunDir, why: Exception) -> TrainingState:
        """What the run itself says: the step of its newest safe checkpoint (training resumes
        from there, and finalize publishes it). The best metrics so far are lost."""
        checkpoint = find_resume_checkpoint(run)
        step = checkpoint_step(checkpoint) if checkpoint else 0
        log.warning(
            "%s is damaged (%s): rebuilt from the run's checkpoints (step %d); its best metrics so far are lost",
            run.state, type(why).__name__, step,
        )  # fmt: skip
        return cls(global_step=step)

    def save(self, run: RunDir) -> None:
        atomic_write_json(
            run.state,
            {
                "global_step": self.global_step,
                "max_steps": self.max_steps,
                "peak_metrics": self.peak_metrics,
                "updated_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            },
        )

    def update_peak(self, metrics: dict[str, float], step: int, greater_is_better: dict[str, bool]) -> bool:
        """Record metrics that beat their best value so far; True when any did."""
        improved = False
        for name, value in metrics.items():
            if name not in greater_is_better:
                continue
            best = self.peak_metrics.get(name)
            better = greater_is_better[name]
            if best is None or (value > best["value"] if better else value < best["value"]):
                self.peak_metrics[name] = {"value": value, "step": step}
                improved = True
        return improved


def stage_done(run: RunDir, stage: str) -> bool:
    return run.stage_marker(stage).exists()


def mark_stage_done(run: RunDir, stage: str) -> None:
    """Record a finished stage: its marker file."""
    atomic_write_text(run.stage_marker(stage), time.strftime("%Y-%m-%dT%H:%M:%S%z") + "\n")


def mark_pipeline_complete(run: RunDir) -> None:
    atomic_write_text(run.complete, time.strftime("%Y-%m-%dT%H:%M:%S%z") + "\n")


def lost_outputs(run: RunDir) -> dict[str, Path]:
    """Stage -> what it wrote, for each stage marked done whose output is gone and needed: the
    final model (a complete run is not complete without it), the prepared data while a stage
    that reads it is still to run (a finished run's data/ may be deleted to free space)."""
    lost = {}
    if stage_done(run, "finalize") and not run.final_model.is_dir():
        lost["finalize"] = run.final_model
    needed = lost or any(not stage_done(run, s) for s in STAGES[1:])
    if needed and stage_done(run, "prepare_data") and not run.data.is_dir():
        lost["prepare_data"] = run.data
    return lost


def _again(lost: dict[str, Path]) -> list[str]:
    """The stages to run again when these stages' outputs are lost (post_eval evaluates the
    final model)."""
    return [s for s in STAGES if s in lost or (s == "post_eval" and "finalize" in lost)]


def is_complete(run: RunDir) -> bool:
    """pipeline_complete, and its final model still there."""
    return run.complete.exists() and not lost_outputs(run)


def reopen_lost(run: RunDir) -> list[str]:
    """Unmark the stages whose needed output is gone, and those that read it (the run is then
    not complete): running the run again rebuilds them. Returns the stages reopened."""
    lost = lost_outputs(run)
    if not lost:
        return []
    for stage, output in lost.items():
        log.warning("%s is missing: %s runs again", output, stage)
    run.complete.unlink(missing_ok=True)
    again = _again(lost)
    for stage in again:
        run.stage_marker(stage).unlink(missing_ok=True)
    return again


@dataclass(frozen=True)
class ResumePlan:
    complete: bool
    pending: tuple[str, ...]
    checkpoint: Path | None

    def describe(self) -> str:
        if self.complete:
            return "complete: nothing to do"
        if "train" not in self.pending:
            return f"training done; to run: {', '.join(self.pending)}"
        start = f"resume from {self.checkpoint.name}" if self.checkpoint else "train from scratch"
        return f"{start}; to run: {', '.join(self.pending)}"


def plan(run: RunDir) -> ResumePlan:
    """What running this run directory again would do."""
    if is_complete(run):
        return ResumePlan(True, (), None)
    again = _again(lost_outputs(run))
    pending = tuple(s for s in STAGES if not stage_done(run, s) or s in again)
    checkpoint = find_resume_checkpoint(run) if "train" in pending else None
    return ResumePlan(False, pending, checkpoint)
