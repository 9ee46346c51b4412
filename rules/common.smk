# Paths and the target <-> config mapping. The mapping itself lives (tested) in forge/workflow.py.
import os
import shlex
import sys

from forge import slurm
from forge import workflow as runs  # not `workflow`: that name is Snakemake's

# SLURM's time-limit warning (USR1) reaches every process of a job step: only forge
# acts on it, the Snakemake running the rule inside the job must survive it.
slurm.ignore_warning_in_job()

# Where run configs live; `--config config_root=...` points elsewhere.
CONFIG_ROOT = config.get("config_root", "configs")
# A stage job hands its work to a warm interpreter an earlier stage job of the machine left
# (forge/warm.py): a fresh one spends seconds on imports. FORGE_WARM=0 before snakemake: cold.
os.environ.setdefault("FORGE_WARM", "1")
# The forge of the Python that runs Snakemake, also inside SLURM jobs.
FORGE = f"{shlex.quote(sys.executable)} -m forge"


wildcard_constraints:
    # <output_root>/<task>/<model>/<run_name>
    run=r".+/[^/]+/[^/]+/[^/]+",
    sweep=r".+/[^/]+/[^/]+/[^/]+",  # a sweep's report: beside its points' run directories


def run_targets(folder):
    """Every run under `folder`; bad configs stop the plan before any job, one line each
    (exit 2, as forge's own config errors)."""
    try:
        return runs.targets(folder, CONFIG_ROOT)
    except runs.ConfigError as exc:
        for line in str(exc).splitlines():
            print(f"forge: {line}", file=sys.stderr)
        sys.exit(2)


def run_config(wildcards):
    return runs.config_for(wildcards.run, CONFIG_ROOT)


def run_config_hash(wildcards):
    return runs.config_hash_for(wildcards.run, CONFIG_ROOT)


def upstream_runs(wildcards):
    return runs.upstream_targets(wildcards.run, CONFIG_ROOT)


def train_plan(wildcards):
    return runs.TrainPlan(wildcards.run)


def train_launcher(wildcards, resources):
    return runs.TrainLauncher(sys.executable, resources.processes, resources.nodes)


def sweep_runs(wildcards):
    return [
        f"{run}/pipeline_complete"
        for run in runs.sweep_runs(wildcards.sweep, CONFIG_ROOT)
    ]


def sweep_run_dirs(wildcards):
    return " ".join(
        shlex.quote(run) for run in runs.sweep_runs(wildcards.sweep, CONFIG_ROOT)
    )
