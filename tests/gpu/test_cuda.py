"""On a CUDA machine: forge trains there (teacher cache included) and a killed LoRA KD run
resumes there. Skipped without a GPU; run on a GPU host with `pytest -m gpu`."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


def test_an_sft_run_trains_on_the_gpu(tmp_path):
    from tests.conftest import run_dir, run_forge, short_config

    result = run_forge("--config", str(short_config(tmp_path)), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "training from scratch on cuda" in result.stderr
    metrics = json.loads((run_dir(tmp_path).metrics / "post_eval.json").read_text())
    assert metrics["validation_matched"]["accuracy"] > 0.45, metrics  # 3 classes: chance is 1/3


def test_a_lora_kd_run_killed_on_the_gpu_resumes_there(tmp_path):
    from safetensors.torch import load_file

    from tests.conftest import kill_mid_training, resume_to_completion, run_dir, run_forge
    from tests.integration.test_distillation import kd_pair
    from tests.integration.test_lora import lora_config

    kd_pair(tmp_path)
    whole = run_forge("--config", str(lora_config(tmp_path, "lora")), cwd=tmp_path)
    assert whole.returncode == 0, whole.stderr
    assert "teacher logits: computing" in run_dir(tmp_path, "lora").log.read_text()

    run = run_dir(tmp_path, "lora_killed")
    kill_mid_training(lora_config(tmp_path, "lora_killed"), run, cwd=tmp_path)
    assert " on cuda" in resume_to_completion(run, cwd=tmp_path).stderr

    # GPU kernels need not be bitwise reproducible; the resumed run must still land
    # where the uninterrupted one did
    a = load_file(run.model / "model.safetensors")
    b = load_file(run_dir(tmp_path, "lora").model / "model.safetensors")
    worst = max((a[k].float() - b[k].float()).abs().max().item() for k in a)
    print(f"largest weight difference, resumed vs uninterrupted: {worst:.3g}")
    assert worst < 1e-3
