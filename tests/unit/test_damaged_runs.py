"""A run directory damaged from outside (a deleted final model, deleted prepared data): status
says so, and running the run again rebuilds what is missing from what is left."""

from __future__ import annotations

import shutil

from forge.run.layout import RunDir
from tests.conftest import assert_bitwise_equal, forge_here


def test_a_deleted_final_model_shows_as_damaged_and_a_resume_rebuilds_it_bitwise(reference, tmp_path):
    from forge import status

    run = RunDir(tmp_path / "run")
    shutil.copytree(reference.root, run.root)
    shutil.rmtree(run.model)
    assert status.status_of(run.root).state == "damaged"

    result = forge_here("--resume", str(run.root), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    err = result.stderr
    assert f"{run.model} is missing: finalize runs again" in err
    assert "stage finalize: starting" in err and "stage post_eval: starting" in err
    assert "stage train: already done" in err and "stage prepare_data: already done" in err
    assert_bitwise_equal(run, reference)  # from the same last checkpoint
    assert status.status_of(run.root).state == "complete"

    shutil.rmtree(run.data)  # a finished run's prepared data, deleted to free space: nothing to redo
    again = forge_here("--resume", str(run.root), cwd=tmp_path)
    assert again.returncode == 0 and "already complete; nothing to do" in again.stderr, again.stderr
