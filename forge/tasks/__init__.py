"""Tasks: the data a run reads, the model head it needs, and how a model is graded.

Every task module offers the same names, which the stages use without knowing the task:

    LABELS                      class names (a sequence classifier) or None (a causal LM)
    prepare(cfg, tokenizer, out) -> {split: size}     tokenize and save the splits
    load_prepared(path)         the saved DatasetDict
    trainer_inputs(cfg, data, tokenizer) -> dict       datasets, collator, metrics of SFT/KD
    PEAK_METRICS                {metric: larger is better} of evaluations during training
    evaluate(session, model, tokenizer, data) -> {split: {metric: value}}
"""

from __future__ import annotations

import importlib
from types import ModuleType

MODULES = {"mnli": "forge.tasks.mnli", "reasoning": "forge.tasks.reasoning"}


def task_of(cfg) -> ModuleType:
    return importlib.import_module(MODULES[cfg.task.name])
