"""pre_eval: the student's metrics before any training (its baseline)."""

from __future__ import annotations

from forge.evaluation import evaluate_model
from forge.models.loading import load_sequence_classifier, load_tokenizer
from forge.run.session import RunSession
from forge.run.state import mark_stage_done
from forge.tasks import mnli


def run(session: RunSession) -> None:
    from transformers import set_seed

    cfg = session.cfg
    set_seed(cfg.seed)  # the fresh classification head starts as it will in training
    model = load_sequence_classifier(cfg.student, mnli.LABELS)
    tokenizer = load_tokenizer(cfg.student)
    evaluate_model(session, model, tokenizer, "pre_eval", step=0)
    if cfg.mode == "kd":  # the teacher's metrics, beside the student's baseline
        from forge.models.teacher import load_teacher

        evaluate_model(session, load_teacher(cfg, mnli.LABELS), tokenizer, "teacher_pre_eval", step=0)
    mark_stage_done(session.run, "pre_eval")
