"""Smoke tests of the real pretrained models (docs/real-models.md): each one builds from its
pip package, trains two steps through forge.py, and its final model loads by
`from_pretrained`. The recipes that show results are benches (bench/kd_recipes.py)."""

from __future__ import annotations

import json

import pytest

from tests.conftest import ROOT, forge_here, require_pretrained, write_config

pytestmark = [pytest.mark.heavy, pytest.mark.integration]

MINILM = ROOT / "configs" / "classification" / "mnli" / "minilm"
SMOLLM2 = ROOT / "configs" / "reasoning" / "gsm8k" / "smollm2"


def test_minilm_cut_student_distils_with_a_transfer_set_and_its_final_model_loads(tmp_path):
    """The shipped KD + transfer-set recipe, 2 steps, with the pretrained MiniLM as its own
    teacher (path, not run: no teacher training here): the cut, the transfer rows and the
    teacher cache on a real 30,522-token WordPiece model."""
    require_pretrained("minilm-l6")
    from transformers import AutoModelForSequenceClassification

    config = write_config(
        tmp_path,
        "smoke.yaml",
        f"""
        base: {MINILM / "12_kd_cut_transfer.yaml"}
        run_name: smoke
        output_root: {tmp_path / "outputs"}
        teacher:
          run: null
          path: embedded:minilm-l6
        task:
          max_train_samples: 16
          max_eval_samples: 32
        distillation:
          transfer_samples: 48
        training:
          max_steps: 2
          batch_size: 8
          save_steps: 2
          eval_steps: 2
        """,
    )
    result = forge_here("--config", str(config), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    run = tmp_path / "outputs" / "mnli" / "minilm-cut2" / "smoke"
    assert "kept layers [0, 5] of embedded:minilm-l6" in (run / "output.log").read_text()
    assert "train: 64" in (run / "output.log").read_text()  # 16 labelled + 48 transfer rows
    model = AutoModelForSequenceClassification.from_pretrained(run / "model")
    assert model.config.num_hidden_layers == 2 and len(model.bert.encoder.layer) == 2
    assert model.config.vocab_size == 30522
    post = json.loads((run / "metrics" / "post_eval.json").read_text())
    assert post["validation_matched"]["samples"] == 32


def test_smollm2_warm_start_and_grpo_run_and_the_final_models_load(tmp_path):
    """SmolLM2-135M-Instruct, dequantized from its GGUF file: 2 SFT steps, then 1 GRPO step
    from that run's final model."""
    require_pretrained("smollm2-135m-instruct")
    from transformers import AutoModelForCausalLM

    def short(steps: int) -> str:
        return f"""
        task:
          max_train_samples: 32
          max_eval_samples: 4
          max_new_tokens: 8
        training:
          max_steps: {steps}
          batch_size: 4
          eval_batch_size: 4
          save_steps: 2
          eval_steps: 2
        """

    sft = write_config(
        tmp_path,
        "sft.yaml",
        f"""
        base: {SMOLLM2 / "00_sft.yaml"}
        run_name: sft
        output_root: {tmp_path / "outputs"}
        """
        + short(2),
    )
    grpo = write_config(
        tmp_path,
        "grpo.yaml",
        f"""
        base: {SMOLLM2 / "01_grpo.yaml"}
        run_name: grpo
        output_root: {tmp_path / "outputs"}
        student:
          run: {sft}
        rl:
          num_generations: 2
          max_completion_length: 8
        """
        + short(1),
    )
    result = forge_here("--config", str(grpo), cwd=tmp_path)  # trains sft.yaml first
    assert result.returncode == 0, result.stderr[-3000:]
    root = tmp_path / "outputs" / "reasoning" / "smollm2-135m"
    for name in ("sft", "grpo"):
        assert (root / name / "pipeline_complete").exists()
        model = AutoModelForCausalLM.from_pretrained(root / name / "model")
        assert model.config.num_hidden_layers == 30 and model.config.vocab_size == 49152


def test_building_smollm2_draws_no_progress_bar_off_a_terminal(tmp_path, capfd):
    """transformers' GGUF reader draws its conversion bar with no switch to turn it off; a
    build whose stderr is a log or a pipe must not write it there."""
    require_pretrained("smollm2-135m-instruct")
    from forge.embedded.pretrained import build_smollm2

    build_smollm2(tmp_path / "smollm2")
    err = capfd.readouterr().err
    assert "GGUF tensors" not in err, err[-2000:]  # transformers' own bars: off in a forge process (forge/logs.py)
    assert (tmp_path / "smollm2" / "model.safetensors").is_file()
