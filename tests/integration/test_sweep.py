"""A sweep end to end, through both entry points: a KD grid over seeds whose points share one
teacher run. Killed mid-way and run again, it completes without retraining anything that was
done (the teacher is trained once), and its report gives mean ± std per point."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from forge.run.layout import RunDir
from tests.conftest import ROOT, TINY_CONFIG, run_forge, start_forge, wait_for, write_config

pytestmark = pytest.mark.integration

SHORT = """
output_root: {out}
task: {{max_train_samples: 256, max_eval_samples: 60}}
training: {{max_steps: 6, save_steps: 2, eval_steps: 6, logging_steps: 2}}
"""


def make_sweep(folder):
    """configs/teacher.yaml and configs/kd.yaml: alpha 0.25 / 0.75 x seeds 1, 2, KD from the teacher."""
    configs, out = folder / "configs", folder / "outputs"
    write_config(configs, "teacher.yaml", f"base: {TINY_CONFIG}\n" + SHORT.format(out=out))
    body = f"base: {TINY_CONFIG}\n" + SHORT.format(out=out)
    body += "teacher: {run: teacher.yaml}\ndistillation: {alpha: 0.5, temperature: 2.0}\n"
    body += "sweep:\n  grid: {distillation.alpha: [0.25, 0.75]}\n  seeds: [1, 2]\n"
    return write_config(configs, "kd.yaml", body)


def runs(folder):
    tiny = folder / "outputs" / "mnli" / "tiny"
    return {name: RunDir(tiny / f"kd__{name}") for name in ("alpha0.25__seed1", "alpha0.25__seed2",
                                                             "alpha0.75__seed1", "alpha0.75__seed2")}  # fmt: skip


def attempts(run: RunDir) -> int:
    return len(json.loads(run.metadata.read_text())["attempts"])


def assert_report_has_points(folder, out):
    markdown = (out / "report.md").read_text()
    points = markdown.split("## Points (mean ± std over seeds)")[1]
    rows = [line for line in points.splitlines() if line.startswith("| 0.")]
    assert [row.split(" | ")[0] for row in rows] == ["| 0.25", "| 0.75"]
    for row in rows:  # alpha | metric | n | mean ± std
        assert row.split(" | ")[2] == "2" and " ± " in row.split(" | ")[3], row
    assert "best: distillation.alpha=" in points and (out / "points.png").stat().st_size > 5000


def test_forge_py_runs_a_sweep_one_point_after_another_and_a_rerun_resumes_it(tmp_path):
    sweep = make_sweep(tmp_path)
    points = runs(tmp_path)
    teacher = RunDir(tmp_path / "outputs" / "mnli" / "tiny" / "teacher")
    proc = start_forge("--config", str(sweep), cwd=tmp_path)
    second = points["alpha0.25__seed2"]
    wait_for(second.latest_checkpoint.exists, proc=proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert points["alpha0.25__seed1"].complete.exists() and not second.complete.exists()
    first_model = (points["alpha0.25__seed1"].model / "model.safetensors").stat().st_mtime_ns

    result = run_forge("--config", str(sweep), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert all(run.complete.exists() for run in points.values())
    assert attempts(teacher) == 1 and attempts(points["alpha0.25__seed1"]) == 1  # done: not run again
    assert (points["alpha0.25__seed1"].model / "model.safetensors").stat().st_mtime_ns == first_model
    assert "resuming training from checkpoint-" in result.stderr and attempts(second) == 2
    assert "sweep: all 4 points complete" in result.stderr
    for name, run in points.items():  # each point's config.yaml: the resolved config, seed and value set
        config = run.config.read_text()
        assert f"seed: {name[-1]}" in config and f"alpha: {name[5:9]}" in config and "\nsweep:" not in config

    status = run_forge("status", str(tmp_path / "outputs"), cwd=tmp_path)
    assert f"sweep {sweep}: 4 runs: 4 complete" in status.stdout
    report = run_forge("report", *(str(r.root) for r in points.values()), "--out", "rep", cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    assert_report_has_points(tmp_path, tmp_path / "rep")


@pytest.mark.heavy
def test_snakemake_runs_a_sweep_as_one_dag_and_a_killed_plan_reruns_only_what_is_left(tmp_path):
    make_sweep(tmp_path)
    points = runs(tmp_path)
    teacher = RunDir(tmp_path / "outputs" / "mnli" / "tiny" / "teacher")
    configs = tmp_path / "configs"
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile"), "--directory", str(tmp_path),
           "--profile", str(ROOT / "profiles" / "local"), "--cores", "2",
           "--config", f"config_root={configs}", f"runs={configs / 'kd.yaml'}"]  # fmt: skip

    plan = subprocess.run([*cmd, "-n"], capture_output=True, text=True, timeout=120)
    assert plan.returncode == 0, plan.stderr
    out = plan.stdout + plan.stderr
    assert out.count(": starts fresh") == 5 and "rule sweep_report:" in out  # the teacher's train: once

    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_for(lambda: any(r.complete.exists() for r in points.values()), timeout=400, proc=proc)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # Snakemake and the jobs it runs
        proc.wait()
    # Points whose training was done: Snakemake may redo the stage job it was killed in (an
    # evaluation), never their training.
    trained = {name: r.stage_marker("train").stat().st_mtime_ns for name, r in points.items() if r.complete.exists()}
    assert 0 < len(trained) < 4, "killed too late to test anything"

    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert all(r.complete.exists() for r in points.values())
    assert [a["stage"] for a in json.loads(teacher.metadata.read_text())["attempts"]].count("train") == 1
    for name, mtime in trained.items():
        assert points[name].stage_marker("train").stat().st_mtime_ns == mtime, f"{name} was trained again"
    assert_report_has_points(tmp_path, tmp_path / "outputs" / "mnli" / "tiny" / "kd")
