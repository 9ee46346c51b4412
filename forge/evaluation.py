"""Evaluate a model on the prepared evaluation splits of its task; used before and after training."""

from __future__ import annotations

import logging

from forge.run.files import atomic_write_json
from forge.run.session import RunSession
from forge.tasks import task_of

log = logging.getLogger("forge.eval")


def evaluate_model(session: RunSession, model, tokenizer, name: str, step: int) -> dict[str, dict[str, float]]:
    """The task's metrics per evaluation split, written to metrics/<name>.json and W&B."""
    task = task_of(session.cfg)
    results = task.evaluate(session, model, tokenizer, task.load_prepared(session.run.data))
    for split, metrics in results.items():
        shown = ", ".join(f"{k} {v:.4f}" for k, v in metrics.items() if k != "samples")
        log.info("%s %s: %s", name, split, shown)
    atomic_write_json(session.run.metrics / f"{name}.json", {"step": step, **results})
    session.tracker.log({f"{name}/{s}/{k}": v for s, m in results.items() for k, v in m.items()}, step=step)
    return results
