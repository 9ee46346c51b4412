"""W&B: mode selection and no duplicated steps when a resumed attempt replays steps."""

import pytest

from forge.config import load_config
from forge.tracking import Tracker, resolve_mode
from tests.conftest import TINY_CONFIG


class FakeRun:
    def __init__(self):
        self.logged = []

    def log(self, metrics, step):
        self.logged.append(step)

    def finish(self, exit_code=0):
        pass


@pytest.fixture
def fake_wandb(monkeypatch):
    import wandb

    runs, inits = [], []

    def init(**kwargs):
        inits.append(kwargs)
        runs.append(FakeRun())
        return runs[-1]

    monkeypatch.setattr(wandb, "init", init)
    monkeypatch.setenv("WANDB_MODE", "offline")
    return runs, inits


def test_mode(monkeypatch):
    cfg = load_config(TINY_CONFIG)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    assert resolve_mode(cfg) == "offline"
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    assert resolve_mode(cfg) == "online"
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert resolve_mode(cfg) == "disabled"
    assert resolve_mode(load_config(TINY_CONFIG, {"wandb.mode": "disabled"})) == "disabled"  # WANDB_MODE wins


def test_a_resumed_attempt_continues_the_run_without_repeating_steps(fake_wandb, tmp_path):
    runs, inits = fake_wandb
    cfg = load_config(TINY_CONFIG)
    first = Tracker(cfg, "abc12345", tmp_path / "wandb", {})
    for step in (10, 20, 20, 30):  # two logs at step 20 (train and eval) both count
        assert first.log({"loss": 1.0}, step)
    # killed here; the next attempt resumes from checkpoint-20 and replays 21..30
    second = Tracker(cfg, "abc12345", tmp_path / "wandb", {})
    logged = [second.log({"loss": 1.0}, step) for step in (30, 40)]
    assert logged == [False, True]
    assert runs[0].logged == [10, 20, 20, 30] and runs[1].logged == [40]
    assert [i["id"] for i in inits] == ["abc12345", "abc12345"] and inits[1]["resume"] == "allow"


def test_a_dead_wandb_helper_is_a_warning_and_the_attempt_goes_on(fake_wandb, tmp_path, caplog):
    runs, _ = fake_wandb
    cfg = load_config(TINY_CONFIG)
    tracker = Tracker(cfg, "abc12345", tmp_path / "wandb", {})
    assert tracker.log({"loss": 1.0}, 10)

    def gone(*args, **kwargs):
        raise ConnectionResetError("Connection lost")

    runs[0].log = runs[0].finish = gone  # what wandb raises once SIGTERM took its service process
    assert tracker.log({"loss": 1.0}, 20)  # no exception: the step is in output.log and steps.jsonl
    assert "W&B stopped answering (ConnectionResetError: Connection lost)" in caplog.text
    assert not tracker.enabled
    tracker.update_summary({"x": 1})
    tracker.finish(exit_code=75)  # no exception either
    assert (tmp_path / "wandb" / "forge_last_step").read_text() == "10"  # what W&B really holds
