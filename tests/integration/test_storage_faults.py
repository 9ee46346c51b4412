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
    assert "no space left on device while saving checkpoint-40" in failed.stderr and "Traceback" not in failed.stderr
    assert run.latest_checkpoint.read_text().strip() == "checkpoint-20"
    assert checkpoint_problem(run.checkpoint(20)) is None
    assert not run.checkpoint(40).exists()  # never marked safe: removed (a resume would drop it too)
    assert json.loads(run.metadata.read_text())["attempts"][-1]["exit_reason"].startswith("error: no space left")

    resumed = forge_here("--resume", str(run.root), cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming training from checkpoint-20" in resumed.stderr
    assert_bitwise_equal(run, reference)


# Runs forge.py with the run's disk (a small tmpfs) filling up at its second checkpoint, between
# the model file and the optimizer state: every write after that fails for real (the
# checkpoint, output.log, run_metadata.json) until forge frees what it can.
FILL_DISK = """
import errno, os, runpy, sys
from transformers import Trainer

original, saves = Trainer._save_optimizer_and_scheduler, []

def fill_then_save(self, output_dir):
    saves.append(output_dir)
    if len(saves) == 2:
        fd, size = os.open({filler!r}, os.O_WRONLY | os.O_CREAT), 1 << 20
        while size:
            try:
                os.write(fd, b"0" * size)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
                size //= 2
        os.close(fd)
    return original(self, output_dir)

Trainer._save_optimizer_and_scheduler = fill_then_save
sys.argv = [{forge!r}, *sys.argv[1:]]
runpy.run_path({forge!r}, run_name="__main__")
"""


@pytest.fixture
def small_disk(tmp_path):
    """tmp_path/outputs on a 64 MB tmpfs of its own (mounting needs root, as CI runs)."""
    import subprocess

    disk = tmp_path / "outputs"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(disk)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], check=True)


def test_a_full_disk_while_saving_is_one_line_recorded_and_the_run_resumes_once_space_is_freed(
    tmp_path, small_disk, reference
):
    import subprocess

    script = tmp_path / "fill_disk.py"
    filler = small_disk / "filler"
    script.write_text(FILL_DISK.format(forge=str(ROOT / "forge.py"), filler=str(filler)))
    config, run = short_config(tmp_path), run_dir(tmp_path)
    failed = subprocess.run(
        [sys.executable, str(script), "--config", str(config)], cwd=tmp_path, capture_output=True, text=True
    )
    assert failed.returncode == 1, failed.stderr
    after = failed.stderr.split("checkpoint checkpoint-20 complete\n")[1]
    errors = [line for line in after.splitlines() if not line.startswith("forge: step ")]
    assert "Traceback" not in failed.stderr and "Logging error" not in failed.stderr, failed.stderr
    assert errors[-1].startswith("forge: no space left on device while saving checkpoint-40 ("), errors
    assert errors[-1].endswith("checkpoint-20 is safe; free space and run again"), errors
    assert len(errors) <= 3, errors  # the checkpoint removed, output.log's failure at most, the error
    assert not run.checkpoint(40).exists()  # never complete: removed, its room used to record the attempt
    attempt = json.loads(run.metadata.read_text())["attempts"][-1]
    assert attempt["outcome"] == "error" and attempt["exit_reason"].startswith("error: no space left on device")

    filler.unlink()
    resumed = forge_here("--resume", str(run.root), cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming training from checkpoint-20" in resumed.stderr
    assert_bitwise_equal(run, reference)
