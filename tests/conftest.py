"""Shared fixtures. Every test runs offline, with W&B disabled, and with forge's
embedded artifacts and the HF caches in one session-wide temporary folder."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
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


def start_forge(*args: str, cwd: Path, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(ROOT / "forge.py"), *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, **(env or {})},
    )


def write_config(folder: Path, name: str, body: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(body))
    return path


@pytest.fixture
def tiny_run_config(tmp_path) -> Path:
    """A short run of the offline twin, writing under tmp_path/outputs."""
    return write_config(
        tmp_path,
        "short.yaml",
        f"""
        base: {TINY_CONFIG}
        output_root: {tmp_path / "outputs"}
        task:
          max_eval_samples: 200
        training:
          max_steps: 120
          save_steps: 20
          eval_steps: 60
          logging_steps: 10
        """,
    )
