"""KD: `DistillationTrainer`, the fine-tuning trainer with a teacher in the loss.

loss = (1 − alpha) · CE(student, labels) + alpha · T² · D(teacher/T, student/T)
       [+ hidden.weight · distance(P(student last hidden state), teacher last hidden state)]

D is forward KL (the default), reverse KL or GKD's generalised JSD (`distillation.loss`,
forge/losses.py). For a sequence task both D and CE are per token, padding and prompt
(label -100) excluded: per decoder token (OCR), or for a causal LM (`next_token`) per
answer token, where the logits at t are compared for the token at t + 1. The teacher's
logits come from the batch (`teacher_logits`, or its top-k as `teacher_topk_values` /
`teacher_topk_indices`: the cache of forge/kd_cache.py) or, in online KD, from running the
teacher on the batch. With a transfer set (`transfer=True`) some rows have no label
(-100): CE is the mean over the labelled rows, D the mean over all rows. The hidden-state
term needs the teacher online. P is a learned linear map when the widths differ (identity
otherwise): it trains with the student (its own optimizer group, gradients not
clipped), is saved in every checkpoint (`hidden_projection.pt`) and restored on
resume, and is not part of the final model. Evaluation reports the plain CE loss.

With `on_policy: λ` (a causal LM, the teacher online) a share λ of the micro-batches are
on-policy (forge/trainers/on_policy.py, GKD): the student samples its own answers to the
batch's prompts and the loss is alpha · D over those answers' tokens (their mean, as that
micro-batch's share of the step; no CE: the samples are not targets).

The config half of the pair is `distillation:` (forge/config/schema.py). The teacher
is frozen and in eval mode, so it draws no random numbers: a resumed KD run stays
bitwise equal to an uninterrupted one, as SFT does.
"""

from __future__ import annotations

import logging
import os

import torch

from forge import distributed
from forge.config.schema import HiddenStateConfig
from forge.kd_cache import COLUMN, COLUMNS, TOPK_INDICES, TOPK_VALUES
from forge.losses import (
    distillation_objective,
    hidden_state_loss,
    jsd_distillation,
    jsd_distillation_topk,
    kl_distillation,
    kl_distillation_topk,
    reverse_kl_distillation,
    reverse_kl_distillation_topk,
)
from forge.trainers import on_policy
from forge.trainers.finetuning import FinetuningTrainer

PROJECTION_FILE = "hidden_projection.pt"
log = logging.getLogger("forge.train")


def hidden_width(model) -> int:
    return model.config.get_text_config().hidden_size


def hidden_projection(student_width: int, teacher_width: int) -> torch.nn.Module:
    """Student hidden states → the teacher's width (learned), or the identity."""
    if student_width == teacher_width:
        return torch.nn.Identity()
    return torch.nn.Linear(student_width, teacher_width)


def divergence(loss: str, beta: float, top_k: bool = False):
    """The KD term's function of (student logits, teacher logits, T, mask, items), or with
    `top_k` of (student logits, the teacher's top-k values, their ids, T, mask, items)."""
    if loss == "forward_kl":
        return kl_distillation_topk if top_k else kl_distillation
    if loss == "reverse_kl":
        return reverse_kl_distillation_topk if top_k else reverse_kl_distillation
    if loss == "jsd" and top_k:
        return lambda student, values, ids, t, mask, n: jsd_distillation_topk(student, values, ids, beta, t, mask, n)
    if loss == "jsd":
        return lambda student, teacher, t, mask, n: jsd_distillation(student, teacher, beta, t, mask, n)
    raise ValueError(f"unknown distillation loss {loss!r}; use forward_kl, reverse_kl or jsd")


class DistillationTrainer(FinetuningTrainer):
    def __init__(
        self,
        *args,
        teacher=None,
        alpha: float,
        temperature: float,
        hidden: HiddenStateConfig | None = None,
        transfer: bool = False,
        loss: str = "forward_kl",
        beta: float = 0.5,
        on_policy: float = 0.0,
        max_new_tokens: int = 64,
        seed: int = 0,
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        self.on_policy, self.max_new_tokens, self.seed = on_policy, max_new_tokens, seed
        self._micro = (-1, -1)  # (optimizer step, micro-batch within it) of the last training micro-batch
        self._said_on_policy = False
        self.loss_name, self.divergence = loss, divergence(loss, beta)
        self.topk_divergence = divergence(loss, beta, top_k=True)
        self.transfer = transfer
        self._rows = None  # with a transfer set: the rows of the accumulated batch, all processes
        self.teacher = teacher.eval().requires_grad_(False).to(self.args.device) if teacher is not None else None
        self.alpha = alpha
        self.temperature = temperature
        self.hidden = hidden if hidden is not None and hidden.weight > 0 else None
        self.projection = None
        if self.hidden is not None:
            if self.teacher is None:
                raise ValueError("DistillationTrainer: the hidden-state loss needs the teacher online")
            projection = hidden_projection(hidden_width(self.model), hidden_width(self.teacher))
            self.projection = projection.to(self.args.device)
        self._reset_parts()

    def _reset_parts(self) -> None:
        self._parts = {"ce": torch.zeros(()), "kd": torch.zeros(()), "hidden": torch.zeros(()), "n": 0}

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if model.training and self.on_policy > 0 and self._on_policy_now():
            return self._on_policy_loss(model, inputs, return_outputs)
        labels = inputs.pop("labels")
        cached = {k: inputs.pop(k) for k in COLUMNS if k in inputs}
        want_hidden = self.hidden is not None and model.training
        outputs = model(**inputs, output_hidden_states=True) if want_hidden else model(**inputs)
        ce = self.per_process(self.ce_loss(outputs.logits, labels, num_items_in_batch), num_items_in_batch)
        if not model.training:
            return (ce, outputs) if return_outputs else ce
        # Sequence outputs (one distribution per token): padding and prompt are not items.
        # A causal LM's logits at t are for the token at t + 1: compare them where a label follows.
        logits = outputs.logits[:, :-1] if self.next_token else outputs.logits
        targets = labels[:, 1:] if self.next_token else labels
        mask = targets != -100 if logits.dim() == 3 else None
        kd_items = self._rows if self.transfer else num_items_in_batch  # a transfer row is a KD item
        kd, teacher_out = self._kd_term(logits, inputs, cached, mask, want_hidden, kd_items)
        kd = self.per_process(kd, kd_items)
        hidden = None
        if want_hidden:
            hidden = hidden_state_loss(
                self.projection(outputs.hidden_states[-1]),
                teacher_out.hidden_states[-1],
                inputs.get("attention_mask"),
                self.hidden.loss,
            )
            hidden = self._over_all_ranks(hidden, inputs.get("attention_mask"), outputs.hidden_states[-1])
            self._parts["hidden"] = self._parts["hidden"] + hidden.detach().cpu()
        self._parts["ce"] = self._parts["ce"] + ce.detach().cpu()
        self._parts["kd"] = self._parts["kd"] + kd.detach().cpu()
        self._parts["n"] += 1
        loss = distillation_objective(ce, kd, self.alpha, hidden, self.hidden.weight if self.hidden else 0.0)
        return (loss, outputs) if return_outputs else loss

    def _on_policy_now(self) -> bool:
        step = self.state.global_step
        micro = self._micro[1] + 1 if self._micro[0] == step else 0
        self._micro = (step, micro)
        return on_policy.is_on_policy(self.on_policy, self.seed, step, micro)

    def _on_policy_loss(self, model, inputs, return_outputs):
        """alpha · D(teacher ‖ student) over the student's own sampled answers to the batch's
        prompts (GKD's on-policy batch: no CE, the samples are not targets), as the mean over
        their tokens, one micro-batch's share of the step."""
        step, micro = self._micro
        unwrapped = self.accelerator.unwrap_model(model)
        rows = on_policy.prompts(inputs["input_ids"], inputs["labels"])
        pad = self.processing_class.pad_token_id
        eos = unwrapped.generation_config.eos_token_id
        eos = eos[0] if isinstance(eos, list) else eos
        seed = on_policy.draw_seed(self.seed, step, micro)
        answers = on_policy.sample(unwrapped, rows, pad, eos, self.max_new_tokens, seed)
        if not self._said_on_policy:
            log.info("step %d: an on-policy micro-batch: the student's own answers (%d tokens), scored by the teacher",
                     step + 1, sum(map(len, answers)))  # fmt: skip
            self._said_on_policy = True
        batch = {k: v.to(self.args.device) for k, v in on_policy.completion_batch(rows, answers, pad).items()}
        labels = batch.pop("labels")
        outputs = model(**batch)
        with torch.no_grad():
            teacher_logits = self.teacher(**batch).logits[:, :-1]
        mask = labels[:, 1:] != -100
        if mask.any():
            kd = self.divergence(outputs.logits[:, :-1], teacher_logits, self.temperature, mask, None)
        else:  # every answer empty: nothing to learn from
            kd = outputs.logits.sum() * 0.0
        kd = kd / self.args.gradient_accumulation_steps
        self._parts["kd"] = self._parts["kd"] + kd.detach().cpu()
        self._parts["n"] += 1
        loss = self.alpha * kd
        return (loss, outputs) if return_outputs else loss

    def get_batch_samples(self, epoch_iterator, num_batches, device):
        """The Trainer counts the labelled items of each accumulated batch (the CE term's
        divisor); with a transfer set the KD term's are all its rows, counted here alike."""
        batches, num_items = super().get_batch_samples(epoch_iterator, num_batches, device)
        if self.transfer and batches:
            rows = torch.tensor(sum(len(batch["labels"]) for batch in batches), device=device)
            if self.args.average_tokens_across_devices and self.args.world_size > 1:
                rows = self.accelerator.gather(rows).sum()
            self._rows = rows
        return batches, num_items

    def _over_all_ranks(self, mean: torch.Tensor, mask, states: torch.Tensor) -> torch.Tensor:
        """The hidden-state loss is a mean over this process's tokens, and DDP averages the
        processes' gradients: weigh it by this process's share of the step's tokens, so
        the average is the mean over all of them, as in one process."""
        world = self.accelerator.num_processes
        if world == 1:
            return mean
        tokens = (mask.sum() if mask is not None else torch.tensor(states.shape[0] * states.shape[1])).float()
        tokens = tokens.to(states.device)
        return mean * tokens * world / distributed.all_sum(tokens.detach().clone())

    def _kd_term(self, student_logits, inputs, cached, mask, want_hidden, num_items_in_batch):
        """(the KL term, the teacher's outputs when it ran on this batch)."""
        t, n = self.temperature, num_items_in_batch
        if TOPK_VALUES in cached:
            top = self.topk_divergence(student_logits, cached[TOPK_VALUES], cached[TOPK_INDICES], t, mask, n)
            return top, None
        if COLUMN in cached:
            return self.divergence(student_logits, cached[COLUMN], t, mask, n), None
        if self.teacher is None:
            raise RuntimeError("DistillationTrainer: no teacher and no cached teacher logits in the batch")
        with torch.no_grad():
            teacher_out = self.teacher(**inputs, output_hidden_states=want_hidden)
        teacher_logits = teacher_out.logits[:, :-1] if self.next_token else teacher_out.logits
        return self.divergence(student_logits, teacher_logits, t, mask, n), teacher_out

    def loss_window(self) -> dict:
        """The window also keeps the CE / KD (/ hidden) parts logged beside the loss."""
        parts = {k: (v.item() if torch.is_tensor(v) else v) for k, v in self._parts.items()}
        return {**super().loss_window(), "parts": parts}

    def restore_loss_window(self, window: dict) -> None:
        super().restore_loss_window(window)
        for key, value in (window.get("parts") or {}).items():
            if key in self._parts:
                self._parts[key] = value if key == "n" else self._parts[key] + value

    def log(self, logs: dict[str, float], *args, **kwargs) -> None:
        """Training logs also carry the mean CE, KD (and hidden-state) parts since the last log."""
        if "loss" in logs and self._parts["n"]:
            n = self._parts["n"] / self.args.gradient_accumulation_steps
            parts = ("ce", "kd", "hidden") if self.hidden is not None else ("ce", "kd")
            # every rank logs at the same steps: the parts are the mean over the ranks, like the loss
            values = distributed.all_sum(torch.stack([self._parts[k] for k in parts])) / self.accelerator.num_processes
            logs = {**logs, **{k: v.item() / n for k, v in zip(parts, values, strict=True)}}
            self._reset_parts()
        super().log(logs, *args, **kwargs)

    # The learned projection: trained, checkpointed and restored beside the student.

    def _projection_parameters(self) -> list[torch.nn.Parameter]:
        return list(self.projection.parameters()) if self.projection is not None else []

    def create_optimizer(self, model=None):
        fresh = self.optimizer is None
        optimizer = super().create_optimizer(model)
        if fresh and self._projection_parameters():
            optimizer.add_param_group({"params": self._projection_parameters(), "weight_decay": 0.0})
            # The Trainer zeroes only the model's gradients after a step; do the same for P.
            optimizer.register_step_post_hook(lambda *_: self.projection.zero_grad(set_to_none=True))
        return optimizer

    def training_step(self, model, inputs, num_items_in_batch=None):
        loss = super().training_step(model, inputs, num_items_in_batch)
        if self.accelerator.num_processes > 1:
            self._average_projection_grads()
        return loss

    def _average_projection_grads(self) -> None:
        """P is outside DDP: average its gradients over the ranks after each backward, as DDP
        does for the student's (before any step, so fp16's overflow check agrees on every
        rank; averaging the running sum again after each micro-batch keeps it the average)."""
        for parameter in self._projection_parameters():
            if parameter.grad is None:
                parameter.grad = torch.zeros_like(parameter)
            distributed.all_sum(parameter.grad).div_(self.accelerator.num_processes)

    def save_extras(self, folder: str) -> None:
        super().save_extras(folder)
        if self._projection_parameters() and self.args.should_save:
            torch.save(self.projection.state_dict(), os.path.join(folder, PROJECTION_FILE))

    def load_extras(self, folder: str) -> None:
        super().load_extras(folder)
        path = os.path.join(folder, PROJECTION_FILE)
        if self._projection_parameters():
            if not os.path.exists(path):
                raise FileNotFoundError(f"{folder}: no {PROJECTION_FILE} to resume the projection from")
            self.projection.load_state_dict(torch.load(path, map_location=self.args.device, weights_only=True))
