"""Evaluate a model on the prepared evaluation splits of its task; used before and after training."""

from __future__ import annotations

import logging

from forge.run.files import atomic_write_json
from forge.run.session import RunSession
from forge.tasks import task_of

log = logging.getLogger("forge.eval")

MAIN = "main"  # the key of a metrics file that names its main metric (not a split)


def evaluate_model(session: RunSession, model, tokenizer, name: str, step: int) -> dict[str, dict[str, float]]:
    """The task's metrics per evaluation split, and the `eval:` block's lm-eval tasks where this
    stage runs them, written to metrics/<name>.json (with the main metric named: `forge status`
    and `forge report` read it from there) and W&B."""
    task, lm_eval = task_of(session.cfg), session.cfg.eval
    data = task.load_prepared(session.run.data)
    results, extra = task.evaluate(session, model, tokenizer, data), {}
    if lm_eval is not None and name in lm_eval.stages:  # lm-evaluation-harness beside the task's metrics
        from forge import harness

        found, extra[harness.INFO] = harness.evaluate(lm_eval, model, tokenizer)
        results.update(found)
    for split, metrics in results.items():
        shown = ", ".join(f"{k} {v:.4f}" for k, v in metrics.items() if k != "samples")
        log.info("%s %s: %s", name, split, shown)
    main = task.main_metric(session.run.data)
    record = {"split": task.eval_splits(data)[0], "metric": main.name, "larger_is_better": main.larger_is_better}
    if extra:
        record = harness.main_metric(lm_eval, results, extra[harness.INFO]) or record
    atomic_write_json(session.run.metrics / f"{name}.json", {"step": step, **results, **extra, MAIN: record})
    session.tracker.log({f"{name}/{s}/{k}": v for s, m in results.items() for k, v in m.items()}, step=step)
    return results
