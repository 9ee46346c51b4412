"""`snakemake --profile profiles/slurm` against a real (local, single-node) SLURM."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from forge.run.layout import STAGES
from tests.conftest import assert_bitwise_equal, run_dir, wait_for
from tests.integration.test_snakemake import snakemake_cmd

pytestmark = [pytest.mark.slurm, pytest.mark.heavy]

TIMEOUT = 900  # every Snakemake call is bounded; `timeout -k` also ends a hung one


def slurm_cmd(folder, cluster, *extra: str, timeout: int = TIMEOUT, train: tuple[str, ...] = ()) -> list[str]:
    """The slurm profile, with the local cluster's partition and status polling; `train`:
    more resources of the train rule (name=value)."""
    return [
        "timeout", "-k", "10", str(timeout),
        *snakemake_cmd(folder, profile="slurm"),
        "--default-resources", f"slurm_partition={cluster.partition}", "runtime=20", "mem_mb=1000",
        "cpus_per_task=2",
        "--set-resources", "train:runtime=20", "train:cpus_per_task=2", "prepare_data:mem_mb=1000",
        *(f"train:{resource}" for resource in train),
        "--set-threads", *(f"{stage}=2" for stage in STAGES),  # alike: one warm interpreter a job
        "--slurm-status-command", "squeue",
        "--slurm-init-seconds-before-status-checks", "2",
        "--slurm-no-account",
        *extra,
    ]  # fmt: skip


@pytest.fixture
def folder(tmp_path):
    from tests.integration.test_snakemake import make_folder

    return make_folder(tmp_path)


def attempts(run):
    return json.loads(run.metadata.read_text())["attempts"]


def stop_mid_training(run, command: list[str], slurm: tuple[str, ...], env: dict | None = None) -> str:
    """Run the profile; once the train job has a checkpoint, run the SLURM command `slurm`
    on its job id (e.g. `scontrol requeue`). The Snakemake run must still succeed; returns
    the train job's id."""
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        wait_for(run.latest_checkpoint.exists, timeout=600, proc=proc)
        job = attempts(run)[-1]["slurm_job_id"]
        stop = subprocess.run([*slurm, job], capture_output=True, text=True)
        assert stop.returncode == 0, stop.stderr
        out, _ = proc.communicate(timeout=TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, out[-5000:]
    return job


REQUEUE = ("scontrol", "requeue")  # SLURM sends SIGTERM to the job and starts it again under its id


def test_a_two_process_train_job_is_requeued_and_resumes_on_two_processes(slurm_cluster, folder):
    """`processes: 2` for the train rule: torchrun inside the SLURM job. SLURM's requeue
    sends SIGTERM to the job; torchrun passes it on, both ranks save the same step and
    stop; the job comes back under its id and resumes with two processes."""
    from forge.run.state import checkpoint_world_size

    run = run_dir(folder)
    command = slurm_cmd(folder, slurm_cluster, train=("processes=2",))
    job = stop_mid_training(run, command, REQUEUE, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert run.complete.exists()
    train = [a for a in attempts(run) if a["stage"] == "train"]
    assert [(a["exit_reason"], a["processes"]) for a in train] == [("preempted (SIGTERM)", 2), ("stage done", 2)]
    assert train[0]["slurm_job_id"] == train[1]["slurm_job_id"] == job
    (step, newest), *_ = run.checkpoints()
    assert step == 120 and checkpoint_world_size(newest) == 2
    log = (run.root / "logs" / "train.log").read_text()
    assert "resuming training from checkpoint-" in log


def test_the_time_limit_warning_requeues_the_job_until_training_is_done(slurm_cluster, folder):
    """runtime 2 min with --signal=USR1@60: SLURM's warning (which may come a minute early,
    and after the last step too) or forge's own timer stops each start; each time forge
    saves, requeues its job and exits, and the next start resumes. One job id throughout:
    a warning that fails the job would show as a Snakemake retry (a new job id)."""
    config = folder / "configs" / "short.yaml"
    config.write_text(
        config.read_text()
        # The warning comes 50-90 s into a start; on a quiet machine this job trains ~100
        # steps/s, so 12,000 steps (~120 s of training) never fit in one start. (2,000 and then
        # 4,000 steps once finished inside the first start, and the test had nothing to check;
        # on a busy machine, ~31 steps/s, it takes more starts, not a different result.)
        .replace("max_steps: 120", "max_steps: 12000")
        .replace("save_steps: 20", "save_steps: 1000")
        .replace("eval_steps: 60", "eval_steps: 12000")
        .replace("max_eval_samples: 200", "max_eval_samples: 100")
    )
    cmd = slurm_cmd(folder, slurm_cluster, "--set-resources", "train:runtime=2", "train:cpus_per_task=2",
                    "train:slurm_extra='--signal=USR1@60'", timeout=1800)  # fmt: skip
    result = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "FORGE_TIME_MARGIN": "45"})
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-5000:]
    run = run_dir(folder)
    assert run.complete.exists()
    assert json.loads(run.state.read_text())["global_step"] == 12000
    train = [a for a in attempts(run) if a["stage"] == "train"]
    reasons = [a["exit_reason"] for a in train]
    listed = "\n".join(f"job {a['slurm_job_id']}.{a['slurm_restart_count']}: {a['exit_reason']}" for a in train)
    assert len({a["slurm_job_id"] for a in train}) == 1, f"requeued under one job id, not resubmitted:\n{listed}"
    assert reasons[-1] == "stage done" and len(train) >= 2, listed
    assert all(r.startswith("time limit (") for r in reasons[:-1]), listed
    assert reasons[0] == "time limit (SIGUSR1)", listed
    assert [a["slurm_restart_count"] for a in train] == list(range(len(train)))


def test_the_profile_forge_doctor_fixes_runs_the_pipeline_through_a_requeue_and_a_scancel(slurm_cluster, folder):
    """The local cluster has no accounting and a 2-CPU node: the shipped profile would hang
    polling sacct and its train job would not fit. `forge doctor --write` says so and writes a
    copy, which then runs the whole pipeline with no other setting on the command line, in
    three jobs (the light stages share one with their neighbour), through both ways SLURM
    stops a job:
    - `scontrol requeue` mid-training: SLURM sends SIGTERM to the job; forge saves, and the
      job comes back under its own id (restart count 1) and resumes;
    - `scancel` of that requeued job mid-training: SIGTERM again; forge saves and exits 75
      without requeueing (SLURM has decided); the job ends CANCELLED, which Snakemake counts
      as failed: the profile's `retries` resubmit it as a new job, which resumes.
    The run ends bitwise equal to an uninterrupted forge.py run of the same config."""
    import sys

    from tests.conftest import ROOT, run_forge

    config = folder / "configs" / "short.yaml"  # long enough to be caught twice mid-training
    config.write_text(config.read_text().replace("max_steps: 120", "max_steps: 600").replace("save_steps: 20",
                      "save_steps: 50").replace("eval_steps: 60", "eval_steps: 600"))  # fmt: skip
    reference_config = folder / "reference.yaml"
    reference_config.write_text(f"base: {config}\nrun_name: reference\n")
    assert run_forge("--config", str(reference_config), cwd=folder).returncode == 0
    reference = run_dir(folder, "reference")

    fixed = folder / "fixed-profile"
    doctor = [sys.executable, "-m", "forge", "doctor", "--profile", str(ROOT / "profiles" / "slurm"), "--write",
              str(fixed)]  # fmt: skip
    result = subprocess.run(doctor, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "problem  accounting: none" in result.stdout and "slurm-status-command: squeue" in result.stdout
    assert "problem  train: cpus_per_task 8 does not fit the largest node" in result.stdout
    again = subprocess.run([*doctor[:-2]], capture_output=True, text=True, timeout=120)
    assert "problem" in again.stdout  # the shipped profile is left as it was
    assert subprocess.run([*doctor[:4], "--profile", str(fixed)], capture_output=True, text=True).returncode == 0

    command = [
        "timeout", "-k", "10", str(TIMEOUT), sys.executable, "-m", "snakemake",
        "--snakefile", str(ROOT / "Snakefile"), "--directory", str(folder), "--profile", str(fixed),
        "--config", f"config_root={folder / 'configs'}", f"runs={folder / 'configs'}",
        "--slurm-init-seconds-before-status-checks", "2",  # faster here; not needed to work
    ]  # fmt: skip
    run = run_dir(folder)
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for(run.latest_checkpoint.exists, timeout=600, proc=proc)
        job = attempts(run)[-1]["slurm_job_id"]
        first = run.latest_checkpoint.read_text()
        assert subprocess.run(["scontrol", "requeue", job], capture_output=True).returncode == 0

        def requeued_and_training():
            restarted = [a for a in attempts(run) if a["stage"] == "train" and a.get("slurm_restart_count") == 1]
            return restarted and run.latest_checkpoint.read_text() != first

        wait_for(requeued_and_training, timeout=600, proc=proc)
        assert subprocess.run(["scancel", job], capture_output=True).returncode == 0
        out, _ = proc.communicate(timeout=TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, out[-5000:]
    assert run.complete.exists()
    assert_bitwise_equal(run, reference)

    jobs = {}
    for a in attempts(run):
        jobs.setdefault(a["stage"], []).append(a)
    assert list(jobs) == ["prepare_data", "pre_eval", "train", "finalize", "post_eval"]
    (prepare,), (pre_eval,), (finalize,), (post_eval,) = (jobs[s] for s in ("prepare_data", "pre_eval", "finalize",
                                                                            "post_eval"))  # fmt: skip
    # three jobs as planned (the profile's groups): the light stages share one with their neighbour
    assert prepare["slurm_job_id"] == pre_eval["slurm_job_id"] and finalize["slurm_job_id"] == post_eval["slurm_job_id"]
    assert len({prepare["slurm_job_id"], job, finalize["slurm_job_id"]}) == 3
    requeued, cancelled, retried = jobs["train"]
    assert [(a["exit_reason"], a["outcome"]) for a in jobs["train"]] == [
        ("preempted (SIGTERM)", "preempted"),
        ("preempted (SIGTERM)", "preempted"),
        ("stage done", "stage done"),
    ]
    assert requeued["slurm_job_id"] == cancelled["slurm_job_id"] == job  # requeued: the same job
    assert (requeued["slurm_restart_count"], cancelled["slurm_restart_count"]) == (0, 1)
    assert retried["slurm_job_id"] != job and retried["slurm_restart_count"] == 0  # cancelled: a new job
    assert run.log.read_text().count("resuming training from checkpoint-") == 2
