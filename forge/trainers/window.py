"""The logging window across a resume: what a Trainer has summed since its last log.

A signal stops training between two logs; the checkpoint it saves keeps, per process, the
training loss summed since the last log and over how many steps (and whatever else a
trainer averages per log: KD's CE/KD parts, GRPO's reward buffers). The resumed run puts
it back before its first micro-batch, so the first record logged after the resume averages
the same steps as an uninterrupted run's, and `metrics/steps.jsonl` has the same curve.

transformers keeps the running loss since the last log in `Trainer._tr_loss` (a tensor each
micro-batch's loss is added to) and drains it into `_total_loss_scalar` at each log; the
methods overridden here are those of transformers 5.x (a transformers upgrade must rerun the
SIGUSR1 curve tests, which fail if this drifts).

The two checkpoint methods overridden here are forge's one place where a checkpoint gains
files of its own: the window, and whatever a trainer keeps beside its model through
`save_extras` / `load_extras` (KD's learned hidden-state projection).
"""

from __future__ import annotations

import json
import os

WINDOW_FILE = "forge_loss_window-rank{rank}.json"


class LogWindow:
    """Mixin for a `transformers.Trainer` subclass (put it first in the bases)."""

    _resumed_window: dict | None = None  # read from the checkpoint a resume starts from
    _restored_loss: float | None = None  # that window's loss, until a log drains it

    def loss_window(self) -> dict:
        """What a checkpoint keeps of the logging window: steps since the last log, and sums."""
        return {
            "steps": self.state.global_step - self._globalstep_last_logged,
            "loss_sum": self._tr_loss.item(),
        }

    def restore_loss_window(self, window: dict) -> None:
        """Put a checkpoint's window back before the first micro-batch after the resume, so
        every sum is added to in the order of an uninterrupted run."""
        self._tr_loss += window["loss_sum"]
        self._globalstep_last_logged -= int(window["steps"])
        self._restored_loss = window["loss_sum"]

    def get_batch_samples(self, epoch_iterator, num_batches, device):
        if self._resumed_window is not None:  # the first step after a resume, before its micro-batches
            self.restore_loss_window(self._resumed_window)
            self._resumed_window = None
        return super().get_batch_samples(epoch_iterator, num_batches, device)

    def log(self, logs: dict[str, float], *args, **kwargs) -> None:
        # The restored sum belongs to the attempt before: once a log drained it into the total,
        # take it out again, so the attempt's train_loss stays the mean of its own steps.
        if "loss" in logs and self._restored_loss is not None:
            self._total_loss_scalar -= self._restored_loss
            self._restored_loss = None
        super().log(logs, *args, **kwargs)

    def _finalize_training(self, *args, **kwargs):
        if self._restored_loss is not None:  # training ended before the next log: the same
            self._total_loss_scalar -= self._restored_loss
            self._restored_loss = None
        return super()._finalize_training(*args, **kwargs)

    def _window_file(self, folder: str) -> str:
        return os.path.join(folder, WINDOW_FILE.format(rank=self.args.process_index))

    def save_extras(self, folder: str) -> None:
        """Save what the trainer keeps beside the model into the checkpoint `folder` (every
        process calls it; the Trainer's own files are written)."""

    def load_extras(self, folder: str) -> None:
        """Restore what `save_extras` saved, from the checkpoint a resume starts from."""

    def _save_checkpoint(self, model, trial) -> None:
        super()._save_checkpoint(model, trial)
        folder = os.path.join(self._get_output_dir(trial=trial), f"checkpoint-{self.state.global_step}")
        self.save_extras(folder)
        if getattr(self, "_tr_loss", None) is None:
            return
        os.makedirs(folder, exist_ok=True)
        with open(self._window_file(folder), "w") as fh:
            json.dump(self.loss_window(), fh)

    def _load_from_checkpoint(self, resume_from_checkpoint, model=None) -> None:
        super()._load_from_checkpoint(resume_from_checkpoint, model)
        self.load_extras(resume_from_checkpoint)
        try:
            with open(self._window_file(resume_from_checkpoint)) as fh:
                window = json.load(fh)
            self._resumed_window = window if isinstance(window, dict) and "loss_sum" in window else None
        except (OSError, ValueError):  # a checkpoint from before forge kept it
            self._resumed_window = None
