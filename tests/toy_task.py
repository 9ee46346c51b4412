"""A fourth task that lives outside forge, for tests/unit/test_structure.py: classify an
NLI row from its hypothesis alone (a one-sentence classifier) on the generated GLUE copy.

Written only against forge/tasks' interface (TaskSpec and the functions every task
module offers), so a run of it shows that adding a task needs nothing outside a task
module (and a line in forge.tasks.TASKS, here `forge.tasks.register`)."""

from __future__ import annotations

from forge.models.loading import classifier
from forge.tasks import TaskSpec, sources

HEAD = classifier(("entailment", "neutral", "contradiction"))
TRAIN_SPLIT, EVAL_SPLITS = "train", ("validation_matched",)
PEAK_METRICS = {"eval_loss": False}
SPEC = TaskSpec(TRAIN_SPLIT, EVAL_SPLITS, metric="accuracy", larger_is_better=True)


def prepare(cfg, tokenizer, out) -> dict[str, int]:
    from datasets import DatasetDict

    raw = sources.load(cfg.task.dataset, "mnli", (TRAIN_SPLIT, *EVAL_SPLITS))
    limits = {TRAIN_SPLIT: cfg.task.max_train_samples, EVAL_SPLITS[0]: cfg.task.max_eval_samples}
    data = DatasetDict({name: sources.subset(raw[name], limit, cfg.seed) for name, limit in limits.items()})
    data = data.map(
        lambda batch: tokenizer(batch["hypothesis"], truncation=True, max_length=cfg.task.max_length),
        batched=True,
        remove_columns=["premise", "hypothesis", "idx"],
    ).rename_column("label", "labels")
    data.save_to_disk(str(out))
    return {name: len(split) for name, split in data.items()}


def load_prepared(path):
    from datasets import load_from_disk

    return load_from_disk(str(path))


def trainer_inputs(cfg, data, tokenizer, model) -> dict:
    return dict(train_dataset=data[TRAIN_SPLIT], eval_dataset=data[EVAL_SPLITS[0]])


def evaluate(session, model, tokenizer, data) -> dict[str, dict[str, float]]:
    import torch
    from torch.utils.data import DataLoader
    from transformers import DataCollatorWithPadding

    split = data[EVAL_SPLITS[0]]
    correct = 0
    model.eval()
    for batch in DataLoader(split, batch_size=64, collate_fn=DataCollatorWithPadding(tokenizer)):
        with torch.no_grad():
            logits = model(**{k: v for k, v in batch.items() if k != "labels"}).logits
        correct += (logits.argmax(-1) == batch["labels"]).sum().item()
    return {EVAL_SPLITS[0]: {"accuracy": correct / len(split), "samples": len(split)}}
