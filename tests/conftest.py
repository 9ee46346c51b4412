"""Shared fixtures. Every test runs offline, with W&B disabled, and with forge's
embedded artifacts and the HF caches in one session-wide temporary folder."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TINY_CONFIG = ROOT / "configs" / "classification" / "mnli" / "tiny" / "00_sft.yaml"


@pytest.fixture(scope="session", autouse=True)
def offline_env(tmp_path_factory):
    home = tmp_path_factory.mktemp("forge_home")
    saved = dict(os.environ)
    os.environ.update(
        FORGE_HOME=str(home),
        HF_HOME=str(home / "hf"),
        HF_HUB_OFFLINE="1",
        WANDB_MODE="disabled",
        TOKENIZERS_PARALLELISM="false",
        # Bitwise comparisons need the same torch thread count in every process;
        # the Snakemake tests run with --cores 2, which Snakemake exports the same way.
        OMP_NUM_THREADS="2",
    )
    yield home
    os.environ.clear()
    os.environ.update(saved)


def run_forge(*args: str, cwd: Path, timeout: float = 300, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "forge.py"), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def forge_here(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """What `run_forge` returns, from forge's command line run in this process (forge.cli.main):
    no fresh interpreter, so none of its ~5 s of imports. For a test of an outcome; what only a
    real process shows (a signal, an exit by signal, a fresh interpreter's environment) needs
    run_forge. The console handler, the signal handlers, the environment and the working
    directory are put back as they were."""
    import contextlib
    import io
    import logging
    import signal

    from forge import cli
    from forge.signals import WATCHED

    handlers = {sig: signal.getsignal(sig) for sig in WATCHED}
    environment, here = dict(os.environ), os.getcwd()
    out, err = io.StringIO(), io.StringIO()
    os.chdir(cwd)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = cli.main(list(args))
    finally:
        os.chdir(here)
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
        from forge.logs import LIBRARIES

        for logger in map(logging.getLogger, ("forge", *LIBRARIES)):  # the console: this call's stderr
            for handler in [h for h in logger.handlers if getattr(h, "_forge", False)]:
                logger.removeHandler(handler)
        os.environ.clear()
        os.environ.update(environment)
    return subprocess.CompletedProcess(["forge", *args], code, out.getvalue(), err.getvalue())


def prepared(cfg, out: Path):
    """The data of the run `cfg` as prepare_data leaves it in `out` (its task type's
    prepare, with the student's preprocessor), loaded back."""
    from forge.models.loading import load_preprocessor
    from forge.tasks import task_of

    task = task_of(cfg)
    task.prepare(load_preprocessor(cfg.student.path, task.head()), out)
    return task.load_prepared(out)


def start_forge(*args: str, cwd: Path, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(ROOT / "forge.py"), *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, **(env or {})},
    )


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_config(folder: Path, name: str, body: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(body))
    return path


# KD with the teacher online (the embedded wide model) and the hidden-state term, whose
# learned projection is the most state a KD run has to checkpoint, restore and share
# between ranks. Indented like the config bodies it is added to.
ONLINE_KD = """
        teacher:
          path: embedded:tiny-distilbert-wide
        distillation:
          alpha: 0.5
          teacher_cache: false
          hidden:
            weight: 0.5
"""


def short_config(folder: Path, name: str = "short.yaml") -> Path:
    """A short run of the offline twin, writing under folder/outputs."""
    return write_config(
        folder,
        name,
        f"""
        base: {TINY_CONFIG}
        output_root: {folder / "outputs"}
        task:
          max_eval_samples: 200
        training:
          max_steps: 120
          save_steps: 20
          eval_steps: 60
          logging_steps: 10
        """,
    )


REASONING_TINY = ROOT / "configs" / "reasoning" / "gsm8k" / "tiny"
GRPO_STEPS = 12

# LM distillation of a 1-layer student cut from the tiny causal LM: its variants, each added
# to lm_kd_config's body.
LM_KD = {
    "online_reverse_kl": "",  # 03_kd_cut.yaml as shipped
    "cached_top8": "distillation: {loss: forward_kl, teacher_cache: true, cache_top_k: 8}\n",
    "on_policy_half": "distillation: {on_policy: 0.5}\n",  # the student's own samples, scored online
}
LM_SHORT = "task: {max_train_samples: 256, max_eval_samples: 8, max_new_tokens: 8}\n"


def reasoning_warm_start_config(folder: Path) -> Path:
    """configs/sft.yaml in `folder`: a short SFT warm start of the tiny causal LM on the
    arithmetic problems (150 steps: it learns the answer format). Its run directory:
    <folder>/outputs/reasoning/tiny/sft."""
    return write_config(
        folder / "configs",
        "sft.yaml",
        f"""
        base: {REASONING_TINY / "00_sft.yaml"}
        output_root: {folder / "outputs"}
        task:
          max_eval_samples: 40
        training:
          max_steps: 150
          save_steps: 75
          eval_steps: 75
        """,
    )


@pytest.fixture(scope="session")
def warm_start(tmp_path_factory) -> Path:
    """The config of a complete reasoning_warm_start_config run, trained once per session and
    shared: the policy the GRPO tests start from, and the teacher (and the model cut into a
    student) of the LM distillation tests. That a run's upstream run is trained first is
    tested once per entry point (forge.py, Snakemake), not by every test that needs one."""
    folder = tmp_path_factory.mktemp("warm_start")
    config = reasoning_warm_start_config(folder)
    result = forge_here("--config", str(config), cwd=folder)
    assert result.returncode == 0, result.stderr[-3000:]
    return config


def lm_kd_config(configs: Path, name: str, output_root: Path, teacher: Path | str, variant: str) -> Path:
    """configs/<name>.yaml: 30 steps of LM KD `variant` (LM_KD) of a 1-layer student cut from
    the run of `teacher` (also its teacher: the `warm_start`); a checkpoint every 10 steps, a log every 5.
    Its run directory: <output_root>/reasoning/tiny-cut1/<name>."""
    return write_config(
        configs,
        f"{name}.yaml",
        f"base: {REASONING_TINY / '03_kd_cut.yaml'}\nrun_name: {name}\noutput_root: {output_root}\n{LM_SHORT}"
        f"student: {{run: {teacher}}}\nteacher: {{run: {teacher}}}\n"
        "training: {max_steps: 30, save_steps: 10, logging_steps: 5}\n" + LM_KD[variant],
    )


def short_grpo_config(configs: Path, name: str, output_root: Path, student_run: str | Path, lora: bool = False) -> Path:
    """configs/<name>.yaml: 12 GRPO steps (16 completions, 4 a prompt, a checkpoint every 4)
    from the final model of the run `student_run`."""
    return write_config(
        configs,
        f"{name}.yaml",
        f"""
        base: {REASONING_TINY / "01_grpo.yaml"}
        run_name: {name}
        output_root: {output_root}
        student:
          run: {student_run}
          lora: {"{r: 4, alpha: 8}" if lora else "null"}
        task:
          max_eval_samples: 40
        rl:
          num_generations: 4
          max_completion_length: 24
        training:
          max_steps: {GRPO_STEPS}
          batch_size: 16
          save_steps: 4
          logging_steps: 2
        """,
    )


def run_dir(folder: Path, name: str = "short"):
    from forge.run.layout import RunDir

    return RunDir(folder / "outputs" / "mnli" / "tiny" / name)


def wait_for(predicate, timeout: float = 180, proc=None) -> None:
    deadline = time.time() + timeout
    while not predicate():
        if proc is not None and proc.poll() is not None:
            out = proc.stdout.read() if proc.stdout else ""
            raise AssertionError(f"process ended early ({proc.returncode}):\n{out}")
        assert time.time() < deadline, "timed out"
        time.sleep(0.02)


def kill_mid_training(config: Path, run, cwd: Path) -> None:
    """Start a forge run and SIGKILL it as soon as its first checkpoint is complete."""
    proc = start_forge("--config", str(config), cwd=cwd)
    wait_for(run.latest_checkpoint.exists, proc=proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not run.stage_marker("train").exists(), "killed too late to test anything"


def resume_to_completion(run, cwd: Path) -> subprocess.CompletedProcess:
    """`forge --resume` of a killed run: it picks up from a checkpoint and completes."""
    result = forge_here("--resume", str(run.root), cwd=cwd)
    assert result.returncode == 0, result.stderr
    assert "resuming training from checkpoint-" in result.stderr
    assert run.complete.exists()
    return result


def assert_bitwise_equal(a, b) -> None:
    import torch
    from safetensors.torch import load_file

    wa, wb = load_file(a.model / "model.safetensors"), load_file(b.model / "model.safetensors")
    assert wa.keys() == wb.keys()
    different = [k for k in wa if not torch.equal(wa[k], wb[k])]
    assert not different, f"weights differ: {different}"


@pytest.fixture(scope="session")
def reference(tmp_path_factory):
    """An uninterrupted forge.py run of short.yaml: what every interrupted run must equal."""
    folder = tmp_path_factory.mktemp("reference")
    result = forge_here("--config", str(short_config(folder)), cwd=folder)
    assert result.returncode == 0, result.stderr
    return run_dir(folder)


@pytest.fixture
def signals_restored():
    """forge's main() ignores SIGTERM/SIGUSR1 once its outcome is decided (forge.signals:
    settle); in a test process that would carry over into every later subprocess."""
    import signal

    from forge.signals import WATCHED

    saved = {sig: signal.getsignal(sig) for sig in WATCHED}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)


@pytest.fixture(scope="session")
def tiny_policy():
    """(model, tokenizer) of embedded:tiny-causal-lm, the RL path's offline policy."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from forge import embedded

    path = embedded.ensure("embedded:tiny-causal-lm")
    return AutoModelForCausalLM.from_pretrained(path), AutoTokenizer.from_pretrained(path)


def require_pretrained(name: str) -> None:
    """Skip a test of the real pretrained model `name` where its pip package is not
    installed (README's plain install); .ci/run installs them and sets
    FORGE_REQUIRE_PRETRAINED=1, so there a missing one fails instead of skipping."""
    from forge.embedded import pretrained

    if pretrained.installed(name):
        return
    message = f"embedded:{name} is not installed here ({pretrained.INSTALL})"
    if os.environ.get("FORGE_REQUIRE_PRETRAINED"):
        pytest.fail(message)
    pytest.skip(message)
