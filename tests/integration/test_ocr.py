"""The OCR path end to end, offline: a short run completes through forge.py, writes CER,
WER and exact match before and after training, and its final directory loads with
transformers' Auto classes and transcribes an image; the same run SIGKILLed after its first
checkpoint resumes to the same weights. (OCR KD through Snakemake, teacher first: the one DAG
of every chain in test_snakemake; whether the recipe learns to read: bench/ocr_learns.py.)"""

from __future__ import annotations

import json
import random
import textwrap

import pytest

from tests.conftest import ROOT, assert_bitwise_equal, forge_here, kill_mid_training, resume_to_completion, write_config

pytestmark = pytest.mark.integration

LINES = ROOT / "configs" / "ocr" / "lines"


def run_of(folder, model: str, name: str):
    from forge.run.layout import RunDir

    return RunDir(folder / "outputs" / "ocr" / model / name)


def short_run(folder, base, name: str) -> str:
    """A 20-step run of `base` on 400 training and 40 test lines, writing under folder/outputs."""
    return textwrap.dedent(
        f"""\
        base: {base}
        run_name: {name}
        output_root: {folder / "outputs"}
        task:
          max_train_samples: 400
          max_eval_samples: 40
        training:
          max_steps: 20
          save_steps: 10
          eval_steps: 10
          logging_steps: 5
        """
    )


def metrics(run, name: str) -> dict:
    return json.loads((run.metrics / f"{name}.json").read_text())


def test_a_short_ocr_run_completes_and_its_final_model_transcribes(tmp_path):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from forge.embedded import synthetic_ocr

    config = write_config(tmp_path, "ocr.yaml", short_run(tmp_path, LINES / "tiny/00_sft.yaml", "ocr"))
    result = forge_here("--config", str(config), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    run = run_of(tmp_path, "tiny", "ocr")
    assert run.complete.exists()
    for name in ("pre_eval", "post_eval"):
        test = metrics(run, name)["test"]
        assert set(test) == {"cer", "wer", "exact_match", "samples"} and test["samples"] == 40
        assert test["cer"] >= 0 and 0 <= test["exact_match"] <= 1
    assert metrics(run, "post_eval")["step"] == 20

    processor = AutoProcessor.from_pretrained(run.model)  # saved beside the model by finalize
    model = AutoModelForImageTextToText.from_pretrained(run.model).eval()
    image = synthetic_ocr.render("blue 42", random.Random(0))
    out = model.generate(pixel_values=processor(images=[image], return_tensors="pt").pixel_values, max_new_tokens=8)
    assert isinstance(processor.batch_decode(out, skip_special_tokens=True)[0], str)
    assert out.shape[1] > 1  # it generated past the start token


@pytest.mark.heavy
def test_an_ocr_run_killed_mid_training_resumes_to_the_same_weights(tmp_path):
    """The short run killed after its first checkpoint and resumed ends bitwise equal to the
    same run uninterrupted: the image collator draws nothing a resume could change. (Whether
    the recipe learns to read is a measurement: bench/ocr_learns.py.)"""
    base = LINES / "tiny/00_sft.yaml"
    write_config(tmp_path, "whole.yaml", short_run(tmp_path, base, "whole"))
    assert forge_here("--config", str(tmp_path / "whole.yaml"), cwd=tmp_path).returncode == 0
    config = write_config(tmp_path, "killed.yaml", short_run(tmp_path, base, "killed"))
    run = run_of(tmp_path, "tiny", "killed")
    kill_mid_training(config, run, tmp_path)
    resume_to_completion(run, tmp_path)
    assert_bitwise_equal(run, run_of(tmp_path, "tiny", "whole"))
