"""The real-Hub code path, fed from local directories in Hub format: a model saved
with save_pretrained and GLUE-shaped parquet files laid out like nyu-mll/glue."""

from __future__ import annotations

import json

import pytest

from tests.conftest import ROOT, forge_here, write_config

pytestmark = pytest.mark.integration

GLUE_README = """---
configs:
- config_name: mnli
  data_files:
  - split: train
    path: mnli/train-*
  - split: validation_matched
    path: mnli/validation_matched-*
  - split: validation_mismatched
    path: mnli/validation_mismatched-*
  - split: test_matched
    path: mnli/test_matched-*
  - split: test_mismatched
    path: mnli/test_mismatched-*
---
"""


def write_glue_mnli(root, rows: int = 64) -> None:
    import pandas as pd

    (root / "mnli").mkdir(parents=True)
    for split in ("train", "validation_matched", "validation_mismatched", "test_matched", "test_mismatched"):
        hidden = split.startswith("test")
        frame = pd.DataFrame(
            {
                "premise": [f"A person number {i} walks in the park." for i in range(rows)],
                "hypothesis": [["Someone walks.", "It is sunny.", "Nobody walks."][i % 3] for i in range(rows)],
                "label": [-1 if hidden else i % 3 for i in range(rows)],
                "idx": list(range(rows)),
            }
        ).astype({"label": "int64", "idx": "int32"})
        frame.to_parquet(root / "mnli" / f"{split}-00000-of-00001.parquet", index=False)
    (root / "README.md").write_text(GLUE_README)


def test_hub_layout_model_and_glue_parquet_train_through_the_real_config(tmp_path):
    from forge.embedded.tiny import build_tiny_distilbert

    model_dir = tmp_path / "hub" / "distilbert-base-uncased"
    build_tiny_distilbert(model_dir, ["a person walks in the park", "someone walks", "it is sunny", "nobody"])
    write_glue_mnli(tmp_path / "hub" / "glue")
    config = write_config(
        tmp_path,
        "hub/00_sft.yaml",
        f"""
        base: {ROOT / "configs/classification/mnli/distilbert/00_sft.yaml"}
        output_root: {tmp_path / "outputs"}
        task:
          dataset: ./glue
        student:
          path: ./distilbert-base-uncased
        training:
          batch_size: 8
          save_steps: 5
        """,
    )
    result = forge_here("--config", str(config), "--max_steps", "10", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    run = tmp_path / "outputs" / "mnli" / "distilbert" / "00_sft"
    assert (run / "pipeline_complete").exists()
    stored = (run / "config.yaml").read_text()
    assert f"path: {model_dir}" in stored and "dataset_config: mnli" in stored
    post = json.loads((run / "metrics" / "post_eval.json").read_text())
    assert post["step"] == 10 and post["validation_mismatched"]["samples"] == 64
