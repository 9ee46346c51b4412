"""Loss functions, pure: tensors in, a scalar tensor out."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def cross_entropy(logits: torch.Tensor, labels: torch.Tensor, num_items_in_batch: int | torch.Tensor | None = None):
    """Mean cross-entropy over labelled items (label -100 is ignored).

    With gradient accumulation, `num_items_in_batch` is the number of labelled
    items in the whole accumulated batch, so the summed loss is divided by it.
    """
    logits = logits.view(-1, logits.size(-1)).float()
    labels = labels.view(-1)
    if num_items_in_batch is None:
        return F.cross_entropy(logits, labels, ignore_index=-100)
    total = F.cross_entropy(logits, labels, ignore_index=-100, reduction="sum")
    return total / num_items_in_batch


def kl_distillation(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    temperature: float = 1.0,
    mask: torch.Tensor | None = None,
    num_items_in_batch: int | torch.Tensor | None = None,
):
    """T² · KL(softmax(teacher/T) ‖ softmax(student/T)), averaged over items.

    Items are the rows of a classification batch, or the tokens of a sequence batch
    where `mask` is True (padding excluded). The T² factor keeps the gradient scale
    independent of the temperature (Hinton et al., 2015). No gradient reaches the
    teacher. `num_items_in_batch` plays the same role as in `cross_entropy`.
    """
    t = temperature
    student = F.log_softmax(student_logits.float() / t, dim=-1)
    teacher = F.log_softmax(teacher_logits.detach().float() / t, dim=-1)
    per_item = (teacher.exp() * (teacher - student)).sum(dim=-1)
    if mask is not None:
        per_item = per_item[mask.bool()]
    items = per_item.numel() if num_items_in_batch is None else num_items_in_batch
    return per_item.sum() * (t * t) / items


def distillation_objective(ce: torch.Tensor, kd: torch.Tensor, alpha: float) -> torch.Tensor:
    """(1 − alpha) · CE + alpha · KD."""
    return (1.0 - alpha) * ce + alpha * kd
