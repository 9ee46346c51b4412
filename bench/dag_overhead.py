"""The DAG's price: the tiny default run through `forge --config` and through Snakemake's local
profile (five `forge stage` jobs), paired and alternated, fresh run directories each time; and
the start-up each stage job pays that forge.py pays once: a fresh interpreter importing forge's
command line, the libraries every stage sets up (forge/logs.py: transformers, datasets) and
the stage's own module with what it imports.

    .venv/bin/python bench/dag_overhead.py [--repeats 3] [--config CONFIG]

Snakemake's jobs hand their stage to a warm interpreter the first job left (forge/warm.py):
each round's DAG starts without one, as on a quiet machine. Prints the median wall time of
each path, their ratio (issue 32's target: <= 1.2x for the local profile), the start-up of
each stage in a fresh interpreter, and what a stage job costs when a warm interpreter serves
it. Run it on a quiet machine: it takes about (forge + snakemake) x repeats + 20 stage jobs,
a couple of minutes for the tiny default.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = ROOT / "configs" / "classification" / "mnli" / "tiny" / "00_sft.yaml"
STAGES = ("prepare_data", "pre_eval", "train", "finalize", "post_eval")


def timed(command: list[str], cwd: Path, env: dict) -> float:
    start = time.perf_counter()
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    took = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(f"failed ({result.returncode}): {' '.join(command)}\n{result.stderr[-2000:]}")
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--config", type=Path, default=DEFAULT, help="a run config (default: the tiny default)")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="forge-dag-"))
    env = {**os.environ, "WANDB_MODE": "disabled", "FORGE_HOME": str(work / "home"), "HF_HUB_OFFLINE": "1"}
    configs = work / "configs"
    configs.mkdir()
    config = configs / "run.yaml"
    config.write_text(f"base: {args.config.resolve()}\noutput_root: {work / 'outputs'}\n")
    forge = [sys.executable, str(ROOT / "forge.py"), "--config", str(config)]
    snake = [
        sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile"), "--directory", str(work),
        "--profile", str(ROOT / "profiles" / "local"), "--cores", "2",
        "--config", f"config_root={configs}", f"runs={configs}",
    ]  # fmt: skip
    timed(forge, work, env)  # builds the embedded artifacts once, outside the timings
    run = next((work / "outputs").glob("*/*/run"))
    times: dict[str, list[float]] = {"forge.py": [], "snakemake (local)": []}
    for repeat in range(args.repeats):
        # Each round's own environment: its DAG finds no warm interpreter (forge/warm.py) left
        # by the round before, and starts as a DAG on a quiet machine does.
        round_env = {**env, "FORGE_BENCH_ROUND": str(repeat)}
        for name, command in (("forge.py", forge), ("snakemake (local)", snake)):
            shutil.rmtree(run, ignore_errors=True)
            shutil.rmtree(work / ".snakemake", ignore_errors=True)
            times[name].append(timed(command, work, round_env))
    warm = {}  # a stage job that a warm interpreter serves: the job's own start and the hand-over
    warm_env = {**env, "FORGE_WARM": "1"}
    for stage in STAGES:
        job = [sys.executable, "-m", "forge", "stage", stage, "--config", str(config)]
        timed(job, work, warm_env)  # leaves the warm interpreter, or finds it
        warm[stage] = statistics.median(timed(job, work, warm_env) for _ in range(3))
    startup = {}
    for stage in STAGES:
        load = f"import forge.cli, forge.pipeline, forge.stages.{stage}; forge.logs.quiet_libraries()"
        startup[stage] = statistics.median(timed([sys.executable, "-c", load], work, env) for _ in range(3))
    shutil.rmtree(work, ignore_errors=True)

    medians = {name: statistics.median(values) for name, values in times.items()}
    for name, values in times.items():
        spread = f"min {min(values):.1f}, max {max(values):.1f}, n={len(values)}"
        print(f"{name:18s} median {medians[name]:6.1f} s  ({spread})")
    print(f"ratio snakemake / forge.py: {medians['snakemake (local)'] / medians['forge.py']:.2f}x (target <= 1.2x)")
    print("start-up of one stage job (a fresh interpreter importing forge's CLI and the stage's libraries):")
    for stage, seconds in startup.items():
        print(f"  {stage:13s} {seconds:5.1f} s")
    print(f"  five stages   {sum(startup.values()):5.1f} s")
    print("a stage job a warm interpreter serves (the stage already done: start-up and hand-over only):")
    for stage, seconds in warm.items():
        print(f"  {stage:13s} {seconds:5.2f} s")


if __name__ == "__main__":
    main()
