"""The command line: fast help, one-line config errors with exit 2 and no run dir."""

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, TINY_CONFIG, run_forge, write_config


def test_help_does_not_import_the_ml_stack():
    code = (
        "import sys\nfrom forge.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit as e:\n    assert e.code == 0\n"
        "heavy = [m for m in ('torch', 'transformers', 'datasets', 'wandb', 'pydantic')\n"
        "         if m in sys.modules]\n"
        "print('heavy:', heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert "--resume RUN_DIR" in out.stdout and "--max_steps" in out.stdout and "--debug" in out.stdout
    assert out.stdout.strip().endswith("heavy: []")


def test_console_command_is_installed():
    script = Path(sys.executable).parent / "forge"  # installed beside the interpreter
    out = subprocess.run([str(script), "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "usage: forge" in out.stdout


BAD = {
    "unknown_key": (
        "training:\n  lerning_rate: 0.1\n",
        "training.lerning_rate: unknown key (did you mean 'learning_rate'?)",
    ),
    "wrong_type": ("training:\n  batch_size: many\n", "training.batch_size: Input should be a valid integer"),
    "missing_base": ("base: ../nowhere/base.yaml\n", "base: file not found"),
    "kd_without_teacher": (
        "distillation:\n  alpha: 0.7\n",
        "distillation.alpha: is 0.7, which needs a teacher",
    ),
    "rl_without_rewards": (
        f"base: {ROOT / 'configs/reasoning/gsm8k/tiny/00_sft.yaml'}\nrl:\n  rewards: []\n",
        "rl.rewards: RL needs at least one reward function",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_configs_fail_in_one_line_with_exit_2_and_no_run_dir(case, tmp_path):
    body, expected = BAD[case]
    header = "" if body.startswith("base:") else f"base: {TINY_CONFIG}\n"
    path = write_config(tmp_path, f"{case}.yaml", header + f"output_root: {tmp_path / 'outputs'}\n" + body)
    result = run_forge("--config", str(path), cwd=tmp_path, timeout=60)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"forge: {path}") and expected in lines[0], result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "outputs").exists()


def test_inheritance_cycle_fails_the_same_way(tmp_path):
    write_config(tmp_path, "a.yaml", "base: b.yaml\n")
    path = write_config(tmp_path, "b.yaml", "base: a.yaml\n")
    result = run_forge("--config", str(path), cwd=tmp_path, timeout=60)
    assert result.returncode == 2 and "inheritance cycle" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "outputs").exists()


def test_resume_of_a_folder_that_is_not_a_run(tmp_path):
    result = run_forge("--resume", str(tmp_path), cwd=tmp_path, timeout=60)
    assert result.returncode == 2 and "not a forge run directory" in result.stderr


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--config", str(TINY_CONFIG), "--run_name", ""], "forge: --run_name: must not be empty"),
        (["--config", str(TINY_CONFIG), "--run_name", "  "], "forge: --run_name: must not be empty"),
        (["--config", str(TINY_CONFIG), "--max_steps", "ten"], "forge: argument --max_steps: invalid int value: 'ten'"),
        (["--config"], "forge: argument --config: expected one argument (usage: forge --help)"),
        (["--resume", "x", "--config", "y"], "forge: argument --config: not allowed with argument --resume"),
        (["--bogus"], "forge: one of the arguments --config --resume is required"),
        (["stage", "nope", "--config", "x"], "forge stage: argument stage: invalid choice: 'nope'"),
        (["status", "--nope"], "forge status: unrecognized arguments: --nope"),
    ],
)
def test_a_misused_command_line_is_one_line_and_exit_2(args, expected, tmp_path):
    result = run_forge(*args, cwd=tmp_path, timeout=60)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(expected), lines
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("content", [b"task: [unclosed\n", b"\x89PNG\x00\xff\xfe", b"- a list\n"])
def test_resume_of_a_run_whose_config_is_damaged_names_the_file(content, tmp_path):
    run = tmp_path / "outputs" / "mnli" / "tiny" / "r"
    run.mkdir(parents=True)
    (run / "config.yaml").write_bytes(content)
    result = run_forge("--resume", str(run), cwd=tmp_path, timeout=60)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"forge: {run / 'config.yaml'}"), lines
    assert sorted(p.name for p in run.iterdir()) == ["config.yaml"]


def test_missing_config_file(tmp_path):
    result = run_forge("--config", "nope.yaml", cwd=tmp_path, timeout=60)
    assert result.returncode == 2 and "file not found" in result.stderr


@pytest.mark.parametrize(
    "hub_env", [{"HF_HUB_OFFLINE": "1"}, {"HF_HUB_OFFLINE": "", "HF_ENDPOINT": "http://127.0.0.1:9"}]
)
def test_an_unreachable_hub_fails_in_seconds_with_one_sentence(hub_env, tmp_path):
    real = ROOT / "configs/classification/mnli/distilbert/00_sft.yaml"
    path = write_config(tmp_path, "real.yaml", f"base: {real}\noutput_root: {tmp_path / 'outputs'}\n")
    # transformers alone would retry for ~50 s, then print a traceback
    result = run_forge("--config", str(path), "--max_steps", "10", cwd=tmp_path, timeout=45, env=hub_env)
    assert result.returncode == 2  # refused before the run exists: the model and the data are not here
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 2 and all(line.startswith(f"forge: {path}: ") for line in lines), lines
    assert "student.path: cannot load model 'distilbert-base-uncased'" in lines[0]
    assert "task.dataset: cannot load dataset 'nyu-mll/glue'" in lines[1]
    assert "or point the config at a local directory in Hub format" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "outputs").exists()


def test_forge_check_of_a_hub_config_with_the_hub_out_of_reach_answers_in_seconds(tmp_path):
    """forge check leaves HF_HUB_OFFLINE alone (one config's answer must not decide the next),
    yet looks for a Hub dataset in the cache only: no retries (they took ~30 s a dataset)."""
    import time

    real = ROOT / "configs/classification/mnli/distilbert/00_sft.yaml"
    env = {"HF_HUB_OFFLINE": "", "HF_ENDPOINT": "http://127.0.0.1:9"}
    start = time.monotonic()
    result = run_forge("check", str(real), cwd=tmp_path, timeout=60, env=env)
    took = time.monotonic() - start
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 2 and "task.dataset: cannot load dataset 'nyu-mll/glue'" in lines[1], lines
    assert took < 15, took


_SETTLED = """
import os, signal
from forge.cli import main
rc = main(["--config", "missing.yaml"])
print(signal.getsignal(signal.SIGUSR1) == signal.SIG_IGN, signal.getsignal(signal.SIGTERM) == signal.SIG_IGN)
os.kill(os.getpid(), signal.SIGUSR1)  # e.g. SLURM's time-limit warning, just after the work ended
raise SystemExit(rc)
"""


def test_once_forge_is_done_a_late_signal_cannot_change_its_exit_status(tmp_path):
    """Python restores the default (deadly) action of handled signals while it exits; forge
    ignores them by then, so a warning in that window cannot fail a finished job."""
    out = subprocess.run([sys.executable, "-c", _SETTLED], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert out.stdout.split() == ["True", "True"], out.stderr
    assert out.returncode == 2  # the config error, not -SIGUSR1
