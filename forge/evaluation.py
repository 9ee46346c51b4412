"""Evaluate a classifier on the prepared evaluation splits; used before and after training."""

from __future__ import annotations

import logging

from forge.run.files import atomic_write_json
from forge.run.session import RunSession
from forge.tasks import mnli

log = logging.getLogger("forge.eval")


def evaluate_model(session: RunSession, model, tokenizer, name: str, step: int) -> dict[str, dict[str, float]]:
    """Accuracy and loss per evaluation split, written to metrics/<name>.json and W&B."""
    from forge.trainers.arguments import training_arguments
    from forge.trainers.finetuning import FinetuningTrainer

    data = mnli.load_prepared(session.run.data)
    trainer = FinetuningTrainer(
        model=model,
        args=training_arguments(session.cfg, session.run),
        eval_dataset=data[mnli.EVAL_SPLITS[0]],
        processing_class=tokenizer,
        compute_metrics=mnli.compute_metrics,
    )
    results = {}
    for split in mnli.EVAL_SPLITS:
        metrics = trainer.evaluate(data[split], metric_key_prefix="eval")
        results[split] = {k.removeprefix("eval_"): v for k, v in metrics.items() if k in ("eval_accuracy", "eval_loss")}
        results[split]["samples"] = len(data[split])
        log.info("%s %s: accuracy %.4f", name, split, results[split]["accuracy"])
    atomic_write_json(session.run.metrics / f"{name}.json", {"step": step, **results})
    session.tracker.log({f"{name}/{s}/{k}": v for s, m in results.items() for k, v in m.items()}, step=step)
    return results
