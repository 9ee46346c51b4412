"""The curves of `forge report`: from metrics/steps.jsonl, or from output.log for older runs."""

from forge.report import curves_of, step_records
from forge.run import steplog
from forge.run.layout import RunDir


def test_curves_keep_the_last_value_logged_for_a_step():
    records = [{"step": 10, "loss": 2.0}, {"step": 20, "loss": 1.5}, {"step": 20, "loss": 1.4, "eval_loss": 1.6}]
    assert curves_of(records) == {"loss": [(10, 2.0), (20, 1.4)], "eval_loss": [(20, 1.6)]}


def test_a_run_without_a_step_log_is_read_from_its_output_log(tmp_path):
    run = RunDir(tmp_path)
    run.log.write_text(
        "2026-11-26 07:12:23,933 INFO forge.train: step 50/300 loss=4.796 grad_norm=1.396 epoch=0.4\n"
        "2026-11-26 07:12:24,000 INFO forge: stage train: starting\n"
        "2026-11-26 07:12:39,916 INFO forge.train: step 100/300 eval_loss=2.466 eval_runtime=0.16\n"
    )
    assert step_records(run) == [
        {"step": 50, "loss": 4.796, "grad_norm": 1.396, "epoch": 0.4},
        {"step": 100, "eval_loss": 2.466, "eval_runtime": 0.16},
    ]


def test_a_resumed_attempt_drops_the_steps_after_its_checkpoint_and_a_cut_line(tmp_path):
    run = RunDir(tmp_path)
    for step in (10, 20, 30):
        steplog.append(run, step, {"loss": 1.0 / step})
    with steplog.path_of(run).open("a") as fh:
        fh.write('{"step": 40, "lo')  # the kill came mid-write
    assert [r["step"] for r in steplog.read(run)] == [10, 20, 30]
    steplog.keep_up_to(run, 20)
    assert [r["step"] for r in steplog.read(run)] == [10, 20]
    steplog.append(run, 30, {"loss": 0.5})
    assert steplog.read(run)[-1] == {"step": 30, "loss": 0.5}


def test_a_resumed_attempt_drops_the_summary_of_the_attempt_stopped_at_its_checkpoint(tmp_path):
    """A signal stops training at step 25 and saves there: the trainer logs its end-of-training
    summary at 25. The run goes on from 25, so that summary is not a record of the run."""
    run = RunDir(tmp_path)
    steplog.append(run, 20, {"loss": 0.5})
    steplog.append(run, 25, {"eval_loss": 0.4})
    steplog.append(run, 25, {"train_runtime": 3.0, "train_loss": 0.6})
    steplog.keep_up_to(run, 25)
    assert steplog.read(run) == [{"step": 20, "loss": 0.5}, {"step": 25, "eval_loss": 0.4}]
