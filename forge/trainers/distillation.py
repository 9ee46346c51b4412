"""KD: `DistillationTrainer`, the fine-tuning trainer with a teacher in the loss.

loss = (1 − alpha) · CE(student, labels) + alpha · T² · KL(teacher/T ‖ student/T)

The teacher's logits come from the batch (`teacher_logits`, the cache of
forge/kd_cache.py) or, in online KD, from running the teacher on the batch.
Evaluation reports the plain CE loss in both cases.

The config half of the pair is `distillation:` (forge/config/schema.py). The teacher
is frozen and in eval mode, so it draws no random numbers: a resumed KD run stays
bitwise equal to an uninterrupted one, as SFT does.
"""

from __future__ import annotations

import torch

from forge.kd_cache import COLUMN
from forge.losses import cross_entropy, distillation_objective, kl_distillation
from forge.trainers.finetuning import FinetuningTrainer


class DistillationTrainer(FinetuningTrainer):
    def __init__(self, *args, teacher=None, alpha: float, temperature: float, **kwargs):
        super().__init__(*args, **kwargs)
        self.teacher = teacher.eval().requires_grad_(False).to(self.args.device) if teacher is not None else None
        self.alpha = alpha
        self.temperature = temperature
        self._reset_parts()

    def _reset_parts(self) -> None:
        self._parts = {"ce": torch.zeros(()), "kd": torch.zeros(()), "n": 0}

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        labels = inputs.pop("labels")
        cached = inputs.pop(COLUMN, None)
        outputs = model(**inputs)
        ce = cross_entropy(outputs.logits, labels, num_items_in_batch)
        if not model.training:
            return (ce, outputs) if return_outputs else ce
        if cached is not None:
            teacher_logits = cached
        elif self.teacher is not None:
            with torch.no_grad():
                teacher_logits = self.teacher(**inputs).logits
        else:
            raise RuntimeError("DistillationTrainer: no teacher and no cached teacher logits in the batch")
        kd = kl_distillation(outputs.logits, teacher_logits, self.temperature, num_items_in_batch=num_items_in_batch)
        self._parts["ce"] = self._parts["ce"] + ce.detach().cpu()
        self._parts["kd"] = self._parts["kd"] + kd.detach().cpu()
        self._parts["n"] += 1
        loss = distillation_objective(ce, kd, self.alpha)
        return (loss, outputs) if return_outputs else loss

    def log(self, logs: dict[str, float], *args, **kwargs) -> None:
        """Training logs also carry the mean CE and KD parts since the last log."""
        if "loss" in logs and self._parts["n"]:
            n = self._parts["n"] / self.args.gradient_accumulation_steps
            logs = {**logs, "ce": self._parts["ce"].item() / n, "kd": self._parts["kd"].item() / n}
            self._reset_parts()
        super().log(logs, *args, **kwargs)
