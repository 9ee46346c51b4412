"""LoRA through peft: which modules adapt, which train whole, and the wrapped model."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from forge.config.schema import LoraConfig

log = logging.getLogger("forge.models")


def peft_config(lora: LoraConfig, fresh_modules: list[str], task_type: str | None = "SEQ_CLS"):
    """The peft LoraConfig for a model of peft's `task_type` (SEQ_CLS, CAUSAL_LM, ...).

    Modules the checkpoint lacked (`fresh_modules`, e.g. a new classification head)
    are trained and saved whole: they are random in the base model, so an adapter
    without them could not reproduce the trained model."""
    from peft import LoraConfig as PeftLoraConfig
    from peft import TaskType

    whole = list(dict.fromkeys([*lora.modules_to_save, *fresh_modules]))
    return PeftLoraConfig(
        task_type=TaskType(task_type) if task_type else None,
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=lora.target_modules or "all-linear",
        exclude_modules=whole if not lora.target_modules and whole else None,
        modules_to_save=whole or None,
    )


def apply_lora(model, lora: LoraConfig, fresh_modules: list[str], task_type: str | None = "SEQ_CLS"):
    from peft import get_peft_model

    config = peft_config(lora, fresh_modules, task_type)
    whole = list(config.modules_to_save or [])  # before peft appends its defaults
    adapted = get_peft_model(model, config)
    trainable, total = adapted.get_nb_trainable_parameters()
    log.info(
        "LoRA r=%d alpha=%d: %d of %d parameters train (%.2f%%); saved whole: %s",
        lora.r,
        lora.alpha,
        trainable,
        total,
        100 * trainable / total,
        ", ".join(whole) or "none",
    )
    return adapted
