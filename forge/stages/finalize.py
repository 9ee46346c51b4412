"""finalize: save the final model and tokenizer (with the config beside them) to <run>/model,
and sync config and metadata to W&B. A LoRA run saves its adapter to <run>/adapter and,
with `lora.merge`, the merged model to <run>/model."""

from __future__ import annotations

import logging
import shutil

from forge.config import to_dict
from forge.errors import ForgeError
from forge.models.loading import ModelSource, load_model, load_preprocessor
from forge.run.files import follow_umask, read_json, replace_dir
from forge.run.layout import checkpoint_step
from forge.run.session import RunSession
from forge.run.state import TrainingState, find_resume_checkpoint, mark_stage_done
from forge.tasks import task_of

log = logging.getLogger("forge.stages")


def _save(session: RunSession, model, tokenizer, target) -> None:
    """model + tokenizer + the run's config, swapped into `target` whole."""
    tmp = target.with_name(f"{target.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    shutil.copyfile(session.run.config, tmp / "forge_config.yaml")
    follow_umask(tmp)
    replace_dir(tmp, target)


def run(session: RunSession) -> None:
    run_dir = session.run
    checkpoint = find_resume_checkpoint(run_dir)
    if checkpoint is None:
        raise ForgeError(f"{run_dir.root}: training is marked done but no safe checkpoint is left to finalize")
    trained_to = TrainingState.load(run_dir).global_step
    if checkpoint_step(checkpoint) != trained_to:
        raise ForgeError(
            f"{run_dir.root}: training ended at step {trained_to}, but the newest safe checkpoint is "
            f"{checkpoint.name}; remove stages/train.done to train again"
        )
    lora, head = session.cfg.student.lora, task_of(session.cfg).head(run_dir.data)
    source = ModelSource(str(checkpoint), trust_remote_code=session.cfg.student.trust_remote_code)
    tokenizer = load_preprocessor(source, head)
    if lora is None:
        _save(session, load_model(source, head), tokenizer, run_dir.model)
    else:  # the checkpoint holds the adapter; its config names the base model
        adapted = load_model(source, head, merge=False)
        _save(session, adapted, tokenizer, run_dir.adapter)
        if lora.merge:
            _save(session, adapted.merge_and_unload(), tokenizer, run_dir.model)
    log.info("final model from %s saved to %s", checkpoint.name, run_dir.final_model)

    tracker = session.tracker
    tracker.update_config({"forge": to_dict(session.cfg), "run_metadata": read_json(run_dir.metadata, {})})
    mark_stage_done(run_dir, "finalize")
