"""classification: a text, and optionally a second one (`text_pair`: NLI's hypothesis), gets
one of the labels; or, when the label column holds floats and no `labels` are given, a number
(regression, as transformers' run_classification decides it).

The label names come from the data's ClassLabel, or `task.labels` (for integer labels: their
names by index), or the sorted distinct values of the training split; they travel into the
final model's `id2label` / `label2id`. An evaluation row whose label the training split lacks
is one line naming split, row and value. Metrics: accuracy and macro-F1 (regression: MSE,
Pearson and Spearman), and the mean cross-entropy (MSE) loss.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

from forge.models.loading import Head, classifier, regressor
from forge.tasks import data as sources
from forge.tasks.base import TRAIN, Alignment, MainMetric, TaskType, TrainerInputs

log = logging.getLogger("forge.tasks")

LABELS_FILE = "labels.json"  # in the prepared data: the label names, or {"regression": true}


class Classification(TaskType):
    name = "classification"
    alignment = Alignment.EXAMPLE
    supports = frozenset({"distillation", "teacher_cache", "hidden_states", "transfer_set"})
    why_not = {"rl": "RL needs a task a policy answers in text (task.type: generation)"}

    # -- the labels ---------------------------------------------------------

    def label_names(self, data_dir: Path | None = None) -> tuple[str, ...] | None:
        """The classes, or None for regression; from the prepared data when it has been
        prepared, else from the config (None: not known before the data is read)."""
        if data_dir is not None and (data_dir / LABELS_FILE).is_file():
            stored = json.loads((data_dir / LABELS_FILE).read_text())
            return None if stored.get("regression") else tuple(stored["labels"])
        return tuple(str(v) for v in self.task.labels) if self.task.labels is not None else None

    def regression(self, data_dir: Path | None = None) -> bool:
        if data_dir is not None and (data_dir / LABELS_FILE).is_file():
            return bool(json.loads((data_dir / LABELS_FILE).read_text()).get("regression"))
        return False

    def head(self, data_dir: Path | None = None) -> Head:
        if self.regression(data_dir):
            return regressor()
        names = self.label_names(data_dir)
        return classifier(names) if names is not None else classifier(None)

    def main_metric(self, data_dir: Path | None = None) -> MainMetric:
        if self.regression(data_dir):
            return MainMetric(None, "mse", False)
        return MainMetric(None, "accuracy", True)

    def peak_metrics(self, data_dir: Path | None = None) -> dict[str, bool]:
        if self.regression(data_dir):
            return {"eval_mse": False, "eval_loss": False}
        return {"eval_accuracy": True, "eval_loss": False}

    # -- prepare ------------------------------------------------------------

    def _columns(self) -> dict[str, str]:
        columns = self.task.columns
        return {
            "text": columns.text,
            **({"text_pair": columns.text_pair} if columns.text_pair else {}),
            "label": columns.label,
        }

    def _classes(self, train, label: str, others=()) -> tuple[list, tuple[str, ...] | None]:
        """(the label values in class-id order, the class names; None for regression) of the
        training split: a ClassLabel's ids and names (renamed by task.labels); task.labels, by
        index for an integer column; else the sorted distinct values. `others`: the evaluation
        splits, where an empty cell also tells an integer column read as floats."""
        from datasets import ClassLabel

        feature, labels = train.features[label], self.task.labels
        if isinstance(feature, ClassLabel):
            names = labels if labels is not None else feature.names
            if len(names) != len(feature.names):
                raise sources.DataError(
                    f"task.labels names {len(names)} classes; the data's {label!r} column has "
                    f"{len(feature.names)} ({', '.join(feature.names)})"
                )
            return list(range(len(names))), tuple(str(n) for n in names)
        dtype = getattr(feature, "dtype", None)
        if labels is not None:  # numbers in the column and names in task.labels: the names of 0, 1, ...
            numeric = dtype is not None and dtype.startswith(("int", "uint", "float"))
            by_index = numeric and all(isinstance(v, str) for v in labels)
            return (list(range(len(labels))) if by_index else list(labels)), tuple(str(v) for v in labels)
        column = list(train[label])
        if dtype in ("float16", "float32", "float64") and not _integers_with_gaps(
            column + [v for split in others for v in split[label]]
        ):
            whole = all(v is None or v != v or float(v).is_integer() for v in column)
            (log.warning if whole else log.info)(
                "the label column %r holds %s: regression (MSE); give task.labels to classify",
                label, "floats, all whole numbers (1.0 for 1)" if whole else "floats",
            )  # fmt: skip
            return [], None
        values = {_whole(v) for v in column if v is not None and v == v}  # v == v: not NaN (a missing cell)
        if not values:
            raise sources.DataError(f"split train: the label column {label!r} has no value")
        if len(values) == 1:
            raise sources.DataError(
                f"split train: the label column {label!r} has one value ({next(iter(values))!r}); "
                "a classifier needs two classes or more"
            )
        values = sorted(values, key=lambda v: (isinstance(v, str), v))
        _warn_of_near_twins(values, label)
        _warn_of_numbers_as_text(values, label)
        return values, tuple(str(v) for v in values)

    def prepare(self, tokenizer, out: Path) -> dict[str, int]:
        from datasets import ClassLabel, DatasetDict, Value

        task, cfg = self.task, self.cfg
        cache = sources.fresh_cache()
        try:
            raw = sources.load(task, cache)
            splits = sources.select(task, raw)
            columns = self._columns()
            for name, rows in splits.items():
                sources.require_columns(rows, name, columns)
            text, pair, label = columns["text"], columns.get("text_pair"), columns["label"]
            values, names = self._classes(splits[TRAIN], label, [rows for n, rows in splits.items() if n != TRAIN])
            regression = names is None
            feature = splits[TRAIN].features[label]
            already = isinstance(feature, ClassLabel)  # class ids already, maybe renamed by task.labels
            renamed = already and tuple(feature.names) != names
            bad = sources.BadRows(task)
            index = {v: i for i, v in enumerate(values)}
            prepared = {}
            by_index = task.labels is not None and values == list(range(len(values))) and values != list(task.labels)
            for name, rows in splits.items():
                where = "task.labels" if task.labels is not None else "the training split's"
                if by_index:  # names in task.labels, numbers in the column: the numbers are class ids
                    where = f"the class ids task.labels names, 0 to {len(values) - 1}"
                rows = bad.keep(
                    rows,
                    name,
                    lambda row, where=where: self._row_problem(row, text, pair, label, index, regression, where),
                )
                if renamed:
                    rows = rows.cast_column(label, ClassLabel(names=list(names)))
                if not regression and not already:  # values -> class ids, ClassLabel names
                    rows = rows.map(lambda batch: {label: [index[_key(v, index)] for v in batch[label]]}, batched=True)
                    rows = rows.cast_column(label, ClassLabel(names=list(names)))
                elif regression:
                    rows = rows.cast_column(label, Value("float32"))
                prepared[name] = rows
            train = prepared[TRAIN]
            kd = cfg.distillation
            if kd.transfer_samples is not None:  # the labelled rows, then the transfer set's (labels dropped)
                train = sources.with_transfer_set(
                    train, task.max_train_samples, kd.transfer_samples, task.data_seed, label
                )
            else:
                train = sources.subset(train, task.max_train_samples, task.data_seed)
            prepared[TRAIN] = train

            def tokenize(batch):
                second = batch[pair] if pair else None
                return tokenizer(batch[text], second, truncation=True, max_length=task.max_length)

            tokenized = DatasetDict(
                {
                    name: rows.map(tokenize, batched=True, remove_columns=[c for c in rows.column_names if c != label])
                    for name, rows in prepared.items()
                }
            )
            if label != "labels":
                tokenized = tokenized.rename_column(label, "labels")
            tokenized.save_to_disk(str(out))
        finally:
            sources.remove(cache)
        (out / LABELS_FILE).write_text(json.dumps({"regression": True} if regression else {"labels": list(names)}))
        return {name: len(split) for name, split in tokenized.items()}

    @staticmethod
    def _row_problem(row, text, pair, label, index, regression, where="the training split's") -> str | None:
        for column in (text, pair):
            value = row[column] if column else ""
            if column and not isinstance(value, str):
                return f"column {column!r}: {sources.not_text(value)}"
            if column and not value.strip():  # it would train as the special tokens alone
                return f"column {column!r}: empty text"
        value = row[label]
        if value is None:
            return f"column {label!r}: no label"
        if isinstance(value, float) and value != value:  # NaN: a missing cell as pandas reads it
            return f"column {label!r}: no label"
        if regression:
            if not isinstance(value, (int, float)):
                return f"column {label!r}: {value!r} is not a number"
            return None if math.isfinite(value) else f"column {label!r}: {value!r} is not a finite number"
        if index and _key(value, index) not in index:
            known = ", ".join(map(repr, list(index)[:8])) + (", ..." if len(index) > 8 else "")
            return f"column {label!r}: label {value!r} is not one of {where} ({known})"
        return None

    # -- checked before anything is created ----------------------------------

    def columns(self, train_columns: list[str]) -> dict[str, str]:
        return self._columns()

    def row_problem(self, row: dict, train_columns: list[str]) -> str | None:
        columns = self._columns()
        value, labels = row[columns["label"]], self.task.labels
        index = {}
        if labels is not None:  # an integer (a ClassLabel's id) names a class by index
            by_index = isinstance(value, (int, float)) and all(isinstance(v, str) for v in labels)
            index = {v: i for i, v in enumerate(range(len(labels)) if by_index else labels)}
        regression = self.task.labels is None and isinstance(value, float) and not value.is_integer()
        return self._row_problem(
            row, columns["text"], columns.get("text_pair"), columns["label"], index, regression, "task.labels"
        )

    def check_rows(self, seen, roles, tokenizer) -> tuple[list[str], list[str]]:
        label = self._columns()["label"]
        values = [row[label] for row in seen.rows[roles.train]]
        if self.task.labels is None and values and all(isinstance(v, float) for v in values):
            if all(float(v).is_integer() for v in values if v == v) and not _integers_with_gaps(values):
                return [], [f"the label column {label!r} holds whole numbers written as floats: the run regresses "
                            "them (MSE), unless a cell of it is empty (then they are classes); give task.labels "
                            "to classify"]  # fmt: skip
            if not _integers_with_gaps(values):
                return [], [f"the label column {label!r} holds numbers: the run regresses them (MSE)"]
            values = [_whole(v) for v in values if v == v]
        seen_labels = sorted({str(v) for v in values})
        shown = ", ".join(seen_labels[:8]) + (", ..." if len(seen_labels) > 8 else "")
        where = "task.labels" if self.task.labels is not None else "the training split's distinct values"
        return [], [f"labels from {where} (the first rows have: {shown}); every row is checked when prepared"]

    def examples(self, rows: list[dict], tokenizer) -> list[str]:
        columns = self._columns()
        shown = []
        for row in rows:
            pair = row[columns["text_pair"]] if "text_pair" in columns else None
            ids = tokenizer(row[columns["text"]], pair, truncation=True, max_length=self.task.max_length)["input_ids"]
            shown.append(f"{tokenizer.decode(ids)}  ->  label {row[columns['label']]!r} (the loss: this one label)")
        return shown

    # -- train and evaluate --------------------------------------------------

    def trainer_inputs(self, data, tokenizer, model) -> TrainerInputs:
        """What the SFT and KD trainers read: the Trainer pads batches with the tokenizer."""
        regression = model.config.problem_type == "regression"
        main = self.eval_splits(data)[0]
        return TrainerInputs(data[TRAIN], data[main], compute_metrics=regression_metrics if regression else metrics)

    def evaluate(self, session, model, tokenizer, data) -> dict[str, dict[str, float]]:
        """Accuracy, macro-F1 and mean cross-entropy (regression: MSE, Pearson, Spearman) on
        each evaluation split.

        A plain loop, not `Trainer.evaluate`: pre_eval and post_eval run in one process
        even under torchrun (rank 0 alone), where a Trainer would wait for the other ranks."""
        import torch
        from torch.utils.data import DataLoader
        from transformers import DataCollatorWithPadding

        from forge.logs import progress
        from forge.models.loading import default_device

        model.to(default_device()).eval()
        collate = DataCollatorWithPadding(tokenizer)
        precision = session.cfg.training.precision  # as the Trainer evaluates: autocast to it
        dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
        regression = model.config.problem_type == "regression"
        results = {}
        for split in self.eval_splits(data):
            batches = DataLoader(data[split], batch_size=session.cfg.training.eval_batch_size, collate_fn=collate)
            outputs, targets, loss = [], [], 0.0
            for batch in progress(batches, f"evaluating {split}"):
                batch = batch.to(model.device)
                with torch.no_grad(), torch.autocast(model.device.type, dtype=dtype, enabled=dtype is not None):
                    logits = model(**{k: v for k, v in batch.items() if k != "labels"}).logits.float()
                if regression:
                    loss += torch.nn.functional.mse_loss(logits.squeeze(-1), batch["labels"], reduction="sum").item()
                else:
                    loss += torch.nn.functional.cross_entropy(logits, batch["labels"], reduction="sum").item()
                outputs.append(logits.cpu())
                targets.append(batch["labels"].cpu())
            n = len(data[split])
            logits, labels = torch.cat(outputs).numpy(), torch.cat(targets).numpy()
            scores = regression_metrics((logits, labels)) if regression else metrics((logits, labels))
            results[split] = {**scores, "loss": loss / n, "samples": n}
        return results


def _whole(value):
    """1.0 -> 1 (an integer label read as a float); anything else as it is."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _integers_with_gaps(column) -> bool:
    """A float column that is an integer one with missing cells (pandas reads an empty cell as
    NaN, which makes the whole column float): whole numbers, and at least one NaN."""
    present = [v for v in column if v is not None and v == v]
    return len(present) < len(column) and all(math.isfinite(v) and float(v).is_integer() for v in present)


def _warn_of_near_twins(values: list, label: str) -> None:
    """Classes that differ only in case, spaces or type ('Positive', 'positive ', 1 and '1') are
    usually one class spelled twice: say so (they stay distinct classes)."""
    groups: dict[str, list] = {}
    for value in values:
        groups.setdefault(str(value).strip().casefold(), []).append(value)
    for twins in (g for g in groups.values() if len(g) > 1):
        log.warning("the label column %r has %s: they are %d classes; if they are one, write them alike",
                    label, " and ".join(map(repr, twins)), len(twins))  # fmt: skip


def _warn_of_numbers_as_text(values: list, label: str) -> None:
    """Labels written as numbers in text ('0.73' in a json file) are classes, one per distinct
    value: said when they look like scores (a regression written as text), or when numbers and
    words mix (0 and 'negative': one labelling written two ways)."""

    def number(value) -> float | None:
        try:
            return float(value) if isinstance(value, str) else None
        except ValueError:
            return None

    numbers = [v for v in values if isinstance(v, (int, float)) or number(v) is not None]
    if numbers and len(numbers) < len(values):
        words = [v for v in values if v not in numbers]
        log.warning("the label column %r mixes numbers (%s) and words (%s): they are %d classes; if one labelling "
                    "is written two ways, write every label alike", label, ", ".join(map(str, numbers[:4])),
                    ", ".join(map(str, words[:4])), len(values))  # fmt: skip
    elif any(isinstance(v, str) and not number(v).is_integer() for v in numbers):
        log.warning("the label column %r holds numbers written as text (%s): they are %d classes, not a "
                    "regression; write them as numbers to regress", label, ", ".join(map(repr, numbers[:4])),
                    len(values))  # fmt: skip


def _key(value, index):
    """A label value as `index` keys it: 1.0 is the label 1 (integer labels read as floats)."""
    if isinstance(value, float) and value.is_integer() and int(value) in index:
        return int(value)
    return value


def macro_f1(predictions, labels, classes: int) -> float:
    import numpy as np

    scores = []
    for c in range(classes):
        tp = float(np.sum((predictions == c) & (labels == c)))
        fp = float(np.sum((predictions == c) & (labels != c)))
        fn = float(np.sum((predictions != c) & (labels == c)))
        if tp + fp + fn:
            scores.append(2 * tp / (2 * tp + fp + fn))
    return float(np.mean(scores)) if scores else 0.0


def metrics(eval_pred) -> dict[str, float]:
    """Accuracy and macro-F1 (over the classes that occur, as predictions or labels)."""
    import numpy as np

    logits, labels = eval_pred
    predictions = np.argmax(logits, axis=-1)
    keep = labels != sources.UNLABELLED
    predictions, labels = predictions[keep], labels[keep]
    return {
        "accuracy": float((predictions == labels).mean()),
        "macro_f1": macro_f1(predictions, labels, logits.shape[-1]),
    }


def regression_metrics(eval_pred) -> dict[str, float]:
    import numpy as np

    outputs, labels = eval_pred
    outputs = np.asarray(outputs).reshape(-1).astype(np.float64)
    labels = np.asarray(labels).reshape(-1).astype(np.float64)
    mse = float(np.mean((outputs - labels) ** 2))

    def ranks(x):
        order = np.argsort(x, kind="stable")
        r = np.empty(len(x))
        r[order] = np.arange(len(x))
        # ties share their mean rank
        for value in np.unique(x):
            tied = x == value
            r[tied] = r[tied].mean()
        return r

    def pearson(a, b):
        if a.std() == 0 or b.std() == 0:
            return 0.0
        return float(np.corrcoef(a, b)[0, 1])

    return {"mse": mse, "pearson": pearson(outputs, labels), "spearman": pearson(ranks(outputs), ranks(labels))}
