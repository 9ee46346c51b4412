"""lm-evaluation-harness in pre_eval and post_eval (an `eval:` block, forge/harness.py): its
numbers land beside the task's own, equal to them where both grade the same greedy answers of
the same rows, and evaluating leaves the weights as they would be without it."""

from __future__ import annotations

import json

import pytest

from forge.run.layout import RunDir
from tests.conftest import REASONING_TINY, ROOT, assert_bitwise_equal, forge_here, write_config

pytestmark = pytest.mark.integration

EVALS = ROOT / "evals"
EVAL = f"""eval:
  tasks: [{EVALS / "arithmetic_gen.yaml"}, {EVALS / "arithmetic_mc.yaml"}]
  apply_chat_template: true
  batch_size: 32
  main_metric: arithmetic_gen/exact_match
"""


def two_steps_from(folder, name: str, warm_start, extra: str = ""):
    """Two SFT steps from the warm start's final model, evaluated on all 300 test problems."""
    body = f"base: {REASONING_TINY / '00_sft.yaml'}\nrun_name: {name}\noutput_root: {folder / 'outputs'}\n"
    body += f"student: {{path: null, run: {warm_start}}}\ntraining: {{max_steps: 2, save_steps: 2, eval_steps: 2}}\n"
    return write_config(folder / "configs", f"{name}.yaml", body + extra)


def test_lm_eval_grades_the_tasks_own_answers_alike_and_leaves_the_weights_alone(tmp_path, warm_start):
    import lm_eval

    from forge import status

    for name, extra in (("with_eval", EVAL), ("without", "")):
        result = forge_here("--config", str(two_steps_from(tmp_path, name, warm_start, extra)), cwd=tmp_path)
        assert result.returncode == 0, result.stderr[-3000:]
    run = RunDir(tmp_path / "outputs" / "reasoning" / "tiny" / "with_eval")
    for stage in ("pre_eval", "post_eval"):
        metrics = json.loads((run.metrics / f"{stage}.json").read_text())
        own, theirs = metrics["test"], metrics["lm_eval/arithmetic_gen"]
        assert (theirs["exact_match,none"], theirs["format,none"], theirs["samples"]) == (
            own["accuracy"],
            own["format"],
            own["samples"],
        )
        assert 0 <= metrics["lm_eval/arithmetic_mc"]["acc,none"] <= 1
        assert metrics["lm_eval"]["version"] == lm_eval.__version__
        assert set(metrics["lm_eval"]["tasks"]) == {"arithmetic_gen", "arithmetic_mc"}
        assert metrics["main"] == {
            "split": "lm_eval/arithmetic_gen",
            "metric": "exact_match,none",
            "larger_is_better": True,
        }
    pre = json.loads((run.metrics / "pre_eval.json").read_text())["test"]
    assert 0 < pre["accuracy"] < 1 and pre["format"] > 0  # the warm start answers some right: not 0 = 0
    assert_bitwise_equal(run, RunDir(run.root.with_name("without")))
    shown = status.status_of(run.root)
    assert (shown.metric, shown.post) == ("exact_match,none", theirs["exact_match,none"])

    from forge import report

    reports = report.collect([run.root, run.root.with_name("without")], tmp_path)
    with_eval, without = report.lm_eval_table(reports)
    assert with_eval["arithmetic_gen/exact_match"] == f"{theirs['exact_match,none']:.4f}"
    assert with_eval["arithmetic_mc/acc"] != "-" and not any("stderr" in key for key in with_eval)
    assert set(without.values()) == {"-", without["run"]}  # a run without lm-eval: a row of dashes
    files = report.write(reports, tmp_path / "report")
    assert report.LM_EVAL_HEADING in files["md"].read_text() and report.LM_EVAL_HEADING in files["html"].read_text()
