"""The kill matrix (tests/kill_matrix.py) under pytest: every point, interrupted and
resumed, completes bitwise equal to the uninterrupted run with each step logged once."""

from __future__ import annotations

import pytest

from tests.conftest import run_dir, short_config
from tests.kill_matrix import MATRIX, interrupt_and_resume

pytestmark = pytest.mark.integration


IDS = [f"{sig.name}-{point.split(':')[0]}-{i}" for i, (point, sig) in enumerate(MATRIX)]


@pytest.mark.parametrize(("point", "sig"), MATRIX, ids=IDS)
def test_an_interrupted_run_resumes_to_the_same_weights(point, sig, tmp_path, reference):
    outcome = interrupt_and_resume(tmp_path, short_config(tmp_path), run_dir(tmp_path), reference, point, sig)
    assert outcome.interrupted_as_planned, outcome  # the point was reached and the signal ended the attempt
    assert outcome.bitwise_equal, outcome
    assert outcome.steps_once, outcome
    assert outcome.attempts_recorded, outcome
