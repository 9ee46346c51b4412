"""Tasks: the data a run reads, the model head it needs, and how a model is graded.

Every task module offers the same names, which the stages use without knowing the task:

    HEAD                        what the model is loaded as (forge/models/loading.py: Head)
    prepare(cfg, preprocessor, out) -> {split: size}  tokenize and save the splits
    load_prepared(path)         the saved DatasetDict
    trainer_inputs(cfg, data, preprocessor, model) -> dict
                                datasets, collator, metrics of SFT/KD (keep_columns: True
                                when the collator reads columns the model does not take)
    PEAK_METRICS                {metric: larger is better} of evaluations during training
    evaluate(session, model, preprocessor, data) -> {split: {metric: value}}
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import NamedTuple

MODULES = {"mnli": "forge.tasks.mnli", "reasoning": "forge.tasks.reasoning", "ocr": "forge.tasks.ocr"}


class MainMetric(NamedTuple):
    split: str  # the task's first evaluation split
    name: str
    larger_is_better: bool


# The one number per task that `forge status` and `forge report` lead with (kept here,
# not in the task modules, so reading it imports nothing heavy).
MAIN_METRICS = {
    "mnli": MainMetric("validation_matched", "accuracy", True),
    "reasoning": MainMetric("test", "accuracy", True),
    "ocr": MainMetric("test", "cer", False),
}


def task_of(cfg) -> ModuleType:
    return importlib.import_module(MODULES[cfg.task.name])
