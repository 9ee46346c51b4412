"""forge/warm.py: a stage job hands its work to a warm copy of the first job's interpreter,
and ends as the stage ends. Real processes, a toy stage (no torch): what the job sees must be
what a fresh process would have done."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from forge import warm

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="warm copies are Linux-only")

TOY = """
import os, signal, sys, time
from pathlib import Path
from forge import warm

def main(argv):
    action, arg = argv[0], argv[1] if len(argv) > 1 else ""
    print(f"pid={os.getpid()} ppid={os.getppid()} cwd={os.getcwd()} preloaded={'json.tool' in sys.modules}", flush=True)
    sys.stderr.write("to stderr\\n")
    if action == "exit":
        return int(arg)
    if action == "die":
        os.kill(os.getpid(), int(arg))
    if action in ("wait-term", "sleep"):
        got = []
        signal.signal(signal.SIGTERM, lambda signum, frame: got.append(signum))
        Path(arg).write_text(str(os.getpid()))
        deadline = time.time() + 60
        while time.time() < deadline and not (got and action == "wait-term"):
            time.sleep(0.05)
        print("got TERM", flush=True)
        return 75
    return 0

name = warm.address([])
warm.hand_over(sys.argv[1:], main, name=name, load=lambda: None, preload=lambda: __import__("json.tool"), idle=3)
sys.exit(main(sys.argv[1:]))
"""


class Jobs:
    """Runs the toy as jobs in one environment (one warm copy); ends the copies it saw."""

    def __init__(self, tmp_path: Path):
        self.script = tmp_path / "toy.py"
        self.script.write_text(TOY)
        root = Path(warm.__file__).resolve().parents[1]
        self.env = {**os.environ, "PYTHONPATH": str(root), "TOY_JOBS": str(tmp_path)}
        self.copies: set[int] = set()  # the copies that served a job

    def start(self, *argv: str, env: dict | None = None, cwd: Path | None = None) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, str(self.script), *argv], env=env or self.env, cwd=cwd,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip

    def run(self, *argv: str, **kwargs) -> tuple[int, dict, str]:
        job = self.start(*argv, **kwargs)
        out, err = job.communicate(timeout=60)
        return job.returncode, self.said(out, job.pid), err

    def said(self, out: str, job_pid: int) -> dict:
        fields = dict(part.split("=", 1) for part in out.splitlines()[0].split())
        served = int(fields["ppid"]) != os.getpid()  # run by a copy, not by the job itself
        if served:
            self.copies.add(int(fields["ppid"]))
        return {**fields, "served": served, "job": job_pid, "out": out}

    def warm_up(self) -> None:
        code, said, _ = self.run("exit", "0")
        assert code == 0
        deadline = time.time() + 30  # the copy preloads, then serves
        while not self.run("exit", "0")[1]["served"]:
            assert time.time() < deadline, "no warm copy took the second job"

    def close(self) -> None:
        """End the copies this test's jobs left (each runs this test's own toy script)."""
        for proc in Path("/proc").iterdir():
            try:
                if proc.name.isdigit() and str(self.script).encode() in (proc / "cmdline").read_bytes():
                    os.kill(int(proc.name), signal.SIGTERM)
            except (OSError, ProcessLookupError):
                pass


@pytest.fixture
def jobs(tmp_path):
    made = Jobs(tmp_path)
    yield made
    made.close()


def test_the_first_job_runs_itself_and_leaves_a_copy_that_runs_the_next_with_the_jobs_files(jobs, tmp_path):
    code, first, err = jobs.run("exit", "0")
    assert code == 0 and not first["served"] and first["preloaded"] == "False"
    assert "to stderr" in err
    jobs.warm_up()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    code, later, err = jobs.run("exit", "0", cwd=elsewhere)
    assert code == 0 and later["served"]
    assert later["preloaded"] == "True"  # what the copy imported before serving
    assert later["cwd"] == str(elsewhere)  # the job's directory
    assert "to stderr" in err  # the job's own stdout and stderr, not the first job's


def test_a_served_job_exits_as_its_stage_does_with_a_code_or_a_signal(jobs):
    jobs.warm_up()
    code, said, _ = jobs.run("exit", "7")
    assert said["served"] and code == 7
    code, said, _ = jobs.run("die", str(int(signal.SIGKILL)))
    assert said["served"] and code == -signal.SIGKILL
    code, said, _ = jobs.run("die", str(int(signal.SIGTERM)))
    assert said["served"] and code == -signal.SIGTERM


def test_a_signal_to_the_job_reaches_its_stage(jobs, tmp_path):
    jobs.warm_up()
    ready = tmp_path / "ready"
    job = jobs.start("wait-term", str(ready))
    _wait_for(ready)
    job.send_signal(signal.SIGTERM)
    out, _ = job.communicate(timeout=30)
    said = jobs.said(out, job.pid)
    assert said["served"] and int(ready.read_text()) != job.pid
    assert job.returncode == 75 and "got TERM" in out  # the stage's handler ran, its code came back


def test_a_copy_told_to_end_takes_no_job_but_reports_the_stages_it_runs(jobs, tmp_path):
    jobs.warm_up()
    copy = next(iter(jobs.copies))
    ready = tmp_path / "ready"
    job = jobs.start("wait-term", str(ready))
    _wait_for(ready)
    os.kill(copy, signal.SIGTERM)  # as scancel signals every process of a job
    code, said, _ = jobs.run("exit", "0")
    assert code == 0 and not said["served"]  # the ending copy took no new job
    job.send_signal(signal.SIGTERM)
    out, _ = job.communicate(timeout=30)
    assert job.returncode == 75 and "got TERM" in out  # its running stage's code still came back
    deadline = time.time() + 10
    while _alive(copy):
        assert time.time() < deadline, "the copy did not end"
        time.sleep(0.1)


def test_a_job_killed_outright_takes_its_stage_with_it(jobs, tmp_path):
    jobs.warm_up()
    ready = tmp_path / "ready"
    job = jobs.start("sleep", str(ready))
    _wait_for(ready)
    stage = int(ready.read_text())
    assert stage != job.pid
    job.kill()
    job.wait(timeout=10)
    deadline = time.time() + 10
    while _alive(stage):
        assert time.time() < deadline, "the stage outlived its killed job"
        time.sleep(0.1)


def test_a_job_in_another_environment_is_not_served_by_this_copy(jobs):
    jobs.warm_up()
    other = {**jobs.env, "SOMETHING_ELSE": "1"}
    code, said, _ = jobs.run("exit", "0", env=other)
    assert code == 0 and not said["served"]  # a copy imported its libraries under another environment
    jobs.env = other
    jobs.warm_up()  # it left its own copy


def test_the_copy_ends_when_idle_and_the_next_job_runs_itself(jobs):
    jobs.warm_up()
    copy = next(iter(jobs.copies))
    deadline = time.time() + 20  # idle=3 in the toy
    while _alive(copy):
        assert time.time() < deadline, "the copy did not end"
        time.sleep(0.2)
    code, said, _ = jobs.run("exit", "0")
    assert code == 0 and not said["served"]


def test_the_address_follows_the_environment_and_the_source_files(tmp_path, monkeypatch):
    source = tmp_path / "pkg"
    source.mkdir()
    (source / "mod.py").write_text("x = 1\n")
    first = warm.address([source])
    assert warm.address([source]) == first
    monkeypatch.setenv("SHLVL", "9")  # shell noise
    assert warm.address([source]) == first
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert warm.address([source]) != first
    monkeypatch.delenv("OMP_NUM_THREADS")
    (source / "mod.py").write_text("x = 22\n")  # edited code: a new copy, not the old one
    assert warm.address([source]) != first


def test_warm_copies_are_asked_for_and_kept_off_torchrun_ranks(monkeypatch):
    monkeypatch.delenv("FORGE_WARM", raising=False)
    assert not warm.available()
    monkeypatch.setenv("FORGE_WARM", "1")
    monkeypatch.setattr(warm, "GPU_DEVICES", ())
    assert warm.available()
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert not warm.available()


def _wait_for(path: Path) -> None:
    deadline = time.time() + 30
    while not path.exists() or not path.read_text():
        assert time.time() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as stat:  # a zombie is not alive
            return stat.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False
