"""The teacher of a KD run: a model (Hub id, local dir, embedded, PEFT adapter dir) or
another forge run (its merged model, or its adapter).

A teacher is loaded only when the run distils (alpha > 0), frozen, in eval mode, and on
the GPU when there is one.
"""

from __future__ import annotations

import logging

from forge.config import ForgeConfig
from forge.errors import ConfigError
from forge.models.loading import Head

log = logging.getLogger("forge.teacher")


def teacher_ref(cfg: ForgeConfig) -> str:
    """What `from_pretrained` should load as the teacher."""
    from forge.models import upstream

    return upstream.final_model(cfg, "teacher") if cfg.teacher.run is not None else cfg.teacher.path


def load_teacher(cfg: ForgeConfig, head: Head):
    from forge.models.loading import default_device, load_model

    ref = teacher_ref(cfg)
    log.info("loading teacher %s", ref)
    model = load_model(ref, head, revision=cfg.teacher.revision, trust=cfg.teacher.trust_remote_code)
    model.eval().requires_grad_(False)
    return model.to(default_device())


def check_same_tokenizer(student_tokenizer, teacher_ref_path: str, trust: bool = False) -> None:
    """Logit distillation feeds the teacher the student's inputs: their vocabularies must agree."""
    from forge.models.loading import load_tokenizer

    student_tokenizer = getattr(student_tokenizer, "tokenizer", student_tokenizer)  # a processor's
    teacher_tokenizer = load_tokenizer(teacher_ref_path, trust=trust)
    if teacher_tokenizer.get_vocab() != student_tokenizer.get_vocab():
        raise ConfigError(
            f"teacher {teacher_ref_path!r} tokenizes differently from the student; "
            "logit distillation needs teacher and student to share a tokenizer"
        )
