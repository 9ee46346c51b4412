"""LoRA through peft: which modules adapt, which train whole, and the wrapped model."""

from __future__ import annotations

import logging

from forge.config.schema import LoraConfig

log = logging.getLogger("forge.models")


def peft_config(lora: LoraConfig, fresh_modules: list[str], causal_lm: bool = False):
    """The peft LoraConfig for a sequence classifier (or a causal LM).

    Modules the checkpoint lacked (`fresh_modules`, e.g. a new classification head)
    are trained and saved whole: they are random in the base model, so an adapter
    without them could not reproduce the trained model."""
    from peft import LoraConfig as PeftLoraConfig
    from peft import TaskType

    whole = list(dict.fromkeys([*lora.modules_to_save, *fresh_modules]))
    return PeftLoraConfig(
        task_type=TaskType.CAUSAL_LM if causal_lm else TaskType.SEQ_CLS,
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=lora.target_modules or "all-linear",
        exclude_modules=whole if not lora.target_modules and whole else None,
        modules_to_save=whole or None,
    )


def apply_lora(model, lora: LoraConfig, fresh_modules: list[str], causal_lm: bool = False):
    from peft import get_peft_model

    config = peft_config(lora, fresh_modules, causal_lm)
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
