"""SLURM jobs and wall time per run: the slurm profile as shipped (light stages grouped with
their neighbours: three jobs a run) against train grouped with finalize and post_eval (two
jobs) and against the same profile without its `groups:` (one job per stage, five), side by
side on the real local cluster of the slurm tests.

    .venv/bin/python bench/slurm_jobs.py [--repeats 1] [--steps 120]

Needs root (it starts slurmctld, slurmd and munge on loopback, as tests/slurm does, and stops
them by PID at the end) and no other slurmctld on the machine. The profile is the one a user
gets from `forge doctor --write` on this cluster (squeue for status, no account, CPUs that
fit the node); only `groups:` differs between the layouts. Each trial runs the tiny
offline run (the slurm tests' config) in a fresh folder; the layouts alternate.

Prints, per layout: SLURM jobs submitted per run (distinct job ids in run_metadata.json),
wall time of the whole `snakemake` call, the time forge itself spent in its stages (the
attempts' start..end), and what is left: queue waits, status polls, job start-up.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.slurm.cluster: the local cluster of the slurm tests

from tests.slurm.cluster import ClusterError, local_cluster  # noqa: E402

TINY = ROOT / "configs" / "classification" / "mnli" / "tiny" / "00_sft.yaml"
STAMP = "%Y-%m-%dT%H:%M:%S%z"


def profiles(folder: Path) -> dict[str, Path]:
    """`forge doctor --write` for this cluster, and the same without groups."""
    grouped = folder / "grouped"
    doctor = [sys.executable, "-m", "forge", "doctor", "--profile", str(ROOT / "profiles" / "slurm")]
    result = subprocess.run([*doctor, "--write", str(grouped)], capture_output=True, text=True, timeout=300)
    if not (grouped / "config.v8+.yaml").exists():
        raise SystemExit(f"forge doctor wrote no profile:\n{result.stdout}{result.stderr}")
    profile = yaml.safe_load((grouped / "config.v8+.yaml").read_text())
    if not profile.get("groups"):
        raise SystemExit("the shipped profile has no groups: nothing to compare")
    layouts = {"grouped (shipped)": grouped}
    for name, groups in (
        # train with its light neighbours: two jobs, but a group job's time limit is the sum
        # of its stages' runtimes (720 + 60 + 60 min with the shipped profile's)
        ("train with wrapup", ["prepare_data=setup", "pre_eval=setup", "train=train", "finalize=train",
                               "post_eval=train"]),
        ("one job per stage", None),
    ):  # fmt: skip
        variant = {**profile, "groups": groups} if groups else {k: v for k, v in profile.items() if k != "groups"}
        folder_of = folder / name.split()[0]
        folder_of.mkdir()
        (folder_of / "config.v8+.yaml").write_text(yaml.safe_dump(variant, sort_keys=False))
        layouts[name] = folder_of
    return layouts


def trial(folder: Path, profile: Path, steps: int) -> dict:
    configs = folder / "configs"
    configs.mkdir(parents=True)
    (configs / "run.yaml").write_text(
        f"base: {TINY}\nrun_name: bench\noutput_root: {folder / 'outputs'}\n"
        f"task: {{max_eval_samples: 200}}\n"
        f"training: {{max_steps: {steps}, save_steps: {max(steps // 6, 1)}, eval_steps: {steps}, logging_steps: 10}}\n"
    )
    command = [
        sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile"), "--directory", str(folder),
        "--profile", str(profile), "--config", f"config_root={configs}", f"runs={configs}",
    ]  # fmt: skip
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, timeout=3600)
    wall = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"snakemake failed ({result.returncode}):\n{result.stdout[-3000:]}{result.stderr[-3000:]}")
    (metadata,) = folder.glob("outputs/**/run_metadata.json")
    attempts = json.loads(metadata.read_text())["attempts"]

    def seconds(a):
        return (datetime.strptime(a["ended_at"], STAMP) - datetime.strptime(a["started_at"], STAMP)).total_seconds()

    return {
        "jobs": len({a["slurm_job_id"] for a in attempts}),
        "wall": wall,
        "work": sum(seconds(a) for a in attempts),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=1, help="trials per layout (alternating)")
    parser.add_argument("--steps", type=int, default=120, help="training steps of the tiny run")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="forge-bench-slurm-") as tmp:
        tmp = Path(tmp)
        (tmp / "cluster").mkdir()
        try:
            with local_cluster(tmp / "cluster"):
                layouts = profiles(tmp)
                results: dict[str, list[dict]] = {name: [] for name in layouts}
                for r in range(args.repeats):
                    for name, profile in layouts.items():
                        results[name].append(trial(tmp / f"{name.split()[0]}-run-{r}", profile, args.steps))
                        print(f"  {name}, trial {r + 1}: {results[name][-1]}", flush=True)
        except ClusterError as exc:
            raise SystemExit(f"bench/slurm_jobs.py: {exc}") from None

    print(f"\nthe tiny run ({args.steps} steps) through the slurm profile, {args.repeats} trial(s) each:")
    print(f"{'layout':<20} {'jobs/run':>8} {'wall s':>8} {'forge s':>8} {'waits s':>8}")
    walls = {}
    for name, rows in results.items():
        wall = statistics.mean(r["wall"] for r in rows)
        work = statistics.mean(r["work"] for r in rows)
        walls[name] = wall
        jobs = "/".join(str(r["jobs"]) for r in rows)
        print(f"{name:<20} {jobs:>8} {wall:>8.0f} {work:>8.0f} {wall - work:>8.0f}")
    single = walls["one job per stage"]
    for name, wall in walls.items():
        if name != "one job per stage":
            print(f"wall time, {name} / one job per stage: {wall / single:.2f}x")


if __name__ == "__main__":
    main()
