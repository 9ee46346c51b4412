"""The shipped sweep (configs/sweeps/mnli_tiny_kd.yaml: KD alpha x T x 3 seeds) end to end,
through both entry points, with short steps and a short teacher run that all 12 points share.
Killed mid-way and run again, it completes without retraining anything that was done (the
teacher is trained once), and its report gives mean ± std per point."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys

import pytest

from forge.run.layout import RunDir
from tests.conftest import ROOT, TINY_CONFIG, forge_here, start_forge, wait_for, write_config

pytestmark = pytest.mark.integration

SHORT = """
output_root: {out}
task: {{max_train_samples: 256, max_eval_samples: 60}}
training: {{max_steps: 6, save_steps: 2, eval_steps: 6, logging_steps: 2}}
"""


SHIPPED = ROOT / "configs" / "sweeps" / "mnli_tiny_kd.yaml"
POINTS = [f"alpha{a}_T{t}__seed{s}" for a in ("0.25", "0.75") for t in ("1.0", "4.0") for s in (1, 2, 3)]


def make_sweep(folder):
    """configs/teacher.yaml, and configs/kd.yaml: the shipped sweep, short, KD from that teacher."""
    configs, out = folder / "configs", folder / "outputs"
    write_config(configs, "teacher.yaml", f"base: {TINY_CONFIG}\n" + SHORT.format(out=out))
    body = f"base: {SHIPPED}\n" + SHORT.format(out=out) + "teacher: {run: teacher.yaml}\n"
    return write_config(configs, "kd.yaml", body)


def runs(folder):
    tiny = folder / "outputs" / "mnli" / "tiny"
    return {name: RunDir(tiny / f"kd__{name}") for name in POINTS}


def attempts(run: RunDir) -> int:
    return len(json.loads(run.metadata.read_text())["attempts"])


def assert_report_has_points(folder, out):
    markdown = (out / "report.md").read_text()
    points = markdown.split("## Points (mean ± std over seeds)")[1]
    rows = [line for line in points.splitlines() if line.startswith("| 0.")]
    assert [row.split(" | ")[:2] for row in rows] == [["| 0.25", "1.0"], ["| 0.25", "4.0"], ["| 0.75", "1.0"],
                                                      ["| 0.75", "4.0"]]  # fmt: skip
    for row in rows:  # alpha | temperature | metric | n | mean ± std
        assert row.split(" | ")[3] == "3" and " ± " in row.split(" | ")[4], row
    assert "best: distillation.alpha=" in points and (out / "points.png").stat().st_size > 5000


def test_forge_py_runs_a_sweep_one_point_after_another_and_a_rerun_resumes_it(tmp_path):
    sweep = make_sweep(tmp_path)
    points = runs(tmp_path)
    teacher = RunDir(tmp_path / "outputs" / "mnli" / "tiny" / "teacher")
    proc = start_forge("--config", str(sweep), cwd=tmp_path)
    first, second = points[POINTS[0]], points[POINTS[1]]
    wait_for(second.latest_checkpoint.exists, proc=proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert first.complete.exists() and not second.complete.exists()
    first_model = (first.model / "model.safetensors").stat().st_mtime_ns

    result = forge_here("--config", str(sweep), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert all(run.complete.exists() for run in points.values())
    assert attempts(teacher) == 1 and attempts(first) == 1  # done: not run again
    assert (first.model / "model.safetensors").stat().st_mtime_ns == first_model
    assert "resuming training from checkpoint-" in result.stderr and attempts(second) == 2
    assert "sweep: all 12 points complete" in result.stderr
    for name, run in points.items():  # each point's config.yaml: the resolved config, seed and values set
        config = run.config.read_text()
        assert f"seed: {name[-1]}" in config and f"alpha: {name[5:9]}" in config and "\nsweep:" not in config
        assert f"temperature: {name.split('_T')[1][:3]}" in config

    status = forge_here("status", str(tmp_path / "outputs"), cwd=tmp_path)
    assert f"sweep {sweep}: 12 runs: 12 complete" in status.stdout
    report = forge_here("report", *(str(r.root) for r in points.values()), "--out", "rep", cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    assert_report_has_points(tmp_path, tmp_path / "rep")


@pytest.mark.heavy
def test_snakemake_plans_the_sweep_as_one_dag_and_a_killed_slice_of_it_reruns_only_what_is_left(tmp_path):
    """The shipped sweep's 12 points plan as one DAG (the teacher trained once); a 2-point
    slice of it (one grid point, two seeds: a config built on the sweep) runs through
    Snakemake, is killed once a point is complete, and the rerun trains only what was left
    and writes the slice's report."""
    make_sweep(tmp_path)
    configs = tmp_path / "configs"
    write_config(configs, "slice.yaml", "base: kd.yaml\nsweep: {grid: {distillation.alpha: [0.25], "
                 "distillation.temperature: [1.0]}, seeds: [1, 2]}\n")  # fmt: skip
    teacher = RunDir(tmp_path / "outputs" / "mnli" / "tiny" / "teacher")

    def snakemake(runs: str) -> list[str]:
        return [sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile"), "--directory",
                str(tmp_path), "--profile", str(ROOT / "profiles" / "local"), "--cores", "2",
                "--config", f"config_root={configs}", f"runs={configs / runs}"]  # fmt: skip

    plan = subprocess.run([*snakemake("kd.yaml"), "-n"], capture_output=True, text=True, timeout=120)
    assert plan.returncode == 0, plan.stderr
    out = plan.stdout + plan.stderr
    assert out.count(": starts fresh") == 13 and "rule sweep_report:" in out  # the teacher's train: once

    tiny = tmp_path / "outputs" / "mnli" / "tiny"
    points = {seed: RunDir(tiny / f"slice__alpha0.25_T1.0__seed{seed}") for seed in (1, 2)}
    proc = subprocess.Popen(snakemake("slice.yaml"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)  # fmt: skip
    try:
        wait_for(lambda: any(r.complete.exists() for r in points.values()), timeout=400, proc=proc)
    finally:
        with contextlib.suppress(ProcessLookupError):  # (a Snakemake that ended early: said above)
            os.killpg(proc.pid, signal.SIGKILL)  # Snakemake and the jobs it runs
        proc.wait()
    # A point whose training was done: Snakemake may redo the stage job it was killed in (an
    # evaluation), never its training.
    trained = {seed: r.stage_marker("train").stat().st_mtime_ns for seed, r in points.items() if r.complete.exists()}
    assert len(trained) == 1, "killed too late to test anything"

    result = subprocess.run(snakemake("slice.yaml"), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert all(r.complete.exists() for r in points.values())
    assert [a["stage"] for a in json.loads(teacher.metadata.read_text())["attempts"]].count("train") == 1
    for seed, mtime in trained.items():
        assert points[seed].stage_marker("train").stat().st_mtime_ns == mtime, f"seed {seed} was trained again"
    report = (tiny / "slice" / "report.md").read_text().split("## Points (mean ± std over seeds)")[1]
    (row,) = [line for line in report.splitlines() if line.startswith("| accuracy |")]  # one point: no swept column
    assert row.split(" | ")[1] == "2" and " ± " in row  # its two seeds
