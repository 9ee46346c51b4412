"""forge status' reading of run directories (the integration test makes real ones)."""

import json
import os
import socket

from forge import status
from forge.cli import main

IDENTITY = {"task": "ocr", "model": "tiny", "mode": "sft", "max_steps": 50}


def fake_run(root, attempts=(), owner=None, **files):
    root.mkdir(parents=True)
    (root / "config.yaml").write_text("task: {name: ocr}\nstudent: {name: tiny}\ntraining: {max_steps: 50}\n")
    meta = {"wandb_run_id": "abc", "identity": IDENTITY, "attempts": list(attempts)}
    (root / "run_metadata.json").write_text(json.dumps(meta))
    if owner is not None:
        (root / ".lock.owner").write_text(json.dumps(owner))
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def test_a_run_older_than_the_recorded_identity_gets_it_from_its_config_as_a_run_would(tmp_path):
    from forge.config import dump_yaml, load_config
    from tests.conftest import ROOT

    for name, mode in (("classification/mnli/tiny/01_kd.yaml", "kd"), ("reasoning/gsm8k/tiny/01_grpo.yaml", "rl")):
        run = fake_run(tmp_path / mode)
        (run / "run_metadata.json").write_text(json.dumps({"attempts": []}))  # no identity
        (run / "config.yaml").write_text(dump_yaml(load_config(ROOT / "configs" / name)))
        row = status.status_of(run)
        assert (row.mode, row.model, row.max_steps) == (
            mode,
            "tiny",
            load_config(ROOT / "configs" / name).training.max_steps,
        )


def test_the_state_comes_from_the_attempts_outcome_not_its_wording(tmp_path):
    worded = {"outcome": "preempted", "exit_reason": "stopped, as it happens", "ended_at": "t"}
    assert status.status_of(fake_run(tmp_path / "a", [worded])).state == "preempted"
    failed = {"outcome": "error", "exit_reason": "preempted? no", "ended_at": "t"}
    assert status.status_of(fake_run(tmp_path / "b", [failed])).state == "failed"
    legacy = {"exit_reason": "time limit (SIGUSR1)", "ended_at": "t"}  # recorded before outcomes
    assert status.status_of(fake_run(tmp_path / "c", [legacy])).state == "preempted"


def test_runs_are_found_without_descending_into_them(tmp_path):
    run = fake_run(tmp_path / "outputs/ocr/tiny/a")
    fake_run(run / "checkpoint-10" / "nested")  # inside a run: not a run of its own
    fake_run(tmp_path / "outputs/ocr/tiny/b")
    (tmp_path / "outputs/ocr/tiny/not_a_run").mkdir()
    assert [p.name for p in status.find_runs([tmp_path / "outputs"])] == ["a", "b"]


def test_an_owner_file_left_by_a_dead_process_is_not_a_running_run(tmp_path):
    dead = {"pid": 2**22 + 12345, "host": socket.gethostname()}  # beyond pid_max's default
    attempt = {"exit_reason": None, "ended_at": None}
    row = status.status_of(fake_run(tmp_path / "a", [attempt], owner=dead))
    assert (row.state, row.mode, row.task, row.max_steps) == ("killed", "sft", "ocr", 50)
    alive = {"pid": os.getpid(), "host": socket.gethostname()}
    assert status.status_of(fake_run(tmp_path / "b", [attempt], owner=alive)).state == "running"


def test_the_main_metric_and_the_safe_step_are_read(tmp_path):
    ended = {"exit_reason": "time limit (SIGUSR1)", "ended_at": "t"}
    run = fake_run(
        tmp_path / "a",
        [ended],
        latest_checkpoint="checkpoint-40\n",
        **{"metrics/pre_eval.json": json.dumps({"test": {"cer": 1.0}}), "stages/prepare_data.done": ""},
    )
    row = status.status_of(run)
    assert (row.state, row.stage, row.step, row.preemptions) == ("preempted", "pre_eval", 40, 1)
    assert (row.metric, row.pre, row.post) == ("cer", 1.0, None)
    cells = status.rows([row], tmp_path)[0]
    assert cells["run"] == "a" and cells["safe step"] == "40/50" and cells["metric"] == "cer 1.000 → -"


def test_a_missing_path_is_one_line_and_exit_2(tmp_path, capsys):
    assert main(["status", str(tmp_path / "nope")]) == 2
    assert capsys.readouterr().err.strip() == f"forge status: no such file or directory: {tmp_path / 'nope'}"


def test_damaged_files_give_what_can_be_read_not_a_crash(tmp_path):
    run = fake_run(tmp_path / "a", [{"exit_reason": "stage done", "ended_at": "t"}, "junk"])
    (run / "run_metadata.json").write_text(json.dumps({"identity": [1], "attempts": [{"ended_at": None}, 3]}))
    (run / "config.yaml").write_bytes(b"\x89PNG\x00\xff")  # not text
    (run / "training_state.json").write_text("[1, 2")
    (run / "metrics").mkdir()
    (run / "metrics" / "pre_eval.json").write_text('{"test": {"cer": "many"}}')
    row = status.status_of(run)
    assert (row.state, row.attempts, row.mode, row.pre, row.max_steps) == ("killed", 1, None, None, None)


def test_a_holder_on_another_host_is_running_while_it_writes_then_silent(tmp_path):
    elsewhere = {"pid": 1, "host": "some-compute-node"}
    attempt = {"exit_reason": None, "ended_at": None}
    run = fake_run(tmp_path / "a", [attempt], owner=elsewhere, **{"output.log": "step 10\n"})
    assert status.status_of(run).state == "running"
    old = status.time.time() - status.SILENT_AFTER_S - 60
    for name in ("output.log", "run_metadata.json"):
        os.utime(run / name, (old, old))
    assert status.status_of(run).state == "silent"
    assert [r.state for r in status.select([status.status_of(run)], failed=True)] == ["silent"]


def test_runs_named_like_run_folders_are_found_once_through_a_symlink(tmp_path):
    fake_run(tmp_path / "scratch/outputs/ocr/tiny/data")
    fake_run(tmp_path / "scratch/outputs/ocr/tiny/model")
    (tmp_path / "outputs").symlink_to(tmp_path / "scratch/outputs")
    found = status.find_runs([tmp_path / "outputs", tmp_path / "scratch/outputs/ocr/tiny/data"])
    assert [p.name for p in found] == ["data", "model"]
