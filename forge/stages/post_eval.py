"""post_eval: the final model's metrics, read back from <run>/model (or <run>/adapter)
as a user would load it."""

from __future__ import annotations

from forge.evaluation import evaluate_model
from forge.models.loading import ModelSource, load_model, load_preprocessor
from forge.run.session import RunSession
from forge.run.state import TrainingState, mark_stage_done
from forge.tasks import task_of


def run(session: RunSession) -> None:
    final = ModelSource(str(session.run.final_model), trust_remote_code=session.cfg.student.trust_remote_code)
    head = task_of(session.cfg).head(session.run.data)
    model = load_model(final, head)
    step = TrainingState.load(session.run).global_step
    results = evaluate_model(session, model, load_preprocessor(final, head), "post_eval", step=step)
    summary = {f"post_eval/{s}/{k}": v for s, m in results.items() for k, v in m.items() if k != "samples"}
    session.tracker.update_summary(summary)
    mark_stage_done(session.run, "post_eval")
