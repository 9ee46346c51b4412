"""KD end to end: a teacher that is another offline run, through forge.py and Snakemake;
alpha 0 never loads the teacher and equals SFT."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.conftest import (
    LM_KD,
    TINY_CONFIG,
    assert_bitwise_equal,
    kill_mid_training,
    lm_kd_config,
    lm_teacher_config,
    resume_to_completion,
    run_dir,
    run_forge,
    short_config,
    write_config,
)
from tests.integration.test_snakemake import snakemake_cmd

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


def test_a_kd_run_trains_its_teacher_run_first_with_forge_py(tmp_path):
    """...with a top-2 cache: the compact form for large vocabularies, on 3 labels."""
    result = run_forge("--config", str(kd_pair(tmp_path, top_k=2)), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    err = result.stderr
    assert err.index("teacher run") < err.index("new run in") < err.rindex("new run in")  # teacher first
    check_kd_run(tmp_path)
    cache = json.loads((run_dir(tmp_path, "kd").data / "teacher_logits.json").read_text())
    assert cache["top_k"] == 2 and cache["path"].endswith(".top2.npz")


def test_an_online_kd_run_through_snakemake_plans_the_teacher_run_first(tmp_path):
    kd_pair(tmp_path, teacher_cache=False)
    plan = subprocess.run(snakemake_cmd(tmp_path, "-n"), capture_output=True, text=True, timeout=300)
    out = plan.stdout + plan.stderr
    teacher_train = out.index(f"train {tmp_path / 'outputs/mnli/tiny-wide/teacher'}: starts fresh")
    assert teacher_train < out.index(f"train {run_dir(tmp_path, 'kd').root}: starts fresh")
    result = subprocess.run(snakemake_cmd(tmp_path), capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    check_kd_run(tmp_path, teacher_cache=False)


def test_alpha_zero_never_loads_the_teacher_and_equals_sft(tmp_path, reference):
    config = short_config(tmp_path)
    # a teacher that does not even exist: with alpha 0 nothing may touch it
    config.write_text(config.read_text() + "teacher:\n  path: ./no/such/teacher\ndistillation:\n  alpha: 0.0\n")
    result = run_forge("--config", str(config), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    run = run_dir(tmp_path)
    assert "loading teacher" not in run.log.read_text()
    assert not (run.metrics / "teacher_pre_eval.json").exists()
    assert_bitwise_equal(run, reference)


def test_a_hidden_state_kd_run_killed_mid_training_resumes_to_the_same_weights(tmp_path):
    """The learned projection (64 → 128) is checkpointed and restored with the student:
    were it re-initialised on resume, the weights would differ."""
    kd_pair(tmp_path, teacher_cache=False)
    configs = tmp_path / "configs"
    for name in ("hidden", "hidden_killed"):
        write_config(
            configs,
            f"{name}.yaml",
            f"""
            base: ./kd.yaml
            run_name: {name}
            distillation:
              hidden: {{weight: 1.0, loss: cosine}}
            training:
              max_steps: 80
            """,
        )
    whole = run_forge("--config", str(configs / "hidden.yaml"), cwd=tmp_path)
    assert whole.returncode == 0, whole.stderr
    reference = run_dir(tmp_path, "hidden")
    assert " hidden=" in reference.log.read_text()
    assert (reference.checkpoint(80) / "hidden_projection.pt").exists()

    run = run_dir(tmp_path, "hidden_killed")
    kill_mid_training(configs / "hidden_killed.yaml", run, cwd=tmp_path)
    resume_to_completion(run, cwd=tmp_path)
    assert_bitwise_equal(run, reference)


def lm_kd_configs(folder, variant: str, names: tuple[str, ...]):
    """configs/teacher.yaml (tests.conftest.lm_teacher_config) and an LM KD run `variant` of
    a 1-layer student cut from it, per name."""
    configs, out = folder / "configs", folder / "outputs"
    lm_teacher_config(configs, out)
    for name in names:
        lm_kd_config(configs, name, out, "./teacher.yaml", variant)
    return configs, out


@pytest.mark.parametrize(
    "variant", [pytest.param(v, marks=[pytest.mark.heavy] if v.startswith("on_policy") else []) for v in sorted(LM_KD)]
)
def test_a_causal_lm_cut_from_its_teacher_distils_and_resumes_to_the_same_weights(variant, tmp_path):
    """LM KD of a 1-layer student cut from a briefly trained tiny causal LM (reverse KL with
    the teacher online, forward KL from the per-token top-8 cache, or on-policy on half the
    batches), through forge.py (the teacher run first); then the same run killed at its first
    checkpoint and resumed: bitwise equal (on-policy: the same samples are drawn again)."""
    from forge.run.layout import RunDir

    configs, out = lm_kd_configs(tmp_path, variant, ("kd", "kd_killed"))
    whole = run_forge("--config", str(configs / "kd.yaml"), cwd=tmp_path)
    assert whole.returncode == 0, whole.stderr[-3000:]
    reference = RunDir(out / "reasoning" / "tiny-cut1" / "kd")
    log = reference.log.read_text()
    assert "kept layers [1] of" in log and " kd=" in log
    assert ("bytes a token" in log) == (variant == "cached_top8")  # the cache, its size reported
    assert ("on-policy micro-batch" in log) == (variant == "on_policy_half")
    assert json.loads((reference.metrics / "teacher_pre_eval.json").read_text())["test"]["samples"] == 8

    run = RunDir(out / "reasoning" / "tiny-cut1" / "kd_killed")
    kill_mid_training(configs / "kd_killed.yaml", run, cwd=tmp_path)
    resume_to_completion(run, cwd=tmp_path)
    assert_bitwise_equal(run, reference)


@pytest.mark.heavy
def test_a_kd_run_stopped_between_two_logs_resumes_to_the_same_curve(tmp_path):
    """SIGUSR1 mid-way between two logs: the resumed run's steps.jsonl has the uninterrupted
    run's training records, the CE and KD parts included (they cover the same steps as the
    loss), and the same weights."""
    import signal

    from forge.run import steplog
    from tests.conftest import start_forge, wait_for

    kd_pair(tmp_path)
    configs = tmp_path / "configs"
    for name in ("whole", "stopped"):
        write_config(configs, f"{name}.yaml", f"base: ./kd.yaml\nrun_name: {name}\ntraining: {{max_steps: 80}}\n")
    assert run_forge("--config", str(configs / "whole.yaml"), cwd=tmp_path).returncode == 0
    run = run_dir(tmp_path, "stopped")
    proc = start_forge("--config", str(configs / "stopped.yaml"), cwd=tmp_path)
    wait_for(run.latest_checkpoint.exists, proc=proc)
    proc.send_signal(signal.SIGUSR1)
    assert proc.wait(timeout=120) == 76
    resume_to_completion(run, cwd=tmp_path)

    def curve(r):
        keys = ("loss", "grad_norm", "ce", "kd")
        return [(x["step"], *(x.get(k) for k in keys)) for x in steplog.read(r) if "loss" in x]

    assert curve(run) == curve(run_dir(tmp_path, "whole"))
    assert_bitwise_equal(run, run_dir(tmp_path, "whole"))


@pytest.mark.heavy
@pytest.mark.parametrize("variant", ["cached_top8", "on_policy_half"])
def test_a_causal_lm_kd_run_stopped_by_either_slurm_signal_resumes_to_the_same_curve(variant, tmp_path):
    """LM KD from the top-8 cache and on-policy, stopped as SLURM stops a job step (SIGTERM,
    or the time-limit warning SIGUSR1, to every process, W&B's helpers included) once it has
    a checkpoint (every 10 steps; logs every 5, so mostly between two logs): exit 75 / 76,
    and the resumed run has the uninterrupted run's curve (loss, CE, KD) and weights
    (on-policy: the same completions sampled again)."""
    import signal

    from forge.run import steplog
    from forge.run.layout import RunDir
    from tests.integration.test_pipeline import signal_every_process_after_a_checkpoint

    configs, out = lm_kd_configs(tmp_path, variant, ("kd", "kd_term", "kd_usr1"))
    whole = run_forge("--config", str(configs / "kd.yaml"), cwd=tmp_path)
    assert whole.returncode == 0, whole.stderr[-3000:]
    reference = RunDir(out / "reasoning" / "tiny-cut1" / "kd")

    def curve(r):
        keys = ("loss", "grad_norm", "ce", "kd")
        return [(x["step"], *(x.get(k) for k in keys)) for x in steplog.read(r) if "loss" in x]

    for name, sig in (("kd_term", signal.SIGTERM), ("kd_usr1", signal.SIGUSR1)):
        run = RunDir(out / "reasoning" / "tiny-cut1" / name)
        signal_every_process_after_a_checkpoint(configs / f"{name}.yaml", run, tmp_path, sig)
        stopped_at = json.loads(run.state.read_text())["global_step"]
        assert 0 < stopped_at < 30, stopped_at
        resume_to_completion(run, cwd=tmp_path)
        assert curve(run) == curve(reference), name
        assert_bitwise_equal(run, reference)


@pytest.mark.heavy
def test_cached_and_on_policy_lm_kd_run_through_snakemake_and_the_students_generate(tmp_path):
    """One DAG: the teacher run, then a student distilled from its top-8 cache and one
    distilled on-policy. The teacher is planned first and trained once; each final student
    loads with AutoModelForCausalLM and generates."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from forge.run.layout import RunDir

    lm_kd_configs(tmp_path, "cached_top8", ("cached",))
    _, out = lm_kd_configs(tmp_path, "on_policy_half", ("on_policy",))
    teacher = RunDir(out / "reasoning" / "tiny" / "teacher")
    students = {name: RunDir(out / "reasoning" / "tiny-cut1" / name) for name in ("cached", "on_policy")}
    plan = subprocess.run(snakemake_cmd(tmp_path, "-n"), capture_output=True, text=True, timeout=300)
    planned = plan.stdout + plan.stderr
    first = planned.index(f"train {teacher.root}: starts fresh")
    assert all(first < planned.index(f"train {s.root}: starts fresh") for s in students.values()), planned[-3000:]

    result = subprocess.run(snakemake_cmd(tmp_path), capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert [a["stage"] for a in json.loads(teacher.metadata.read_text())["attempts"]].count("train") == 1
    assert "bytes a token" in students["cached"].log.read_text()
    assert "on-policy micro-batch" in students["on_policy"].log.read_text()
    for student in students.values():
        assert student.complete.exists()
        tokenizer = AutoTokenizer.from_pretrained(student.model)
        model = AutoModelForCausalLM.from_pretrained(student.model)
        assert model.config.num_hidden_layers == 1  # cut from the teacher
        batch = tokenizer(["Ana has 3 pens and gets 4 more."], return_tensors="pt")
        generated = model.generate(**batch, max_new_tokens=6, do_sample=False)
        assert generated.shape[1] > batch["input_ids"].shape[1]
