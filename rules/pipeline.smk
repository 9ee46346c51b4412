# One rule per stage. Each declares only small files (stage markers, metrics JSON,
# pipeline_complete): checkpoint-N/ folders are never outputs, so a failed or
# preempted job leaves them for the next attempt to resume from.
# `config_hash` is a params rerun trigger: editing a comment changes nothing, a
# changed value (e.g. the learning rate) shows up in the plan.


rule prepare_data:
    input:
        upstream=upstream_runs,  # runs whose final model this run loads (teacher.run, student.run)
    output:
        marker="{run}/stages/prepare_data.done",
    log:
        "{run}/logs/prepare_data.log",
    params:
        config=run_config,
        config_hash=run_config_hash,
    shell:
        "{FORGE} stage prepare_data --config {params.config:q} > {log:q} 2>&1"


rule pre_eval:
    input:
        data="{run}/stages/prepare_data.done",
    output:
        metrics="{run}/metrics/pre_eval.json",
        marker="{run}/stages/pre_eval.done",
    log:
        "{run}/logs/pre_eval.log",
    params:
        config=run_config,
        config_hash=run_config_hash,
    shell:
        "{FORGE} stage pre_eval --config {params.config:q} > {log:q} 2>&1"


rule train:
    input:
        baseline="{run}/stages/pre_eval.done",
    output:
        marker="{run}/stages/train.done",
    log:
        "{run}/logs/train.log",
    resources:
        # More than one: torchrun, one process per GPU (README, "Scale out")
        processes=1,  # per node
        nodes=1,
    params:
        config=run_config,
        config_hash=run_config_hash,
        plan=train_plan,
        forge=train_launcher,
    message:
        "train {wildcards.run}: {params.plan}"
    shell:
        "{params.forge} stage train --config {params.config:q} >> {log:q} 2>&1"


rule finalize:
    input:
        trained="{run}/stages/train.done",
    output:
        marker="{run}/stages/finalize.done",
    log:
        "{run}/logs/finalize.log",
    params:
        config=run_config,
        config_hash=run_config_hash,
    shell:
        "{FORGE} stage finalize --config {params.config:q} > {log:q} 2>&1"


rule post_eval:
    input:
        model="{run}/stages/finalize.done",
    output:
        metrics="{run}/metrics/post_eval.json",
        marker="{run}/stages/post_eval.done",
        complete="{run}/pipeline_complete",
    log:
        "{run}/logs/post_eval.log",
    params:
        config=run_config,
        config_hash=run_config_hash,
    shell:
        "{FORGE} stage post_eval --config {params.config:q} > {log:q} 2>&1"


# A sweep (forge/config/sweep.py): its points are runs like any other; its report compares
# them, mean ± std over seeds per point. Light: it runs where Snakemake runs, not as a job.
localrules:
    sweep_report,


rule sweep_report:
    input:
        runs=sweep_runs,
    output:
        report="{sweep}/report.md",
    log:
        "{sweep}/report.log",
    params:
        runs=sweep_run_dirs,
    shell:
        "{FORGE} report {params.runs} --out {wildcards.sweep:q} > {log:q} 2>&1"
