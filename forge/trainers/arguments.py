"""`TrainingArguments` from a forge config: the one place the two meet."""

from __future__ import annotations

import sys

from forge import distributed
from forge.config.schema import ForgeConfig
from forge.run.layout import RunDir


def training_arguments(cfg: ForgeConfig, run: RunDir):
    from transformers import TrainingArguments

    return TrainingArguments(**argument_values(cfg, run))


def argument_values(cfg: ForgeConfig, run: RunDir) -> dict:
    """The keyword arguments of `TrainingArguments` (and its subclasses, e.g. trl's GRPOConfig)."""
    import torch

    t = cfg.training
    return dict(
        output_dir=str(run.root),
        num_train_epochs=t.epochs,
        max_steps=t.max_steps,
        per_device_train_batch_size=t.batch_size,
        per_device_eval_batch_size=t.eval_batch_size,
        gradient_accumulation_steps=t.gradient_accumulation_steps,
        learning_rate=t.learning_rate,
        weight_decay=t.weight_decay,
        warmup_steps=t.warmup_steps,
        lr_scheduler_type=t.lr_scheduler,
        max_grad_norm=t.max_grad_norm,
        logging_strategy="steps",
        logging_steps=t.logging_steps,
        save_strategy="steps",
        save_steps=t.save_steps,
        save_total_limit=None,  # forge rotates checkpoints once a newer one is safe
        eval_strategy="steps",
        eval_steps=t.eval_steps or t.save_steps,
        bf16=t.precision == "bf16",
        fp16=t.precision == "fp16",
        activation_checkpointing=t.activation_checkpointing,
        dataloader_num_workers=t.dataloader_num_workers,
        seed=cfg.seed,
        report_to="none",  # forge logs to W&B itself, once per step across attempts
        disable_tqdm=not sys.stderr.isatty(),
        use_cpu=not torch.cuda.is_available(),
        # under torchrun on CPUs: DDP over gloo (on GPUs accelerate picks NCCL)
        ddp_backend="gloo" if distributed.is_distributed() and not torch.cuda.is_available() else None,
    )
