"""Models that are another forge run's final model: a KD teacher (`teacher.run`) or the
starting point of a student (`student.run`, e.g. GRPO after an SFT warm start).

Such a run is upstream of this one: forge.py runs it first in the same process, and
Snakemake makes its `pipeline_complete` an input of this run's first rule.
"""

from __future__ import annotations

from forge.config import ForgeConfig, load_config
from forge.errors import ConfigError, ForgeError


def upstream_configs(cfg: ForgeConfig) -> dict[str, str]:
    """role ("teacher", "student") -> config file of each run this run needs first.
    A teacher counts only when the run distils (otherwise it is never loaded)."""
    found = {}
    if cfg.mode == "kd" and cfg.teacher.run is not None:
        found["teacher"] = cfg.teacher.run
    if cfg.student.run is not None:
        found["student"] = cfg.student.run
    return found


def run_config(cfg: ForgeConfig, role: str) -> ForgeConfig | None:
    """The config of the run that provides this run's `role` model, if that is a run."""
    path = upstream_configs(cfg).get(role)
    if path is None:
        return None
    from forge.run.session import run_dir_of

    upstream = load_config(path)
    if run_dir_of(upstream) == run_dir_of(cfg):
        raise ConfigError(f"{path}: {role}.run names this very run; a run cannot build on itself")
    return upstream


def final_model(cfg: ForgeConfig, role: str) -> str:
    """The final model directory of the run behind this run's `role`."""
    upstream = run_config(cfg, role)  # refuses a run that names itself
    if upstream is None:
        raise ValueError(f"the {role} of this run is not another run")
    return _complete_final_model(upstream, upstream_configs(cfg)[role], role)


def final_model_of(config_path: str, role: str) -> str:
    """The final model directory of the run configured by `config_path`; that run must be complete."""
    return _complete_final_model(load_config(config_path), config_path, role)


def _complete_final_model(upstream: ForgeConfig, config_path: str, role: str) -> str:
    from forge.run.session import run_dir_of

    run = run_dir_of(upstream)
    if not run.complete.exists():
        raise ForgeError(f"{role} run {run.root} is not complete; run it first (forge --config {config_path})")
    return str(run.final_model)
