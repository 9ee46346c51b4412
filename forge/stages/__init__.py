"""The five stages of a run, each `run(session)`: load → do one thing → write outputs + marker."""

STAGE_MODULES = {
    "prepare_data": "forge.stages.prepare_data",
    "pre_eval": "forge.stages.pre_eval",
    "train": "forge.stages.train",
    "finalize": "forge.stages.finalize",
    "post_eval": "forge.stages.post_eval",
}


def stage_function(name: str):
    import importlib

    return importlib.import_module(STAGE_MODULES[name]).run
