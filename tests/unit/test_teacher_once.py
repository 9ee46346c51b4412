"""A KD run with the teacher-logit cache loads its teacher once in a process that runs
prepare_data and pre_eval (forge.py): the cache and the teacher's baseline come from the
same model."""

from __future__ import annotations

import json

from forge.config import load_config
from tests.conftest import TINY_CONFIG, write_config


def test_prepare_data_and_pre_eval_share_one_teacher_load(tmp_path, monkeypatch):
    from forge.models import teacher
    from forge.pipeline import run_pipeline
    from forge.run.layout import run_dir_of

    loads = []
    real = teacher.load_model
    monkeypatch.setattr(teacher, "load_model", lambda source, head: loads.append(source.ref) or real(source, head))
    config = write_config(
        tmp_path,
        "kd.yaml",
        f"""
        base: {TINY_CONFIG}
        output_root: {tmp_path / "outputs"}
        teacher: {{path: embedded:tiny-distilbert-wide}}
        distillation: {{alpha: 0.5, teacher_cache: true}}
        task: {{max_train_samples: 64, max_eval_samples: 32}}
        training: {{max_steps: 4, save_steps: 4, logging_steps: 2}}
        """,
    )
    cfg = load_config(config)
    assert run_pipeline(cfg, None) == 0
    run = run_dir_of(cfg)
    assert loads == ["embedded:tiny-distilbert-wide"]  # not again for teacher_pre_eval, nor in training
    assert json.loads((run.metrics / "teacher_pre_eval.json").read_text())["validation_matched"]["samples"] == 32
    assert (run.data / "teacher_logits.json").is_file() and run.complete.exists()
