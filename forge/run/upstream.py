"""Runs this run builds on: a KD teacher (`teacher.run`) or the starting point of a
student (`student.run`, e.g. GRPO after an SFT warm start).

They are resolved once, when the run directory is created: each one's config is loaded
and checked, and its run directory, final model and config hash are recorded in
<run>/upstream.json. Loading a model reads that record, never another run's YAML, so a
run directory resumes without the config tree it came from.

forge.py runs an upstream run first, in the same process (forge/pipeline.py);
Snakemake makes its `pipeline_complete` an input of this run's first rule
(forge/workflow.py).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from forge.config import ForgeConfig, config_hash, load_config
from forge.errors import ConfigError, ForgeError
from forge.models.loading import ModelSource
from forge.run.files import atomic_write_json, read_json
from forge.run.layout import RunDir, run_dir_of


@dataclass(frozen=True)
class Upstream:
    role: str  # "teacher" or "student"
    config: str  # the upstream run's config file, as this run's config names it
    run_dir: str  # its run directory, absolute
    final_model: str  # what this run loads: <run_dir>/model, or <run_dir>/adapter (LoRA, unmerged)
    config_hash: str  # of the upstream run's config when this run was created

    def require_complete(self) -> str:
        """The final model; the upstream run must have completed."""
        if not RunDir(Path(self.run_dir)).complete.exists():
            raise ForgeError(
                f"{self.role} run {self.run_dir} is not complete; run it first (forge --config {self.config})"
            )
        return self.final_model


def refuse_self(role: str, config: str, upstream_dir: str | Path, this_dir: str | Path) -> None:
    if Path(upstream_dir) == Path(this_dir):
        raise ConfigError(f"{config}: {role}.run names this very run; a run cannot build on itself")


def _final_model(cfg: ForgeConfig, run: RunDir) -> Path:
    """Where finalize leaves what a run hands on: the adapter of an unmerged LoRA run, else the model."""
    lora = cfg.student.lora
    return run.adapter if lora is not None and not lora.merge else run.model


def load(cfg: ForgeConfig, this: RunDir, load_config=load_config) -> dict[str, tuple[Upstream, ForgeConfig]]:
    """Each upstream run of `cfg` (whose run is `this`): its record and its config, loaded
    (by `load_config`: Snakemake's planning passes its cache) and checked."""
    found = {}
    for role, path in cfg.upstream_runs.items():
        other_cfg = load_config(path)
        other = run_dir_of(other_cfg)
        refuse_self(role, path, other.root, this.root)
        root = other.root.resolve()
        record = Upstream(role, path, str(root), str(_final_model(other_cfg, RunDir(root))), config_hash(other_cfg))
        found[role] = (record, other_cfg)
    return found


def record(run: RunDir, upstream: dict[str, Upstream]) -> None:
    atomic_write_json(run.upstream, {role: asdict(u) for role, u in upstream.items()})


def recorded(run: RunDir) -> dict[str, Upstream] | None:
    """The upstream runs recorded when `run` was created; None for a run without a record."""
    try:
        data = read_json(run.upstream)
        return None if data is None else {role: Upstream(**fields) for role, fields in data.items()}
    except (ValueError, TypeError, AttributeError):  # not JSON, not a mapping, not records
        raise ForgeError(f"{run.upstream}: damaged; remove it to resolve the upstream runs again") from None


def ensure_recorded(cfg: ForgeConfig, run: RunDir, loaded: dict[str, Upstream] | None = None) -> None:
    """Record the upstream runs of a new run (`loaded`: already resolved by the caller), or of
    a run made before forge kept the record. Rank 0 only: the run directory's owner."""
    if run.upstream.exists():
        return
    record(run, loaded if loaded is not None else {role: u for role, (u, _) in load(cfg, run).items()})


def model_source(cfg: ForgeConfig, run: RunDir, role: str) -> ModelSource:
    """What to load as this run's student (or policy) or teacher: the configured model, or
    the final model of the upstream run recorded for `role`."""
    model = cfg.student if role == "student" else cfg.teacher
    layers = tuple(cfg.student.layers) if role == "student" and cfg.student.layers else None
    if model.run is None:
        return ModelSource(model.path, model.revision, model.trust_remote_code, layers)
    links = recorded(run) or {}
    if role not in links:
        raise ForgeError(f"{run.upstream}: no {role} run recorded (remove the file, if any, to resolve them again)")
    return ModelSource(links[role].require_complete(), None, model.trust_remote_code, layers)
