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
