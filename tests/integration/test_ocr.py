"""The OCR path end to end, offline: a short run completes through forge.py, writes CER,
WER and exact match before and after training, and its final directory loads with
transformers' Auto classes and transcribes an image; a longer run, SIGKILLed after its
first checkpoint and resumed, learns to read (CER falls); a KD run whose teacher is
another OCR run goes through Snakemake, teacher first."""

from __future__ import annotations

import json
import random
import re
import textwrap

import pytest

from tests.conftest import ROOT, kill_mid_training, resume_to_completion, run_forge, write_config
from tests.integration.test_snakemake import snakemake

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
    result = run_forge("--config", str(config), cwd=tmp_path, timeout=600)
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


LEARN_STEPS = 1200


@pytest.mark.heavy  # a long recipe: it trains until the model reads
def test_an_ocr_run_killed_mid_training_resumes_and_learns_to_read(tmp_path):
    """The shipped offline recipe, shortened; CER on the 200 test lines must fall."""
    config = write_config(
        tmp_path,
        "learn.yaml",
        f"""
        base: {LINES / "tiny/00_sft.yaml"}
        run_name: learn
        output_root: {tmp_path / "outputs"}
        training:
          max_steps: {LEARN_STEPS}
          save_steps: {LEARN_STEPS // 4}
          eval_steps: {LEARN_STEPS}
        """,
    )
    run = run_of(tmp_path, "tiny", "learn")
    kill_mid_training(config, run, tmp_path)
    result = resume_to_completion(run, tmp_path)
    resumed_from = int(re.search(r"resuming training from checkpoint-(\d+)", result.stderr).group(1))
    assert 0 < resumed_from < LEARN_STEPS
    pre, post = metrics(run, "pre_eval")["test"], metrics(run, "post_eval")
    assert post["step"] == LEARN_STEPS and post["test"]["samples"] == 200
    print(f"OCR, {LEARN_STEPS} steps: CER {pre['cer']:.3f} -> {post['test']['cer']:.3f}")
    assert post["test"]["cer"] < pre["cer"]


@pytest.mark.heavy  # two OCR runs through Snakemake
def test_ocr_kd_from_another_ocr_run_goes_through_snakemake_teacher_first(tmp_path):
    configs = tmp_path / "configs"
    write_config(configs, "teacher.yaml", short_run(tmp_path, LINES / "tiny_wide/00_sft.yaml", "teacher"))
    kd = short_run(tmp_path, LINES / "tiny/01_kd.yaml", "kd") + "teacher: {run: teacher.yaml}\n"
    write_config(configs, "kd.yaml", kd)
    result = snakemake(tmp_path, timeout=900)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    teacher, student = run_of(tmp_path, "tiny-wide", "teacher"), run_of(tmp_path, "tiny", "kd")
    assert teacher.complete.exists() and student.complete.exists()
    assert set(metrics(student, "teacher_pre_eval")["test"]) == {"cer", "wer", "exact_match", "samples"}
    log = student.log.read_text()
    steps = re.findall(r"step (\d+)/20 loss=\S+ .*ce=\S+ kd=\S+", log)
    assert steps == ["5", "10", "15", "20"]  # with the CE and per-token KD parts of the loss
    assert metrics(student, "post_eval")["step"] == 20
