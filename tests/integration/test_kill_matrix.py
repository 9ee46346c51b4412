"""The kill matrix (tests/kill_matrix.py) under pytest: each chain of interruptions, resumed
attempt by attempt, completes bitwise equal to the uninterrupted run with each step logged
once and each attempt recorded."""

from __future__ import annotations

import pytest

from tests.kill_matrix import kinds, reference_run, run_chain

pytestmark = [pytest.mark.integration, pytest.mark.heavy]

NAMES = [kind.name for kind in kinds(None)]


@pytest.mark.parametrize("name", NAMES)
def test_a_run_interrupted_at_every_point_of_its_chain_resumes_to_the_same_weights(name, tmp_path, warm_start):
    (kind,) = [k for k in kinds(warm_start) if k.name == name]
    (tmp_path / "reference").mkdir()
    (tmp_path / "chain").mkdir()
    outcome = run_chain(tmp_path / "chain", kind, reference_run(tmp_path / "reference", kind))
    assert outcome.ok, outcome.describe()
