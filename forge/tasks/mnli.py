"""MNLI classification: GLUE's `mnli` config through `datasets.load_dataset`.

The real run reads `nyu-mll/glue` from the Hub; the offline twin reads the
generated copy (`embedded:synthetic-glue`) or any local directory with the same
layout — by the same call.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from forge import embedded
from forge.config.schema import ForgeConfig
from forge.hub import is_hub_id, unreachable

LABELS = ("entailment", "neutral", "contradiction")
TRAIN_SPLIT = "train"
EVAL_SPLITS = ("validation_matched", "validation_mismatched")
DEFAULT_CONFIG = "mnli"


def load_raw(cfg: ForgeConfig):
    from datasets import load_dataset

    ref = cfg.task.dataset
    source = str(embedded.ensure(ref)) if embedded.is_embedded(ref) else ref
    try:
        return load_dataset(source, cfg.task.dataset_config or DEFAULT_CONFIG)
    except ConnectionError:
        raise unreachable(ref, "dataset") from None
    except (FileNotFoundError, ValueError) as exc:
        message = str(exc).lower()
        if is_hub_id(ref) and ("offline" in message or "connect" in message):
            raise unreachable(ref, "dataset") from None
        raise


def _subset(split, limit: int | None, seed: int):
    if limit is None or limit >= len(split):
        return split
    return split.shuffle(seed=seed).select(range(limit))


def prepare(cfg: ForgeConfig, tokenizer, out: Path) -> dict[str, int]:
    """Tokenize the train and evaluation splits and save them to `out`; returns split sizes."""
    from datasets import DatasetDict

    raw = load_raw(cfg)
    missing = [s for s in (TRAIN_SPLIT, *EVAL_SPLITS) if s not in raw]
    if missing:
        raise ValueError(f"dataset {cfg.task.dataset!r} lacks the MNLI split(s) {', '.join(missing)}")
    splits = {TRAIN_SPLIT: _subset(raw[TRAIN_SPLIT], cfg.task.max_train_samples, cfg.seed)}
    for name in EVAL_SPLITS:
        splits[name] = _subset(raw[name], cfg.task.max_eval_samples, cfg.seed)

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


def compute_metrics(eval_pred) -> dict[str, float]:
    logits, labels = eval_pred
    predictions = np.argmax(logits, axis=-1)
    return {"accuracy": float((predictions == labels).mean())}


# Metrics that decide the best checkpoint, and whether larger is better.
PEAK_METRICS = {"eval_accuracy": True, "eval_loss": False}
