"""`forge status` over run directories in every state, made by really running, stopping,
killing and breaking tiny runs."""

from __future__ import annotations

import json
import shutil
import signal

import pytest

from tests.conftest import forge_here, run_dir, short_config, start_forge, wait_for

pytestmark = pytest.mark.integration


def status(*paths, cwd, flags=()) -> dict[str, dict]:
    result = forge_here("status", *map(str, paths), "--json", *flags, cwd=cwd)
    assert result.returncode == 0, result.stderr
    return {row["run"].rsplit("/", 1)[1]: row for row in json.loads(result.stdout)}


def test_status_reports_each_run_as_it_is(tmp_path, reference):
    outputs = tmp_path / "outputs"

    # preempted: SIGUSR1 after the first checkpoint
    preempted = run_dir(tmp_path, "preempted")
    proc = start_forge("--config", str(short_config(tmp_path, "preempted.yaml")), cwd=tmp_path)
    wait_for(preempted.latest_checkpoint.exists, proc=proc)
    proc.send_signal(signal.SIGUSR1)
    assert proc.wait(timeout=120) == 76

    # running, then killed: SIGKILL after the first checkpoint
    killed = run_dir(tmp_path, "killed")
    proc = start_forge("--config", str(short_config(tmp_path, "killed.yaml")), cwd=tmp_path)
    wait_for(killed.latest_checkpoint.exists, proc=proc)
    live = status(outputs, cwd=tmp_path)["killed"]
    assert (live["state"], live["stage"]) == ("running", "train") and live["step"] >= 20
    proc.send_signal(signal.SIGKILL)
    proc.wait()

    # failed: a split of its prepared data vanished before pre_eval (a bad input is refused
    # before a run exists; a whole data/ deleted is prepared again)
    failed_config, failed = short_config(tmp_path, "failed.yaml"), run_dir(tmp_path, "failed")
    assert forge_here("stage", "prepare_data", "--config", str(failed_config), cwd=tmp_path).returncode == 0
    shutil.rmtree(failed.data / "validation_matched")
    assert forge_here("stage", "pre_eval", "--config", str(failed_config), cwd=tmp_path).returncode == 1

    # pending: one stage run alone, as a Snakemake job would
    pending_config = short_config(tmp_path, "pending.yaml")
    assert forge_here("stage", "prepare_data", "--config", str(pending_config), cwd=tmp_path).returncode == 0

    rows = status(outputs, reference.root, cwd=tmp_path)
    assert set(rows) == {"preempted", "killed", "failed", "pending", "short"}
    done = rows["short"]
    assert (done["state"], done["stage"], done["step"], done["max_steps"]) == ("complete", None, 120, 120)
    assert (done["mode"], done["task"], done["metric"], done["attempts"]) == ("sft", "mnli", "accuracy", 1)
    assert done["pre"] is not None and done["post"] > done["pre"]
    assert rows["preempted"]["state"] == "preempted" and rows["preempted"]["preemptions"] == 1
    assert rows["preempted"]["stage"] == "train" and rows["preempted"]["step"] >= 20
    assert rows["preempted"]["pre"] is not None and rows["preempted"]["post"] is None
    assert (rows["killed"]["state"], rows["killed"]["stage"]) == ("killed", "train")
    assert rows["failed"]["state"] == "failed" and rows["failed"]["stage"] == "pre_eval"
    assert rows["failed"]["step"] is None and rows["failed"]["last_exit"].startswith("failed: FileNotFoundError")
    pending = rows["pending"]
    assert (pending["state"], pending["stage"], pending["step"]) == ("pending", "pre_eval", None)

    # the filters, and the table a person reads
    assert set(status(outputs, reference.root, cwd=tmp_path, flags=["--incomplete"])) == set(rows) - {"short"}
    assert set(status(outputs, cwd=tmp_path, flags=["--failed"])) == {"failed", "killed"}
    table = forge_here("status", str(outputs), cwd=tmp_path)
    assert table.returncode == 0 and "preempted" in table.stdout and "outputs/mnli/tiny/killed" in table.stdout

    # the killed run resumes to completion; each training step is logged once
    assert forge_here("--resume", str(killed.root), cwd=tmp_path).returncode == 0
    after = status(killed.root, cwd=tmp_path)["killed"]
    assert (after["state"], after["attempts"], after["step"]) == ("complete", 2, 120)
    from forge.run import steplog

    losses = [r["step"] for r in steplog.read(killed) if "loss" in r]
    assert losses == list(range(10, 121, 10))
