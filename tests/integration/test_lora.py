"""LoRA KD end to end: finalize saves the adapter (naming its base) and the merged model,
which agree; a LoRA KD run killed mid-training resumes to the same weights."""

from __future__ import annotations

import json

import pytest

from tests.conftest import (
    assert_bitwise_equal,
    forge_here,
    kill_mid_training,
    resume_to_completion,
    run_dir,
    write_config,
)
from tests.integration.test_distillation import kd_pair

pytestmark = pytest.mark.integration


def lora_config(folder, name: str):
    return write_config(
        folder / "configs",
        f"{name}.yaml",
        f"""
        base: ./kd.yaml
        run_name: {name}
        student:
          lora:
            r: 4
            alpha: 8
        training:
          max_steps: 80
          save_steps: 20
          learning_rate: 1.0e-2
        """,
    )


@pytest.fixture(scope="module")
def lora_folder(tmp_path_factory):
    """A folder with a trained teacher run and an uninterrupted LoRA KD run."""
    folder = tmp_path_factory.mktemp("lora")
    kd_pair(folder)
    result = forge_here("--config", str(lora_config(folder, "lora")), cwd=folder)
    assert result.returncode == 0, result.stderr
    return folder


def test_finalize_saves_an_adapter_and_a_merged_model_that_agree(lora_folder):
    import torch
    from peft import PeftModel
    from safetensors.torch import load_file
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from forge import embedded
    from forge.models.loading import classifier, load_model

    run = run_dir(lora_folder, "lora")
    assert run.complete.exists() and run.final_model == run.model
    base_path = str(embedded.ensure("embedded:tiny-distilbert"))
    adapter_config = json.loads((run.adapter / "adapter_config.json").read_text())
    assert adapter_config["base_model_name_or_path"] == base_path
    assert {"classifier", "pre_classifier"} <= set(adapter_config["modules_to_save"])  # the fresh head

    tokenizer = AutoTokenizer.from_pretrained(run.adapter)
    batch = tokenizer(["a cat sat on the mat", "nobody is here"], ["an animal sat", "the room is full"],
                      padding=True, return_tensors="pt")  # fmt: skip
    base = AutoModelForSequenceClassification.from_pretrained(base_path, num_labels=3)
    adapted = PeftModel.from_pretrained(base, run.adapter).eval()
    merged = AutoModelForSequenceClassification.from_pretrained(run.model).eval()
    # forge's own reading of an adapter directory (a student, teacher or post_eval path)
    resolved = load_model(str(run.adapter), classifier(("entailment", "neutral", "contradiction"))).eval()
    with torch.no_grad():
        torch.testing.assert_close(merged(**batch).logits, adapted(**batch).logits, rtol=0, atol=1e-5)
        torch.testing.assert_close(resolved(**batch).logits, adapted(**batch).logits, rtol=0, atol=1e-5)

    # only the adapters and the head trained: the embeddings are the base model's
    merged_weights = load_file(run.model / "model.safetensors")
    base_weights = load_file(f"{base_path}/model.safetensors")
    key = "distilbert.embeddings.word_embeddings.weight"
    assert torch.equal(merged_weights[key], base_weights[key])
    query = "distilbert.transformer.layer.0.attention.q_lin.weight"
    assert not torch.equal(merged_weights[query], base_weights[query])

    post_eval = json.loads((run.metrics / "post_eval.json").read_text())
    assert 0.0 <= post_eval["validation_matched"]["accuracy"] <= 1.0
    assert "LoRA r=4 alpha=8" in run.log.read_text()
    cache = json.loads((run.data / "teacher_logits.json").read_text())
    assert cache["top_k"] is None and cache["path"].endswith(".npy")  # whole logits


def test_a_lora_kd_run_killed_mid_training_resumes_to_the_same_weights(lora_folder):
    run = run_dir(lora_folder, "lora_killed")
    kill_mid_training(lora_config(lora_folder, "lora_killed"), run, cwd=lora_folder)
    resume_to_completion(run, cwd=lora_folder)
    assert_bitwise_equal(run, run_dir(lora_folder, "lora"))
