"""pre_eval: the student's metrics before any training (its baseline)."""

from __future__ import annotations

from forge.evaluation import evaluate_model
from forge.models.loading import load_model, load_preprocessor
from forge.run.session import RunSession
from forge.run.state import mark_stage_done
from forge.tasks import task_of


def run(session: RunSession) -> None:
    from transformers import set_seed

    cfg = session.cfg
    set_seed(cfg.seed)  # a fresh classification head starts as it will in training
    head = task_of(cfg).head(session.run.data)
    model = load_model(session.source("student"), head)
    tokenizer = load_preprocessor(session.source("student"), head)
    evaluate_model(session, model, tokenizer, "pre_eval", step=0)
    if cfg.mode == "kd":  # the teacher's metrics, beside the student's baseline
        from forge.models import teacher

        evaluate_model(session, teacher.shared(session.source("teacher"), head), tokenizer, "teacher_pre_eval", step=0)
        teacher.forget()  # training loads its own (online KD) or reads the cache
    mark_stage_done(session.run, "pre_eval")
