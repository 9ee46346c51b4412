"""post_eval: the final model's metrics, read back from <run>/model (or <run>/adapter)
as a user would load it."""

from __future__ import annotations

from forge.evaluation import evaluate_model
from forge.models.loading import load_model, load_tokenizer
from forge.run.session import RunSession
from forge.run.state import TrainingState, mark_stage_done
from forge.tasks import task_of


def run(session: RunSession) -> None:
    model_dir = str(session.run.final_model)
    model = load_model(model_dir, task_of(session.cfg).LABELS)
    step = TrainingState.load(session.run).global_step
    results = evaluate_model(session, model, load_tokenizer(model_dir), "post_eval", step=step)
    session.tracker.update_summary({f"post_eval/{s}/accuracy": m["accuracy"] for s, m in results.items()})
    mark_stage_done(session.run, "post_eval")
