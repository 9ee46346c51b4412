"""On-policy distillation (GKD, Agarwal et al. 2024) for a causal LM: on a fraction λ of the
micro-batches the student answers the batch's prompts itself (sampled), and learns the
teacher's distribution over its own answer tokens. Which micro-batches, and the samples, are
drawn from generators seeded by (seed, step, micro-batch), never from the global random
state: a resumed run draws the same, and the dropout masks of the other batches do not move.

The pieces here are plain functions; DistillationTrainer calls them.
"""

from __future__ import annotations

import torch

from forge.rng import random_state_kept


def draw_seed(seed: int, step: int, micro: int) -> int:
    """A seed for (run seed, optimizer step, micro-batch within the step)."""
    return (seed * 1_000_003 + step * 1_009 + micro) % (2**63)


def is_on_policy(fraction: float, seed: int, step: int, micro: int) -> bool:
    """Whether this micro-batch is an on-policy one: true for a share `fraction` of them."""
    if fraction <= 0:
        return False
    if fraction >= 1:
        return True
    generator = torch.Generator().manual_seed(draw_seed(seed, step, micro))
    return torch.rand((), generator=generator).item() < fraction


def prompts(input_ids: torch.Tensor, labels: torch.Tensor) -> list[list[int]]:
    """Each row's prompt: its tokens before the first labelled one (the answer's start)."""
    out = []
    for ids, row in zip(input_ids.tolist(), labels.tolist(), strict=True):
        start = next((i for i, label in enumerate(row) if label != -100), len(row))
        out.append(ids[:start])
    return out


def sample(model, rows: list[list[int]], pad: int, eos: int | None, max_new_tokens: int, seed: int) -> list[list[int]]:
    """The model's sampled answer to each prompt (temperature 1, no top-k/top-p), up to and
    including its end-of-sequence token; the global random state is left as it was."""
    width = max(len(r) for r in rows)
    device = next(model.parameters()).device
    input_ids = torch.tensor([[pad] * (width - len(r)) + r for r in rows], device=device)  # left-padded
    attention_mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows], device=device)
    was_training = model.training
    model.eval()
    try:
        with random_state_kept(), torch.no_grad():
            torch.manual_seed(seed)
            out = model.generate(
                input_ids=input_ids,
                attention_mask=attention_mask,
                do_sample=True,
                temperature=1.0,
                top_k=0,
                top_p=1.0,
                max_new_tokens=max_new_tokens,
                pad_token_id=pad,
                eos_token_id=eos,
            )
    finally:
        model.train(was_training)
    answers = []
    for row in out[:, width:].tolist():
        end = row.index(eos) + 1 if eos is not None and eos in row else len(row)
        answers.append(row[:end])
    return answers


def completion_batch(rows: list[list[int]], answers: list[list[int]], pad: int) -> dict[str, torch.Tensor]:
    """Prompt + answer per row, right-padded: input_ids, attention_mask, and labels that are
    the answer's tokens (-100 on the prompt and the padding), as a training batch."""
    width = max(len(p) + len(a) for p, a in zip(rows, answers, strict=True))
    ids, mask, labels = [], [], []
    for p, a in zip(rows, answers, strict=True):
        fill = width - len(p) - len(a)
        ids.append(p + a + [pad] * fill)
        mask.append([1] * (len(p) + len(a)) + [0] * fill)
        labels.append([-100] * len(p) + a + [-100] * fill)
    return {"input_ids": torch.tensor(ids), "attention_mask": torch.tensor(mask), "labels": torch.tensor(labels)}
