"""forge report's lm-eval numbers: read from post_eval.json, and a sweep point's mean ± std."""

from __future__ import annotations

import json

from forge import report
from forge.run.layout import RunDir
from forge.status import RunStatus


def _run(tmp_path, name: str, scores: dict | None) -> RunDir:
    run = RunDir(tmp_path / name)
    run.metrics.mkdir(parents=True)
    data = {"test": {"accuracy": 0.5}}
    if scores is not None:
        data["lm_eval/arith"] = {**scores, "exact_match_stderr,none": 0.1, "samples": 30}
        data["lm_eval"] = {"version": "0.4.13", "tasks": {"arith": {}}}
    (run.metrics / "post_eval.json").write_text(json.dumps(data))
    return run


def test_lm_eval_scores_are_its_metrics_after_training_without_standard_errors(tmp_path):
    run = _run(tmp_path, "a", {"exact_match,none": 0.25, "exact_match,strict-match": 0.2})
    assert report.lm_eval_scores(run) == {"arith/exact_match": 0.25, "arith/exact_match,strict-match": 0.2}
    assert report.lm_eval_scores(_run(tmp_path, "b", None)) == {}
    (tmp_path / "c" / "metrics").mkdir(parents=True)
    (tmp_path / "c" / "metrics" / "post_eval.json").write_text("{trunc")
    assert report.lm_eval_scores(RunDir(tmp_path / "c")) == {}  # a damaged file: no numbers, no traceback


def test_a_points_lm_eval_metric_is_its_mean_and_std_over_complete_runs():
    def seed(post, value):
        fields = dict.fromkeys(RunStatus.__dataclass_fields__) | {"run": "r", "state": "complete", "post": post}
        status = RunStatus(**fields)
        return report.RunReport("r", status, None, lm_eval={"arith/exact_match": value})

    point = report.Point({"lr": 0.1}, [seed(0.5, 0.2), seed(0.6, 0.4), seed(None, 0.9)])
    assert point.spread_of("arith/exact_match") == "0.3000 ± 0.1414"  # the incomplete run left out
    assert point.spread_of("other/acc") == "-"
    rows = report.points_table([point, report.Point({"lr": 0.2}, [seed(0.5, 0.5)])])
    assert [row["arith/exact_match"] for row in rows] == ["0.3000 ± 0.1414", "0.5000"]
