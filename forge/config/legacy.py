"""The three tasks forge knew before tasks became types, as configs of the types.

Until then `task.name` chose a module with fixed columns: `mnli` (GLUE's NLI pairs),
`reasoning` (GSM8K's layout) and `ocr` (line images). Run directories made then store such a
task, and old configs still say it. A task with one of these names and no `type` is read as
the config of its type below (`upgrade`), so those runs resume, show in `forge status` and keep
their results. A config of a type that means exactly what one of them meant hashes as it did
(`contract`): Snakemake, which reruns a run whose config hash changed, leaves such runs alone.
"""

from __future__ import annotations

import copy
from typing import Any

from forge.rewards import GSM8K_ANSWER

# What each old task meant, in the keys of its type. (GSM8K's prompt and answer pattern are
# the reasoning task's instruction and its final-answer reading, character for character.)
PRESETS: dict[str, dict[str, Any]] = {
    "mnli": {
        "type": "classification",
        "columns": {"text": "premise", "text_pair": "hypothesis", "label": "label"},
        "labels": ["entailment", "neutral", "contradiction"],
        "splits": {"train": "train", "eval": ["validation_matched", "validation_mismatched"]},
    },
    "reasoning": {
        "type": "generation",
        "columns": {"completion": "answer"},  # the prompt: written by the template from `question`
        "prompt_template": "Solve the problem. End with a line '#### <answer>'.\n{question}",
        "answer_pattern": list(GSM8K_ANSWER),
        "splits": {"train": "train", "eval": "test"},
    },
    "ocr": {
        "type": "image_to_text",
        "splits": {"train": "train", "eval": "test"},
    },
}
# The dataset config an old task read when its config named none.
DEFAULT_DATASET_CONFIG = {"mnli": "mnli", "reasoning": "main"}
# The old task section's keys and defaults (its schema then).
OLD_DEFAULTS = {
    "dataset_config": None,
    "max_length": 128,
    "max_new_tokens": 64,
    "image_column": "image",
    "text_column": "text",
    "skip_bad_images": False,
    "max_train_samples": None,
    "max_eval_samples": None,
    "data_seed": 42,
}
# The main metric of each old task's runs (split, metric, larger is better): what `forge status`
# shows of a run whose metrics files were written before they named it.
MAIN_METRICS = {
    "mnli": ("validation_matched", "accuracy", True),
    "reasoning": ("test", "accuracy", True),
    "ocr": ("test", "cer", False),
}
COMMON = ("name", "dataset", "dataset_config", "max_length", "max_train_samples", "max_eval_samples", "data_seed")


def is_old(task: Any) -> bool:
    """An old task section: one of the old names, no `type`."""
    return isinstance(task, dict) and "type" not in task and task.get("name") in PRESETS


def upgrade(task: dict[str, Any]) -> dict[str, Any]:
    """An old task section as the section of its type."""
    name = task["name"]
    new = {k: v for k, v in task.items() if k in COMMON}
    new.update(copy.deepcopy(PRESETS[name]))
    if name in DEFAULT_DATASET_CONFIG and new.get("dataset_config") is None:
        new["dataset_config"] = DEFAULT_DATASET_CONFIG[name]
    if name != "mnli" and "max_new_tokens" in task:
        new["max_new_tokens"] = task["max_new_tokens"]
    if name == "ocr":
        new["columns"] = {"image": task.get("image_column", "image"), "text": task.get("text_column", "text")}
        if task.get("skip_bad_images"):
            new["bad_rows"] = "skip"
    return new


def contract(task) -> dict[str, Any] | None:
    """The old task section (as its schema dumped it without defaults) that means what `task`
    (a validated task section) means, or None when no old task meant it."""
    name = task.name
    preset = PRESETS.get(name)
    if preset is None or task.type != preset["type"]:
        return None
    now = task.model_dump(mode="json")
    for key, value in preset.items():
        if key == "columns":
            if {k: v for k, v in now["columns"].items() if v is not None} != value:
                return None
        elif now.get(key) != value:
            return None
    fields = type(task).model_fields
    said = set(preset) | set(COMMON) | {"max_new_tokens", "columns", "bad_rows"}
    if any(now[f] != fields[f].default for f in fields if f not in said):
        return None  # a setting no old task had (data_files, packing, ...)
    if name != "ocr" and now["bad_rows"] != "error":
        return None
    old = {key: now[key] for key in COMMON}
    if name != "mnli":
        old["max_new_tokens"] = now["max_new_tokens"]
    if name == "ocr":
        old.update(
            image_column=now["columns"]["image"],
            text_column=now["columns"]["text"],
            skip_bad_images=now["bad_rows"] == "skip",
        )
    return {k: v for k, v in old.items() if k in ("name", "dataset") or v != OLD_DEFAULTS[k]}
