"""prepare_data: read the task's data, check and tokenize it, save it to <run>/data (and, for KD
with a teacher cache, run the teacher over the training split once). What the data was is
recorded beside it (<run>/data/fingerprint.json, and <run>/data_fingerprint.json, which a
deleted data/ leaves): a resume whose data has changed is refused."""

from __future__ import annotations

import logging

from forge.models.loading import load_preprocessor
from forge.run.files import atomic_write_json, replace_dir
from forge.run.session import RunSession
from forge.run.state import mark_stage_done, stage_done
from forge.tasks import Alignment, task_of
from forge.tasks import data as sources

log = logging.getLogger("forge.stages")

FINGERPRINT = "fingerprint.json"


def run(session: RunSession) -> None:
    cfg, out, task = session.cfg, session.run.data, task_of(session.cfg)
    tokenizer = load_preprocessor(session.source("student"), task.head())
    tmp = out.with_name(out.name + ".tmp")
    record = sources.fingerprint(cfg.task)  # before reading: the record is of what was read
    sizes = task.prepare(tokenizer, tmp)
    if changed := sources.changes(record, cfg.task):
        raise sources.DataError(f"the task's data changed while prepare_data read it ({changed[0]}); run it again")
    atomic_write_json(tmp / FINGERPRINT, record)
    replace_dir(tmp, out)
    atomic_write_json(session.run.data_record, record)
    log.info("prepared %s", ", ".join(f"{k}: {v}" for k, v in sizes.items()))
    if cfg.mode == "kd" and cfg.distillation.teacher_cache:
        cache_teacher_logits(session, tokenizer, task)
    mark_stage_done(session.run, "prepare_data")


def cache_teacher_logits(session: RunSession, tokenizer, task) -> None:
    """Run the teacher once over the training split; training reads the cache."""
    from transformers import DataCollatorWithPadding, set_seed

    from forge import kd_cache
    from forge.models.teacher import check_same_tokenizer, forget, shared

    cfg, run, teacher = session.cfg, session.run, session.source("teacher")
    check_same_tokenizer(tokenizer, teacher)
    set_seed(cfg.seed)  # a teacher whose head is fresh (a model never trained on the labels) starts alike everywhere
    train = task.load_prepared(run.data)[task.train_split]
    top_k = cfg.distillation.cache_top_k
    head = task.head(run.data)
    if task.alignment is Alignment.NEXT_TOKEN:  # a causal LM: the top k of every answer token
        from transformers import DataCollatorForSeq2Seq

        key, path = kd_cache.ensure_tokens(
            shared(teacher, head),
            train,
            run.data / task.train_split,
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
            shared(teacher, head),
            train,
            run.data / task.train_split,
            DataCollatorWithPadding(tokenizer),
            cfg.training.eval_batch_size,
            top_k,
        )
        record = {"fingerprint": key, "path": str(path), "top_k": top_k}
    atomic_write_json(run.data / "teacher_logits.json", record)
    if stage_done(run, "pre_eval"):  # no stage of this process evaluates the teacher next
        forget()
