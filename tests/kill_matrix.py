"""The kill matrix: interrupt short offline runs at chosen points with chosen signals, resume
them, and check what survived.

A point is a function forge (or the trainer) calls; a small wrapper around forge.py
patches it to signal its own process on the n-th call of that attempt, before the call
runs: SIGKILL to forge, SIGTERM and SIGUSR1 to every process of the run (W&B's helper
too, W&B being on in those attempts), as SLURM signals a job step. Nothing in forge knows
about it.

The points of one kind of run form a chain: the first attempt (`forge --config`) is
interrupted at the first point, the attempt that resumes it (`forge --resume`) at the
second, and so on, each resume picking up what the one before left behind; after the last
point the run is resumed until it completes. Every attempt must end as its point says
(killed, exit 75 after SIGTERM, 76 after SIGUSR1, or 0 where the stop comes after forge's
last look at the flag), the completed run's final weights must be bitwise equal to an
uninterrupted run's, metrics/steps.jsonl must hold the uninterrupted run's curve (each step
logged once with the same numbers: the runs log every 3 steps and checkpoint more often, so
most resumes start between two logs), and every attempt must be in run_metadata.json. A
chain is one resume per point instead of a fresh run and a resume per point, and it asks
more: each resume survives the next fault.

    .venv/bin/python -m tests.kill_matrix      # runs every chain, prints a table

tests/integration/test_kill_matrix.py runs the same chains under pytest.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KILL, TERM, USR1 = signal.SIGKILL, signal.SIGTERM, signal.SIGUSR1


@dataclass(frozen=True)
class Cut:
    """The signal `sig` as the attempt's `call`-th call of `module.attribute` starts."""

    where: str  # what the run is doing then, in words
    module: str
    attribute: str
    call: int
    sig: int
    stops_after_last_check: bool = False  # a TERM/USR1 that comes too late to stop anything: exit 0

    @property
    def to_every_process(self) -> bool:
        """SIGTERM and SIGUSR1 go to every process of the run, as SLURM sends them to every
        process of a job step; during training that includes W&B's helper (W&B is on then)."""
        return self.sig != KILL

    @property
    def helpers_expected(self) -> bool:
        return self.to_every_process and not self.module.startswith("forge.stages")

    @property
    def expected_exit(self) -> int:
        if self.sig == KILL:
            return -KILL
        if self.stops_after_last_check:
            return 0
        return 75 if self.sig == TERM else 76


TRAINER = "transformers.Trainer"

# The SFT run: kill_config (12 steps, a checkpoint every 2, evaluations at 6 and 12, a log every
# 3, so most resumes start between two logs). Each cut's words say where it lands given the cuts
# before it (the resume point they leave).
SFT_KILLS = [
    Cut(
        "prepare_data: tokenized, before the data moves into place", "forge.stages.prepare_data", "replace_dir", 1, KILL
    ),  # fmt: skip
    Cut("pre_eval: evaluating the student", "forge.stages.pre_eval", "evaluate_model", 1, KILL),
    Cut("train: in step 1 (no checkpoint yet)", TRAINER, "training_step", 1, KILL),
    Cut("train: in step 4 (after checkpoint-2)", TRAINER, "training_step", 4, KILL),
    Cut("train: in the evaluation at step 6", TRAINER, "evaluate", 1, KILL),
    Cut("checkpoint-6: model written, optimizer not", TRAINER, "_save_optimizer_and_scheduler", 1, KILL),
    Cut("checkpoint-6: optimizer written, RNG state not", TRAINER, "_save_rng_state", 1, KILL),
    Cut("checkpoint-6: written, not yet marked complete", "forge.callbacks", "mark_checkpoint_complete", 1, KILL),
    Cut("checkpoint-6: marked, latest_checkpoint not moved", "forge.callbacks", "set_latest_checkpoint", 1, KILL),
    Cut("train: last step done, before train.done", "forge.stages.train", "mark_stage_done", 1, KILL),
    Cut("finalize: before the model moves into place", "forge.stages.finalize", "replace_dir", 1, KILL),
    Cut("finalize: model saved, before finalize.done", "forge.stages.finalize", "mark_stage_done", 1, KILL),
    Cut("post_eval: evaluating the final model", "forge.stages.post_eval", "evaluate_model", 1, KILL),
    Cut("post_eval: done, before pipeline_complete", "forge.run.session", "mark_pipeline_complete", 1, KILL),
]
# SIGTERM and SIGUSR1 take one path (a flag, a save at the next step end) and differ only in
# the exit code and outcome they end with (tests/unit/test_signals.py): one signal per point.
SFT_STOPS = [
    Cut("pre_eval: evaluating the student (stops after the stage)", "forge.stages.pre_eval", "evaluate_model", 1, TERM),
    Cut("train: in step 1 (saves checkpoint-1)", TRAINER, "training_step", 1, USR1),
    Cut("train: in step 3 (saves checkpoint-3)", TRAINER, "training_step", 2, TERM),
    Cut(
        "checkpoint-4: model written, optimizer not (saves checkpoint-5)",
        TRAINER,
        "_save_optimizer_and_scheduler",
        1,
        USR1,
    ),  # fmt: skip
    Cut(
        "checkpoint-6: written, not yet marked complete (saves checkpoint-7)",
        "forge.callbacks",
        "mark_checkpoint_complete",
        1,
        TERM,
    ),  # fmt: skip
    Cut(
        "post_eval: evaluating the final model (too late to stop)",
        "forge.stages.post_eval",
        "evaluate_model",
        1,
        USR1,
        stops_after_last_check=True,
    ),  # fmt: skip
]
# KD (online teacher with the learned hidden-state projection: the most state to restore), on
# kill_config's 12 steps.
KD_CUTS = [
    Cut("kd: in step 3 (after checkpoint-2)", TRAINER, "training_step", 3, KILL),
    Cut("kd checkpoint-4: model written, optimizer not", TRAINER, "_save_optimizer_and_scheduler", 1, KILL),
    Cut("kd checkpoint-4: written, not yet marked complete", "forge.callbacks", "mark_checkpoint_complete", 1, KILL),
    Cut("kd: in step 5 (saves checkpoint-5)", TRAINER, "training_step", 3, TERM),
    Cut("kd: in step 7 (saves checkpoint-7)", TRAINER, "training_step", 2, USR1),
]
# GRPO (tests.conftest.short_grpo_config: 12 steps, a checkpoint every 4, here a log every 3):
# trl's own training step; the sampling RNG and trl's per-log buffers are restored.
RL_CUTS = [
    Cut("grpo: in step 6 (after checkpoint-4)", "trl.GRPOTrainer", "training_step", 6, KILL),
    Cut("grpo checkpoint-8: model written, optimizer not", TRAINER, "_save_optimizer_and_scheduler", 1, KILL),
    Cut("grpo checkpoint-8: written, not yet marked complete", "forge.callbacks", "mark_checkpoint_complete", 1, KILL),
    Cut("grpo: in step 5 (saves checkpoint-5)", "trl.GRPOTrainer", "training_step", 1, TERM),
    Cut("grpo: in step 7 (saves checkpoint-7)", "trl.GRPOTrainer", "training_step", 2, USR1),
]
# LM distillation (lm_kd_config: a 1-layer student cut from the tiny causal LM, here 12 steps, a
# checkpoint every 4, a log every 3), from the teacher's top-8 cache and on-policy.
LM_CUTS = [
    Cut("lm kd: in step 6 (after checkpoint-4)", TRAINER, "training_step", 6, KILL),
    Cut("lm kd checkpoint-8: model written, optimizer not", TRAINER, "_save_optimizer_and_scheduler", 1, KILL),
    Cut(
        "lm kd checkpoint-8: written, not yet marked complete", "forge.callbacks", "mark_checkpoint_complete", 1, KILL
    ),  # fmt: skip
    Cut("lm kd: in step 5 (saves checkpoint-5)", TRAINER, "training_step", 1, TERM),
    Cut("lm kd: in step 7 (saves checkpoint-7)", TRAINER, "training_step", 2, USR1),
]
LM_VARIANTS = ("cached_top8", "on_policy_half")


def kill_config(folder: Path, name: str = "short.yaml") -> Path:
    """The matrix's own short SFT run of the offline twin: 12 steps of batch 32, a checkpoint
    every 2, an evaluation at 6 and 12 on 16 rows, a log every 3 steps."""
    from tests.conftest import TINY_CONFIG, write_config

    return write_config(
        folder,
        name,
        f"""
        base: {TINY_CONFIG}
        output_root: {folder / "outputs"}
        task:
          max_train_samples: 384
          max_eval_samples: 16
        training:
          max_steps: 12
          save_steps: 2
          eval_steps: 6
          logging_steps: 3
        """,
    )


def kd_config(folder: Path) -> Path:
    """kill_config as KD: an online teacher (the embedded wide model) and the hidden-state term."""
    from tests.conftest import ONLINE_KD, write_config

    kill_config(folder, "short_sft.yaml")
    return write_config(folder, "short.yaml", "\n        base: short_sft.yaml" + ONLINE_KD)


def rl_config(folder: Path, warm_start: Path) -> Path:
    """tests.conftest.short_grpo_config from `warm_start`, logging every 3 steps."""
    from tests.conftest import short_grpo_config, write_config

    short_grpo_config(folder, "short_base", folder / "outputs", warm_start)
    return write_config(folder, "short.yaml", "base: short_base.yaml\nrun_name: short\ntraining: {logging_steps: 3}\n")


def lm_kd_config(folder: Path, teacher: Path, variant: str) -> Path:
    """tests.conftest.lm_kd_config, shortened to 12 steps, a checkpoint every 4, a log every 3."""
    from tests.conftest import lm_kd_config, write_config

    lm_kd_config(folder, "short_base", folder / "outputs", teacher, variant)
    return write_config(
        folder,
        "short.yaml",
        "base: short_base.yaml\nrun_name: short\ntraining: {max_steps: 12, save_steps: 4, logging_steps: 3}\n",
    )


def run_dir(folder: Path, task: str = "mnli", model: str = "tiny"):
    from forge.run.layout import RunDir

    return RunDir(folder / "outputs" / task / model / "short")


@dataclass(frozen=True)
class Kind:
    """A kind of run in the matrix: its chain of cuts, its config in a folder, its run directory."""

    name: str
    cuts: list[Cut]
    config: object  # folder -> config path
    run: object  # folder -> RunDir
    check: object = None  # the completed run -> what is wrong with it beyond the matrix's checks


def hidden_state_kd_problems(run) -> list[str]:
    """The KD chain's learned projection trained and travelled in the checkpoints (were it
    re-initialised on a resume, the weights would differ: the bitwise check sees that)."""
    problems = [] if " hidden=" in run.log.read_text() else ["no hidden-state loss logged"]
    if not (run.checkpoint(12) / "hidden_projection.pt").exists():
        problems.append("checkpoint-12 has no hidden_projection.pt")
    return problems


def kinds(warm_start: Path | None) -> list[Kind]:
    """Every chain. The GRPO runs start from the complete SFT warm start of the tiny causal LM
    whose config is `warm_start` (tests.conftest.reasoning_warm_start_config, trained once and
    shared); the LM KD runs cut their student from it and distil from it."""
    return [
        Kind("SFT, SIGKILL", SFT_KILLS, kill_config, run_dir),
        Kind("SFT, SIGTERM / SIGUSR1", SFT_STOPS, kill_config, run_dir),
        Kind("KD", KD_CUTS, kd_config, run_dir, hidden_state_kd_problems),
        Kind("GRPO", RL_CUTS, lambda f: rl_config(f, warm_start), lambda f: run_dir(f, "reasoning")),
        *(
            Kind(f"LM KD {v}", LM_CUTS, lambda f, v=v: lm_kd_config(f, warm_start, v),
                 lambda f: run_dir(f, "reasoning", "tiny-cut1"))
            for v in LM_VARIANTS
        ),
    ]  # fmt: skip


WRAPPER = """
import importlib, os, runpy, signal, sys

module, attribute, call, sig, everyone = {module!r}, {attribute!r}, {call}, {sig}, {everyone}
if "." in module and module.rsplit(".", 1)[1][:1].isupper():  # a class: patch its method
    owner = getattr(importlib.import_module(module.rsplit(".", 1)[0]), module.rsplit(".", 1)[1])
else:
    owner = importlib.import_module(module)
original, calls = getattr(owner, attribute), []

def interrupted(*args, **kwargs):
    calls.append(1)
    if len(calls) == call:
        others = []
        if everyone:  # as SLURM signals a job step: W&B's helper (in a session of its own) too
            import psutil

            others = psutil.Process().children(recursive=True)
        with open("signalled", "w") as fh:
            fh.write(str(1 + len(others)))
        for process in others:
            try:
                process.send_signal(sig)
            except psutil.NoSuchProcess:
                pass
        os.kill(os.getpid(), sig)
    return original(*args, **kwargs)

setattr(owner, attribute, interrupted)
sys.argv = [{forge!r}, *sys.argv[1:]]
runpy.run_path({forge!r}, run_name="__main__")
"""


@dataclass
class Attempt:
    cut: Cut | None  # None: a plain resume after the chain
    exit: int
    resumed_from: str
    signalled: int  # processes the cut signalled (0: it never came)

    @property
    def as_planned(self) -> bool:
        if self.cut is None:
            return self.exit == 0
        reached = self.signalled >= (2 if self.cut.helpers_expected else 1)
        return reached and self.exit == self.cut.expected_exit


@dataclass
class Outcome:
    kind: str
    attempts: list[Attempt] = field(default_factory=list)
    complete: bool = False
    bitwise_equal: bool = False
    same_curve: bool = False
    attempts_recorded: bool = False
    problems: list[str] = field(default_factory=list)  # the kind's own checks
    log_tail: str = ""

    @property
    def interrupted_as_planned(self) -> bool:
        """Every cut came and ended its attempt as it should (so something was tested)."""
        return all(a.as_planned for a in self.attempts)

    @property
    def ok(self) -> bool:
        return (self.interrupted_as_planned and self.complete and self.bitwise_equal and self.same_curve
                and self.attempts_recorded and not self.problems)  # fmt: skip

    def describe(self) -> str:
        rows = [f"{self.kind}: complete {self.complete}, bitwise {self.bitwise_equal}, same curve "
                f"{self.same_curve}, attempts recorded {self.attempts_recorded}", *self.problems]  # fmt: skip
        for a in self.attempts:
            planned = "" if a.as_planned else " (NOT AS PLANNED)"
            what = (
                f"{signal.Signals(a.cut.sig).name} to {a.signalled} process(es): {a.cut.where}" if a.cut else "resume"
            )
            rows.append(f"  exit {a.exit}{planned}, resumed from {a.resumed_from}: {what}")
        return "\n".join(rows) + (f"\nlast attempt's output:\n{self.log_tail}" if not self.ok else "")


def curve(run) -> list[dict]:
    """Every record of metrics/steps.jsonl but its timings, and the attempt's own mean loss:
    a resumed run logs each step once, with the uninterrupted run's numbers (the first log
    after a resume averages the steps since the last log, as the uninterrupted run's does)."""
    from forge.run import steplog

    def kept(key: str) -> bool:
        return not any(word in key for word in ("time", "per_second", "train_loss"))  # step_time, train_runtime...

    return [{k: v for k, v in record.items() if kept(k)} for record in steplog.read(run)]


def attempt(folder: Path, args: list[str], cut: Cut | None) -> tuple[subprocess.CompletedProcess, int]:
    """One attempt, interrupted by `cut`: its result and how many processes the cut signalled."""
    forge, signalled = str(ROOT / "forge.py"), folder / "signalled"
    command, env = [sys.executable, forge], {**os.environ}
    signalled.unlink(missing_ok=True)
    if cut is not None:
        wrapper = folder / "interrupted_forge.py"
        wrapper.write_text(WRAPPER.format(module=cut.module, attribute=cut.attribute, call=cut.call,
                                          sig=int(cut.sig), everyone=cut.to_every_process, forge=forge))  # fmt: skip
        command = [sys.executable, str(wrapper)]
        if cut.to_every_process:
            env["WANDB_MODE"] = "offline"  # W&B's helper process runs beside forge
    result = subprocess.run([*command, *args], cwd=folder, env=env, capture_output=True, text=True, timeout=600)
    return result, int(signalled.read_text()) if signalled.exists() else 0


def _resumed_from(stderr: str) -> str:
    if "resuming training from " in stderr:
        return stderr.split("resuming training from ", 1)[1].split()[0]
    return "scratch" if "training from scratch" in stderr else "-"


def run_chain(folder: Path, kind: Kind, reference) -> Outcome:
    """Run `kind`'s chain in `folder`, then resume until complete; compare with `reference`."""
    import torch
    from safetensors.torch import load_file

    config, run = kind.config(folder), kind.run(folder)
    outcome = Outcome(kind.name)
    args = ["--config", str(config)]
    for cut in [*kind.cuts, None, None]:
        if cut is None and run.complete.exists():
            break
        result, signalled = attempt(folder, args, cut)
        outcome.attempts.append(Attempt(cut, result.returncode, _resumed_from(result.stderr), signalled))
        outcome.log_tail = result.stderr[-3000:]
        args = ["--resume", str(run.root)]
    outcome.complete = run.complete.exists()
    if outcome.complete:
        a, b = load_file(run.model / "model.safetensors"), load_file(reference.model / "model.safetensors")
        outcome.bitwise_equal = a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    outcome.same_curve = bool(curve(run)) and curve(run) == curve(reference)
    recorded = json.loads(run.metadata.read_text()).get("attempts", []) if run.metadata.exists() else []
    outcome.attempts_recorded = len(recorded) == len(outcome.attempts)
    if outcome.complete and kind.check is not None:
        outcome.problems = kind.check(run)
    return outcome


def reference_run(folder: Path, kind: Kind):
    """The uninterrupted run of `kind` in `folder`: what its chain must end equal to."""
    result, _ = attempt(folder, ["--config", str(kind.config(folder))], None)
    if result.returncode != 0:
        raise RuntimeError(f"the uninterrupted {kind.name} run failed:\n{result.stderr[-3000:]}")
    return kind.run(folder)


def main() -> int:
    import tempfile

    from tests.conftest import reasoning_warm_start_config

    outcomes = []
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        os.environ.update(FORGE_HOME=str(home), HF_HOME=str(home / "hf"), HF_HUB_OFFLINE="1", WANDB_MODE="disabled",
                          TOKENIZERS_PARALLELISM="false", OMP_NUM_THREADS="2")  # fmt: skip
        upstream = Path(tmp) / "upstream"
        warm = reasoning_warm_start_config(upstream)
        subprocess.run([sys.executable, str(ROOT / "forge.py"), "--config", str(warm)], cwd=upstream, check=True,
                       capture_output=True)  # fmt: skip
        for i, kind in enumerate(kinds(warm)):
            ref_folder, folder = Path(tmp) / f"reference{i}", Path(tmp) / f"chain{i}"
            ref_folder.mkdir()
            folder.mkdir()
            outcome = run_chain(folder, kind, reference_run(ref_folder, kind))
            outcomes.append(outcome)
            print(("ok   " if outcome.ok else "FAIL ") + outcome.describe(), file=sys.stderr, flush=True)
    cuts = sum(len(o.attempts) for o in outcomes)
    print(f"{sum(o.ok for o in outcomes)}/{len(outcomes)} chains ({cuts} attempts): every cut ended its attempt as "
          "planned, the run completed bitwise equal, each step logged once, each attempt recorded")  # fmt: skip
    return 0 if all(o.ok for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
