"""Configs and run directories from before tasks were types (forge/config/legacy.py): an old
config means what it meant and hashes as it did (Snakemake leaves its runs alone), an old run
directory's stored config and metrics still read, and data prepared by the old reasoning task
is read as a generation task's."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from forge.config import config_hash, load_config, to_dict
from tests.conftest import ROOT

LEGACY = Path(__file__).resolve().parents[1] / "legacy"
# config_hash of these configs before the change (no path in them: the same on every machine)
OLD_HASHES = {
    "classification/mnli/tiny/00_sft": "31bc18a10584962b",
    "reasoning/gsm8k/tiny/00_sft": "5064e38ba24d5c0b",
    "ocr/lines/tiny/00_sft": "bf3c6d141dcde765",
}


@pytest.mark.parametrize("name", [*OLD_HASHES, "reasoning/gsm8k/tiny/01_grpo"])
def test_an_old_config_means_what_the_shipped_config_of_its_type_means_and_hashes_as_before(name):
    old = load_config(LEGACY / f"{name.replace('/', '_')}.yaml")
    new = load_config(ROOT / "configs" / f"{name}.yaml")
    assert to_dict(old) == to_dict(new)
    assert config_hash(old) == config_hash(new)
    if name in OLD_HASHES:
        assert config_hash(new) == OLD_HASHES[name]


def test_a_changed_task_is_not_hashed_as_the_old_task(tmp_path):
    """Only a task that means what an old task meant gets its old hash."""
    shipped = load_config(ROOT / "configs/classification/mnli/tiny/00_sft.yaml")
    relabelled = load_config(ROOT / "configs/classification/mnli/tiny/00_sft.yaml", {"task.bad_rows": "skip"})
    assert config_hash(relabelled) != config_hash(shipped)


OLD_STORED_TASK = {  # what run directories made before the change hold in config.yaml
    "name": "mnli",
    "dataset": "embedded:synthetic-glue",
    "dataset_config": "mnli",
    "max_length": 64,
    "max_new_tokens": 64,
    "image_column": "image",
    "text_column": "text",
    "skip_bad_images": False,
    "max_train_samples": None,
    "max_eval_samples": 200,
    "data_seed": 42,
}


def test_an_old_run_directory_shows_in_status_and_finishes_its_last_stage(reference, tmp_path):
    """A complete run rewritten as the old forge wrote it (the old task in config.yaml, metrics
    files that do not name their main metric), its last stage undone: `forge status` reads its
    metric, and `forge --resume` (a new process of today's forge) finishes it."""
    from forge import status
    from tests.conftest import forge_here

    run = tmp_path / "run"
    shutil.copytree(reference.root, run)
    config = yaml.safe_load((run / "config.yaml").read_text())
    config["task"] = OLD_STORED_TASK
    (run / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    for name in ("pre_eval", "post_eval"):
        metrics = json.loads((run / "metrics" / f"{name}.json").read_text())
        metrics.pop("main")
        (run / "metrics" / f"{name}.json").write_text(json.dumps(metrics))
    post = json.loads((run / "metrics" / "post_eval.json").read_text())
    shown = status.status_of(run)
    assert (shown.state, shown.metric, shown.post) == ("complete", "accuracy", post["validation_matched"]["accuracy"])

    (run / "pipeline_complete").unlink()
    (run / "stages" / "post_eval.done").unlink()
    result = forge_here("--resume", str(run), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "stage post_eval: starting" in result.stderr and (run / "pipeline_complete").exists()
    again = json.loads((run / "metrics" / "post_eval.json").read_text())
    assert again["validation_matched"] == post["validation_matched"] and again["main"]["metric"] == "accuracy"


def test_data_the_old_reasoning_task_prepared_is_read_as_a_generation_tasks(tmp_path):
    """Its evaluation rows kept `question` and `answer`, its RL rows `prompt` and `answer`:
    they read as prompts (the task's template) and references."""
    from datasets import Dataset, DatasetDict

    from forge.tasks import task_of

    cfg = load_config(LEGACY / "reasoning_gsm8k_tiny_01_grpo.yaml")
    DatasetDict({
        "train": Dataset.from_dict({"prompt": [[{"role": "user", "content": "q"}]], "answer": ["#### 1"]}),
        "test": Dataset.from_dict({"question": ["Ana has 2 pens."], "answer": ["2\n#### 2"], "input_ids": [[1, 2]],
                                   "attention_mask": [[1, 1]], "labels": [[-100, 2]]}),
    }).save_to_disk(str(tmp_path / "data"))  # fmt: skip
    data = task_of(cfg).load_prepared(tmp_path / "data")
    assert data["train"]["reference"] == ["#### 1"]
    assert data["test"]["prompt"] == [[{"role": "user", "content": cfg.task.prompt_template.format(
        question="Ana has 2 pens.")}]] and data["test"]["reference"] == ["2\n#### 2"]  # fmt: skip
