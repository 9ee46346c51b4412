"""The resume decision: which checkpoint is safe, which one a resumed run starts from."""

import json
import logging

import pytest

from forge.run.layout import STAGES, RunDir
from forge.run.state import (
    COMPLETE_MARK,
    TrainingState,
    checkpoint_problem,
    discard_checkpoints_after,
    find_resume_checkpoint,
    mark_checkpoint_complete,
    mark_pipeline_complete,
    mark_stage_done,
    plan,
    prune_checkpoints,
    reopen_lost,
    set_latest_checkpoint,
)


@pytest.fixture
def run(tmp_path) -> RunDir:
    tmp_path.mkdir(exist_ok=True)
    return RunDir(tmp_path)


def fake_checkpoint(run: RunDir, step: int, complete: bool = True, latest: bool = True):
    path = run.checkpoint(step)
    path.mkdir()
    (path / "model.safetensors").write_bytes(b"w" * 1000)
    (path / "optimizer.pt").write_bytes(b"o" * 2000)
    (path / "trainer_state.json").write_text(f'{{"global_step": {step}}}')
    if complete:
        mark_checkpoint_complete(path, step)
        if latest:
            set_latest_checkpoint(run, path)
    return path


def test_a_marked_checkpoint_is_safe(run):
    assert checkpoint_problem(fake_checkpoint(run, 10)) is None


def test_unmarked_truncated_or_missing_files_are_unsafe(run):
    assert "never marked complete" in checkpoint_problem(fake_checkpoint(run, 10, complete=False))
    truncated = fake_checkpoint(run, 20)
    with (truncated / "model.safetensors").open("r+b") as fh:
        fh.truncate(500)
    assert checkpoint_problem(truncated) == "model.safetensors is 500 bytes, 1000 were written"
    missing = fake_checkpoint(run, 30)
    (missing / "optimizer.pt").unlink()
    assert checkpoint_problem(missing) == "optimizer.pt is missing"
    garbled = fake_checkpoint(run, 40)
    (garbled / COMPLETE_MARK).write_text("{not json")
    assert "unreadable" in checkpoint_problem(garbled)


def test_resume_follows_the_latest_marker(run):
    fake_checkpoint(run, 10)
    newest = fake_checkpoint(run, 20)
    assert run.latest_checkpoint.read_text().strip() == "checkpoint-20"
    assert find_resume_checkpoint(run) == newest


def test_an_incomplete_newest_checkpoint_is_skipped_with_a_warning(run, caplog):
    safe = fake_checkpoint(run, 10)
    fake_checkpoint(run, 20, complete=False)  # killed while saving: marker still names 10
    with caplog.at_level(logging.WARNING, logger="forge.run"):
        assert find_resume_checkpoint(run) == safe
    assert "skipping checkpoint-20" in caplog.text


def test_a_damaged_marked_checkpoint_falls_back_to_the_scan(run, caplog):
    safe = fake_checkpoint(run, 10)
    damaged = fake_checkpoint(run, 20)
    (damaged / "model.safetensors").write_bytes(b"short")
    with caplog.at_level(logging.WARNING, logger="forge.run"):
        assert find_resume_checkpoint(run) == safe
    assert "latest_checkpoint names checkpoint-20" in caplog.text


def test_without_a_marker_the_scan_finds_the_newest_safe_checkpoint(run):
    fake_checkpoint(run, 10, latest=False)
    newest = fake_checkpoint(run, 30, latest=False)
    fake_checkpoint(run, 40, complete=False)
    assert not run.latest_checkpoint.exists()
    assert find_resume_checkpoint(run) == newest


def test_a_safe_checkpoint_newer_than_a_stale_marker_wins(run):
    fake_checkpoint(run, 10)
    newer = fake_checkpoint(run, 20, latest=False)  # marked, but killed before the marker moved
    assert find_resume_checkpoint(run) == newer


def test_no_checkpoint_means_from_scratch(run):
    assert find_resume_checkpoint(run) is None
    fake_checkpoint(run, 5, complete=False)
    assert find_resume_checkpoint(run) is None


def test_leftovers_after_the_resume_point_are_removed(run):
    keep = fake_checkpoint(run, 10)
    fake_checkpoint(run, 20, complete=False)
    discard_checkpoints_after(run, 10)
    assert [p for _, p in run.checkpoints()] == [keep]


def test_pruning_keeps_the_newest_safe_checkpoints(run):
    for step in (10, 20, 30):
        fake_checkpoint(run, step)
    partial = fake_checkpoint(run, 40, complete=False)
    prune_checkpoints(run, keep=2)
    assert [s for s, _ in run.checkpoints()] == [40, 30, 20]
    assert partial.exists()


def test_plan_walks_the_stages(run):
    assert plan(run).pending == STAGES and plan(run).checkpoint is None
    run.data.mkdir()
    run.model.mkdir()
    mark_stage_done(run, "prepare_data")
    mark_stage_done(run, "pre_eval")
    ckpt = fake_checkpoint(run, 10)
    p = plan(run)
    assert p.pending == ("train", "finalize", "post_eval") and p.checkpoint == ckpt
    assert p.describe() == "resume from checkpoint-10; to run: train, finalize, post_eval"
    for stage in ("train", "finalize", "post_eval"):
        mark_stage_done(run, stage)
    assert all(run.stage_marker(stage).exists() for stage in STAGES)
    mark_pipeline_complete(run)
    assert plan(run).complete and plan(run).describe() == "complete: nothing to do"


@pytest.mark.parametrize(
    "deleted, done, again",
    [
        (["model"], STAGES, ["finalize", "post_eval"]),
        (["model", "data"], STAGES, ["prepare_data", "finalize", "post_eval"]),  # finalize reads the labels
        (["data"], STAGES, []),  # a finished run's data/, deleted to free space
        (["data"], STAGES[:2], ["prepare_data", "train", "finalize", "post_eval"]),
        ([], STAGES, []),
    ],
)
def test_a_deleted_final_model_or_needed_data_makes_its_stage_run_again(run, deleted, done, again, caplog):
    """A complete run whose model/ was deleted is not complete: the plan runs finalize again
    (and post_eval, which evaluates it), and reopening unmarks them. Deleted data/ is prepared
    again while a stage that reads it is still to run."""
    run.data.mkdir()
    run.model.mkdir()
    fake_checkpoint(run, 10)
    for stage in done:
        mark_stage_done(run, stage)
    if done == STAGES:
        mark_pipeline_complete(run)
    for name in deleted:
        getattr(run, name).rmdir()
    complete = done == STAGES and not again
    assert plan(run).complete is complete and list(plan(run).pending) == ([] if complete else again)
    reopened = [s for s in again if s in done]
    assert reopen_lost(run) == reopened
    assert [s for s in STAGES if not run.stage_marker(s).exists()] == again
    assert run.complete.exists() is complete
    assert all(f"{name} is missing" in caplog.text for name in deleted if reopened)
    assert bool(caplog.text) is bool(reopened)


def test_peak_metrics_keep_the_best_in_each_direction():
    state = TrainingState()
    better = {"eval_accuracy": True, "eval_loss": False}
    assert state.update_peak({"eval_accuracy": 0.5, "eval_loss": 1.0}, 10, better)
    assert state.update_peak({"eval_accuracy": 0.4, "eval_loss": 0.8}, 20, better)
    assert not state.update_peak({"eval_accuracy": 0.45, "eval_loss": 0.9, "other": 1}, 30, better)
    assert state.peak_metrics == {
        "eval_accuracy": {"value": 0.5, "step": 10},
        "eval_loss": {"value": 0.8, "step": 20},
    }


def test_training_state_round_trips(run):
    state = TrainingState(global_step=7, max_steps=9)
    state.peak_metrics["eval_accuracy"] = {"value": 0.9, "step": 7}
    state.save(run)
    assert TrainingState.load(run) == state


@pytest.mark.parametrize("damage", [b"", b'{"global_step": 4', b"\xff\xfe garbage", b"[1, 2]", b'{"global_step": "x"}'])
def test_a_damaged_training_state_is_rebuilt_from_the_checkpoints(run, damage, caplog):
    """Empty, cut short, not text, not an object, a wrong value: the newest safe checkpoint
    says where training got to (a file written by an earlier forge, with the stages and the
    latest checkpoint mirrored in it, still reads as it is)."""
    fake_checkpoint(run, 4)
    fake_checkpoint(run, 6)
    run.state.write_bytes(damage)
    assert TrainingState.load(run) == TrainingState(global_step=6)
    assert "training_state.json is damaged" in caplog.text
    assert "rebuilt from the run's checkpoints (step 6)" in caplog.text
    run.state.write_text(json.dumps({"stages": {"train": "t"}, "global_step": 6, "latest_checkpoint": "checkpoint-6"}))
    assert TrainingState.load(run).global_step == 6


def test_following_the_umask_keeps_a_shared_folders_group_bit(tmp_path):
    import os
    import stat

    from forge.run.files import follow_umask

    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o2770)
    (shared / "model.safetensors").write_bytes(b"x")
    os.chmod(shared / "model.safetensors", 0o600)
    old = os.umask(0o022)
    try:
        follow_umask(shared)
    finally:
        os.umask(old)
    assert stat.S_IMODE(shared.stat().st_mode) == 0o2755
    assert stat.S_IMODE((shared / "model.safetensors").stat().st_mode) == 0o644
