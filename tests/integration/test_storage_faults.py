"""A checkpoint write that fails half way (no space left on the device, after the model
file and before the optimizer state) costs nothing: the previous safe checkpoint stays
the resume point, and the resumed run ends bitwise equal to an uninterrupted one."""

from __future__ import annotations

import json
import sys

import pytest

from tests.conftest import ROOT, assert_bitwise_equal, forge_here, run_dir, short_config

pytestmark = pytest.mark.integration

# Runs forge.py with the trainer's optimizer-state save failing at its second checkpoint.
FULL_DISK = """
import errno, runpy, sys
from transformers import Trainer

original, saves = Trainer._save_optimizer_and_scheduler, []

def full_disk(self, output_dir):
    saves.append(output_dir)
    if len(saves) == 2:
        raise OSError(errno.ENOSPC, "No space left on device", output_dir)
    return original(self, output_dir)

Trainer._save_optimizer_and_scheduler = full_disk
sys.argv = [{forge!r}, *sys.argv[1:]]
runpy.run_path({forge!r}, run_name="__main__")
"""


def test_a_checkpoint_that_fails_mid_write_leaves_the_previous_one_to_resume_from(tmp_path, reference):
    import subprocess

    from forge.run.state import checkpoint_problem

    script = tmp_path / "full_disk.py"
    script.write_text(FULL_DISK.format(forge=str(ROOT / "forge.py")))
    config = short_config(tmp_path)
    run = run_dir(tmp_path)
    failed = subprocess.run(
        [sys.executable, str(script), "--config", str(config)], cwd=tmp_path, capture_output=True, text=True
    )
    assert failed.returncode == 1, failed.stderr
    assert "No space left on device" in failed.stderr and "Traceback" not in failed.stderr
    assert run.latest_checkpoint.read_text().strip() == "checkpoint-20"
    assert checkpoint_problem(run.checkpoint(20)) is None
    assert (run.checkpoint(40) / "model.safetensors").exists()  # written before the failure...
    assert checkpoint_problem(run.checkpoint(40)) is not None  # ...and never marked safe
    assert json.loads(run.metadata.read_text())["attempts"][-1]["exit_reason"].startswith("failed: OSError")

    resumed = forge_here("--resume", str(run.root), cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming training from checkpoint-20" in resumed.stderr
    assert_bitwise_equal(run, reference)
