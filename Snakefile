# forge as a Snakemake DAG: prepare_data -> pre_eval -> train -> finalize -> post_eval.
# Snakemake owns paths, the DAG, resources and retries (profiles/); forge/ owns the logic.
#
#   snakemake --profile profiles/local outputs/mnli/tiny/00_sft/pipeline_complete
#   snakemake --profile profiles/slurm --config runs=configs/classification/mnli   # a group
#   snakemake -n ...                                                               # the plan


include: "rules/common.smk"
include: "rules/pipeline.smk"


rule all:
    default_target: True
    input:
        run_targets(config.get("runs", "configs/classification/mnli/tiny")),
