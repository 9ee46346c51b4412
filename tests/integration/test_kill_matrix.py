"""The kill matrix (tests/kill_matrix.py) under pytest: every point, interrupted and
resumed, completes bitwise equal to the uninterrupted run with each step logged once."""

from __future__ import annotations

import pytest

from tests.conftest import run_dir, run_forge, short_config
from tests.kill_matrix import (
    KD_MATRIX,
    LM_MATRIX,
    LM_VARIANTS,
    MATRIX,
    RL_MATRIX,
    interrupt_and_resume,
    kd_config,
    lm_kd_config,
    lm_run_dir,
    lm_teacher,
    rl_config,
    rl_run_dir,
    rl_warm_start,
)

pytestmark = [pytest.mark.integration, pytest.mark.heavy]


def ids(matrix) -> list[str]:
    return [f"{sig.name}-{point.split(':')[0]}-{i}" for i, (point, sig) in enumerate(matrix)]


IDS = ids(MATRIX)


@pytest.mark.parametrize(("point", "sig"), MATRIX, ids=IDS)
def test_an_interrupted_run_resumes_to_the_same_weights(point, sig, tmp_path, reference):
    # interrupted as planned: the point was reached and the signal ended the attempt
    check(interrupt_and_resume(tmp_path, short_config(tmp_path), run_dir(tmp_path), reference, point, sig))


def check(outcome) -> None:
    assert outcome.interrupted_as_planned, outcome
    assert outcome.bitwise_equal, outcome
    assert outcome.steps_once, outcome
    assert outcome.attempts_recorded, outcome


@pytest.fixture(scope="module")
def kd_reference(tmp_path_factory):
    folder = tmp_path_factory.mktemp("kd_reference")
    result = run_forge("--config", str(kd_config(folder)), cwd=folder)
    assert result.returncode == 0, result.stderr
    return run_dir(folder)


@pytest.mark.parametrize(("point", "sig"), KD_MATRIX, ids=ids(KD_MATRIX))
def test_an_interrupted_kd_run_resumes_to_the_same_weights(point, sig, tmp_path, kd_reference):
    check(interrupt_and_resume(tmp_path, kd_config(tmp_path), run_dir(tmp_path), kd_reference, point, sig, "KD"))


@pytest.fixture(scope="module")
def rl_runs(tmp_path_factory):
    """(the complete SFT warm start's config, an uninterrupted GRPO run from it)"""
    warm = rl_warm_start(tmp_path_factory.mktemp("warm_start"))
    folder = tmp_path_factory.mktemp("rl_reference")
    result = run_forge("--config", str(rl_config(folder, warm)), cwd=folder, timeout=600)
    assert result.returncode == 0, result.stderr
    return warm, rl_run_dir(folder)


@pytest.mark.parametrize(("point", "sig"), RL_MATRIX, ids=ids(RL_MATRIX))
def test_an_interrupted_grpo_run_resumes_to_the_same_weights(point, sig, tmp_path, rl_runs):
    warm, reference = rl_runs
    config = rl_config(tmp_path, warm)
    check(interrupt_and_resume(tmp_path, config, rl_run_dir(tmp_path), reference, point, sig, "RL"))


@pytest.fixture(scope="module")
def lm_runs(tmp_path_factory):
    """(the complete LM teacher's config, {variant: an uninterrupted LM KD run from it})"""
    teacher_folder = tmp_path_factory.mktemp("lm_teacher")
    teacher = lm_teacher(teacher_folder)
    result = run_forge("--config", str(teacher), cwd=teacher_folder)
    assert result.returncode == 0, result.stderr
    references = {}
    for variant in LM_VARIANTS:
        folder = tmp_path_factory.mktemp(f"lm_reference_{variant}")
        result = run_forge("--config", str(lm_kd_config(folder, teacher, variant)), cwd=folder)
        assert result.returncode == 0, result.stderr
        references[variant] = lm_run_dir(folder)
    return teacher, references


LM_CASES = [(variant, point, sig) for variant in LM_VARIANTS for point, sig in LM_MATRIX]


@pytest.mark.parametrize(
    ("variant", "point", "sig"), LM_CASES, ids=[f"{v}-{i}" for v in LM_VARIANTS for i in ids(LM_MATRIX)]
)
def test_an_interrupted_lm_kd_run_resumes_to_the_same_weights(variant, point, sig, tmp_path, lm_runs):
    teacher, references = lm_runs
    config = lm_kd_config(tmp_path, teacher, variant)
    check(interrupt_and_resume(tmp_path, config, lm_run_dir(tmp_path), references[variant], point, sig, "LM KD"))
