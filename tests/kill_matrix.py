"""The kill matrix: interrupt a short offline run at a chosen point with a chosen signal,
resume it until it completes, and check what survived.

A point is a function forge (or the trainer) calls; a small wrapper around forge.py
patches it to signal its own process on the n-th call, before the call runs. Nothing in
forge knows about it. For every point: the run completes, its final weights are
bitwise equal to an uninterrupted run's, every training step is logged once in
metrics/steps.jsonl, and each attempt is in run_metadata.json.

    .venv/bin/python -m tests.kill_matrix      # runs the whole matrix, prints a table

tests/integration/test_kill_matrix.py runs the same matrix under pytest.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# name -> (module, attribute, which call): the signal comes as that call starts.
# The run: tests.conftest.short_config (120 steps, a checkpoint every 20, evaluation at 60).
POINTS = {
    "prepare_data: tokenized, before the data moves into place": ("forge.stages.prepare_data", "replace_dir", 1),
    "pre_eval: evaluating the student": ("forge.stages.pre_eval", "evaluate_model", 1),
    "train: in step 3 (no checkpoint yet)": ("transformers.Trainer", "training_step", 3),
    "train: in step 50 (after checkpoint-40)": ("transformers.Trainer", "training_step", 50),
    # (pre_eval evaluates in its own loop, not through the Trainer)
    "train: in the evaluation at step 60": ("transformers.Trainer", "evaluate", 1),
    "checkpoint-40: model written, optimizer not": ("transformers.Trainer", "_save_optimizer_and_scheduler", 2),
    "checkpoint-40: optimizer written, RNG state not": ("transformers.Trainer", "_save_rng_state", 2),
    "checkpoint-40: written, not yet marked complete": ("forge.callbacks", "mark_checkpoint_complete", 2),
    "checkpoint-40: marked, latest_checkpoint not moved": ("forge.callbacks", "set_latest_checkpoint", 2),
    "train: last step done, before train.done": ("forge.stages.train", "mark_stage_done", 1),
    "finalize: before the model moves into place": ("forge.stages.finalize", "replace_dir", 1),
    "finalize: model saved, before finalize.done": ("forge.stages.finalize", "mark_stage_done", 1),
    "post_eval: evaluating the final model": ("forge.stages.post_eval", "evaluate_model", 1),
    "post_eval: done, before pipeline_complete": ("forge.run.session", "mark_pipeline_complete", 1),
}

# GRPO (tests.kill_matrix.rl_config: 12 steps, a checkpoint every 4): trl's own training step.
RL_POINTS = {
    "grpo: in step 6 (after checkpoint-4)": ("trl.GRPOTrainer", "training_step", 6),
    "grpo checkpoint-8: model written, optimizer not": ("transformers.Trainer", "_save_optimizer_and_scheduler", 2),
    "grpo checkpoint-8: written, not yet marked complete": ("forge.callbacks", "mark_checkpoint_complete", 2),
}
POINTS.update(RL_POINTS)

# LM distillation (tests.conftest.lm_kd_config: a 1-layer student cut from the tiny causal LM,
# 30 steps, a checkpoint every 10), from the teacher's top-8 cache and on-policy.
LM_POINTS = {
    "lm kd: in step 15 (after checkpoint-10)": ("transformers.Trainer", "training_step", 15),
    "lm kd checkpoint-20: model written, optimizer not": ("transformers.Trainer", "_save_optimizer_and_scheduler", 2),
    "lm kd checkpoint-20: written, not yet marked complete": ("forge.callbacks", "mark_checkpoint_complete", 2),
}
POINTS.update(LM_POINTS)

KILL, TERM, USR1 = signal.SIGKILL, signal.SIGTERM, signal.SIGUSR1
MATRIX = [(point, KILL) for point in POINTS if point not in RL_POINTS and point not in LM_POINTS] + [
    (point, sig)
    for sig in (TERM, USR1)
    for point in (
        "pre_eval: evaluating the student",
        "train: in step 3 (no checkpoint yet)",
        "train: in step 50 (after checkpoint-40)",
        "checkpoint-40: model written, optimizer not",
        "checkpoint-40: written, not yet marked complete",
        "post_eval: evaluating the final model",
    )
]

# KD (online teacher with the learned hidden-state projection: the most state to
# restore), GRPO (sampling RNG, trl's buffers) and LM KD (a top-k cache; on-policy
# sampling): fewer points, the same checks.
KD_MATRIX = [
    ("train: in step 50 (after checkpoint-40)", KILL),
    ("checkpoint-40: model written, optimizer not", KILL),
    ("checkpoint-40: written, not yet marked complete", KILL),
    ("train: in step 50 (after checkpoint-40)", TERM),
    ("train: in step 50 (after checkpoint-40)", USR1),
]
RL_MATRIX = [
    ("grpo: in step 6 (after checkpoint-4)", KILL),
    ("grpo checkpoint-8: model written, optimizer not", KILL),
    ("grpo checkpoint-8: written, not yet marked complete", KILL),
    ("grpo: in step 6 (after checkpoint-4)", TERM),
    ("grpo: in step 6 (after checkpoint-4)", USR1),
]
LM_MATRIX = [(point, KILL) for point in LM_POINTS] + [
    ("lm kd: in step 15 (after checkpoint-10)", TERM),
    ("lm kd: in step 15 (after checkpoint-10)", USR1),
]
LM_VARIANTS = ("cached_top8", "on_policy_half")

# A stop asked for here comes after forge's last look at the flag: the run completes.
STOP_AFTER_LAST_CHECK = {"post_eval: evaluating the final model"}


def kd_config(folder: Path) -> Path:
    """tests.conftest.short_config as KD: an online teacher (the embedded wide model) and the
    hidden-state term."""
    from tests.conftest import ONLINE_KD, short_config, write_config

    short_config(folder, "short_sft.yaml")
    return write_config(folder, "short.yaml", "\n        base: short_sft.yaml" + ONLINE_KD)


def rl_warm_start(folder: Path) -> Path:
    """A short SFT warm start on the reasoning task (run once, shared by the GRPO runs)."""
    from tests.conftest import write_config

    return write_config(
        folder,
        "sft.yaml",
        f"""
        base: {ROOT / "configs" / "reasoning" / "gsm8k" / "tiny" / "00_sft.yaml"}
        output_root: {folder / "outputs"}
        task:
          max_eval_samples: 40
        training:
          max_steps: 100
          save_steps: 100
        """,
    )


def rl_config(folder: Path, warm_start: Path) -> Path:
    from tests.conftest import short_grpo_config

    return short_grpo_config(folder, "short", folder / "outputs", warm_start)


def rl_run_dir(folder: Path):
    from forge.run.layout import RunDir

    return RunDir(folder / "outputs" / "reasoning" / "tiny" / "short")


def lm_teacher(folder: Path) -> Path:
    """The LM KD runs' teacher (and starting point): run once, shared by them."""
    from tests.conftest import lm_teacher_config

    return lm_teacher_config(folder, folder / "outputs")


def lm_kd_config(folder: Path, teacher: Path, variant: str) -> Path:
    from tests.conftest import lm_kd_config

    return lm_kd_config(folder, "short", folder / "outputs", teacher, variant)


def lm_run_dir(folder: Path):
    from forge.run.layout import RunDir

    return RunDir(folder / "outputs" / "reasoning" / "tiny-cut1" / "short")


def expected_first_exit(point: str, sig: int) -> int:
    if sig == KILL:
        return -KILL
    if point in STOP_AFTER_LAST_CHECK:
        return 0
    return 75 if sig == TERM else 76


WRAPPER = """
import importlib, os, runpy, signal, sys

module, attribute, call, sig = {module!r}, {attribute!r}, {call}, {sig}
if "." in module and module.rsplit(".", 1)[1][:1].isupper():  # a class: patch its method
    owner = getattr(importlib.import_module(module.rsplit(".", 1)[0]), module.rsplit(".", 1)[1])
else:
    owner = importlib.import_module(module)
original, calls = getattr(owner, attribute), []

def interrupted(*args, **kwargs):
    calls.append(1)
    if len(calls) == call:
        os.kill(os.getpid(), sig)
    return original(*args, **kwargs)

setattr(owner, attribute, interrupted)
sys.argv = [{forge!r}, *sys.argv[1:]]
runpy.run_path({forge!r}, run_name="__main__")
"""


@dataclass
class Outcome:
    kind: str
    point: str
    signal: str
    first_exit: int
    attempts: int
    resumed_from: str
    bitwise_equal: bool
    steps_once: bool
    attempts_recorded: bool

    expected_exit: int

    @property
    def interrupted_as_planned(self) -> bool:
        """The signal came and ended the first attempt as it should (so something was tested)."""
        return self.first_exit == self.expected_exit and (self.attempts > 1) == (self.expected_exit != 0)

    @property
    def ok(self) -> bool:
        return self.interrupted_as_planned and self.bitwise_equal and self.steps_once and self.attempts_recorded


def interrupt_and_resume(
    folder: Path, config: Path, run, reference, point: str, sig: int, kind: str = "SFT"
) -> Outcome:
    """Run `config` with `point` interrupted by `sig`, then `--resume` until complete."""
    import torch
    from safetensors.torch import load_file

    from forge.run import steplog

    module, attribute, call = POINTS[point]
    wrapper = folder / "interrupted_forge.py"
    forge = str(ROOT / "forge.py")
    wrapper.write_text(WRAPPER.format(module=module, attribute=attribute, call=call, sig=int(sig), forge=forge))
    env = {**os.environ}
    first = subprocess.run([sys.executable, str(wrapper), "--config", str(config)], cwd=folder, env=env,
                           capture_output=True, text=True, timeout=600)  # fmt: skip
    invocations, resumed_from = 1, "-"
    while not run.complete.exists() and invocations < 4:
        result = subprocess.run([sys.executable, forge, "--resume", str(run.root)], cwd=folder, env=env,
                                capture_output=True, text=True, timeout=600)  # fmt: skip
        invocations += 1
        if "resuming training from " in result.stderr:
            resumed_from = result.stderr.split("resuming training from ", 1)[1].split()[0]
        elif "training from scratch" in result.stderr:
            resumed_from = "scratch"
    equal = False
    if run.complete.exists():
        a, b = load_file(run.model / "model.safetensors"), load_file(reference.model / "model.safetensors")
        equal = a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    steps = [r["step"] for r in steplog.read(run) if "loss" in r]
    expected_steps = [r["step"] for r in steplog.read(reference) if "loss" in r]
    attempts = json.loads(run.metadata.read_text()).get("attempts", []) if run.metadata.exists() else []
    return Outcome(
        kind=kind,
        point=point,
        signal=signal.Signals(sig).name,
        first_exit=first.returncode,
        attempts=invocations,
        resumed_from=resumed_from,
        bitwise_equal=equal,
        steps_once=bool(steps) and steps == expected_steps,  # each logged step once, none missing
        attempts_recorded=len(attempts) == invocations,
        expected_exit=expected_first_exit(point, sig),
    )


def kinds(warm_config: Path, lm_teacher_config: Path):
    """(run kind, its matrix, folder -> config, folder -> run dir); the GRPO runs start from
    the one complete warm start `warm_config`, the LM KD runs from the complete run of
    `lm_teacher_config`."""
    from tests.conftest import run_dir, short_config

    return [
        ("SFT", MATRIX, short_config, run_dir),
        ("KD", KD_MATRIX, kd_config, run_dir),
        ("RL", RL_MATRIX, lambda folder: rl_config(folder, warm_config), rl_run_dir),
        *(
            (f"LM KD {variant}", LM_MATRIX, lambda folder, v=variant: lm_kd_config(folder, lm_teacher_config, v),
             lm_run_dir)
            for variant in LM_VARIANTS
        ),
    ]  # fmt: skip


def main() -> int:
    import tempfile

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        os.environ.update(FORGE_HOME=str(home), HF_HOME=str(home / "hf"), HF_HUB_OFFLINE="1", WANDB_MODE="disabled",
                          TOKENIZERS_PARALLELISM="false", OMP_NUM_THREADS="2")  # fmt: skip
        warm = Path(tmp) / "warm_start"
        warm.mkdir()
        warm_config = rl_warm_start(warm)
        teacher = Path(tmp) / "lm_teacher"
        teacher.mkdir()
        teacher_config = lm_teacher(teacher)
        for config, folder in ((warm_config, warm), (teacher_config, teacher)):
            subprocess.run([sys.executable, str(ROOT / "forge.py"), "--config", str(config)], cwd=folder, check=True,
                           capture_output=True)  # fmt: skip
        total = sum(len(matrix) for _, matrix, _, _ in kinds(warm_config, teacher_config))
        for kind, matrix, make_config, run_of in kinds(warm_config, teacher_config):
            ref_folder = Path(tmp) / f"reference_{kind}"
            ref_folder.mkdir()
            subprocess.run([sys.executable, str(ROOT / "forge.py"), "--config", str(make_config(ref_folder))],
                           cwd=ref_folder, check=True, capture_output=True)  # fmt: skip
            for point, sig in matrix:
                folder = Path(tmp) / f"p{len(rows):02d}"
                folder.mkdir()
                outcome = interrupt_and_resume(folder, make_config(folder), run_of(folder), run_of(ref_folder), point,
                                               sig, kind)  # fmt: skip
                rows.append(outcome)
                print(f"{len(rows):2d}/{total} {'ok  ' if outcome.ok else 'FAIL'} {kind:3} {outcome.signal:8} {point}",
                      file=sys.stderr, flush=True)  # fmt: skip
    head = (
        "run",
        "point",
        "signal",
        "1st exit",
        "attempts",
        "resumed from",
        "bitwise",
        "steps once",
        "attempts logged",
    )
    # "1st exit" is marked with ! where it is not the expected one
    cells = [
        (o.kind, o.point, o.signal, f"{o.first_exit}{'' if o.interrupted_as_planned else '!'}", str(o.attempts),
         o.resumed_from,
         *("yes" if v else "NO" for v in (o.bitwise_equal, o.steps_once, o.attempts_recorded)))
        for o in rows
    ]  # fmt: skip
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(head)]
    for line in (head, *cells):
        print("  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)).rstrip())
    print(f"{sum(o.ok for o in rows)}/{len(rows)} points: interrupted as planned, completed, bitwise equal, "
          "each step logged once, each attempt recorded")  # fmt: skip
    return 0 if all(o.ok for o in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
