"""Run a whole pipeline in one process, or one stage of it (what the Snakemake rules call).

Both go through the same RunSession and the same stage markers, so a run begun one
way can be finished the other way.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

from forge import distributed
from forge.admission import Admitted, admit
from forge.config import ForgeConfig
from forge.errors import EXIT_OK, ConfigError, ForgeError, Preempted, RunBusyError
from forge.run.layout import STAGES, RunDir, run_dir_of
from forge.run.session import RunSession, check_resumable, load_stored_config
from forge.run.state import is_complete, plan, stage_done
from forge.signals import StopRequest
from forge.stages import stage_function

log = logging.getLogger("forge")


def _prepare_environment(cfg: ForgeConfig) -> None:
    from forge.hub import go_offline_if_unreachable
    from forge.logs import quiet_libraries

    go_offline_if_unreachable(cfg.references)  # before the HF libraries are imported
    quiet_libraries(cfg.debug)


def run_pipeline(
    cfg: ForgeConfig,
    config_path: str | None,
    run: RunDir | None = None,
    stop: StopRequest | None = None,
    _chain: tuple[Path, ...] = (),
    admitted: Admitted | None = None,
) -> int:
    """The whole run in this process (`admitted`: admitted by the caller already, a sweep's point)."""
    run = run or (admitted.run if admitted else run_dir_of(cfg))
    if is_complete(run):
        _check_same_run(cfg, run)
        log.info("%s is already complete; nothing to do", run.root)
        return EXIT_OK
    admitted = admitted or admit(cfg, config_path, run)  # a new run: checked before its upstream runs train
    _run_upstream_first(admitted, stop, chain=(*_chain, run.root.resolve()))
    _prepare_environment(cfg)
    session = RunSession(cfg, config_path, run=run, stop=stop, admitted=admitted)
    with _requeue_on_time_limit(session), session:
        log.info("plan: %s", plan(run).describe())
        for stage in STAGES:
            if stage_done(run, stage):
                log.info("stage %s: already done", stage)
                continue
            session.check_stop()
            _run(session, stage)
        session.complete_if_done()
    return EXIT_OK


def _check_same_run(cfg: ForgeConfig, run: RunDir) -> None:
    """A complete run is this config's only if it ran with it: another config of the same name
    (v2/train.yaml beside v1/train.yaml, or one edited since) is refused with what differs, not
    answered with the other's model. A config.yaml that cannot be read is not compared."""
    try:
        stored = load_stored_config(run)
    except ConfigError:
        return
    check_resumable(stored, cfg, run, complete=True)


def run_sweep(points: list[tuple[str, ForgeConfig]], stop: StopRequest | None = None) -> int:
    """Run a sweep's points (forge.config.sweep) one after another: each is a normal run, so
    a point already complete is skipped and a point begun resumes. Every new point is checked
    before the first trains. A point that fails does not stop the others (the sweep ends with
    exit 1 naming it); a preemption stops the sweep at once: running it again goes on."""
    admitted, problems = [], []
    for ref, cfg in points:
        try:
            admitted.append(admit(cfg, ref))
        except ForgeError as exc:
            problems.append(str(exc))
    if problems:
        raise ConfigError("\n".join(problems))
    failed = []
    for i, ((ref, cfg), point) in enumerate(zip(points, admitted, strict=True), 1):
        run = point.run
        log.info("sweep point %d/%d: %s", i, len(points), run.root)
        try:
            run_pipeline(cfg, ref, stop=stop, admitted=point)
        except (Preempted, RunBusyError, KeyboardInterrupt):
            raise
        except Exception as exc:  # the next point does not depend on this one
            log.debug("sweep point %s failed", ref, exc_info=True)
            log.error("sweep point %s failed: %s", ref, str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
            failed.append(str(run.root))
    if failed:
        raise ForgeError(
            f"{len(failed)} of {len(points)} sweep points failed (their output.log says why; running the sweep "
            f"again retries them and skips the complete ones): {', '.join(failed)}"
        )
    log.info("sweep: all %d points complete", len(points))
    return EXIT_OK


def _run(session: RunSession, stage: str) -> None:
    """The train stage runs on every rank; under torchrun the others run on rank 0
    alone while the rest wait (forge/distributed.py). All ranks leave it together."""
    if stage == "train" or distributed.is_main():
        log.info("stage %s: starting", stage)
        stage_function(stage)(session)
    distributed.barrier()


def _run_upstream_first(admitted: Admitted, stop: StopRequest | None, chain: tuple) -> None:
    """Runs whose final model this run loads (teacher.run, student.run): finish them first,
    in this process (`chain`: the runs waiting on this one, to refuse a cycle). A run that
    recorded them when it was created needs their configs no more."""
    for role, (link, other) in (admitted.upstream or {}).items():
        other_run = RunDir(Path(link.run_dir))
        if other_run.root in chain:
            raise ForgeError(f"{link.config}: {role}.run: these runs form a cycle")
        if not is_complete(other_run):
            log.info("the %s run %s is not complete: running it first", role, other_run.root)
            run_pipeline(other, link.config, run=other_run, stop=stop, _chain=chain)


@contextlib.contextmanager
def _requeue_on_time_limit(session: RunSession):
    """Under SLURM, a stop for the time limit requeues the job once the session has
    released the run directory."""
    try:
        yield
    except Preempted:
        from forge import slurm

        if distributed.is_main():
            slurm.requeue_after(session.stop)
        raise


def run_stage(
    cfg: ForgeConfig, config_path: str | None, run: RunDir | None, stage: str, stop: StopRequest | None = None
) -> int:
    """Run one stage of a run, creating the run directory if needed; the stages
    before it must be done."""
    admitted = admit(cfg, config_path, run)
    run = admitted.run
    _prepare_environment(cfg)
    session = RunSession(cfg, config_path, stage=stage, run=run, stop=stop, admitted=admitted)
    with _requeue_on_time_limit(session), session:
        missing = [s for s in STAGES[: STAGES.index(stage)] if not stage_done(run, s)]
        if missing:
            raise ForgeError(f"{run.root}: stage {stage} needs {', '.join(missing)} first")
        if stage_done(run, stage):
            log.info("stage %s: already done", stage)
        else:
            session.check_stop()  # a signal while the libraries loaded
            _run(session, stage)
        if not run.complete.exists():
            session.complete_if_done()
    return EXIT_OK
