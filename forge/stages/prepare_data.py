"""prepare_data: load the task's dataset, tokenize it, save it to <run>/data (and, for KD
with a teacher cache, run the teacher over the training split once)."""

from __future__ import annotations

import logging

from forge import tasks
from forge.models.loading import load_preprocessor
from forge.run.files import replace_dir
from forge.run.session import RunSession
from forge.run.state import mark_stage_done
from forge.tasks import task_of

log = logging.getLogger("forge.stages")


def run(session: RunSession) -> None:
    cfg, out, task = session.cfg, session.run.data, task_of(session.cfg)
    tokenizer = load_preprocessor(session.source("student"), task.HEAD)
    tmp = out.with_name(out.name + ".tmp")
    sizes = task.prepare(cfg, tokenizer, tmp)
    replace_dir(tmp, out)
    log.info("prepared %s", ", ".join(f"{k}: {v}" for k, v in sizes.items()))
    if cfg.mode == "kd" and cfg.distillation.teacher_cache:
        cache_teacher_logits(session, tokenizer, task)
    mark_stage_done(session.run, "prepare_data")


def cache_teacher_logits(session: RunSession, tokenizer, task) -> None:
    """Run the teacher once over the training split; training reads the cache."""
    from transformers import DataCollatorWithPadding

    from forge import kd_cache
    from forge.models.teacher import check_same_tokenizer
    from forge.run.files import atomic_write_json

    cfg, run, teacher = session.cfg, session.run, session.source("teacher")
    check_same_tokenizer(tokenizer, teacher)
    train = task.load_prepared(run.data)[task.TRAIN_SPLIT]
    top_k = cfg.distillation.cache_top_k
    if tasks.spec(cfg.task.name).per_token_cache:  # a causal LM: the top k of every answer token
        from transformers import DataCollatorForSeq2Seq

        key, path = kd_cache.ensure_tokens(
            session.teacher(task.HEAD),
            train,
            run.data / task.TRAIN_SPLIT,
            DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=-100),
            cfg.training.eval_batch_size,
            top_k,
        )
        meta = kd_cache.TokenCache(path).meta
        size = sum(f.stat().st_size for f in path.iterdir())
        log.info(
            "teacher logits: top %d of %d answer tokens, %d bytes a token (%.1f MB)",
            meta["top_k"], meta["tokens"], meta["bytes_per_token"], size / 1e6,
        )  # fmt: skip
        record = {"fingerprint": key, "path": str(path), "top_k": top_k, "per_token": True, **meta, "bytes": size}
    else:
        key, path = kd_cache.ensure(
            session.teacher(task.HEAD),
            train,
            run.data / task.TRAIN_SPLIT,
            DataCollatorWithPadding(tokenizer),
            cfg.training.eval_batch_size,
            top_k,
        )
        record = {"fingerprint": key, "path": str(path), "top_k": top_k}
    atomic_write_json(run.data / "teacher_logits.json", record)
