"""Creating and resuming a run directory: config checks, metadata, lock, registry."""

import json
import subprocess
import sys
import time

import pytest

from forge.config import dump_yaml, load_config
from forge.errors import ConfigError, Preempted, RunBusyError
from forge.run import registry
from forge.run.layout import RunDir
from forge.run.lock import RunLock
from forge.run.session import RunSession, load_stored_config
from tests.conftest import ROOT, TINY_CONFIG, write_config


@pytest.fixture
def config(tmp_path):
    return write_config(tmp_path, "cfg/run.yaml", f"base: {TINY_CONFIG}\noutput_root: {tmp_path / 'out'}\n")


def test_a_new_session_creates_the_run_directory(config, tmp_path):
    cfg = load_config(config)
    with RunSession(cfg, str(config)) as session:
        run = session.run
        assert run.root == tmp_path / "out" / "mnli" / "tiny" / "run"
        assert load_config(config) == cfg
        assert str(run.root.resolve()) in [e["run_dir"] for e in registry.incomplete_runs()]
    meta = json.loads(run.metadata.read_text())
    assert meta["config_path"] == str(config) and len(meta["wandb_run_id"]) == 8
    (attempt,) = meta["attempts"]
    assert attempt["exit_reason"] == "stage done" and attempt["exit_code"] == 0
    assert attempt["packages"]["torch"] and attempt["host"] and attempt["started_at"] <= attempt["ended_at"]
    assert "new run in" in run.log.read_text()


def test_resuming_records_another_attempt_and_keeps_the_wandb_id(config):
    cfg = load_config(config)
    with RunSession(cfg) as session:
        first_id = session.metadata.wandb_run_id
    with pytest.raises(Preempted), RunSession(cfg) as session:
        raise Preempted("stopped")
    meta = json.loads(session.run.metadata.read_text())
    assert meta["wandb_run_id"] == first_id
    assert [a["exit_code"] for a in meta["attempts"]] == [0, 75]
    assert meta["attempts"][1]["exit_reason"].startswith("preempted")


def test_every_attempt_of_a_stage_run_alone_keeps_its_own_log(config):
    """Snakemake empties a rule's log before each job; forge keeps each attempt's."""
    import logging

    cfg = load_config(config)
    log = logging.getLogger("forge.test")
    with pytest.raises(Preempted), RunSession(cfg, stage="train"):
        log.info("first attempt, stopped")
        raise Preempted("stopped")
    with RunSession(cfg, stage="train") as session:
        log.info("second attempt")
    run = session.run
    first, second = run.stage_log("train", 1).read_text(), run.stage_log("train", 2).read_text()
    assert "first attempt, stopped" in first and "second attempt" not in first
    assert "second attempt" in second and "first attempt" not in second
    assert "first attempt, stopped" in run.log.read_text() and "second attempt" in run.log.read_text()
    with RunSession(cfg):  # the whole pipeline in one process: output.log alone
        pass
    assert sorted(p.name for p in (run.root / "logs").iterdir()) == ["train.attempt-1.log", "train.attempt-2.log"]


def test_a_changed_config_is_refused_with_a_diff(config):
    with RunSession(load_config(config)) as session:
        pass
    changed = load_config(config, {"training.learning_rate": 0.5, "seed": 7})
    with pytest.raises(ConfigError) as info, RunSession(changed):
        pass
    message = str(info.value)
    assert "differs from the one this run started with" in message
    assert "training.learning_rate: 0.003 -> 0.5" in message and "seed: 42 -> 7" in message
    assert len(json.loads(session.run.metadata.read_text())["attempts"]) == 1  # nothing recorded


def test_safe_keys_may_change_on_resume(config):
    with RunSession(load_config(config)) as session:
        pass
    longer = load_config(config, {"training.max_steps": 999, "training.epochs": 5.0})
    with RunSession(longer):
        pass
    assert "max_steps: 999" in session.run.config.read_text()


def test_a_second_process_is_refused(config):
    cfg = load_config(config)
    run = RunSession(cfg).run
    run.root.mkdir(parents=True)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys,time\nfrom forge.run.lock import RunLock\nfrom forge.run.layout import RunDir\n"
            f"lock = RunLock(RunDir(__import__('pathlib').Path({str(run.root)!r}))).acquire()\n"
            "print('held', flush=True)\n"
            "time.sleep(60)",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(RunBusyError) as info, RunSession(cfg):
            pass
        assert f"pid {holder.pid}" in str(info.value) and "in use by another forge process" in str(info.value)
    finally:
        holder.kill()
        holder.wait()
    deadline = time.time() + 10
    while True:  # the kernel drops the lock with its holder
        try:
            with RunSession(cfg):
                break
        except RunBusyError:
            assert time.time() < deadline
            time.sleep(0.1)


def test_a_run_being_created_by_another_process_is_busy_not_an_old_version(config):
    """Its config.yaml written, its first attempt not recorded yet, the lock held by its
    creator: a second forge is told the run is busy (exit 3, which the SLURM profile retries),
    not that it began with other embedded artifacts (exit 2)."""
    cfg = load_config(config)
    run = RunSession(cfg).run
    run.root.mkdir(parents=True)
    run.config.write_text(dump_yaml(cfg))
    with RunLock(run), pytest.raises(RunBusyError):
        RunSession(cfg).__enter__()


@pytest.mark.parametrize("record", [None, "", '{"attempts": [{"attem', "[]"])
def test_a_run_whose_metadata_is_missing_or_damaged_resumes_with_a_new_record(config, record, caplog):
    """Stopped between its config.yaml and its first attempt (no run_metadata.json), or with
    the file cut short: the run resumes under a record begun again, and a damaged file is kept."""
    cfg = load_config(config)
    with RunSession(cfg) as session:
        pass
    run = session.run
    if record is None:
        run.metadata.unlink()
    else:
        run.metadata.write_text(record)
    with RunSession(cfg) as session:
        pass
    meta = json.loads(run.metadata.read_text())
    assert [a["exit_code"] for a in meta["attempts"]] == [0] and len(meta["wandb_run_id"]) == 8
    assert "resuming run in" in caplog.text
    damaged = run.metadata.with_name("run_metadata.json.damaged")
    assert damaged.exists() is (record is not None)
    if damaged.exists():
        assert damaged.read_text() == record and "run_metadata.json is damaged" in caplog.text


def test_stored_config_is_what_stages_read(config):
    cfg = load_config(config)
    with RunSession(cfg) as session:
        pass
    from forge.run.session import load_stored_config

    assert load_stored_config(RunDir(session.run.root)) == cfg


def test_finalize_refuses_a_checkpoint_that_is_not_the_end_of_training(config):
    from forge.errors import ForgeError
    from forge.run.state import TrainingState
    from forge.stages import finalize
    from tests.unit.test_state import fake_checkpoint

    with RunSession(load_config(config)) as session:
        fake_checkpoint(session.run, 10)
        state = TrainingState.load(session.run)
        state.global_step = 20
        state.save(session.run)
        with pytest.raises(
            ForgeError, match="training ended at step 20, but the newest safe checkpoint is checkpoint-10"
        ):
            finalize.run(session)
        assert not session.run.model.exists()


def test_a_run_begun_with_other_embedded_artifacts_is_refused_not_mixed(tmp_path):
    from forge import embedded

    cfg = load_config(TINY_CONFIG, {"output_root": str(tmp_path / "out")})
    with RunSession(cfg) as session:
        pass
    meta = json.loads(session.run.metadata.read_text())
    assert meta["embedded_version"] == embedded.VERSION and meta["seeds"] == {"seed": 42, "data_seed": 42}
    del meta["embedded_version"]  # as a run made before forge recorded it: version 3
    session.run.metadata.write_text(json.dumps(meta))
    with pytest.raises(
        ConfigError,
        match=f"began with the embedded artifacts of version 3, this forge builds version {embedded.VERSION}",
    ):
        RunSession(cfg).__enter__()


def test_a_damaged_upstream_record_is_one_line(tmp_path):
    from forge.errors import ForgeError
    from forge.run import upstream
    from forge.run.layout import RunDir

    run = RunDir(tmp_path)
    for text in ("{not json", "[1, 2]", '{"teacher": {"nope": 1}}'):
        run.upstream.write_text(text)
        with pytest.raises(ForgeError, match="upstream.json: damaged; remove it"):
            upstream.recorded(run)


@pytest.mark.parametrize("damage", ["task: [unclosed\n", "", "\udcff"])
def test_a_damaged_config_yaml_is_written_again_from_the_config_the_run_began_with(config, damage, caplog):
    """Not YAML, empty, not text: the config the run began with (run_metadata.json's hash says
    which) writes it again and the run resumes; another config is told which one to use."""
    cfg = load_config(config)
    with RunSession(cfg, str(config)) as session:
        pass
    run = session.run
    run.config.write_text(damage, errors="surrogateescape")
    began = rf"run again with the config this run began with \(forge --config {config}\)"
    with pytest.raises(ConfigError, match=f"is damaged .*{began}"):
        RunSession(load_config(config, {"seed": 7})).__enter__()
    with RunSession(cfg):
        pass
    assert load_stored_config(run) == cfg and "config.yaml is damaged" in caplog.text
    assert run.config.with_name("config.yaml.damaged").read_text(errors="surrogateescape") == damage
    assert len(json.loads(run.metadata.read_text())["attempts"]) == 2


def test_resume_of_a_run_whose_config_yaml_is_damaged_names_the_command_that_writes_it_again(
    config, capsys, signals_restored
):
    from forge.cli import main

    with RunSession(load_config(config), str(config)) as session:
        pass
    session.run.config.write_text("task: [unclosed\n")
    capsys.readouterr()  # what the session said (an earlier test's console may still be set up)
    assert main(["--resume", str(session.run.root)]) == 2
    err = capsys.readouterr().err
    (line,) = err.strip().splitlines()
    assert line.startswith(f"forge: {session.run.config}") and f"(forge --config {config}) to write it again" in line
