"""SFT: `FinetuningTrainer`, a light `transformers.Trainer` with forge's cross-entropy
(per item for a classifier, per next token for a causal LM)."""

from __future__ import annotations

import contextlib
import json
import os
import random

from transformers import Trainer
from transformers.trainer_callback import PrinterCallback

from forge.losses import cross_entropy, next_token_cross_entropy

# In each checkpoint, per process: the training loss summed since the last log and over how
# many steps, so the first loss logged after a resume averages the same steps as an
# uninterrupted run's (a stop by a signal saves between two logs).
LOSS_WINDOW = "forge_loss_window-rank{rank}.json"


class FinetuningTrainer(Trainer):
    """Cross-entropy on the model's logits. The distillation trainer builds on this loss."""

    def __init__(self, *args, next_token: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.next_token = next_token
        self.ce_loss = next_token_cross_entropy if next_token else cross_entropy
        # forge's loss normalises by the items of the whole accumulated batch itself, so the
        # trainer must count them and must not divide by the accumulation steps again.
        self.model_accepts_loss_kwargs = True
        # forge's StepMetricsCallback logs every step to the console and output.log.
        self.remove_callback(PrinterCallback)
        self._resumed_window: dict | None = None  # read from the checkpoint a resume starts from
        self._restored_loss: float | None = None  # that window's loss, until a log drains it

    def evaluate(self, *args, **kwargs):
        """An evaluation during training leaves the random state as it found it, so how
        often a run evaluates never changes what it trains (its DataLoader draws a seed from
        torch's generator, which would shift every dropout mask after it)."""
        with random_state_kept():
            return super().evaluate(*args, **kwargs)

    # The loss window across a resume (LOSS_WINDOW). transformers keeps the running loss since
    # the last log in `self._tr_loss` (a tensor it adds each micro-batch's loss to) and drains
    # it into `self._total_loss_scalar` at each log.

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

    def _loss_window_file(self, folder: str) -> str:
        return os.path.join(folder, LOSS_WINDOW.format(rank=self.args.process_index))

    def _save_checkpoint(self, model, trial) -> None:
        super()._save_checkpoint(model, trial)
        if getattr(self, "_tr_loss", None) is None:
            return
        folder = os.path.join(self._get_output_dir(trial=trial), f"checkpoint-{self.state.global_step}")
        os.makedirs(folder, exist_ok=True)
        with open(self._loss_window_file(folder), "w") as fh:
            json.dump(self.loss_window(), fh)

    def _load_from_checkpoint(self, resume_from_checkpoint, model=None) -> None:
        super()._load_from_checkpoint(resume_from_checkpoint, model)
        try:
            with open(self._loss_window_file(resume_from_checkpoint)) as fh:
                window = json.load(fh)
            self._resumed_window = window if isinstance(window, dict) and "loss_sum" in window else None
        except (OSError, ValueError):  # a checkpoint from before forge kept it
            self._resumed_window = None

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        labels = inputs.pop("labels")
        outputs = model(**inputs)
        loss = self.per_process(self.ce_loss(outputs.logits, labels, num_items_in_batch), num_items_in_batch)
        return (loss, outputs) if return_outputs else loss

    def per_process(self, loss, num_items_in_batch):
        """With several processes (DDP) the Trainer counts `num_items_in_batch` over all of
        them, and DDP averages the gradients over them: scale a loss divided by that count
        by the number of processes, as `Trainer.compute_loss` does. A no-op in one process
        (DataParallel included: forge's loss sees the whole gathered batch and its count)."""
        if num_items_in_batch is None or not self.args.average_tokens_across_devices:
            return loss
        return loss * self.accelerator.num_processes


@contextlib.contextmanager
def random_state_kept():
    """Restore Python's, numpy's and torch's (CPU and CUDA) random states on the way out."""
    import numpy as np
    import torch

    saved = random.getstate(), np.random.get_state(), torch.get_rng_state()
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
    try:
        yield
    finally:
        random.setstate(saved[0])
        np.random.set_state(saved[1])
        torch.set_rng_state(saved[2])
        if cuda is not None:
            torch.cuda.set_rng_state_all(cuda)
