"""Loss functions, pure: tensors in, a scalar tensor out."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def cross_entropy(logits: torch.Tensor, labels: torch.Tensor, num_items_in_batch: int | torch.Tensor | None = None):
    """Mean cross-entropy over labelled items (label -100 is ignored; none labelled: 0).

    With gradient accumulation, `num_items_in_batch` is the number of labelled
    items in the whole accumulated batch, so the summed loss is divided by it.
    """
    logits = logits.reshape(-1, logits.size(-1)).float()
    labels = labels.reshape(-1)
    if num_items_in_batch is None:
        if not (labels != -100).any():  # no labelled item (a batch of a KD transfer set): no loss
            return logits.sum() * 0.0
        return F.cross_entropy(logits, labels, ignore_index=-100)
    total = F.cross_entropy(logits, labels, ignore_index=-100, reduction="sum")
    if torch.is_tensor(num_items_in_batch):
        return total / num_items_in_batch.clamp(min=1)
    return total / max(num_items_in_batch, 1)


def mean_squared_error(
    outputs: torch.Tensor, labels: torch.Tensor, num_items_in_batch: int | torch.Tensor | None = None
):
    """Mean squared error of a regression head's one output per item against its float label,
    over the whole accumulated batch's items when `num_items_in_batch` is given."""
    outputs = outputs.reshape(-1).float()
    labels = labels.reshape(-1).float()
    if num_items_in_batch is None:
        return F.mse_loss(outputs, labels)
    total = F.mse_loss(outputs, labels, reduction="sum")
    if torch.is_tensor(num_items_in_batch):
        return total / num_items_in_batch.clamp(min=1)
    return total / max(num_items_in_batch, 1)


def next_token_cross_entropy(
    logits: torch.Tensor, labels: torch.Tensor, num_items_in_batch: int | torch.Tensor | None = None
):
    """Causal-LM cross-entropy: the logits at position t predict the label at t + 1.

    `labels` line up with the input ids (as in a Hugging Face causal-LM batch); the
    first label is never predicted, which the prompt's -100 makes no loss of."""
    return cross_entropy(logits[:, :-1, :], labels[:, 1:], num_items_in_batch)


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
    return _kl_over_items(teacher, student, t, mask, num_items_in_batch)


def kl_distillation_topk(
    student_logits: torch.Tensor,
    teacher_values: torch.Tensor,
    teacher_indices: torch.Tensor,
    temperature: float = 1.0,
    mask: torch.Tensor | None = None,
    num_items_in_batch: int | torch.Tensor | None = None,
):
    """`kl_distillation` against a teacher known only by its k largest logits per item
    (`teacher_values` at class ids `teacher_indices`, both (..., k)), the compact cache
    for large vocabularies. The teacher's distribution is the softmax of those k logits
    at T (renormalised over them); the student's log-probabilities are its full softmax
    at T, read at the same ids. With k = every class it equals `kl_distillation`.
    """
    t = temperature
    student_logits, teacher_values, teacher_indices = _items(student_logits, teacher_values, teacher_indices, mask)
    student = F.log_softmax(student_logits.float() / t, dim=-1).gather(-1, teacher_indices.long())
    teacher = F.log_softmax(teacher_values.detach().float() / t, dim=-1)
    return _kl_over_items(teacher, student, t, None, num_items_in_batch)


def reverse_kl_distillation_topk(
    student_logits: torch.Tensor,
    teacher_values: torch.Tensor,
    teacher_indices: torch.Tensor,
    temperature: float = 1.0,
    mask: torch.Tensor | None = None,
    num_items_in_batch: int | torch.Tensor | None = None,
):
    """`reverse_kl_distillation` against a teacher known by its top k (as in
    `kl_distillation_topk`). KL(q ‖ p) needs the student's distribution where the teacher's is
    known, so both are renormalised over the teacher's k ids: the student's softmax of its
    logits at those ids. With k = every class it equals `reverse_kl_distillation`."""
    student, teacher, t = _on_support(student_logits, teacher_values, teacher_indices, temperature, mask)
    return _over_items(_kl(student, teacher), t, None, num_items_in_batch)


def jsd_distillation_topk(
    student_logits: torch.Tensor,
    teacher_values: torch.Tensor,
    teacher_indices: torch.Tensor,
    beta: float = 0.5,
    temperature: float = 1.0,
    mask: torch.Tensor | None = None,
    num_items_in_batch: int | torch.Tensor | None = None,
):
    """`jsd_distillation` against a teacher known by its top k, both distributions renormalised
    over the teacher's k ids (as in `reverse_kl_distillation_topk`). With k = every class it
    equals `jsd_distillation`."""
    student, teacher, t = _on_support(student_logits, teacher_values, teacher_indices, temperature, mask)
    return _over_items(_generalised_jsd(student, teacher, beta), t, None, num_items_in_batch)


def _items(student_logits, teacher_values, teacher_indices, mask):
    """The items alone (where `mask` is True): a sequence's prompt and padding then cost no
    softmax over the vocabulary."""
    if mask is None:
        return student_logits, teacher_values, teacher_indices
    mask = mask.bool()
    return student_logits[mask], teacher_values[mask], teacher_indices[mask]


def _on_support(student_logits, teacher_values, teacher_indices, t, mask):
    """(student, teacher) log-probabilities over the teacher's top-k ids, each renormalised there."""
    student_logits, teacher_values, teacher_indices = _items(student_logits, teacher_values, teacher_indices, mask)
    student = F.log_softmax(student_logits.gather(-1, teacher_indices.long()).float() / t, dim=-1)
    teacher = F.log_softmax(teacher_values.detach().float() / t, dim=-1)
    return student, teacher, t


def reverse_kl_distillation(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    temperature: float = 1.0,
    mask: torch.Tensor | None = None,
    num_items_in_batch: int | torch.Tensor | None = None,
):
    """T² · KL(softmax(student/T) ‖ softmax(teacher/T)), averaged over items as in
    `kl_distillation`: the reverse direction, mode-seeking (the student puts its mass where
    the teacher's is, rather than covering all of it), as in MiniLLM and GKD."""
    t = temperature
    student = F.log_softmax(student_logits.float() / t, dim=-1)
    teacher = F.log_softmax(teacher_logits.detach().float() / t, dim=-1)
    return _over_items(_kl(student, teacher), t, mask, num_items_in_batch)


def jsd_distillation(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    beta: float = 0.5,
    temperature: float = 1.0,
    mask: torch.Tensor | None = None,
    num_items_in_batch: int | torch.Tensor | None = None,
):
    """T² · the generalised Jensen-Shannon divergence of GKD (Agarwal et al., 2024):
    β · KL(p ‖ m) + (1 − β) · KL(q ‖ m) with m = β p + (1 − β) q, p the teacher's and q the
    student's softmax at T; 0 < β < 1 (β 0.5: the symmetric JSD). Averaged over items as
    in `kl_distillation`."""
    t = temperature
    student = F.log_softmax(student_logits.float() / t, dim=-1)
    teacher = F.log_softmax(teacher_logits.detach().float() / t, dim=-1)
    per_item = _generalised_jsd(student, teacher, beta)
    return _over_items(per_item, t, mask, num_items_in_batch)


def _generalised_jsd(student: torch.Tensor, teacher: torch.Tensor, beta: float) -> torch.Tensor:
    """GKD's generalised JSD per item, from log-probabilities: β · KL(p ‖ m) + (1 − β) · KL(q ‖ m)."""
    if not 0 < beta < 1:
        raise ValueError(f"jsd_distillation: beta must lie strictly between 0 and 1, not {beta}")
    mixture = torch.logsumexp(torch.stack([teacher + math.log(beta), student + math.log(1 - beta)]), dim=0)
    return beta * _kl(teacher, mixture) + (1 - beta) * _kl(student, mixture)


def _kl(log_p: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    """KL(p ‖ q) per item (over the last dimension), from log-probabilities."""
    return (log_p.exp() * (log_p - log_q)).sum(dim=-1)


def _over_items(per_item, t, mask, num_items_in_batch):
    if mask is not None:
        per_item = per_item[mask.bool()]
    items = per_item.numel() if num_items_in_batch is None else num_items_in_batch
    return per_item.sum() * (t * t) / items


def _kl_over_items(teacher_log_p, student_log_q, t, mask, num_items_in_batch):
    return _over_items(_kl(teacher_log_p, student_log_q), t, mask, num_items_in_batch)


def hidden_state_loss(
    student_hidden: torch.Tensor,
    teacher_hidden: torch.Tensor,
    mask: torch.Tensor | None = None,
    kind: str = "cosine",
) -> torch.Tensor:
    """Distance between student and teacher hidden states, averaged over tokens.

    Both are (batch, tokens, width) with the same width (project the student first);
    tokens where `mask` is False (padding) do not count. `cosine`: 1 − cos(s, t) per
    token (direction only, as in DistilBERT); `mse`: the mean squared difference per
    token. No gradient reaches the teacher.
    """
    student = student_hidden.float()
    teacher = teacher_hidden.detach().float()
    if kind == "cosine":
        per_token = 1.0 - F.cosine_similarity(student, teacher, dim=-1)
    elif kind == "mse":
        per_token = (student - teacher).pow(2).mean(dim=-1)
    else:
        raise ValueError(f"unknown hidden-state loss {kind!r}; use 'cosine' or 'mse'")
    if mask is not None:
        per_token = per_token[mask.bool()]
    return per_token.mean()


def distillation_objective(
    ce: torch.Tensor,
    kd: torch.Tensor,
    alpha: float,
    hidden: torch.Tensor | None = None,
    hidden_weight: float = 0.0,
) -> torch.Tensor:
    """(1 − alpha) · CE + alpha · KD (+ hidden_weight · hidden-state loss)."""
    loss = (1.0 - alpha) * ce + alpha * kd
    return loss if hidden is None else loss + hidden_weight * hidden
