"""prepare_data: load the task's dataset, tokenize it, save it to <run>/data."""

from __future__ import annotations

import logging

from forge.models.loading import load_tokenizer
from forge.run.session import RunSession, replace_dir
from forge.run.state import mark_stage_done
from forge.tasks import mnli

log = logging.getLogger("forge.stages")


def run(session: RunSession) -> None:
    cfg, out = session.cfg, session.run.data
    tokenizer = load_tokenizer(cfg.student)
    tmp = out.with_name(out.name + ".tmp")
    sizes = mnli.prepare(cfg, tokenizer, tmp)
    replace_dir(tmp, out)
    log.info("prepared %s", ", ".join(f"{k}: {v}" for k, v in sizes.items()))
    mark_stage_done(session.run, "prepare_data")
