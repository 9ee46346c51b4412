"""Task types: what a run reads, the model head it needs, how a model is graded, and which
training methods apply. A task is a *type* over the user's data (`task.type`), reached
through a column map (`task.columns`), never a module that knows one dataset:

    classification   text (and an optional text pair) -> one of the labels, or a number
    generation       a causal LM on chats, prompt + completion pairs, or plain text
    image_to_text    an image -> its text (a vision encoder-decoder: OCR)

MNLI, GSM8K and OCR lines are configs of these types (configs/). Everything forge knows of a
type is said once, by its class (forge/tasks/<type>.py, a `TaskType`), and read by the config
rules, the stages, the trainers, the KD cache, `forge status` and `forge report`: its splits,
its main metric, how its logits line up with its labels (`alignment`), what it supports.

`task_of(cfg)` is the run's task: its type bound to the run's config. A type module imports
nothing heavy at import time (torch, datasets, transformers): validating a config and
`forge status` read its class attributes.
"""

from __future__ import annotations

from forge.tasks.base import FEATURES, Alignment, MainMetric, TaskType, TrainerInputs
from forge.tasks.classification import Classification
from forge.tasks.generation import Generation
from forge.tasks.image_to_text import ImageToText

__all__ = ["FEATURES", "Alignment", "MainMetric", "TaskType", "TrainerInputs", "TYPES", "task_of", "supporting"]

TYPES: dict[str, type[TaskType]] = {t.name: t for t in (Classification, Generation, ImageToText)}


def task_of(cfg) -> TaskType:
    """The run's task: the type of `cfg.task` bound to `cfg`."""
    return TYPES[cfg.task.type](cfg)


def supporting(feature: str) -> list[str]:
    """The task types that support `feature`."""
    return [name for name, kind in TYPES.items() if feature in kind.supports]
