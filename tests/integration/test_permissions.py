"""Every file forge writes into a run directory has the modes the user's umask gives (a
colleague on a shared cluster can read a teacher run's final model under umask 022)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys

import pytest

from tests.conftest import ROOT, TINY_CONFIG, run_dir, write_config

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("mask", [0o022, 0o077])
def test_every_file_of_a_run_follows_the_umask(tmp_path, mask):
    config = write_config(
        tmp_path,
        "short.yaml",
        f"""
        base: {TINY_CONFIG}
        output_root: {tmp_path / "outputs"}
        task:
          max_train_samples: 256
          max_eval_samples: 64
        training:
          max_steps: 8
          save_steps: 4
          logging_steps: 4
        """,
    )
    result = subprocess.run(
        [sys.executable, str(ROOT / "forge.py"), "--config", str(config)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=lambda: os.umask(mask),
    )
    assert result.returncode == 0, result.stderr
    run = run_dir(tmp_path)
    assert run.complete.exists() and (run.model / "model.safetensors").is_file()
    wrong = []
    for path in [run.root, *run.root.rglob("*")]:
        mode = stat.S_IMODE(path.lstat().st_mode)
        expected = (0o777 if path.is_dir() else 0o666) & ~mask
        if not path.is_symlink() and mode != expected:
            wrong.append(f"{path.relative_to(run.root)}: {oct(mode)}, expected {oct(expected)}")
    assert not wrong, "\n".join(wrong)
