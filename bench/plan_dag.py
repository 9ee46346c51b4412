"""Planning cost: `snakemake -n` over N generated run configs (5 jobs each), forge's
Snakefile vs a bare Snakefile of the same DAG shape (five trivial rules chained per
run, no config loading) — Snakemake's own floor. Both run alternately in one process
tree on the same machine; the best of each side is compared.

    .venv/bin/python bench/plan_dag.py [--runs 1000] [--repeats 3] [--sweep]

With --sweep the runs are the points of one sweep file (forge/config/sweep.py: learning
rates x 10 seeds), plus its report job, instead of one config file per run.

Target: forge's plan <= 1.5 x the floor (issue 18: also for a 1,000-point sweep).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

BARE = """\
RUNS = [f"run_{{i:04d}}" for i in range({n})]


rule all:
    input:
        expand("outputs/{{run}}/e.done", run=RUNS),


rule a:
    output:
        "outputs/{{run}}/a.done",
    shell:
        "touch {{output}}"


rule b:
    input:
        "outputs/{{run}}/a.done",
    output:
        "outputs/{{run}}/b.done",
    shell:
        "touch {{output}}"


rule c:
    input:
        "outputs/{{run}}/b.done",
    output:
        "outputs/{{run}}/c.done",
    shell:
        "touch {{output}}"


rule d:
    input:
        "outputs/{{run}}/c.done",
    output:
        "outputs/{{run}}/d.done",
    shell:
        "touch {{output}}"


rule e:
    input:
        "outputs/{{run}}/d.done",
    output:
        "outputs/{{run}}/e.done",
    shell:
        "touch {{output}}"
"""


def timed(cmd: list[str]) -> float:
    start = time.perf_counter()
    result = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{result.stderr[-3000:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sweep", action="store_true", help="the runs are one sweep's points")
    args = parser.parse_args()
    if args.sweep and args.runs % 10:
        sys.exit("--sweep: --runs must be a multiple of 10 (the sweep has 10 seeds)")

    work = Path(tempfile.mkdtemp(prefix="forge-plan-"))
    forge_dir, bare_dir = work / "forge", work / "bare"
    configs = forge_dir / "configs" / "generated"
    configs.mkdir(parents=True)
    base = ROOT / "configs/classification/mnli/tiny/00_sft.yaml"
    if args.sweep:
        rates = ", ".join(f"{1e-5 * (i + 1):.6g}" for i in range(args.runs // 10))
        (configs / "sweep.yaml").write_text(
            f"base: {base}\nsweep:\n  grid: {{training.learning_rate: [{rates}]}}\n  seeds: {list(range(10))}\n"
        )
    for i in range(0 if args.sweep else args.runs):
        (configs / f"run_{i:04d}.yaml").write_text(f"base: {base}\ntraining:\n  learning_rate: {1e-4 * (1 + i % 7)}\n")
    bare_dir.mkdir()
    bare = BARE.format(n=args.runs)
    if args.sweep:  # and one job over every run, as the sweep's report
        every_run = 'input:\n        expand("outputs/{run}/e.done", run=RUNS),'
        bare = bare.replace(every_run, 'input:\n        "outputs/report.md",')
        bare += '\n\nrule report:\n    input:\n        expand("outputs/{run}/e.done", run=RUNS),\n'
        bare += '    output:\n        "outputs/report.md",\n    shell:\n        "touch {output}"\n'
    (bare_dir / "Snakefile").write_text(bare)

    snakemake = [sys.executable, "-m", "snakemake", "-n", "--cores", "1"]
    forge_cmd = [*snakemake, "-s", str(ROOT / "Snakefile"), "-d", str(forge_dir),
                 "--config", f"config_root={forge_dir / 'configs'}", f"runs={configs}"]  # fmt: skip
    bare_cmd = [*snakemake, "-s", str(bare_dir / "Snakefile"), "-d", str(bare_dir)]

    forge_times, bare_times = [], []
    for _ in range(args.repeats):
        forge_times.append(timed(forge_cmd))
        bare_times.append(timed(bare_cmd))

    shape = "one sweep's points" if args.sweep else "runs"
    print(f"snakemake -n, {args.runs} {shape} x 5 stages = {5 * args.runs} jobs, best of {args.repeats}")
    print(f"forge Snakefile: {min(forge_times):6.2f} s   (runs: {', '.join(f'{t:.2f}' for t in forge_times)})")
    print(f"bare Snakefile : {min(bare_times):6.2f} s   (runs: {', '.join(f'{t:.2f}' for t in bare_times)})")
    print(f"ratio forge/bare: {min(forge_times) / min(bare_times):.2f}  (target <= 1.5)")


if __name__ == "__main__":
    main()
