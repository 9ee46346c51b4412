"""The OCR path end to end, offline: a short run completes through forge.py, writes CER,
WER and exact match before and after training, and its final directory loads with
transformers' Auto classes and transcribes an image."""

from __future__ import annotations

import json
import random

import pytest

from tests.conftest import ROOT, run_forge, write_config

pytestmark = pytest.mark.integration


def test_a_short_ocr_run_completes_and_its_final_model_transcribes(tmp_path):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from forge.run.layout import RunDir
    from forge.tasks import synthetic_ocr

    config = write_config(
        tmp_path,
        "ocr.yaml",
        f"""
        base: {ROOT / "configs/ocr/lines/tiny/00_sft.yaml"}
        output_root: {tmp_path / "outputs"}
        task:
          max_train_samples: 400
          max_eval_samples: 40
        training:
          max_steps: 20
          save_steps: 10
          eval_steps: 10
        """,
    )
    result = run_forge("--config", str(config), cwd=tmp_path, timeout=600)
    assert result.returncode == 0, result.stderr
    run = RunDir(tmp_path / "outputs" / "ocr" / "tiny" / "ocr")
    assert run.complete.exists()
    for name in ("pre_eval", "post_eval"):
        metrics = json.loads((run.metrics / f"{name}.json").read_text())["test"]
        assert set(metrics) == {"cer", "wer", "exact_match", "samples"} and metrics["samples"] == 40
        assert metrics["cer"] >= 0 and 0 <= metrics["exact_match"] <= 1
    assert json.loads((run.metrics / "post_eval.json").read_text())["step"] == 20

    processor = AutoProcessor.from_pretrained(run.model)  # saved beside the model by finalize
    model = AutoModelForImageTextToText.from_pretrained(run.model).eval()
    image = synthetic_ocr.render("blue 42", random.Random(0))
    out = model.generate(pixel_values=processor(images=[image], return_tensors="pt").pixel_values, max_new_tokens=8)
    assert isinstance(processor.batch_decode(out, skip_special_tokens=True)[0], str)
    assert out.shape[1] > 1  # it generated past the start token
