"""What the Snakefile asks of forge: which config a target belongs to, and what a job will do.

A run's directory is `<output_root>/<task>/<student name>/<run_name>` of its config,
so the index maps every run config under a folder to its run directory. Only the
few keys that place a run are read here (YAML with its `base:` chain, cached), so
planning thousands of runs stays fast; `forge stage` validates the whole config.
"""

from __future__ import annotations

import functools
import shlex
from dataclasses import dataclass
from pathlib import Path

from forge.errors import ConfigError
from forge.refs import point_ref, split_ref
from forge.run.layout import placed_run_dir, run_dir_of

FRAGMENT_NAME = "base.yaml"
SWEEP_REPORT = "report.md"  # in <output_root>/<task>/<model>/<sweep run_name>/


@dataclass(frozen=True)
class RunEntry:
    config: str  # path of the run's config file
    run_dir: str  # <output_root>/<task>/<model>/<run_name>


def run_configs(folder: str | Path) -> list[Path]:
    """Every run config under `folder` (or `folder` itself when it is a file)."""
    folder = Path(folder)
    if folder.is_file():
        return [folder]
    if not folder.is_dir():
        raise ConfigError(f"{folder}: no such config file or folder")
    return sorted(p for p in folder.rglob("*.yaml") if p.name != FRAGMENT_NAME)


@dataclass(frozen=True)
class SweepEntry:
    config: str  # the sweep's config file
    runs: tuple[str, ...]  # its points' run directories


def index(config_root: str = "configs") -> dict[str, RunEntry]:
    """run directory -> its config, for every run config under `config_root` (a sweep's
    points each with their `SWEEP.yaml#label`)."""
    return _scan(config_root)[0]


def sweeps(config_root: str = "configs") -> dict[str, SweepEntry]:
    """sweep directory (`<output_root>/<task>/<model>/<run_name>`: its report) -> its sweep."""
    return _scan(config_root)[1]


@functools.cache
def _scan(config_root: str) -> tuple[dict[str, RunEntry], dict[str, SweepEntry]]:
    from forge.config import sweep
    from forge.config.loader import placement

    entries: dict[str, RunEntry] = {}
    found_sweeps: dict[str, SweepEntry] = {}
    problems = []  # every config that cannot be placed, not only the first

    def add(run_dir: str, config: str) -> None:
        if run_dir in entries:
            problems.append(f"{config} and {entries[run_dir].config} both write to {run_dir}; give one a run_name")
        else:
            entries[run_dir] = RunEntry(config, run_dir)

    for path in run_configs(config_root):
        try:
            placed = placement(path)
            root = placed_run_dir(placed).root
            if "sweep" not in placed:
                add(str(root), str(path))
                continue
            points = sweep.parse(placed["sweep"][0], placed["sweep"][1]).points()
        except ConfigError as exc:
            problems.append(str(exc))
            continue
        runs = tuple(str(root.with_name(p.run_name(root.name))) for p in points)
        for point, run_dir in zip(points, runs, strict=True):
            add(run_dir, point_ref(str(path), point.label))
        found_sweeps[str(root)] = SweepEntry(str(path), runs)
    if problems:
        raise ConfigError("\n".join(problems))
    return entries, found_sweeps


# Upstream runs (teacher.run, student.run) whose configs live outside the config root,
# found through the runs that name them.
_upstream_runs: dict[str, RunEntry] = {}


def config_for(run_dir: str, config_root: str = "configs") -> str:
    key = str(Path(run_dir))
    entry = index(config_root).get(key) or _upstream_runs.get(key)
    if entry is None:
        raise ConfigError(f"{run_dir}: no config under {config_root}/ writes to this run directory")
    return entry.config


def targets(folder: str | Path, config_root: str = "configs") -> list[str]:
    """`pipeline_complete` of every run configured under `folder`, and the report of every
    sweep there. Each of those configs (and the runs it builds on) is validated first, so a plan
    with bad configs stops before any job starts: a ConfigError with one line per bad config
    (a sweep's point: its `file#label` and the key)."""
    wanted = {str(p) for p in run_configs(folder)}
    entries = [e for e in index(config_root).values() if split_ref(e.config)[0] in wanted]
    problems, seen = {}, set()
    for entry in entries:
        try:
            _load(entry.run_dir, config_root)  # cached: the rules' params read the same
        except ConfigError as exc:
            problems.update(dict.fromkeys(str(exc).splitlines()))  # a sweep's base: once, not per point
            continue
        problems.update(dict.fromkeys(_upstream_problems(entry.run_dir, config_root, seen)))
    if problems:
        raise ConfigError("\n".join(problems))
    reports = [f"{d}/{SWEEP_REPORT}" for d, s in sweeps(config_root).items() if s.config in wanted]
    return [f"{e.run_dir}/pipeline_complete" for e in entries] + reports


def sweep_runs(sweep_dir: str, config_root: str = "configs") -> list[str]:
    """The run directories of the sweep whose report goes to `sweep_dir`."""
    entry = sweeps(config_root).get(str(Path(sweep_dir)))
    if entry is None:
        raise ConfigError(f"{sweep_dir}: no sweep under {config_root}/ reports here")
    return list(entry.runs)


def _upstream_problems(run_dir: str, config_root: str, seen: set[str]) -> list[str]:
    """The config errors of the runs `run_dir` builds on, and of theirs (each run once)."""
    try:
        links = _upstream(run_dir, config_root)
    except ConfigError as exc:
        return [str(exc)]
    problems = []
    for other in links.values():
        if other not in seen:
            seen.add(other)
            problems += _upstream_problems(other, config_root, seen)
    return problems


@functools.cache
def _config(path: str):
    """Each config file (or sweep point) of the plan, loaded once."""
    from forge.config import load_config

    return load_config(path)


@functools.cache
def _load(run_dir: str, config_root: str):
    return _config(config_for(run_dir, config_root))


@functools.cache
def _upstream(run_dir: str, config_root: str) -> dict[str, str]:
    """role -> the run directory of each run `run_dir` builds on, resolved as a new run's
    admission resolves them (forge/run/upstream.py: a run that names itself is refused there)."""
    from forge.run import upstream
    from forge.run.layout import RunDir

    found = {}
    for role, (link, other_cfg) in upstream.load(_load(run_dir, config_root), RunDir(Path(run_dir)), _config).items():
        other = str(run_dir_of(other_cfg).root)
        _upstream_runs.setdefault(other, RunEntry(link.config, other))
        found[role] = other
    return found


def forget() -> None:
    """Drop what the plan has read (a test that edits configs between plans)."""
    for cached in (_scan, _config, _load, _upstream, config_hash_for):
        cached.cache_clear()
    _upstream_runs.clear()


@functools.cache
def config_hash_for(run_dir: str, config_root: str = "configs") -> str:
    """Hash of what the run's config means: Snakemake reruns a stage when it changes
    (params trigger), while editing comments or layout changes nothing."""
    from forge.config import config_hash

    return config_hash(_load(run_dir, config_root))


def upstream_targets(run_dir: str, config_root: str = "configs") -> list[str]:
    """A run that loads another run's final model (a KD teacher run, a student's
    `run:`) depends on that run's `pipeline_complete`: the DAG trains it first. A
    teacher counts only when the run distils (otherwise it is never loaded)."""
    return [f"{other}/pipeline_complete" for other in _upstream(run_dir, config_root).values()]


def train_plan(run_dir: str) -> str:
    """What the train job of `run_dir` would do: start fresh or resume from checkpoint-N."""
    from forge.run.layout import RunDir
    from forge.run.state import find_resume_checkpoint

    checkpoint = find_resume_checkpoint(RunDir(Path(run_dir)))
    return f"resumes from {checkpoint.name}" if checkpoint else "starts fresh"


class TrainPlan:
    """A train job's plan, for its `message:` in `snakemake -n`. Not a builtin type, so
    Snakemake leaves it out of the params rerun trigger (the plan changes as training
    goes on; that must not rerun anything)."""

    def __init__(self, run_dir: str):
        self.run_dir = run_dir

    def __str__(self) -> str:
        return train_plan(self.run_dir)


def train_launcher(python: str, processes: int = 1, nodes: int = 1) -> str:
    """The shell words that start forge for the train rule: forge itself in one process;
    torchrun (through forge.launch) with a local rendezvous for several processes on one node; for several
    nodes, one torchrun per node started by `srun`, meeting at this (the job's first)
    node through the c10d rendezvous, on a port derived from the job id.

    Only numbers and the interpreter's quoted path enter the command."""
    processes, nodes = int(processes), int(nodes)
    if processes < 1 or nodes < 1:
        raise ConfigError(f"train resources: processes ({processes}) and nodes ({nodes}) must be at least 1")
    forge = f"{shlex.quote(python)} -m forge"
    if processes == 1 and nodes == 1:
        return forge
    torchrun = f"{shlex.quote(python)} -m forge.launch --nproc-per-node {processes}"  # torchrun, deaf to USR1
    if nodes == 1:
        return f"{torchrun} --standalone -m forge"
    return (  # a rank that fails on one node ends the others (not only its own node's)
        f"srun --kill-on-bad-exit=1 --nodes {nodes} --ntasks {nodes} --ntasks-per-node 1 "
        f"{torchrun} --nnodes {nodes} --rdzv-backend c10d "
        '--rdzv-endpoint "$(hostname)":$((29500 + SLURM_JOB_ID % 2000)) --rdzv-id "$SLURM_JOB_ID" -m forge'
    )


class TrainLauncher:
    """`train_launcher` for the train rule's shell; like TrainPlan, not a builtin type, so
    changing the processes of a run half-way does not count as a change of the run."""

    def __init__(self, python: str, processes: int = 1, nodes: int = 1):
        self.command = train_launcher(python, processes, nodes)

    def __str__(self) -> str:
        return self.command
