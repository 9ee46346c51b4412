"""The teacher of a KD run: a model (Hub id, local dir, embedded, PEFT adapter dir) or
another forge run's final model (its merged model, or its adapter), as a ModelSource
(forge/run/upstream.py resolves which).

A teacher is loaded only when the run distils (alpha > 0), frozen, in eval mode, and on
the GPU when there is one. `shared` keeps the last one loaded for the next stage of the same
process: prepare_data fills the logit cache with it and pre_eval evaluates the same model,
which then `forget`s it (training loads its own, or reads the cache).
"""

from __future__ import annotations

import logging

from forge.errors import ConfigError
from forge.models.loading import Head, ModelSource, default_device, load_model, load_tokenizer, model_config

log = logging.getLogger("forge.teacher")


def load_teacher(source: ModelSource, head: Head):
    log.info("loading teacher %s", source.ref)
    check_same_classes(source, head)
    model = load_model(source, head)
    model.eval().requires_grad_(False)
    return model.to(default_device())


_shared: tuple[ModelSource, Head, object] | None = None


def shared(source: ModelSource, head: Head):
    """The teacher of `source` as `head`, loaded once for this process (one at a time)."""
    global _shared
    if _shared is None or _shared[:2] != (source, head):
        _shared = None  # the one held before is freed before the next loads
        _shared = (source, head, load_teacher(source, head))
    return _shared[2]


def forget() -> None:
    """Free the teacher `shared` holds."""
    global _shared
    _shared = None


def check_same_classes(teacher: ModelSource, head: Head) -> None:
    """A classifier teacher's classes, in its id order, are the student's (`head.labels`): KD
    compares class i with class i, and the teacher is loaded with the student's names, which
    would relabel its own silently. A teacher whose head names no classes (LABEL_0, ...: a
    fresh head) or whose config cannot be read alone (an adapter) is not compared."""
    import re

    if head.labels is None:
        return
    try:
        config = model_config(teacher)
    except (OSError, ValueError):
        return
    names = tuple(str(config.id2label[i]) for i in sorted(config.id2label or {}))
    if not names or all(re.fullmatch(r"LABEL_\d+", name) for name in names) or names == tuple(head.labels):
        return
    raise ConfigError(
        f"teacher {teacher.ref!r} has the classes {', '.join(names)} (in its id order); the student's are "
        f"{', '.join(head.labels)}: KD compares class i with class i, so the teacher needs the student's classes "
        "in the same order (task.labels gives an order)"
    )


def check_same_tokenizer(student_tokenizer, teacher: ModelSource) -> None:
    """Logit distillation feeds the teacher the student's inputs: their vocabularies must agree."""
    student_tokenizer = getattr(student_tokenizer, "tokenizer", student_tokenizer)  # a processor's
    if load_tokenizer(teacher).get_vocab() != student_tokenizer.get_vocab():
        raise ConfigError(
            f"teacher {teacher.ref!r} tokenizes differently from the student; "
            "logit distillation needs teacher and student to share a tokenizer"
        )
