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
        self._tr_loss = None  # the training loop's running loss (a tensor it adds to in place)
        self._resumed_window: tuple[int, float] | None = None

    def evaluate(self, *args, **kwargs):
        """An evaluation during training leaves the random state as it found it, so how
        often a run evaluates never changes what it trains (its DataLoader draws a seed from
        torch's generator, which would shift every dropout mask after it)."""
        with random_state_kept():
            return super().evaluate(*args, **kwargs)

    # The loss window across a resume (LOSS_WINDOW).

    def _maybe_log_save_evaluate(self, tr_loss, *args, **kwargs):
        self._tr_loss = tr_loss
        if self._resumed_window is not None:  # the first step after a resume
            steps, total = self._resumed_window
            self._resumed_window = None
            tr_loss += total  # in place: the loop's own running sum
            self._globalstep_last_logged -= steps
        return super()._maybe_log_save_evaluate(tr_loss, *args, **kwargs)

    def _loss_window_file(self, folder: str) -> str:
        return os.path.join(folder, LOSS_WINDOW.format(rank=self.args.process_index))

    def _save_checkpoint(self, model, trial) -> None:
        super()._save_checkpoint(model, trial)
        if self._tr_loss is None:
            return
        folder = os.path.join(self._get_output_dir(trial=trial), f"checkpoint-{self.state.global_step}")
        os.makedirs(folder, exist_ok=True)
        window = {"steps": self.state.global_step - self._globalstep_last_logged, "loss_sum": self._tr_loss.item()}
        with open(self._loss_window_file(folder), "w") as fh:
            json.dump(window, fh)

    def _load_from_checkpoint(self, resume_from_checkpoint, model=None) -> None:
        super()._load_from_checkpoint(resume_from_checkpoint, model)
        try:
            with open(self._loss_window_file(resume_from_checkpoint)) as fh:
                window = json.load(fh)
            self._resumed_window = (int(window["steps"]), float(window["loss_sum"]))
        except (OSError, ValueError, KeyError, TypeError):  # a checkpoint from before forge kept it
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
