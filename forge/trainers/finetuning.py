"""SFT: `FinetuningTrainer`, a light `transformers.Trainer` with forge's cross-entropy
(per item for a classifier, per next token for a causal LM; a regression head's mean squared
error)."""

from __future__ import annotations

from transformers import Trainer
from transformers.trainer_callback import PrinterCallback

from forge.losses import cross_entropy, mean_squared_error, next_token_cross_entropy
from forge.rng import random_state_kept
from forge.trainers.resume import ExactResume
from forge.trainers.window import LogWindow


class FinetuningTrainer(LogWindow, ExactResume, Trainer):
    """Cross-entropy on the model's logits. The distillation trainer builds on this loss."""

    def __init__(self, *args, next_token: bool = False, regression: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.next_token = next_token
        self.ce_loss = next_token_cross_entropy if next_token else mean_squared_error if regression else cross_entropy
        # forge's loss normalises by the items of the whole accumulated batch itself, so the
        # trainer must count them and must not divide by the accumulation steps again.
        self.model_accepts_loss_kwargs = True
        # forge's StepMetricsCallback logs every step to the console and output.log.
        self.remove_callback(PrinterCallback)

    def evaluate(self, *args, **kwargs):
        """An evaluation during training leaves the random state as it found it, so how
        often a run evaluates never changes what it trains (its DataLoader draws a seed from
        torch's generator, which would shift every dropout mask after it)."""
        with random_state_kept():
            return super().evaluate(*args, **kwargs)

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
