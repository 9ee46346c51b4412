"""Weights & Biases, one run per forge run across all attempts and stages.

Mode: WANDB_MODE if set; else the config's `wandb.mode`; `auto` means online
when WANDB_API_KEY is set and offline otherwise. The W&B run id is stored in
run_metadata.json, so every attempt and every stage continues the same run.
A resumed attempt replays the steps since its checkpoint; those are not logged
again (the last logged step is kept in wandb/forge_last_step).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from forge.config.schema import ForgeConfig

log = logging.getLogger("forge.tracking")


def resolve_mode(cfg: ForgeConfig) -> str:
    env = os.environ.get("WANDB_MODE")
    if env:
        return env
    if cfg.wandb.mode == "auto":
        return "online" if os.environ.get("WANDB_API_KEY") else "offline"
    return cfg.wandb.mode


class Tracker:
    def __init__(self, cfg: ForgeConfig, run_id: str, directory: Path, config: dict[str, Any]):
        self.mode = resolve_mode(cfg)
        self._run = None
        self._step_file = directory / "forge_last_step"
        # Steps up to here were logged by an earlier attempt.
        self.logged_before = int(self._step_file.read_text()) if self._step_file.exists() else -1
        self.last_step = self.logged_before
        if self.mode == "disabled":
            return
        import wandb

        directory.mkdir(parents=True, exist_ok=True)
        self._run = wandb.init(
            project=cfg.wandb.project,
            entity=cfg.wandb.entity,
            id=run_id,
            name=f"{cfg.task.name}/{cfg.student.name}/{cfg.run_name}",
            resume="allow",
            mode=self.mode,
            dir=str(directory.parent),
            config=config,
        )

    @property
    def enabled(self) -> bool:
        return self._run is not None

    def log(self, metrics: dict[str, float], step: int) -> bool:
        """Log `metrics` at `step`; False (nothing logged) for a step an earlier attempt logged."""
        if step <= self.logged_before:
            return False
        if self._call(lambda run: run.log(metrics, step=step)) and step > self.last_step:
            self.last_step = step
            self._step_file.write_text(str(step))
        return True

    def update_config(self, values: dict[str, Any]) -> None:
        self._call(lambda run: run.config.update(values, allow_val_change=True))

    def update_summary(self, values: dict[str, Any]) -> None:
        self._call(lambda run: run.summary.update(values))

    def finish(self, exit_code: int = 0) -> None:
        self._call(lambda run: run.finish(exit_code=exit_code))
        self._run = None

    def _call(self, action) -> bool:
        """Run `action(wandb_run)`; True when it ran. W&B is a mirror: when its own helper
        process is gone (SLURM signals every process of a job step, W&B's too), forge goes on
        without it rather than turn a safe stop into a failure; every number is still in
        output.log and metrics/steps.jsonl."""
        if self._run is None:
            return False
        try:
            action(self._run)
            return True
        except Exception as exc:  # wandb raises what its transport raises (ConnectionResetError, ...)
            log.warning(
                "W&B stopped answering (%s: %s); the rest of this attempt is logged to output.log and "
                "metrics/steps.jsonl only",
                type(exc).__name__,
                exc,
            )
            self._run = None
            return False
