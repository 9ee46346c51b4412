"""forge inside a SLURM job: time left, its own time-limit timer, requeue decisions.
squeue and scontrol are replaced by scripts on PATH that record their calls."""

import os
import signal
import stat
import subprocess
import sys
import time

import pytest

from forge import slurm
from forge.errors import EXIT_PREEMPTED, EXIT_TIME_LIMIT
from forge.signals import StopRequest


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("1-02:03:04", 93784), ("02:03:04", 7384), ("03:04", 184), ("0:07", 7), ("UNLIMITED", None), ("", None)],
)
def test_parse_time_left(text, seconds):
    assert slurm.parse_time_left(text) == seconds


@pytest.fixture
def fake_slurm(tmp_path, monkeypatch):
    term = signal.getsignal(signal.SIGTERM)  # requeue_after ignores SIGTERM; restore it after
    yield _fake_slurm(tmp_path, monkeypatch)
    signal.signal(signal.SIGTERM, term)


def _fake_slurm(tmp_path, monkeypatch):
    calls = tmp_path / "calls"
    for name, body in {"squeue": 'echo "0:03"', "scontrol": "true"}.items():
        script = tmp_path / name
        script.write_text(f'#!/bin/sh\necho "{name} $*" >> {calls}\n{body}\n')
        script.chmod(script.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    return calls


def test_the_timer_requests_a_time_limit_stop_before_the_limit(fake_slurm):
    stop = StopRequest()
    try:
        assert slurm.arm_time_limit(stop, margin=2) == 1  # 3 s left, 2 s margin
        deadline = time.time() + 10
        while not stop.requested and time.time() < deadline:
            time.sleep(0.05)
    finally:
        slurm.disarm_time_limit()
        signal.signal(signal.SIGALRM, signal.SIG_DFL)
    assert stop.signal == signal.SIGALRM and stop.for_time_limit and stop.exit_code == EXIT_TIME_LIMIT
    assert fake_slurm.read_text().splitlines() == ["squeue -h -j 4242 -o %L"]


def test_no_timer_outside_slurm(monkeypatch):
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    assert slurm.arm_time_limit(StopRequest()) is None


@pytest.mark.parametrize(
    ("sig", "requeued", "code"),
    [
        (signal.SIGUSR1, True, EXIT_TIME_LIMIT),
        (signal.SIGALRM, True, EXIT_TIME_LIMIT),
        (signal.SIGTERM, False, EXIT_PREEMPTED),
    ],
)
def test_only_a_time_limit_stop_requeues(fake_slurm, sig, requeued, code):
    stop = StopRequest()
    stop.handle(sig)
    assert slurm.requeue_after(stop) is requeued
    assert stop.exit_code == code
    calls = fake_slurm.read_text().splitlines() if fake_slurm.exists() else []
    assert calls == (["scontrol requeue 4242"] if requeued else [])


def test_the_first_signal_wins():
    stop = StopRequest()
    stop.handle(signal.SIGTERM)
    stop.handle(signal.SIGUSR1)
    assert stop.describe() == "SIGTERM" and not stop.for_time_limit


_WARNED = """
import os, signal, subprocess, sys
from forge import slurm
print("ignored" if slurm.ignore_warning_in_job() else "untouched", flush=True)
os.kill(os.getpid(), signal.SIGUSR1)  # the warning reaches the in-job Snakemake...
child = "from forge.signals import StopRequest; import os, signal; s = StopRequest().install(); " \\
        "os.kill(os.getpid(), signal.SIGUSR1); print('forge stops for', s.describe())"
subprocess.run([sys.executable, "-c", child], check=True)  # ...and forge, which acts on it
"""


def test_inside_a_job_snakemake_survives_the_warning_and_forge_still_gets_it(monkeypatch):
    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    out = subprocess.run([sys.executable, "-c", _WARNED], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["ignored", "forge stops for SIGUSR1"]


def test_outside_a_job_the_warning_is_not_ignored(monkeypatch):
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    out = subprocess.run([sys.executable, "-c", _WARNED], capture_output=True, text=True, timeout=60)
    assert out.stdout.splitlines() == ["untouched"]
    assert out.returncode == -signal.SIGUSR1
