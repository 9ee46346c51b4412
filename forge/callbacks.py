"""Trainer callbacks: step metrics, checkpoint marker, SLURM signal stop, peak metrics.

Markers and state files are written by rank 0 only (`state.is_world_process_zero`).
"""

from __future__ import annotations

import logging

from transformers import TrainerCallback

from forge import distributed
from forge.run import steplog
from forge.run.layout import RunDir
from forge.run.state import TrainingState, mark_checkpoint_complete, prune_checkpoints, set_latest_checkpoint
from forge.signals import StopRequest
from forge.tracking import Tracker

log = logging.getLogger("forge.train")


class StepMetricsCallback(TrainerCallback):
    """Every log event of the trainer goes to output.log, metrics/steps.jsonl and W&B at
    its global step."""

    def __init__(self, tracker: Tracker | None, run: RunDir | None = None):
        self.tracker = tracker
        self.run = run

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs:
            return
        numbers = {k: v for k, v in logs.items() if isinstance(v, (int, float))}
        shown = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in numbers.items())
        log.info("step %d/%d %s", state.global_step, state.max_steps, shown)
        if self.run is not None:
            steplog.append(self.run, state.global_step, numbers)
        if self.tracker is not None:
            prefixed = {k if k.startswith(("eval_", "train_")) else f"train/{k}": v for k, v in numbers.items()}
            self.tracker.log(prefixed, step=state.global_step)


class CheckpointMarkerCallback(TrainerCallback):
    """Marks a checkpoint complete once the trainer has finished writing it, then points
    `latest_checkpoint` at it and prunes older checkpoints (forge rotates, not the trainer,
    so the last safe checkpoint is never deleted before a newer one is safe)."""

    def __init__(self, run: RunDir, keep: int):
        self.run = run
        self.keep = keep

    def on_save(self, args, state, control, **kwargs):
        distributed.barrier()  # every rank has written its own files (RNG state) into the checkpoint
        if not state.is_world_process_zero:
            return
        path = self.run.checkpoint(state.global_step)
        mark_checkpoint_complete(path, state.global_step, distributed.world_size())
        set_latest_checkpoint(self.run, path)
        training = TrainingState.load(self.run)
        training.global_step = state.global_step
        training.max_steps = state.max_steps
        training.save(self.run)
        prune_checkpoints(self.run, self.keep)
        log.info("checkpoint %s complete", path.name)


class SignalStopCallback(TrainerCallback):
    """After SIGUSR1/SIGTERM: save at the end of the current step and stop training."""

    def __init__(self, stop: StopRequest):
        self.stop = stop

    def on_step_end(self, args, state, control, **kwargs):
        # Every rank asks at every step end and takes the same answer, so all save the
        # same step together (a save on one rank alone would hang in its collectives).
        if distributed.agree_stop(self.stop):
            if state.is_world_process_zero:
                log.warning("%s received: saving at step %d and stopping", self.stop.describe(), state.global_step)
            control.should_save = True
            control.should_training_stop = True
        return control


class PeakMetricsCallback(TrainerCallback):
    """Keeps the best evaluation metrics so far in training_state.json."""

    def __init__(self, run: RunDir, greater_is_better: dict[str, bool], tracker: Tracker | None):
        self.run = run
        self.greater_is_better = greater_is_better
        self.tracker = tracker

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        if not state.is_world_process_zero or not metrics:
            return
        training = TrainingState.load(self.run)
        if training.update_peak(metrics, state.global_step, self.greater_is_better):
            training.save(self.run)
            if self.tracker is not None:
                self.tracker.update_summary({f"peak/{k}": v["value"] for k, v in training.peak_metrics.items()})


class TeacherGapCallback(TrainerCallback):
    """Student-vs-teacher accuracy gap at each evaluation; the smallest gap is kept as a peak."""

    def __init__(self, run: RunDir, teacher_accuracy: float):
        self.run = run
        self.teacher_accuracy = teacher_accuracy

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        if not state.is_world_process_zero or not metrics or "eval_accuracy" not in metrics:
            return
        gap = self.teacher_accuracy - metrics["eval_accuracy"]
        log.info("step %d: student-teacher accuracy gap %.4f", state.global_step, gap)
        training = TrainingState.load(self.run)
        if training.update_peak({"teacher_gap": gap}, state.global_step, {"teacher_gap": False}):
            training.save(self.run)
