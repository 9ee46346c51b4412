"""`forge status`: what every run is doing, read from its run directory alone.

Only small files are read (run_metadata.json, training_state.json, the markers, the
metrics files; config.yaml only for runs made before run_metadata.json named their
task and mode), so a listing over thousands of runs takes well under a second. No
lock is taken: a run's lock owner file tells whether a process holds it.

States, in the order they are decided:
    complete     pipeline_complete exists, and so does its final model
    damaged      pipeline_complete exists, its final model (model/, adapter/) does not:
                 running it again rebuilds it from the last checkpoint
    running      a live process holds the run (its lock owner file names it; for a
                 process on another host: it wrote something in the last 30 minutes)
    killed       the last attempt never ended: SIGKILL, OOM kill, node failure
    silent       a process on another host held the run and has written nothing for
                 30 minutes: probably killed with its node (status cannot see its pid)
    preempted    the last attempt stopped at a safe checkpoint (SIGTERM, SIGUSR1,
                 time limit); run again to resume
    failed       the last attempt ended with an error
    interrupted  the last attempt was stopped with Ctrl-C
    pending      no process, stages still to run (between Snakemake jobs)
    fresh        created, no attempt yet
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from forge.config import legacy
from forge.refs import split_ref
from forge.run import layout, registry
from forge.run.layout import STAGES, checkpoint_step
from forge.run.metadata import Outcome

INCOMPLETE = ("damaged", "running", "silent", "killed", "preempted", "failed", "interrupted", "pending", "fresh")
FAILED = ("failed", "killed", "silent")
SILENT_AFTER_S = 30 * 60


@dataclass
class RunStatus:
    run: str
    mode: str | None
    task: str | None
    model: str | None
    state: str
    stage: str | None  # the next stage to run (None when complete)
    step: int | None  # last safe (checkpointed) step
    max_steps: int | None
    attempts: int
    preemptions: int
    metric: str | None  # the task's main metric, e.g. "accuracy"
    metric_split: str | None  # the evaluation split it is read on
    larger_is_better: bool | None
    pre: float | None
    post: float | None
    wandb: str | None
    updated: float | None  # seconds since the epoch
    last_exit: str | None
    sweep: str | None = None  # the sweep file this run is a point of (its config was `SWEEP.yaml#label`)

    def to_json(self) -> dict[str, Any]:
        return dict(vars(self))  # flat: dataclasses.asdict's deep copy is slow over many runs


# ---------------------------------------------------------------- finding runs


def find_runs(paths: Iterable[Path]) -> list[Path]:
    """Run directories at or under `paths` (a directory with config.yaml and
    run_metadata.json), without descending into a run's own folders."""
    found: list[Path] = []
    for path in paths:
        found.extend(_walk(Path(path)))
    return sorted({p.resolve() for p in found})  # a symlinked outputs/ and the registry agree


def _walk(path: Path) -> Iterator[Path]:
    if (path / layout.METADATA).is_file() and (path / layout.CONFIG).is_file():
        yield path
        return
    try:
        entries = list(os.scandir(path))
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return
    for entry in entries:
        if entry.is_dir(follow_symlinks=False) and not entry.name.startswith("."):
            yield from _walk(Path(entry.path))


def default_runs(cwd: Path) -> list[Path]:
    """Runs under ./outputs, and every incomplete run the registry knows (wherever it lives)."""
    known = [Path(e["run_dir"]) for e in registry.incomplete_runs() if e.get("run_dir")]
    return find_runs([cwd / "outputs", *(p for p in known if p.is_dir())])


# ---------------------------------------------------------------- one run


def status_of(root: Path | str) -> RunStatus:
    # Plain string paths and open(): pathlib's overhead was a third of the time over 1,000 runs.
    root = os.fspath(root)
    meta = _json(os.path.join(root, layout.METADATA)) or {}
    identity = meta.get("identity")
    if not isinstance(identity, dict):
        identity = _identity_from_config(root)
    attempts = [a for a in meta.get("attempts") or [] if isinstance(a, dict)]
    state_file = _json(os.path.join(root, layout.STATE)) or {}
    done = _done_stages(root)
    evaluations = {
        name: _json(os.path.join(root, layout.METRICS, f"{name}.json")) for name in ("pre_eval", "post_eval")
    }
    metric = metric_of(evaluations.values(), identity.get("task"))
    return RunStatus(
        run=root,
        mode=identity.get("mode"),
        task=identity.get("task"),
        model=identity.get("model"),
        state=_state(root, attempts),
        stage=next((s for s in STAGES if s not in done), None),
        step=_safe_step(root),
        max_steps=state_file.get("max_steps") or identity.get("max_steps"),
        attempts=len(attempts),
        preemptions=sum(1 for a in attempts if _stopped_safely(a)),
        metric=metric.name if metric else None,
        metric_split=metric.split if metric else None,
        larger_is_better=metric.larger_is_better if metric else None,
        pre=value_of(evaluations["pre_eval"], metric),
        post=value_of(evaluations["post_eval"], metric),
        wandb=_wandb(root, meta),
        updated=_updated(root),
        last_exit=attempts[-1].get("exit_reason") if attempts else None,
        sweep=_sweep_of(meta.get("config_path")),
    )


def _sweep_of(config_path) -> str | None:
    """The sweep file of a point's `SWEEP.yaml#label`; None for a single run."""
    if not isinstance(config_path, str):
        return None
    file, label = split_ref(config_path)
    return file if label is not None else None


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read()
    except (OSError, ValueError):  # missing, unreadable, not UTF-8
        return None


def _json(path: str) -> dict | None:
    """The JSON object in `path`; None when it is missing, damaged or not an object."""
    text = _read(path)
    try:
        data = json.loads(text) if text is not None else None
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _identity_from_config(root: str) -> dict[str, Any]:
    """task, model, mode and max_steps of a run whose metadata lacks them (made before forge
    recorded them), from its config.yaml, the way a run records them; {} when it no longer validates.
    The schema alone: the rules between fields would import the run's reward modules."""
    from forge.config.loader import read_yaml
    from forge.config.schema import ForgeConfig
    from forge.run.metadata import identity

    try:
        return identity(ForgeConfig.model_validate(read_yaml(os.path.join(root, layout.CONFIG))))
    except Exception:  # damaged, or a config of an older forge: show what is known
        return {}


def _done_stages(root: str) -> set[str]:
    try:
        return {
            name.removesuffix(layout.STAGE_MARKER_SUFFIX)
            for name in os.listdir(os.path.join(root, layout.STAGE_MARKERS))
        }
    except OSError:
        return set()


def _stopped_safely(attempt: dict) -> bool:
    outcome = Outcome.of(attempt)
    return outcome is not None and outcome.stopped_safely


def _state(root: str, attempts: list[dict]) -> str:
    if os.path.exists(os.path.join(root, layout.COMPLETE)):
        final = (os.path.join(root, name) for name in (layout.MODEL, layout.ADAPTER))
        return "complete" if any(map(os.path.isdir, final)) else "damaged"
    holder = _holder(root)
    if holder != "none":
        return holder
    if not attempts:
        return "fresh"
    last = attempts[-1]
    if last.get("ended_at") is None:
        return "killed"
    outcome = Outcome.of(last)
    if outcome is not None and outcome.stopped_safely:
        return "preempted"
    if outcome in (Outcome.FAILED, Outcome.ERROR):
        return "failed"
    if outcome is Outcome.INTERRUPTED:
        return "interrupted"
    return "pending"


def _holder(root: str) -> str:
    """ "running" when a live process holds the run, "silent" when a process on another
    host held it and has written nothing for SILENT_AFTER_S, "none" otherwise. The owner
    file is removed on release and left behind by a killed holder, so its pid is checked
    on this host; another host's pid cannot be, so its last write stands in."""
    owner = _json(os.path.join(root, layout.LOCK_OWNER))
    if owner is None:
        return "none"
    if owner.get("host") != socket.gethostname():
        updated = _updated(root)
        return "running" if updated is not None and time.time() - updated < SILENT_AFTER_S else "silent"
    try:
        os.kill(int(owner["pid"]), 0)
    except (ProcessLookupError, KeyError, ValueError, TypeError):
        return "none"
    except PermissionError:  # alive, another user's
        return "running"
    return "running"


def _safe_step(root: str) -> int | None:
    """The step of the checkpoint `latest_checkpoint` names (forge writes it only once
    the checkpoint is complete)."""
    name = _read(os.path.join(root, layout.LATEST_CHECKPOINT))
    return checkpoint_step(Path(name.strip())) if name else None


class Metric(NamedTuple):
    split: str
    name: str
    larger_is_better: bool


def metric_of(evaluations, task: str | None) -> Metric | None:
    """The run's main metric, as its metrics files (`evaluations`: their contents) name it; for
    a run whose files were written before they named it, its old task's; None for neither (a
    run not evaluated yet)."""
    for data in evaluations:
        main = data.get("main") if isinstance(data, dict) else None
        if isinstance(main, dict):
            try:
                return Metric(str(main["split"]), str(main["metric"]), bool(main["larger_is_better"]))
            except KeyError:
                continue
    old = legacy.MAIN_METRICS.get(task) if isinstance(task, str) else None
    return Metric(*old) if old else None


def main_metric(root: Path | str, name: str, metric) -> float | None:
    """The task's main metric in metrics/<name>.json (pre_eval, post_eval, teacher_pre_eval)."""
    return value_of(_json(os.path.join(root, layout.METRICS, f"{name}.json")), metric)


def value_of(data, metric) -> float | None:
    """The main metric's value in a metrics file's contents."""
    if metric is None:
        return None
    try:
        return float(data[metric.split][metric.name])
    except (TypeError, KeyError, ValueError):
        return None


def _wandb(root: str, meta: dict) -> str | None:
    run_id = meta.get("wandb_run_id")
    if run_id is None:
        return None
    try:
        names = os.listdir(os.path.join(root, layout.WANDB))
    except OSError:
        return run_id
    if any(n.startswith("offline-run-") for n in names):
        return f"{run_id} (offline)"
    if any(n.startswith("run-") for n in names):
        return f"{run_id} (online)"
    return run_id


def _updated(root: str) -> float | None:
    times = []
    for name in (layout.LOG, layout.STATE, layout.METADATA):
        with contextlib.suppress(OSError):
            times.append(os.stat(os.path.join(root, name)).st_mtime)
    return max(times) if times else None


# ---------------------------------------------------------------- selection and output


def select(statuses: list[RunStatus], incomplete: bool = False, failed: bool = False) -> list[RunStatus]:
    if incomplete:
        statuses = [s for s in statuses if s.state in INCOMPLETE]
    if failed:
        statuses = [s for s in statuses if s.state in FAILED]
    return statuses


def display_name(run: Path | str, cwd: Path) -> str:
    """A run's path relative to `cwd` when it lies below it, else absolute."""
    try:
        return str(Path(run).relative_to(cwd.resolve()))
    except ValueError:
        return str(run)


def _age(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit} ago"
    return f"{int(seconds)}s ago"


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def rows(statuses: list[RunStatus], cwd: Path, now: float | None = None) -> list[dict[str, str]]:
    """The table's cells, as text."""
    now = time.time() if now is None else now
    out = []
    for s in statuses:
        total = f"/{s.max_steps}" if s.max_steps else ""
        out.append(
            {
                "run": display_name(s.run, cwd),
                "mode": s.mode or "?",
                "task": s.task or "?",
                "state": s.state,
                "stage": s.stage or "-",
                "safe step": f"{s.step if s.step is not None else '-'}{total}",
                "attempts": str(s.attempts),
                "preempted": str(s.preemptions),
                "metric": f"{s.metric} {_number(s.pre)} → {_number(s.post)}" if s.metric else "-",
                "W&B": s.wandb or "-",
                "updated": _age(now - s.updated) if s.updated else "-",
            }
        )
    return out


STATE_STYLE = {
    "complete": "green",
    "running": "cyan",
    "preempted": "yellow",
    "failed": "red",
    "damaged": "red",
    "killed": "red",
    "silent": "red",
}


def console_for_tables():
    """A rich console; off a terminal (a pipe, a batch log) it never crops a line."""
    from rich.console import Console

    class Tables(Console):
        def on_broken_pipe(self) -> None:  # rich exits 1 itself; forge.cli ends every printing command alike
            self.quiet = True
            raise BrokenPipeError

    console = Tables(highlight=False)
    return console if console.is_terminal else Tables(highlight=False, width=100_000)


def print_rows(cells: list[dict[str, str]], console) -> None:
    """Aligned columns, a state column coloured on a terminal. The layout is computed
    here, not by rich.Table: rich measured and wrapped every cell, about 2 ms a row (2 s
    over 1,000 runs); rich still writes the lines (colour, terminal detection)."""
    from rich.text import Text

    columns = list(cells[0])
    widths = {c: max(len(c), *(len(row[c]) for row in cells)) for c in columns}
    lines = [Text("  ".join(c.ljust(widths[c]) for c in columns).rstrip(), style="bold")]
    for row in cells:
        line = Text(no_wrap=True, overflow="ellipsis")
        for i, c in enumerate(columns):
            style = STATE_STYLE.get(row[c]) if c == "state" else None
            line.append(("  " if i else "") + row[c].ljust(widths[c]), style=style)
        line.rstrip()
        lines.append(line)
    console.print(Text("\n").join(lines), soft_wrap=not console.is_terminal)


def print_table(statuses: list[RunStatus], cwd: Path, console=None) -> None:
    from rich.text import Text

    console = console or console_for_tables()
    if not statuses:
        console.print("no runs found")
        return
    cells = rows(statuses, cwd)
    print_rows(cells, console)
    failures = [
        Text(f"{row['run']}: ", style="red") + Text(s.last_exit if len(s.last_exit) <= 200 else s.last_exit[:199] + "…")
        for s, row in zip(statuses, cells, strict=True)
        if s.state == "failed" and s.last_exit
    ]
    if failures:
        console.print(Text("\n").join(failures), soft_wrap=True)
    for sweep, members in sweep_groups(statuses).items():
        console.print(f"sweep {sweep}: {len(members)} runs: {_counts(members)}")
    console.print(_counts(statuses))


def sweep_groups(statuses: list[RunStatus]) -> dict[str, list[RunStatus]]:
    """The runs of each sweep among `statuses`, by sweep file."""
    groups: dict[str, list[RunStatus]] = {}
    for s in statuses:
        if s.sweep is not None:
            groups.setdefault(s.sweep, []).append(s)
    return groups


def _counts(statuses: list[RunStatus]) -> str:
    counts: dict[str, int] = {}
    for s in statuses:
        counts[s.state] = counts.get(s.state, 0) + 1
    return ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))
