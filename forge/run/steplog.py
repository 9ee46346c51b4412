"""metrics/steps.jsonl: every logged training number, one JSON line per log event.

`forge report` draws its curves from it. A resumed attempt first drops the lines after
the checkpoint it resumes from (the killed attempt logged them, the new one logs those
steps again) and the end-of-training summary of an attempt stopped there, so each step
appears once, as in an uninterrupted run. A line cut short by a kill is skipped on reading.
"""

from __future__ import annotations

import json
from pathlib import Path

from forge.run.files import atomic_write_text
from forge.run.layout import RunDir


def path_of(run: RunDir) -> Path:
    return run.metrics / "steps.jsonl"


def append(run: RunDir, step: int, values: dict[str, float]) -> None:
    path = path_of(run)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps({"step": step, **values}) + "\n")


def read(run: RunDir) -> list[dict]:
    try:
        lines = path_of(run).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []
    records = []
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and isinstance(record.get("step"), int):
            records.append(record)
    return records


SUMMARY_KEY = "train_runtime"  # the trainer's end-of-training summary carries it


def keep_up_to(run: RunDir, step: int) -> None:
    """Drop the records after `step` (0: all), before an attempt trains from there, and the
    summary an attempt stopped at `step` wrote (training goes on: an uninterrupted run has
    no summary there)."""
    if path_of(run).exists():
        kept = [r for r in read(run) if r["step"] < step or (r["step"] == step and SUMMARY_KEY not in r)]
        atomic_write_text(path_of(run), "".join(json.dumps(r) + "\n" for r in kept))
