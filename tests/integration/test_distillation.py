"""KD end to end: a teacher that is another offline run, through forge.py and Snakemake;
alpha 0 never loads the teacher and equals SFT."""

from __future__ import annotations

import json

import pytest

from tests.conftest import (
    TINY_CONFIG,
    assert_bitwise_equal,
    forge_here,
    kill_mid_training,
    lm_kd_config,
    resume_to_completion,
    run_dir,
    short_config,
    write_config,
)

pytestmark = pytest.mark.integration


def kd_pair(folder, teacher_cache: bool = True, top_k: int | None = None):
    """configs/teacher.yaml (the wide tiny model, briefly trained) and configs/kd.yaml."""
    configs = folder / "configs"
    write_config(
        configs,
        "teacher.yaml",
        f"""
        base: {TINY_CONFIG}
        output_root: {folder / "outputs"}
        student:
          name: tiny-wide
          path: embedded:tiny-distilbert-wide
        task:
          max_eval_samples: 100
        training:
          max_steps: 40
          save_steps: 20
          learning_rate: 1.0e-3
        """,
    )
    return write_config(
        configs,
        "kd.yaml",
        f"""
        base: {TINY_CONFIG}
        output_root: {folder / "outputs"}
        teacher:
          run: ./teacher.yaml
        distillation:
          alpha: 0.5
          temperature: 2.0
          teacher_cache: {str(teacher_cache).lower()}
          cache_top_k: {top_k or "null"}
        task:
          max_eval_samples: 100
        training:
          max_steps: 40
          save_steps: 20
          logging_steps: 10
        """,
    )


def check_kd_run(folder, teacher_cache: bool = True) -> None:
    run, teacher = run_dir(folder, "kd"), folder / "outputs/mnli/tiny-wide/teacher"
    assert (teacher / "pipeline_complete").exists() and run.complete.exists()
    teacher_metrics = json.loads((run.metrics / "teacher_pre_eval.json").read_text())
    assert teacher_metrics == {**json.loads((teacher / "metrics/post_eval.json").read_text()), "step": 0}
    assert "teacher_gap" in json.loads(run.state.read_text())["peak_metrics"]
    log = run.log.read_text()
    assert f"loading teacher {teacher / 'model'}" in log
    assert " ce=" in log and " kd=" in log
    assert (run.data / "teacher_logits.json").exists() is teacher_cache
    assert ("teacher logits: computing 8000 rows once" in log) is teacher_cache


def test_a_kd_run_trains_its_teacher_run_first_with_forge_py(tmp_path, monkeypatch):
    """...with a top-2 cache: the compact form for large vocabularies, on 3 labels. Each run
    is admitted once: one preflight and one resolution of its upstream runs per run."""
    from collections import Counter

    from forge import preflight
    from forge.run import upstream

    checked, resolved = Counter(), Counter()
    check, resolve = preflight.check, upstream.load
    monkeypatch.setattr(preflight, "check", lambda cfg: checked.update([cfg.run_name]) or check(cfg))
    monkeypatch.setattr(upstream, "load", lambda cfg, run, *a: resolved.update([cfg.run_name]) or resolve(cfg, run, *a))
    result = forge_here("--config", str(kd_pair(tmp_path, top_k=2)), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert checked == resolved == Counter({"kd": 1, "teacher": 1})
    err = result.stderr
    assert err.index("teacher run") < err.index("new run in") < err.rindex("new run in")  # teacher first
    check_kd_run(tmp_path)
    cache = json.loads((run_dir(tmp_path, "kd").data / "teacher_logits.json").read_text())
    assert cache["top_k"] == 2 and cache["path"].endswith(".top2.npz")


def test_alpha_zero_never_loads_the_teacher_and_equals_sft(tmp_path, reference):
    config = short_config(tmp_path)
    # a teacher that does not even exist: with alpha 0 nothing may touch it
    config.write_text(config.read_text() + "teacher:\n  path: ./no/such/teacher\ndistillation:\n  alpha: 0.0\n")
    result = forge_here("--config", str(config), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    run = run_dir(tmp_path)
    assert "loading teacher" not in run.log.read_text()
    assert not (run.metrics / "teacher_pre_eval.json").exists()
    assert_bitwise_equal(run, reference)


def lm_kd_configs(folder, variant: str, names: tuple[str, ...], teacher):
    """An LM KD run `variant` of a 1-layer student cut from the complete run of `teacher`
    (the session's warm start), per name."""
    configs, out = folder / "configs", folder / "outputs"
    for name in names:
        lm_kd_config(configs, name, out, teacher, variant)
    return configs, out


def test_a_causal_lm_cut_from_its_teacher_distils_and_resumes_to_the_same_weights(tmp_path, warm_start):
    """LM KD of a 1-layer student cut from the warm start, reverse KL with the teacher online
    (03_kd_cut.yaml as shipped), through forge.py; then the same run killed at its first
    checkpoint and resumed: bitwise equal. (The top-8 cache and on-policy KD: the kill
    matrix's LM chains, and their logs in the one DAG of every chain in test_snakemake.)"""
    variant = "online_reverse_kl"
    from forge.run.layout import RunDir

    configs, out = lm_kd_configs(tmp_path, variant, ("kd", "kd_killed"), warm_start)
    whole = forge_here("--config", str(configs / "kd.yaml"), cwd=tmp_path)
    assert whole.returncode == 0, whole.stderr[-3000:]
    reference = RunDir(out / "reasoning" / "tiny-cut1" / "kd")
    log = reference.log.read_text()
    assert "kept layers [1] of" in log and " kd=" in log
    assert "bytes a token" not in log and "on-policy micro-batch" not in log
    assert json.loads((reference.metrics / "teacher_pre_eval.json").read_text())["test"]["samples"] == 8

    run = RunDir(out / "reasoning" / "tiny-cut1" / "kd_killed")
    kill_mid_training(configs / "kd_killed.yaml", run, cwd=tmp_path)
    resume_to_completion(run, cwd=tmp_path)
    assert_bitwise_equal(run, reference)
