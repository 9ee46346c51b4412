"""The interface every task type offers (`TaskType`), and the names it is described in."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple

if TYPE_CHECKING:
    from forge.config.schema import ForgeConfig
    from forge.models.loading import Head

# What a task type can support beyond SFT, and how the config says it.
FEATURES = {
    "distillation": "distillation (a teacher's logits)",
    "teacher_cache": "the teacher-logit cache (distillation.teacher_cache)",
    "hidden_states": "the hidden-state loss (distillation.hidden)",
    "rl": "RL (an `rl:` block)",
    "transfer_set": "a transfer set (distillation.transfer_samples)",
    "on_policy": "on-policy distillation (distillation.on_policy)",
    "lm_eval": "lm-evaluation-harness (an `eval:` block)",
}


class Alignment(str, enum.Enum):
    """How a model's logits line up with a task's labels: what its losses, the KD term and the
    teacher-logit cache compare."""

    EXAMPLE = "example"  # one distribution per row (a classifier's head)
    TOKEN = "token"  # one per label token, at its own position (an encoder-decoder's decoder)
    NEXT_TOKEN = "next_token"  # the logits at t are for the token at t + 1 (a causal LM)


class MainMetric(NamedTuple):
    split: str | None  # the first evaluation split (None: known once the data is prepared)
    name: str
    larger_is_better: bool


@dataclass
class TrainerInputs:
    """What the SFT and KD trainers read of a task's prepared data."""

    train_dataset: Any
    eval_dataset: Any
    data_collator: Any = None
    compute_metrics: Any = None
    # The collator reads columns the model's forward does not take (an image): the Trainer
    # must not drop them.
    keep_columns: bool = False


TRAIN = "train"  # the prepared training split's name, whatever the source calls it


class TaskType:
    """One kind of task, bound to a run's config (`forge.tasks.task_of(cfg)`).

    Class attributes say what the type is, for the config rules and `forge status` (nothing
    heavy is imported to read them); the methods do the work of the stages."""

    name: ClassVar[str]
    alignment: ClassVar[Alignment]
    supports: ClassVar[frozenset[str]] = frozenset()
    # feature -> why this type lacks it, in its own words (a config asking for it is told this)
    why_not: ClassVar[dict[str, str]] = {}

    def __init__(self, cfg: ForgeConfig):
        self.cfg = cfg
        self.task = cfg.task

    # -- what it is ---------------------------------------------------------

    train_split = TRAIN

    def head(self, data=None) -> Head:
        """What the model is loaded as (forge/models/loading.py: Head); `data`, the prepared
        DatasetDict, where the head depends on it (a classifier's labels)."""
        raise NotImplementedError

    def eval_splits(self, data) -> tuple[str, ...]:
        """The prepared evaluation splits, the main one first."""
        return tuple(name for name in data if name != TRAIN)

    def main_metric(self, data=None) -> MainMetric:
        """The number `forge status` and `forge report` lead with."""
        raise NotImplementedError

    def peak_metrics(self, data) -> dict[str, bool]:
        """Metrics of the evaluations during training that decide the best checkpoint: larger is better?"""
        return {"eval_loss": False}

    # -- what it does -------------------------------------------------------

    def prepare(self, preprocessor, out: Path) -> dict[str, int]:
        """Read the data, check and tokenize it, save the splits to `out`; returns their sizes."""
        raise NotImplementedError

    def load_prepared(self, path: Path):
        from datasets import load_from_disk

        return load_from_disk(str(path))

    def trainer_inputs(self, data, preprocessor, model) -> TrainerInputs:
        raise NotImplementedError

    def evaluate(self, session, model, preprocessor, data) -> dict[str, dict[str, float]]:
        """The task's metrics per evaluation split (the main metric among them)."""
        raise NotImplementedError

    # -- checked before anything is created (`forge check`) -------------------

    def check_data(self, seen, preprocessor=None) -> tuple[list[str], list[str]]:
        """(problems, notes) of the data as `seen` (forge/tasks/data.py: Peek, each split's
        columns and first rows): its splits, the mapped columns in each, and the first rows as
        this type reads them (`row_problem`). `preprocessor`: the student's, when it is on
        this machine."""
        from forge.tasks import data as sources

        try:
            roles = sources.splits_of(self.task, list(seen.columns))
        except sources.DataError as exc:
            return [str(exc)], []
        problems, notes = [], []
        read = [roles.train, *([] if roles.carved else roles.eval)]
        for split in read:
            missing = [f"{c!r} (task.columns.{role})" for role, c in self.columns(seen.columns[roles.train]).items()
                       if c not in seen.columns[split]]  # fmt: skip
            if missing:
                problems.append(f"split {split}: no column {', '.join(missing)}; its columns are "
                                f"{sources.listed(seen.columns[split])}")  # fmt: skip
                continue
            if not seen.rows[split]:
                problems.append(f"split {split}: no rows")
                continue
            for i, row in enumerate(seen.rows[split]):
                if problem := self.row_problem(row, seen.columns[roles.train]):
                    problems.append(f"{sources.row_name(self.task, split, i)}: {problem}")
                    break
        if not problems:
            more_problems, more_notes = self.check_rows(seen, roles, preprocessor)
            problems += more_problems
            notes += more_notes
        return problems, notes

    def columns(self, train_columns: list[str]) -> dict[str, str]:
        """role -> the data's column this type reads it from."""
        raise NotImplementedError

    def row_problem(self, row: dict, train_columns: list[str]) -> str | None:
        """What is wrong with a raw row, as prepare_data would find it; None when it is usable."""
        return None

    def check_rows(self, seen, roles, preprocessor) -> tuple[list[str], list[str]]:
        """The type's own checks of the first rows beyond each row's own (labels, templates)."""
        return [], []

    def examples(self, rows: list[dict], preprocessor) -> list[str]:
        """`rows` as training reads them, for a person (`forge check --show`): the tokens with
        those that carry the loss marked."""
        raise NotImplementedError
