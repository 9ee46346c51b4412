"""Tasks: the data a run reads, the model head it needs, how a model is graded, and what
training methods the task supports. Everything forge knows about a task lives in its
module here; the config schema, the stages, `forge status` and `forge report` ask the
task, never name one.

Every task module offers the same names, which the stages use without knowing the task:

    SPEC                        its TaskSpec: splits, main metric, supported methods
    HEAD                        what the model is loaded as (forge/models/loading.py: Head)
    TRAIN_SPLIT, EVAL_SPLITS    the splits SPEC names (the first evaluation split is the main one)
    prepare(cfg, preprocessor, out) -> {split: size}  tokenize and save the splits
    load_prepared(path)         the saved DatasetDict
    trainer_inputs(cfg, data, preprocessor, model) -> dict
                                datasets, collator, metrics of SFT/KD (keep_columns: True
                                when the collator reads columns the model does not take)
    PEAK_METRICS                {metric: larger is better} of evaluations during training
    evaluate(session, model, preprocessor, data) -> {split: {metric: value}}
    data_needs(cfg) -> sources.Needs   splits, columns and labels `forge check` looks for
                                (optional: without it the dataset is checked when prepared)

Adding a task: a module here with those names, and a line in TASKS.
A task module imports nothing heavy at import time (torch, datasets, transformers):
validating a config and `forge status` read its SPEC.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from types import ModuleType
from typing import NamedTuple

# task.name -> the module that implements it
TASKS = {"mnli": "forge.tasks.mnli", "reasoning": "forge.tasks.reasoning", "ocr": "forge.tasks.ocr"}

# What a task can support beyond SFT, and how the config says it.
FEATURES = {
    "distillation": "distillation (a teacher's logits)",
    "teacher_cache": "the teacher-logit cache (distillation.teacher_cache)",
    "hidden_states": "the hidden-state loss (distillation.hidden)",
    "rl": "RL (an `rl:` block)",
    "transfer_set": "a transfer set (distillation.transfer_samples)",
    "on_policy": "on-policy distillation (distillation.on_policy)",
}


class MainMetric(NamedTuple):
    split: str  # the task's first evaluation split
    name: str
    larger_is_better: bool


@dataclass(frozen=True)
class TaskSpec:
    train_split: str
    eval_splits: tuple[str, ...]
    metric: str  # the one number `forge status` and `forge report` lead with, on eval_splits[0]
    larger_is_better: bool
    supports: frozenset[str] = frozenset()  # of FEATURES
    # The teacher cache holds the top-k logits of every answer token (a causal LM: kd_cache's
    # TokenCache), so it needs distillation.cache_top_k; otherwise one distribution per example.
    per_token_cache: bool = False
    # feature -> why this task lacks it, in its own words (a config asking for it is told this)
    why_not: dict[str, str] = field(default_factory=dict)

    def __post_init__(self):
        unknown = set(self.supports) - set(FEATURES)
        if unknown:
            raise ValueError(f"unknown task features {sorted(unknown)}; known: {', '.join(FEATURES)}")

    @property
    def main_metric(self) -> MainMetric:
        return MainMetric(self.eval_splits[0], self.metric, self.larger_is_better)


def register(name: str, module: str) -> None:
    """Make `task.name: <name>` mean the task module `module` (for tasks kept outside forge)."""
    TASKS[name] = module


def names() -> tuple[str, ...]:
    return tuple(TASKS)


def module(name: str) -> ModuleType:
    return importlib.import_module(TASKS[name])


def spec(name: str) -> TaskSpec:
    return module(name).SPEC


def task_of(cfg) -> ModuleType:
    return module(cfg.task.name)


def supporting(feature: str) -> list[str]:
    """The tasks that support `feature`."""
    return [name for name in TASKS if feature in spec(name).supports]


def main_metric(name: str | None) -> MainMetric | None:
    """The main metric of task `name`; None for a task forge does not know (an old or foreign run)."""
    return spec(name).main_metric if name in TASKS else None
