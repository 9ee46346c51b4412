"""forge.py under torchrun: two CPU processes (gloo) train the offline twin.

The student is the embedded tiny DistilBERT with its dropout set to 0 (a local
directory in Hub format): with dropout, two ranks draw other masks than one process
does, and the runs could not be compared.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from forge.run.layout import RunDir
from forge.run.state import checkpoint_problem, checkpoint_world_size
from tests.conftest import (
    ONLINE_KD,
    ROOT,
    TINY_CONFIG,
    assert_bitwise_equal,
    free_port,
    run_dir,
    run_forge,
    wait_for,
    write_config,
)

pytestmark = [pytest.mark.integration, pytest.mark.heavy]

# Each process one thread: two ranks on a 2-core machine, and the same in every run compared.
ENV = {"OMP_NUM_THREADS": "1"}
# Largest weight difference allowed between 2 x 16 and 1 x 32 examples a step after 40
# steps (gloo sums the gradients in another order; Adam carries the rounding along).
# Measured: 5e-5, for weights of magnitude ~1.
TOLERANCE = 1e-3


@pytest.fixture(scope="module")
def student(tmp_path_factory) -> Path:
    from forge.embedded import ensure

    folder = tmp_path_factory.mktemp("student") / "tiny-distilbert-no-dropout"
    source = ensure("embedded:tiny-distilbert")
    folder.mkdir()
    for file in source.iterdir():
        if file.is_file():
            (folder / file.name).write_bytes(file.read_bytes())
    config = json.loads((folder / "config.json").read_text())
    config.update({k: 0.0 for k in config if k.endswith("dropout")})
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def config(folder: Path, name: str, student: Path, batch_size: int, max_steps: int, extra: str = "") -> Path:
    return write_config(
        folder,
        f"{name}.yaml",
        extra
        + f"""
        base: {TINY_CONFIG}
        output_root: {folder / "outputs"}
        student:
          path: {student}
        task:
          max_eval_samples: 200
        training:
          max_steps: {max_steps}
          batch_size: {batch_size}
          save_steps: 20
          eval_steps: 20
          logging_steps: 10
        """,
    )


def torchrun(*args: str) -> list[str]:
    # --standalone: the rendezvous on a free port of this machine (loopback)
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
            str(ROOT / "forge.py"), *args]  # fmt: skip


def run_torchrun(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        torchrun(*args), cwd=cwd, capture_output=True, text=True, timeout=600, env={**os.environ, **ENV}
    )


def steps_logged(run) -> list[int]:
    lines = (run.root / "metrics" / "steps.jsonl").read_text().splitlines()
    return sorted({json.loads(line)["step"] for line in lines if "loss" in json.loads(line)})


def test_kd_with_a_learned_projection_trains_the_same_on_two_processes(tmp_path, student):
    import torch

    train_one_and_two(tmp_path, student, ONLINE_KD)  # the projection is outside DDP
    assert_same_model(tmp_path, student)
    a, b = (torch.load(run_dir(tmp_path, name).checkpoint(40) / "hidden_projection.pt") for name in ("two", "one"))
    assert largest_difference(a, b) < TOLERANCE
    # the loss and its parts, as logged, are the global batch's
    two, one = (logged(run_dir(tmp_path, name), ("loss", "ce", "kd", "hidden")) for name in ("two", "one"))
    assert two.keys() == one.keys() == {10, 20, 30, 40}
    assert all(abs(two[s][k] - one[s][k]) < 1e-3 for s in two for k in two[s]), (two, one)


def logged(run, keys: tuple[str, ...]) -> dict[int, dict[str, float]]:
    """step -> the training log's values of `keys`, from metrics/steps.jsonl"""
    lines = [json.loads(line) for line in (run.root / "metrics" / "steps.jsonl").read_text().splitlines()]
    return {r["step"]: {k: r[k] for k in keys} for r in lines if "loss" in r}


def logged_losses(run) -> dict[int, float]:
    return {step: values["loss"] for step, values in logged(run, ("loss",)).items()}


def train_one_and_two(folder: Path, student: Path, extra: str = "") -> subprocess.CompletedProcess:
    two = run_torchrun("--config", str(config(folder, "two", student, 16, 40, extra)), cwd=folder)
    assert two.returncode == 0, two.stderr[-3000:]
    one = run_forge("--config", str(config(folder, "one", student, 32, 40, extra)), cwd=folder, env=ENV)
    assert one.returncode == 0, one.stderr[-3000:]
    return two


def largest_difference(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max((a[k] - b[k]).abs().max().item() for k in a)


def assert_same_model(folder: Path, student: Path) -> None:
    from safetensors.torch import load_file

    a = load_file(run_dir(folder, "two").model / "model.safetensors")
    b = load_file(run_dir(folder, "one").model / "model.safetensors")
    start = {k: w for k, w in load_file(student / "model.safetensors").items() if k in a}
    difference, moved = largest_difference(a, b), largest_difference({k: a[k] for k in start}, start)
    assert difference < TOLERANCE < moved, (difference, moved)


def test_two_processes_train_what_one_process_trains_with_the_same_global_batch(tmp_path, student):
    two = train_one_and_two(tmp_path, student)
    assert_same_model(tmp_path, student)

    # the losses logged are the global batch's (each rank's loss is scaled as the Trainer does)
    losses = [logged_losses(run_dir(tmp_path, name)) for name in ("two", "one")]
    assert losses[0].keys() == losses[1].keys() == {10, 20, 30, 40}
    assert all(abs(losses[0][k] - losses[1][k]) < 1e-3 for k in losses[0]), losses

    run = run_dir(tmp_path, "two")
    # rank 0 alone wrote the run's files: every step logged once, one attempt, one of each message
    assert steps_logged(run) == [10, 20, 30, 40]
    lines = [json.loads(line) for line in (run.root / "metrics" / "steps.jsonl").read_text().splitlines()]
    assert len(lines) == len({(r["step"], tuple(sorted(r))) for r in lines})
    log = run.log.read_text()
    assert log.count("checkpoint checkpoint-20 complete") == 1 and log.count("stage pre_eval: starting") == 1
    meta = json.loads(run.metadata.read_text())
    assert [(a["exit_reason"], a["processes"]) for a in meta["attempts"]] == [("completed", 2)]
    assert checkpoint_world_size(run.checkpoint(40)) == 2
    # rank 0 tells the story once; the others say nothing when nothing is wrong
    assert two.stderr.count("forge: pipeline complete") == 1
    assert two.stderr.count("forge: stage train: starting") == 1
    assert "forge[rank 1]" not in two.stderr


def test_sigusr1_to_one_rank_stops_all_ranks_at_one_checkpoint_and_resume_completes(tmp_path, student):
    reference = run_torchrun("--config", str(config(tmp_path, "reference", student, 16, 120)), cwd=tmp_path)
    assert reference.returncode == 0, reference.stderr[-3000:]

    cfg = config(tmp_path, "stopped", student, 16, 120)
    run = run_dir(tmp_path, "stopped")
    launcher = subprocess.Popen(
        torchrun("--config", str(cfg)), cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, **ENV}, start_new_session=True,
    )  # fmt: skip
    try:
        wait_for(run.latest_checkpoint.exists, timeout=300, proc=launcher)
        rank1 = rank_pid(launcher.pid, 1)
        os.kill(rank1, signal.SIGUSR1)
        out, _ = launcher.communicate(timeout=300)
    finally:
        if launcher.poll() is None:
            os.killpg(launcher.pid, signal.SIGKILL)
    # both ranks ended for the time limit (76); torchrun itself reports a failure (1)
    assert launcher.returncode != 0
    assert out.count("exitcode  : 76") == 2, out[-3000:]
    attempt = json.loads(run.metadata.read_text())["attempts"][-1]
    assert attempt["exit_reason"] == "time limit (SIGUSR1)" and attempt["exit_code"] == 76
    assert not run.stage_marker("train").exists(), "stopped too late to test anything"
    # one clean checkpoint at the stop: the newest is safe, the marker names it
    (step, newest), *_ = run.checkpoints()
    assert checkpoint_problem(newest) is None and step < 120
    assert run.latest_checkpoint.read_text().strip() == newest.name
    assert all(checkpoint_problem(path) is None for _, path in run.checkpoints())

    # one process can't take over a two-process checkpoint: a clear refusal, nothing lost
    refused = run_forge("--resume", str(run.root), cwd=tmp_path, env=ENV)
    assert refused.returncode == 1
    assert "written by 2 process(es), resumed by 1" in refused.stderr
    assert checkpoint_problem(newest) is None

    resumed = run_torchrun("--resume", str(run.root), cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resuming training from {newest.name}" in resumed.stderr
    assert run.complete.exists()
    assert steps_logged(run) == list(range(10, 121, 10))
    assert_bitwise_equal(run, run_dir(tmp_path, "reference"))


def rank_pid(launcher: int, rank: int) -> int:
    """The pid of a torchrun worker, found by the RANK in its environment."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            env = (proc / "environ").read_bytes().split(b"\0")
            if f"RANK={rank}".encode() in env and _descends(int(proc.name), launcher):
                return int(proc.name)
        except OSError:
            continue
    raise AssertionError(f"no rank {rank} under pid {launcher}")


def _descends(pid: int, ancestor: int) -> bool:
    """Is `pid` `ancestor` or below it? (False for a process that is gone.)"""
    while pid > 1:
        if pid == ancestor:
            return True
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return False
        pid = int(stat.rsplit(")", 1)[1].split()[1])
    return False


SRUN = """#!/bin/bash
# A stand-in for `srun [--opt=value | --opt value]... CMD...` on one machine: --nodes N
# copies of CMD, as SLURM would start one per node.
n=1
while [[ $1 == --* ]]; do
  case $1 in --nodes) n=$2; shift 2 ;; --*=*) shift ;; *) shift 2 ;; esac
done
for ((i = 0; i < n; i++)); do SLURM_NODEID=$i SLURM_PROCID=$i "$@" & done
code=0
for ((i = 0; i < n; i++)); do wait -n || code=$?; done
exit $code
"""


def test_the_multi_node_command_meets_through_the_c10d_rendezvous_and_survives_the_warning(tmp_path, student):
    """The train rule's command for two nodes (one torchrun each, started by srun, meeting
    at the first node) — here both "nodes" are this machine: srun and hostname are
    stand-ins, torchrun and its rendezvous are real (on 127.0.0.1). SLURM's warning
    (USR1 to every process of the step: both torchruns and both ranks) stops the ranks
    at one checkpoint; the torchruns live on to report it; the same command resumes."""
    from forge.workflow import train_launcher

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "srun").write_text(SRUN)
    (bin_dir / "hostname").write_text("#!/bin/sh\necho 127.0.0.1\n")
    requeued = tmp_path / "scontrol_calls"  # forge asks SLURM to requeue the job after the warning
    (bin_dir / "scontrol").write_text(f'#!/bin/sh\necho "$@" >> {requeued}\n')
    for stub in bin_dir.iterdir():
        stub.chmod(0o755)
    cfg = config(tmp_path, "nodes", student, 16, 120)
    run = run_dir(tmp_path, "nodes")
    launch = train_launcher(sys.executable, processes=1, nodes=2)
    env = {**os.environ, **ENV, "PATH": f"{bin_dir}:{os.environ['PATH']}", "SLURM_JOB_ID": "4242"}
    first = subprocess.Popen(["bash", "-c", f"{launch} --config {cfg}"], cwd=tmp_path, env=env, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # fmt: skip
    try:
        wait_for(run.latest_checkpoint.exists, timeout=300, proc=first)
        step = [pid for pid in descendants(first.pid) if comm(pid) != "bash"]
        assert len(step) == 4, step  # two torchruns, two ranks
        for pid in step:
            os.kill(pid, signal.SIGUSR1)
        out, _ = first.communicate(timeout=300)
    finally:
        if first.poll() is None:
            for pid in descendants(first.pid):
                os.kill(pid, signal.SIGKILL)
            first.kill()
    assert out.count("exitcode  : 76") == 2, out[-3000:]  # each torchrun outlived USR1 to report its rank
    calls = requeued.read_text().splitlines()
    assert [c for c in calls if c.startswith("requeue")] == ["requeue 4242"]  # by rank 0 alone
    assert not run.stage_marker("train").exists()
    resumed = subprocess.run(["bash", "-c", f"{launch} --resume {run.root}"], cwd=tmp_path, capture_output=True,
                             text=True, timeout=600, env=env)  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert run.complete.exists()
    meta = json.loads(run.metadata.read_text())
    reasons = [(a["exit_reason"], a["processes"]) for a in meta["attempts"]]
    assert reasons == [("time limit (SIGUSR1)", 2), ("completed", 2)]


def descendants(root: int) -> list[int]:
    return [pid for pid in map(int, filter(str.isdigit, os.listdir("/proc"))) if pid != root and _descends(pid, root)]


def comm(pid: int) -> str:
    return Path(f"/proc/{pid}/comm").read_text().strip()


def test_the_sft_to_grpo_chain_runs_on_two_processes(tmp_path):
    """trl's GRPOTrainer under the same launcher: 8 completions a prompt, 16 a process."""
    reasoning = ROOT / "configs" / "reasoning" / "gsm8k" / "tiny"
    common = f"""
        output_root: {tmp_path / "outputs"}
        task:
          max_eval_samples: 32
        """
    write_config(tmp_path, "sft.yaml", f"""
        base: {reasoning / "00_sft.yaml"}""" + common + """
        training:
          max_steps: 20
          save_steps: 10
          logging_steps: 5
        """)  # fmt: skip
    grpo = write_config(tmp_path, "grpo.yaml", f"""
        base: {reasoning / "01_grpo.yaml"}""" + common + """
        student:
          path: null
          run: sft.yaml
        training:
          max_steps: 6
          batch_size: 16
          save_steps: 3
          logging_steps: 2
        """)  # fmt: skip
    result = run_torchrun("--config", str(grpo), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    for name in ("sft", "grpo"):
        run = RunDir(tmp_path / "outputs" / "reasoning" / "tiny" / name)
        assert run.complete.exists()
        assert [a["processes"] for a in json.loads(run.metadata.read_text())["attempts"]] == [2]
    assert checkpoint_world_size(run.checkpoint(6)) == 2
    rewards = [json.loads(line) for line in (run.root / "metrics" / "steps.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rewards if "reward" in r] == [2, 4, 6]


def test_accelerate_launch_runs_the_same_pipeline_on_two_processes(tmp_path, student):
    cfg = config(tmp_path, "accelerate", student, 16, 20)
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
               "--main_process_ip", "127.0.0.1", "--main_process_port", str(free_port()),
               str(ROOT / "forge.py"), "--config", str(cfg)]  # fmt: skip
    result = subprocess.run(
        command, cwd=tmp_path, capture_output=True, text=True, timeout=600, env={**os.environ, **ENV}
    )
    assert result.returncode == 0, result.stderr[-3000:]
    run = run_dir(tmp_path, "accelerate")
    assert run.complete.exists()
    assert [a["processes"] for a in json.loads(run.metadata.read_text())["attempts"]] == [2]
    assert checkpoint_world_size(run.checkpoint(20)) == 2
