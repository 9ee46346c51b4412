"""MNLI classification: GLUE's `mnli` config through `datasets.load_dataset`.

The real run reads `nyu-mll/glue` from the Hub; the offline twin reads the
generated copy (`embedded:synthetic-glue`) or any local directory with the same
layout — by the same call.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from forge.models.loading import classifier
from forge.tasks import TaskSpec, sources

if TYPE_CHECKING:
    from forge.config.schema import ForgeConfig

LABELS = ("entailment", "neutral", "contradiction")
HEAD = classifier(LABELS)
TRAIN_SPLIT = "train"
EVAL_SPLITS = ("validation_matched", "validation_mismatched")
DEFAULT_CONFIG = "mnli"
SPEC = TaskSpec(
    TRAIN_SPLIT,
    EVAL_SPLITS,
    metric="accuracy",
    larger_is_better=True,
    supports=frozenset({"distillation", "teacher_cache", "hidden_states", "transfer_set"}),
)


def data_needs(cfg: ForgeConfig) -> sources.Needs:
    return sources.Needs(
        cfg.task.dataset_config or DEFAULT_CONFIG,
        (TRAIN_SPLIT, *EVAL_SPLITS),
        ("premise", "hypothesis", "label"),
        label_column="label",
        labels=frozenset(range(len(LABELS))),
    )


def prepare(cfg: ForgeConfig, tokenizer, out: Path) -> dict[str, int]:
    """Tokenize the train and evaluation splits and save them to `out`; returns split sizes."""
    from datasets import DatasetDict

    raw = sources.load(cfg.task.dataset, cfg.task.dataset_config or DEFAULT_CONFIG, (TRAIN_SPLIT, *EVAL_SPLITS))
    train, transfer = raw[TRAIN_SPLIT], cfg.distillation.transfer_samples
    if transfer is None:
        splits = {TRAIN_SPLIT: sources.subset(train, cfg.task.max_train_samples, cfg.task.data_seed)}
    else:  # the labelled rows, then the transfer set's (labels dropped)
        rows = sources.with_transfer_set(train, cfg.task.max_train_samples, transfer, cfg.task.data_seed, "label")
        splits = {TRAIN_SPLIT: rows}
    for name in EVAL_SPLITS:
        splits[name] = sources.subset(raw[name], cfg.task.max_eval_samples, cfg.task.data_seed)

    def tokenize(batch):
        return tokenizer(batch["premise"], batch["hypothesis"], truncation=True, max_length=cfg.task.max_length)

    columns = raw[TRAIN_SPLIT].column_names
    tokenized = DatasetDict(
        {
            name: split.map(tokenize, batched=True, remove_columns=[c for c in columns if c != "label"])
            for name, split in splits.items()
        }
    )
    tokenized = tokenized.rename_column("label", "labels")
    tokenized.save_to_disk(str(out))
    return {name: len(split) for name, split in tokenized.items()}


def load_prepared(path: Path):
    from datasets import load_from_disk

    return load_from_disk(str(path))


def trainer_inputs(cfg: ForgeConfig, data, tokenizer, model) -> dict:
    """What the SFT and KD trainers read: the Trainer pads batches with the tokenizer."""
    return dict(train_dataset=data[TRAIN_SPLIT], eval_dataset=data[EVAL_SPLITS[0]], compute_metrics=compute_metrics)


def evaluate(session, model, tokenizer, data) -> dict[str, dict[str, float]]:
    """Accuracy and mean cross-entropy on each evaluation split.

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
    results = {}
    for split in EVAL_SPLITS:
        batches = DataLoader(data[split], batch_size=session.cfg.training.eval_batch_size, collate_fn=collate)
        loss, correct = 0.0, 0
        for batch in progress(batches, f"evaluating {split}"):
            batch = batch.to(model.device)
            with torch.no_grad(), torch.autocast(model.device.type, dtype=dtype, enabled=dtype is not None):
                logits = model(**{k: v for k, v in batch.items() if k != "labels"}).logits.float()
            loss += torch.nn.functional.cross_entropy(logits, batch["labels"], reduction="sum").item()
            correct += (logits.argmax(-1) == batch["labels"]).sum().item()
        n = len(data[split])
        results[split] = {"accuracy": correct / n, "loss": loss / n, "samples": n}
    return results


def compute_metrics(eval_pred) -> dict[str, float]:
    import numpy as np

    logits, labels = eval_pred
    predictions = np.argmax(logits, axis=-1)
    return {"accuracy": float((predictions == labels).mean())}


# Metrics that decide the best checkpoint, and whether larger is better.
PEAK_METRICS = {"eval_accuracy": True, "eval_loss": False}
