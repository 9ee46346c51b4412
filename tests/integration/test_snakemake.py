"""The Snakemake DAG with the local profile: plan, complete, kill and resume, and
runs begun by forge.py finished by Snakemake."""

from __future__ import annotations

import json
import os
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


def test_killed_mid_train_then_rerun_completes_bitwise_equal(folder, reference):
    run = run_dir(folder)
    proc = subprocess.Popen(
        snakemake_cmd(folder), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    try:
        wait_for(run.latest_checkpoint.exists, proc=proc)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # Snakemake and the job it runs
        proc.wait()
    assert not run.stage_marker("train").exists(), "killed too late to test anything"
    checkpoints = [step for step, _ in run.checkpoints()]

    plan = snakemake(folder, "-n")
    assert f"train {run.root}: resumes from checkpoint-" in plan.stdout + plan.stderr

    result = snakemake(folder)
    assert result.returncode == 0, result.stdout + result.stderr
    assert run.complete.exists()
    train_log = (run.root / "logs" / "train.log").read_text()
    assert f"resuming training from checkpoint-{max(checkpoints)}" in train_log
    assert_bitwise_equal(run, reference)

    again = snakemake(folder)
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr


def test_a_run_begun_by_forge_py_is_finished_by_snakemake(folder, reference):
    run = run_dir(folder)
    proc = start_forge("--config", str(folder / "configs" / "short.yaml"), cwd=folder)
    wait_for(run.latest_checkpoint.exists, proc=proc)
    proc.send_signal(signal.SIGUSR1)
    assert proc.wait(timeout=120) == 76
    assert run.stage_marker("pre_eval").exists() and not run.stage_marker("train").exists()

    result = snakemake(folder)
    assert result.returncode == 0, result.stdout + result.stderr
    assert_bitwise_equal(run, reference)
    stages = [a["stage"] for a in json.loads(run.metadata.read_text())["attempts"]]
    assert stages == ["pipeline", "train", "finalize", "post_eval"]  # done stages were not redone


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
