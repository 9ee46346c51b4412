"""The Snakemake DAG with the local profile: plan, complete, kill and resume, and
runs begun by forge.py finished by Snakemake."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys

import pytest

from tests.conftest import ROOT, assert_bitwise_equal, run_dir, short_config, start_forge, wait_for, write_config

pytestmark = pytest.mark.integration


def snakemake_cmd(folder, *extra: str, profile: str = "local") -> list[str]:
    configs = folder / "configs"
    return [
        sys.executable, "-m", "snakemake",
        "--snakefile", str(ROOT / "Snakefile"),
        "--directory", str(folder),
        "--profile", str(ROOT / "profiles" / profile),
        *(["--cores", "2"] if profile == "local" else []),
        "--config", f"config_root={configs}", f"runs={configs}",
        *extra,
    ]  # fmt: skip


def snakemake(folder, *extra: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(snakemake_cmd(folder, *extra), capture_output=True, text=True, timeout=timeout)


def make_folder(tmp_path):
    """A Snakemake work dir: configs/short.yaml whose runs go to outputs/."""
    short_config(tmp_path / "configs", "short.yaml")
    # short_config puts outputs beside the config; keep them at the top of the work dir
    config = tmp_path / "configs" / "short.yaml"
    config.write_text(config.read_text().replace(str(tmp_path / "configs" / "outputs"), str(tmp_path / "outputs")))
    return tmp_path


@pytest.fixture
def folder(tmp_path):
    return make_folder(tmp_path)


def test_dry_run_lists_the_five_stages_and_the_train_plan(folder):
    result = snakemake(folder, "-n")
    assert result.returncode == 0, result.stderr
    out = result.stdout + result.stderr
    for rule in ("prepare_data", "pre_eval", "train", "finalize", "post_eval"):
        assert f"rule {rule}:" in out or f"({rule})" in out or f" {rule}\n" in out, rule
    assert f"train {run_dir(folder).root}: starts fresh" in out
    assert not run_dir(folder).root.exists()  # planning creates nothing


def test_bad_configs_in_the_dag_stop_the_plan_before_any_job_one_line_each(folder):
    """Among good runs, four bad configs (a typo, an infinite number, a teacher run that does
    not exist, a teacher run outside the planned folder with a negative step count): the plan
    and a real run alike stop before any job, one line per bad config, exit 2, no traceback,
    nothing created."""
    configs = folder / "configs"
    base = f"base: {configs / 'short.yaml'}\n"
    write_config(configs, "typo.yaml", base + "run_name: typo\ntraining: {lerning_rate: 1.0}\n")
    write_config(configs, "inf.yaml", base + "run_name: inf\ntraining: {epochs: .inf}\n")
    write_config(configs, "kd.yaml", base + "run_name: kd\nteacher: {run: nowhere.yaml}\ndistillation: {alpha: 0.5}\n")
    # a good student whose teacher run, outside the planned folder, is bad
    write_config(folder / "elsewhere", "teacher.yaml", base + "run_name: teacher\ntraining: {max_steps: -7}\n")
    write_config(
        configs,
        "student.yaml",
        base + f"run_name: student\nteacher: {{run: {folder / 'elsewhere' / 'teacher.yaml'}}}\n"
        "distillation: {alpha: 0.5}\n",
    )
    for extra in (["-n"], []):
        result = snakemake(folder, *extra, timeout=120)
        assert result.returncode == 2, result.stderr
        assert "Traceback" not in result.stderr and "Exception" not in result.stderr, result.stderr
        lines = [line for line in result.stderr.strip().splitlines() if not line.startswith("Using profile")]
        assert len(lines) == 4, lines
        assert lines[0].startswith(f"forge: {configs / 'inf.yaml'}: training.epochs: Input should be a finite number")
        assert lines[1].startswith(f"forge: {configs / 'kd.yaml'}: teacher.run: file not found")
        assert lines[2].startswith(f"forge: {folder / 'elsewhere' / 'teacher.yaml'}: training.max_steps: Input")
        assert (
            lines[3]
            == f"forge: {configs / 'typo.yaml'}: training.lerning_rate: unknown key (did you mean 'learning_rate'?)"
        )
        assert not (folder / "outputs").exists()


def test_a_run_begun_by_forge_py_is_finished_by_snakemake_through_a_kill(folder, reference):
    """forge.py begins the run and is stopped (SIGUSR1) after its first checkpoint; Snakemake
    goes on from there and is killed with its job mid-train; planned again, the train job
    resumes from the newest checkpoint, and the run completes bitwise equal to the
    uninterrupted one, without redoing the stages forge.py finished."""
    run = run_dir(folder)
    proc = start_forge("--config", str(folder / "configs" / "short.yaml"), cwd=folder)
    wait_for(run.latest_checkpoint.exists, proc=proc)
    proc.send_signal(signal.SIGUSR1)
    assert proc.wait(timeout=120) == 76
    assert run.stage_marker("pre_eval").exists() and not run.stage_marker("train").exists()
    stopped = run.latest_checkpoint.read_text()

    proc = subprocess.Popen(
        snakemake_cmd(folder), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    try:
        wait_for(lambda: run.latest_checkpoint.read_text() != stopped, proc=proc)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # Snakemake and the job it runs
        proc.wait()
    assert not run.stage_marker("train").exists(), "killed too late to test anything"
    newest = max(step for step, _ in run.checkpoints())

    plan = snakemake(folder, "-n")
    assert f"train {run.root}: resumes from checkpoint-{newest}" in plan.stdout + plan.stderr

    result = snakemake(folder)
    assert result.returncode == 0, result.stdout + result.stderr
    assert run.complete.exists()
    train_log = (run.root / "logs" / "train.log").read_text()
    assert f"resuming training from checkpoint-{newest}" in train_log
    assert_bitwise_equal(run, reference)
    stages = [a["stage"] for a in json.loads(run.metadata.read_text())["attempts"]]
    assert stages == ["pipeline", "train", "train", "finalize", "post_eval"]  # done stages were not redone

    again = snakemake(folder)
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr


def test_the_short_profile_name_works_after_the_documented_setup(folder, tmp_path):
    readme = (ROOT / "README.md").read_text()
    (setup,) = [line.strip() for line in readme.splitlines() if line.strip().startswith("mkdir -p ~/.config/snakemake")]
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "XDG_CONFIG_HOME"} | {"HOME": str(home)}
    subprocess.run(["bash", "-c", setup], cwd=ROOT, env=env, check=True)
    assert (home / ".config/snakemake/slurm").resolve() == ROOT / "profiles" / "slurm"
    cmd = snakemake_cmd(folder, "-n")
    cmd[cmd.index(str(ROOT / "profiles" / "local"))] = "slurm"
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=folder, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "Using profile slurm" in result.stdout + result.stderr
    assert f"train {run_dir(folder).root}: starts fresh" in result.stdout + result.stderr


@pytest.mark.heavy  # nine runs, forty-five stage jobs
def test_one_dag_trains_every_upstream_run_once_before_the_runs_built_on_it(tmp_path):
    """The chains of every method in one DAG: an online KD student after its teacher run
    (classification); GRPO, an LM KD student from the teacher's top-8 cache, an on-policy
    one and a run evaluated by lm-evaluation-harness, all built on one warm start
    (reasoning); an OCR KD student after its OCR teacher run. Each upstream run is planned
    before the runs built on it and trained once; every final model loads as its Auto class."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from forge import status
    from forge.run.layout import RunDir
    from tests.conftest import lm_kd_config, reasoning_warm_start_config, short_grpo_config
    from tests.integration.test_distillation import check_kd_run, kd_pair
    from tests.integration.test_lm_eval import EVAL, two_steps_from
    from tests.integration.test_ocr import metrics, short_run
    from tests.integration.test_rl import logged_rewards

    configs, out = tmp_path / "configs", tmp_path / "outputs"
    kd_pair(tmp_path, teacher_cache=False)
    warm = reasoning_warm_start_config(tmp_path)
    short_grpo_config(configs, "grpo", out, warm)
    for name, variant in (("cached", "cached_top8"), ("on_policy", "on_policy_half")):
        lm_kd_config(configs, name, out, warm, variant)
    two_steps_from(tmp_path, "lm_eval", warm, EVAL)
    ocr = ROOT / "configs" / "ocr" / "lines"
    write_config(configs, "ocr_teacher.yaml", short_run(tmp_path, ocr / "tiny_wide/00_sft.yaml", "ocr_teacher"))
    write_config(configs, "ocr_kd.yaml", short_run(tmp_path, ocr / "tiny/01_kd.yaml", "ocr_kd")
                 + "teacher: {run: ocr_teacher.yaml}\n")  # fmt: skip
    runs = {
        "teacher": RunDir(out / "mnli/tiny-wide/teacher"), "kd": RunDir(out / "mnli/tiny/kd"),
        "sft": RunDir(out / "reasoning/tiny/sft"), "grpo": RunDir(out / "reasoning/tiny/grpo"),
        "cached": RunDir(out / "reasoning/tiny-cut1/cached"),
        "on_policy": RunDir(out / "reasoning/tiny-cut1/on_policy"),
        "ocr_teacher": RunDir(out / "ocr/tiny-wide/ocr_teacher"), "ocr_kd": RunDir(out / "ocr/tiny/ocr_kd"),
        "lm_eval": RunDir(out / "reasoning/tiny/lm_eval"),
    }  # fmt: skip
    built_on = {"kd": "teacher", "grpo": "sft", "cached": "sft", "on_policy": "sft", "ocr_kd": "ocr_teacher",
                "lm_eval": "sft"}  # fmt: skip

    plan = snakemake(tmp_path, "-n", timeout=300)
    planned = plan.stdout + plan.stderr
    for run, upstream in built_on.items():
        first = planned.index(f"train {runs[upstream].root}: starts fresh")
        assert first < planned.index(f"train {runs[run].root}: starts fresh"), (run, planned[-3000:])

    result = snakemake(tmp_path, timeout=1200)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert all(run.complete.exists() for run in runs.values())
    for name in set(built_on.values()):  # trained once, whatever builds on it
        stages = [a["stage"] for a in json.loads(runs[name].metadata.read_text())["attempts"]]
        assert stages.count("train") == 1, name

    check_kd_run(tmp_path, teacher_cache=False)  # classification KD, the teacher online
    grpo = runs["grpo"]
    assert sorted(logged_rewards(grpo.log.read_text())) == list(range(2, 13, 2))
    assert json.loads((grpo.metrics / "post_eval.json").read_text())["step"] == 12
    assert "bytes a token" in runs["cached"].log.read_text()
    assert "on-policy micro-batch" in runs["on_policy"].log.read_text()
    for name in ("cached", "on_policy"):
        student = runs[name]
        tokenizer = AutoTokenizer.from_pretrained(student.model)
        model = AutoModelForCausalLM.from_pretrained(student.model)
        assert model.config.num_hidden_layers == 1  # cut from the warm start
        batch = tokenizer(["Ana has 3 pens and gets 4 more."], return_tensors="pt")
        assert model.generate(**batch, max_new_tokens=6, do_sample=False).shape[1] > batch["input_ids"].shape[1]
    evaluated = json.loads((runs["lm_eval"].metrics / "post_eval.json").read_text())  # in a stage job, offline
    assert evaluated["lm_eval/arithmetic_gen"]["exact_match,none"] == evaluated["test"]["accuracy"]
    shown = status.status_of(runs["lm_eval"].root)
    assert (shown.metric, shown.post) == ("exact_match,none", evaluated["test"]["accuracy"])
    ocr_kd = runs["ocr_kd"]
    assert set(metrics(ocr_kd, "teacher_pre_eval")["test"]) == {"cer", "wer", "exact_match", "samples"}
    steps = re.findall(r"step (\d+)/20 loss=\S+ .*ce=\S+ kd=\S+", ocr_kd.log.read_text())
    assert steps == ["5", "10", "15", "20"]  # with the CE and per-token KD parts of the loss
