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


def test_the_shared_teacher_is_one_model_at_a_time(monkeypatch):
    from forge.models import teacher
    from forge.models.loading import ModelSource, classifier

    loads = []
    monkeypatch.setattr(teacher, "load_teacher", lambda source, head: loads.append(source.ref) or object())
    teacher.forget()
    a, b, head = ModelSource("a"), ModelSource("b"), classifier(("x", "y"))
    first = teacher.shared(a, head)
    assert teacher.shared(ModelSource("a"), head) is first and loads == ["a"]  # equal sources: loaded once
    assert teacher.shared(b, head) is not first and loads == ["a", "b"]  # another: the first is let go
    assert teacher.shared(a, classifier(("x", "y", "z"))) is not first and loads == ["a", "b", "a"]  # another head
    teacher.forget()
    teacher.shared(a, classifier(("x", "y", "z")))
    assert loads == ["a", "b", "a", "a"]  # forgotten: loaded again
    teacher.forget()


def test_a_teacher_with_other_classes_is_refused_before_it_loads(tmp_path):
    """A teacher trained with its classes in another order (or under other names) was loaded with
    the student's names: its class 0 read as the student's class 0, its accuracy 0.96 -> 0.04
    inside the student's run, and the student distilled towards inverted labels."""
    import pytest

    from forge.errors import ConfigError
    from forge.models.loading import ModelSource, classifier, load_model
    from forge.models.teacher import check_same_classes

    def teacher_with(labels, name):
        folder = tmp_path / name
        load_model("embedded:tiny-distilbert", classifier(labels)).save_pretrained(folder)
        return ModelSource(str(folder))

    student = classifier(("negative", "positive"))
    check_same_classes(teacher_with(("negative", "positive"), "same"), student)
    check_same_classes(ModelSource("embedded:tiny-distilbert"), student)  # a fresh head names no classes
    for labels, name in ((("positive", "negative"), "reversed"), (("bad", "good"), "renamed"), (("a", "b", "c"), "3")):
        with pytest.raises(ConfigError, match=rf"has the classes {', '.join(labels)} \(in its id order\); the stud"):
            check_same_classes(teacher_with(labels, name), student)
