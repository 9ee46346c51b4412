"""One attempt on a run directory: create or resume it, hold its lock, log to it,
record the attempt in run_metadata.json, and register the run until it completes."""

from __future__ import annotations

import logging

from forge import distributed, embedded
from forge.config import (
    RESUME_SAFE_KEYS,
    ForgeConfig,
    config_hash,
    diff_configs,
    dump_yaml,
    to_dict,
    validate,
)
from forge.config.loader import load_stored
from forge.errors import EXIT_OK, ConfigError, ForgeError, Preempted
from forge.logs import attach_run_log, detach_run_log
from forge.run import registry, upstream
from forge.run.files import atomic_write_text, keep_damaged
from forge.run.layout import STAGES, RunDir, run_dir_of
from forge.run.lock import RunLock
from forge.run.metadata import Outcome, RunMetadata, identity
from forge.run.state import mark_pipeline_complete, reopen_lost, stage_done
from forge.signals import StopRequest

log = logging.getLogger("forge.run")


def load_stored_config(run: RunDir) -> ForgeConfig:
    """The resolved config.yaml of an existing run."""
    if not run.config.is_file():
        raise ConfigError(f"{run.root}: not a forge run directory (no config.yaml)")
    return validate(load_stored(run.config), check_upstream=False)


def stored_or_rebuilt(run: RunDir, cfg: ForgeConfig, metadata: dict) -> ForgeConfig:
    """The run's config.yaml; a damaged one (cut short, not YAML) is written again from `cfg`
    when `cfg` is the config the run began with (run_metadata.json's hash says so), the
    damaged file kept as config.yaml.damaged. Else one line says which config to resume with."""
    try:
        return load_stored_config(run)
    except ConfigError as exc:
        if metadata.get("rebuilt_at") is None and metadata.get("config_hash") == config_hash(cfg):
            log.warning("%s is damaged (%s): written again from the config this run began with (same hash)",
                        run.config, str(exc).splitlines()[0])  # fmt: skip
            keep_damaged(run.config)
            atomic_write_text(run.config, dump_yaml(cfg))
            return cfg
        began = metadata.get("config_path") or "the config it began with"
        raise ConfigError(
            f"{run.config} is damaged ({str(exc).splitlines()[0]}): run again with the config this run began "
            f"with (forge --config {began}); it is written again from that"
        ) from None


def check_resumable(stored: ForgeConfig, new: ForgeConfig, run: RunDir, complete: bool = False) -> list[str]:
    """Refuse a config that changes what the run computes (`complete`: what it computed, the
    run being complete: a config of the same name that is another run); return the safe changes."""
    changes = diff_configs(stored, new)
    unsafe = [c for c in changes if c[0] not in RESUME_SAFE_KEYS]
    if unsafe:
        lines = "\n".join(f"  {'.'.join(k)}: {old!r} -> {new!r}" for k, old, new in unsafe)
        raise ConfigError(
            f"{run.config}: the config differs from the one this run started with:\n{lines}\n"
            + (
                "The run is complete with its own config: start a new run with --run_name."
                if complete
                else "Resume with the original config, or start a new run with --run_name."
            )
        )
    return [f"{'.'.join(k)}: {old!r} -> {new!r}" for k, old, new in changes]


def check_embedded_version(cfg: ForgeConfig, metadata: dict, run: RunDir) -> None:
    """A run that uses embedded artifacts resumes only with the version it began with: its
    prepared data, checkpoints and tokenizer come from that version. (Runs made before forge
    recorded the version began with version 3; a run with no attempt recorded yet, or whose
    record was rebuilt, is this forge's.)"""
    began_with = metadata.get("embedded_version", 3 if metadata.get("attempts") else embedded.VERSION)
    if any(embedded.is_embedded(ref) for ref in cfg.references) and began_with != embedded.VERSION:
        raise ConfigError(
            f"{run.root}: began with the embedded artifacts of version {began_with}, this forge builds version "
            f"{embedded.VERSION}: finish it with the forge that began it, or start it again (--run_name)"
        )


def check_same_data(cfg: ForgeConfig, run: RunDir) -> None:
    """A run goes on only with the data it prepared (data/fingerprint.json, or its copy
    data_fingerprint.json when data/ was deleted: the files' sizes, times and hashes, or the Hub
    revision), as only with the config it began with. Runs prepared before forge recorded it are
    not checked."""
    from forge.run.files import read_json
    from forge.tasks import data

    recorded = None
    for path in (run.data / "fingerprint.json", run.data_record):
        try:
            recorded = read_json(path)
        except ValueError:  # damaged: the other, or nothing to compare with
            continue
        if recorded:
            break
    data.check_unchanged(recorded, cfg.task, str(run.root))


class RunSession:
    """`with RunSession(cfg, config_path) as s:` — the run is created or resumed on entry."""

    def __init__(
        self,
        cfg: ForgeConfig,
        config_path: str | None = None,
        stage: str | None = None,
        run: RunDir | None = None,
        stop: StopRequest | None = None,
        admitted=None,
    ):
        """`admitted`: what forge/admission.py said of the run (checked, its upstream runs
        loaded); without it, the session admits the run itself (a test's, a bench's)."""
        self.cfg = cfg
        self.config_path = config_path
        self.stage = stage
        self.run = run or (admitted.run if admitted is not None else run_dir_of(cfg))
        self._admitted = admitted
        # The CLI installs its stop request before the heavy imports, so a signal that
        # arrives while they load is not lost; a session installs one if nobody did.
        self.stop = stop or StopRequest()
        self._owns_stop = not self.stop.installed
        self.metadata = RunMetadata(self.run)
        self._lock = RunLock(self.run)
        self._log_handler: logging.Handler | None = None
        self._stage_log_handler: logging.Handler | None = None
        self._tracker = None

    # -- lifecycle ---------------------------------------------------------

    def __enter__(self) -> RunSession:
        # Under torchrun every rank has a session; rank 0's owns the run directory and the
        # others start once it holds it (forge/distributed.py).
        if distributed.is_main():
            self._enter_owner()
        distributed.barrier()
        return self

    def _enter_owner(self) -> None:
        run = self.run
        if self._admitted is None:  # a new run: checked, and its upstream runs resolved, before anything is created
            from forge.admission import admit

            self._admitted = admit(self.cfg, self.config_path, run)
        run.root.mkdir(parents=True, exist_ok=True)
        self._lock.acquire()  # before reading the run: a process creating it at the same time holds it
        try:
            existed = run.config.is_file()
            if existed:  # refused before anything is written
                self.metadata = RunMetadata.read_or_rebuild(run, self.cfg)
                changes = check_resumable(stored_or_rebuilt(run, self.cfg, self.metadata.data), self.cfg, run)
                check_embedded_version(self.cfg, self.metadata.data, run)
                check_same_data(self.cfg, run)
            self._log_handler = attach_run_log(run.log, self.cfg.debug)
            if not existed:
                run.config.write_text(dump_yaml(self.cfg))
                self.metadata.create(self.config_path, config_hash(self.cfg))
                self.metadata.data["seeds"] = {"seed": self.cfg.seed, "data_seed": self.cfg.task.data_seed}
                self.metadata.data["embedded_version"] = embedded.VERSION
                log.info("new run in %s", run.root)
            else:
                if changes:
                    log.info("resuming with changed settings: %s", "; ".join(changes))
                    run.config.write_text(dump_yaml(self.cfg))
                    self.metadata.note("config_hash", config_hash(self.cfg))
                log.info("resuming run in %s", run.root)
                reopen_lost(run)
            upstream.ensure_recorded(self.cfg, run, self._admitted.links)
            # what `forge status` shows (max_steps may have changed since the last attempt)
            self.metadata.data["identity"] = identity(self.cfg)
            self.metadata.start_attempt(self.stage)
            if self.stage is not None:
                attempt = self.metadata.data["attempts"][-1]["attempt"]
                run.stage_log(self.stage, attempt).parent.mkdir(parents=True, exist_ok=True)
                self._stage_log_handler = attach_run_log(run.stage_log(self.stage, attempt), self.cfg.debug)
            registry.register(run.root, task=self.cfg.task.name, model=self.cfg.student.name)
            self.stop.install()
        except BaseException:
            self._close()
            raise

    def __exit__(self, exc_type, exc, tb) -> None:
        if not distributed.is_main():
            self._close()
            return
        if exc_type is None:
            outcome = Outcome.COMPLETED if self.run.complete.exists() else Outcome.STAGE_DONE
            reason, code = outcome.value, EXIT_OK
        elif isinstance(exc, Preempted):
            outcome = Outcome.TIME_LIMIT if self.stop.for_time_limit else Outcome.PREEMPTED
            reason, code = f"{outcome.value} ({self.stop.describe()})", exc.exit_code
        elif isinstance(exc, KeyboardInterrupt):
            outcome, reason, code = Outcome.INTERRUPTED, "interrupted", 130
        elif isinstance(exc, ForgeError):
            outcome, reason, code = Outcome.ERROR, f"error: {exc}", exc.exit_code
        else:
            outcome, reason, code = Outcome.FAILED, f"failed: {exc_type.__name__}: {exc}", 1
            log.error("attempt failed", exc_info=(exc_type, exc, tb))
        try:
            self.metadata.end_attempt(outcome, reason, code)
        except OSError as exc:  # a full disk: the attempt shows as killed; its own error is what matters
            log.warning("cannot record how this attempt ended in %s (%s)", self.run.metadata, exc)
        try:
            if self._tracker is not None:
                self._tracker.finish(exit_code=code)
        finally:
            self._close()

    def _close(self) -> None:
        if self._owns_stop:
            self.stop.uninstall()
        for handler in (self._log_handler, self._stage_log_handler):
            if handler is not None:
                detach_run_log(handler)
        self._log_handler = self._stage_log_handler = None
        self._lock.release()

    # -- what stages use ---------------------------------------------------

    @property
    def tracker(self):
        """W&B (offline unless a key is set); None on ranks other than 0."""
        if not distributed.is_main():
            return None
        if self._tracker is None:
            from forge.tracking import Tracker

            self._tracker = Tracker(self.cfg, self.metadata.wandb_run_id, self.run.wandb, to_dict(self.cfg))
        return self._tracker

    def source(self, role: str):
        """The ModelSource of this run's student (or policy) or teacher (`role`)."""
        return upstream.model_source(self.cfg, self.run, role)

    def check_stop(self) -> None:
        """Every rank calls it at the same point; a stop any rank saw stops them all."""
        if distributed.agree_stop(self.stop):
            raise Preempted(f"stopped by {self.stop.describe()}; run again to resume", self.stop.exit_code)

    def complete_if_done(self) -> bool:
        """Write pipeline_complete once every stage is done; unregister the run."""
        if not distributed.is_main():
            return False
        if not all(stage_done(self.run, s) for s in STAGES):
            return False
        mark_pipeline_complete(self.run)
        registry.unregister(self.run.root)
        log.info("pipeline complete: %s", self.run.root)
        return True
