"""The teacher of a KD run: a model (Hub id, local dir, embedded, PEFT adapter dir) or
another forge run (its merged model, or its adapter).

A teacher is loaded only when the run distils (alpha > 0), frozen, in eval mode, and on
the GPU when there is one.
"""

from __future__ import annotations

import logging

from forge.config import ForgeConfig, load_config
from forge.errors import ConfigError, ForgeError

log = logging.getLogger("forge.teacher")


def teacher_run_config(cfg: ForgeConfig) -> ForgeConfig | None:
    """The config of the run that trains this run's teacher, if the teacher is a run."""
    if cfg.teacher is None or cfg.teacher.run is None:
        return None
    from forge.run.session import run_dir_of

    teacher = load_config(cfg.teacher.run)
    if run_dir_of(teacher) == run_dir_of(cfg):
        raise ConfigError(f"{cfg.teacher.run}: teacher.run: a run cannot be its own teacher")
    return teacher


def teacher_ref(cfg: ForgeConfig) -> str:
    """What `from_pretrained` should load as the teacher."""
    from forge.run.session import run_dir_of

    run_cfg = teacher_run_config(cfg)
    if run_cfg is None:
        return cfg.teacher.path
    run = run_dir_of(run_cfg)
    if not run.complete.exists():
        raise ForgeError(f"teacher run {run.root} is not complete; run it first (forge --config {cfg.teacher.run})")
    return str(run.final_model)


def load_teacher(cfg: ForgeConfig, labels: tuple[str, ...]):
    from forge.models.loading import load_sequence_classifier

    ref = teacher_ref(cfg)
    log.info("loading teacher %s", ref)
    model = load_sequence_classifier(ref, labels, revision=cfg.teacher.revision)
    model.eval().requires_grad_(False)
    return model.to(default_device())


def default_device() -> str:
    """Where a model runs outside the Trainer (the teacher-logit cache): the GPU when there is one."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def check_same_tokenizer(student_tokenizer, teacher_ref_path: str) -> None:
    """Logit distillation feeds the teacher the student's inputs: their vocabularies must agree."""
    from forge.models.loading import load_tokenizer

    teacher_tokenizer = load_tokenizer(teacher_ref_path)
    if teacher_tokenizer.get_vocab() != student_tokenizer.get_vocab():
        raise ConfigError(
            f"teacher {teacher_ref_path!r} tokenizes differently from the student; "
            "logit distillation needs teacher and student to share a tokenizer"
        )
