"""train: fine-tune the student (SFT, KD) or the policy (RL), resuming from the latest safe checkpoint."""

from __future__ import annotations

import errno
import logging
import shutil
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from forge import distributed, slurm
from forge.callbacks import (
    CheckpointMarkerCallback,
    PeakMetricsCallback,
    SignalStopCallback,
    StepMetricsCallback,
    TeacherGapCallback,
)
from forge.errors import ForgeError
from forge.models.loading import load_preprocessor, load_student
from forge.run import steplog
from forge.run.files import read_json
from forge.run.layout import checkpoint_step
from forge.run.session import RunSession
from forge.run.state import (
    TrainingState,
    checkpoint_world_size,
    discard_checkpoints_after,
    find_resume_checkpoint,
    mark_stage_done,
)
from forge.tasks import Alignment, task_of

log = logging.getLogger("forge.stages")


def build_trainer(session: RunSession):
    """The trainer of the run's mode (SFT, KD, RL), its model and data loaded, forge's callbacks on."""
    from transformers import set_seed

    cfg, run = session.cfg, session.run
    set_seed(cfg.seed)
    task = task_of(cfg)
    data = task.load_prepared(run.data)
    head = task.head(run.data)
    student = session.source("student")
    tokenizer = load_preprocessor(student, head)
    model = load_student(student, head, cfg.student.lora)
    callbacks = [
        StepMetricsCallback(session.tracker, run),
        CheckpointMarkerCallback(run, cfg.training.keep_checkpoints),
        SignalStopCallback(session.stop),
    ]
    build = {"sft": _finetuning, "kd": _distillation, "rl": _policy}[cfg.mode]
    return build(session, task, data, head, tokenizer, model, callbacks)


def _policy(session, task, data, head, tokenizer, model, callbacks):
    from forge.trainers.grpo import PolicyTrainer

    train = data[task.train_split]
    return PolicyTrainer(
        model=model, cfg=session.cfg, run=session.run, train_dataset=train, processing_class=tokenizer,
        callbacks=callbacks, answer_patterns=getattr(task, "patterns", None),
    )  # fmt: skip


@dataclass(frozen=True)
class Supervised:
    """What the SFT and KD trainers are built from: the model, its arguments and data."""

    model: Any
    args: Any  # transformers.TrainingArguments
    processing_class: Any
    callbacks: list
    train_dataset: Any
    eval_dataset: Any
    data_collator: Any
    compute_metrics: Any
    next_token: bool  # a causal LM: the logits at t are for the token at t + 1
    regression: bool

    def trainer_kwargs(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def _supervised(session, task, data, head, tokenizer, model, callbacks, keep_columns: bool = False) -> Supervised:
    """What the SFT and KD trainers share: arguments, the task's inputs, the peak metrics.
    `keep_columns`: the batches carry columns the model's forward does not take (the
    teacher-logit cache's), which the Trainer must not drop."""
    from forge.trainers.arguments import training_arguments

    callbacks = [*callbacks, PeakMetricsCallback(session.run, task.peak_metrics(session.run.data), session.tracker)]
    inputs = task.trainer_inputs(data, tokenizer, model)
    args = training_arguments(session.cfg, session.run)
    if inputs.keep_columns or keep_columns:
        args.remove_unused_columns = False
    return Supervised(
        model=model, args=args, processing_class=tokenizer, callbacks=callbacks, train_dataset=inputs.train_dataset,
        eval_dataset=inputs.eval_dataset, data_collator=inputs.data_collator, compute_metrics=inputs.compute_metrics,
        next_token=task.alignment is Alignment.NEXT_TOKEN, regression=head.regression,
    )  # fmt: skip


def _finetuning(session, task, data, head, tokenizer, model, callbacks):
    from forge.trainers.finetuning import FinetuningTrainer

    return FinetuningTrainer(**_supervised(session, task, data, head, tokenizer, model, callbacks).trainer_kwargs())


def _distillation(session, task, data, head, tokenizer, model, callbacks):
    from forge.models.teacher import check_same_tokenizer, load_teacher
    from forge.trainers.distillation import DistillationTrainer

    cfg, run = session.cfg, session.run
    if head.regression:
        raise ForgeError(f"{run.root}: the labels are numbers (regression): distillation compares class "
                         "distributions; give task.labels to classify, or train without a teacher")  # fmt: skip
    cached = cfg.distillation.teacher_cache
    common = _supervised(session, task, data, head, tokenizer, model, callbacks, keep_columns=cached)
    main = task.eval_splits(data)[0]
    teacher_metrics = read_json(run.metrics / "teacher_pre_eval.json", {}).get(main, {})
    if "accuracy" in teacher_metrics:  # a classifier's; training evaluates no transcriptions or answers
        common = replace(common, callbacks=[*common.callbacks, TeacherGapCallback(run, teacher_metrics["accuracy"])])
    teacher = None
    if cached:  # the teacher ran once in prepare_data; it is not loaded here
        common = _with_teacher_cache(run, common)
    else:
        check_same_tokenizer(tokenizer, session.source("teacher"))
        teacher = load_teacher(session.source("teacher"), head)
    return DistillationTrainer(
        **common.trainer_kwargs(),
        teacher=teacher,
        alpha=cfg.distillation.alpha,
        temperature=cfg.distillation.temperature,
        hidden=cfg.distillation.hidden,
        transfer=cfg.distillation.transfer_samples is not None,
        loss=cfg.distillation.loss,
        beta=cfg.distillation.beta,
        on_policy=cfg.distillation.on_policy,
        max_new_tokens=getattr(cfg.task, "max_new_tokens", 64),
        seed=cfg.seed,
    )


def _with_teacher_cache(run, common: Supervised) -> Supervised:
    """The training data with the teacher's cached logits: a column of each row, or (a causal
    LM) the rows' answer tokens read by the collator for each batch."""
    from forge import kd_cache

    cache = read_json(run.data / "teacher_logits.json")
    if cache is None or not Path(cache["path"]).exists():
        raise ForgeError(f"{run.root}: the teacher-logit cache is missing; rerun prepare_data")
    if cache.get("per_token"):
        tokens = kd_cache.TokenCache(Path(cache["path"]))
        return replace(common, train_dataset=kd_cache.with_rows(common.train_dataset),
                       data_collator=kd_cache.TokenCacheCollator(common.data_collator, tokens))  # fmt: skip
    return replace(common, train_dataset=kd_cache.attach(common.train_dataset, Path(cache["path"])))


def _device_name(device) -> str:
    import torch

    return torch.cuda.get_device_name(device)


def _resume_point(run_dir) -> Path | None:
    """The latest safe checkpoint; later, unsafe ones and their step-log lines go."""
    checkpoint = find_resume_checkpoint(run_dir)
    resume_step = checkpoint_step(checkpoint) if checkpoint else None
    discard_checkpoints_after(run_dir, resume_step)
    steplog.keep_up_to(run_dir, resume_step or 0)
    return checkpoint


def _disk_full(run_dir, exc: Exception) -> ForgeError | None:
    """A save that failed for want of space (torch says so as a RuntimeError, not ENOSPC): a
    checkpoint begun after the newest safe one, and less room left than that one takes. The
    checkpoint never completed goes (a resume would drop it too), which frees room to record
    the attempt, and one line says what is safe. None for any other failure."""
    safe = find_resume_checkpoint(run_dir)
    step = checkpoint_step(safe) if safe else None
    saving = next((path for s, path in run_dir.checkpoints() if step is None or s > step), None)
    free = shutil.disk_usage(run_dir.root).free
    needed = sum(f.stat().st_size for f in safe.rglob("*") if f.is_file()) if safe else 1 << 20
    if not (isinstance(exc, OSError) and exc.errno == errno.ENOSPC) and (saving is None or free >= needed):
        return None
    discard_checkpoints_after(run_dir, step)
    what = f" while saving {saving.name}" if saving else ""
    kept = f"{safe.name} is safe" if safe else "no checkpoint was saved yet"
    return ForgeError(
        f"no space left on device{what} ({free / 1e6:.1f} MB free in {run_dir.root}); {kept}; free space and run again"
    )


def run(session: RunSession) -> None:
    run_dir = session.run
    trainer = build_trainer(session)
    checkpoint = distributed.from_main(lambda: _resume_point(run_dir))
    written_by = checkpoint_world_size(checkpoint) if checkpoint else distributed.world_size()
    if written_by != distributed.world_size():
        raise ForgeError(
            f"{checkpoint}: written by {written_by} process(es), resumed by {distributed.world_size()}: "
            "resume with the same number of processes (each one's data position and random state are its own)"
        )
    device = trainer.args.device
    on = f"{device}" + (f" ({_device_name(device)})" if device.type == "cuda" else "")
    if checkpoint:
        log.info("resuming training from %s on %s", checkpoint.name, on)
    else:
        log.info("training from scratch on %s", on)
    if distributed.is_main():  # its stop is agreed by every rank at the step end
        slurm.arm_time_limit(session.stop)
    try:
        trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    except Exception as exc:
        full = _disk_full(run_dir, exc) if distributed.is_main() else None
        if full is None:
            raise
        raise full from None
    finally:
        slurm.disarm_time_limit()
    session.check_stop()  # a signal during training: the checkpoint is saved, exit as preempted
    if not distributed.is_main():
        return
    state = TrainingState.load(run_dir)
    state.global_step = trainer.state.global_step
    state.save(run_dir)
    mark_stage_done(run_dir, "train")
    log.info("training done at step %d", trainer.state.global_step)
