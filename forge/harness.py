"""lm-evaluation-harness on the model in memory: the `eval:` block's tasks, run in pre_eval and
post_eval beside the task's own metrics (forge/evaluation.py), with lm-eval doing all of it.

A task is an lm-eval task name (its data from a warm Hub cache) or a task file in lm-eval's
format (`!function` helpers beside it included). In a task file, a relative `dataset_path` or
`dataset_kwargs.data_files` is relative to the file, and `dataset_path: embedded:NAME` is
forge's embedded dataset (built on first use), so a task file travels with its data.

Evaluating never changes training: the global random states (Python, NumPy, torch) are put back
as they were, and lm-eval is told not to seed them. The Hub is not asked (offline flags set for
the call). Results land in the metrics file as one entry per task, `lm_eval/<task>`, with
lm-eval's metric names ("exact_match,strict-match"), and lm-eval's version and each task's
config hash under `lm_eval`.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

from forge import embedded, hub
from forge.errors import ConfigError
from forge.logs import bars_only_on_a_terminal
from forge.rng import random_state_kept

log = logging.getLogger("forge.eval")

PREFIX = "lm_eval/"  # a metrics file's entry of one lm-eval task
INFO = "lm_eval"  # what evaluated: lm-eval's version, each task's version and config hash
INSTALL = "pip install 'forge[eval]' (lm-eval[hf])"


def _lm_eval():
    try:
        import lm_eval
    except ImportError:
        raise ConfigError(f"eval: needs lm-evaluation-harness: {INSTALL}") from None
    return lm_eval


def task_spec(task: str, build: bool = True) -> str | dict[str, Any]:
    """A task as lm-eval takes it: a name, or a task file's definition with its data paths
    made absolute (relative to the file) and an embedded dataset built (`build`; else only
    named: `forge check` builds nothing)."""
    if not task.endswith((".yaml", ".yml")):
        return task
    _lm_eval()
    from lm_eval.tasks._yaml_loader import load_yaml  # lm-eval's own reader: includes, !function

    path = Path(task)
    if not path.is_file():
        raise ConfigError(f"eval.tasks: {task}: no such task file")
    try:
        spec = load_yaml(path)
    except Exception as exc:  # YAML, an include or a !function helper that does not load
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise ConfigError(f"eval.tasks: {task}: cannot be read ({type(exc).__name__}: {first})") from None
    source = spec.get("dataset_path")
    if isinstance(source, str) and embedded.is_embedded(source):
        if not embedded.known(source):
            raise ConfigError(f"eval.tasks: {task}: unknown embedded dataset {source!r}")
        spec["dataset_path"] = str(embedded.ensure(source)) if build else source
    elif isinstance(source, str) and (path.parent / source).exists():
        spec["dataset_path"] = str((path.parent / source).resolve())
    kwargs = spec.get("dataset_kwargs") or {}
    if "data_files" in kwargs:
        kwargs["data_files"] = _absolute(kwargs["data_files"], path.parent, task)
    return spec


def _absolute(files, folder: Path, task: str):
    """data_files (a path, a list, or split -> path(s)) with relative paths made absolute; a
    file that is not there is one line."""
    if isinstance(files, dict):
        return {split: _absolute(f, folder, task) for split, f in files.items()}
    if isinstance(files, list):
        return [_absolute(f, folder, task) for f in files]
    found = folder / str(files)
    if not found.is_file():
        raise ConfigError(f"eval.tasks: {task}: data file {files} not found (looked in {folder})")
    return str(found.resolve())


def check(eval_cfg) -> list[str]:
    """The problems `forge check` (and a new run) can know now: lm-eval installed, each task
    file readable with its data present. Task names are looked up when they run (indexing
    lm-eval's own tasks takes ~10 s)."""
    problems = []
    for task in eval_cfg.tasks:
        try:
            task_spec(task, build=False)
        except ConfigError as exc:
            problems.append(str(exc))
            if "needs lm-evaluation-harness" in str(exc):
                break
    return problems


def evaluate(eval_cfg, model, tokenizer) -> tuple[dict[str, dict[str, float]], dict[str, Any]]:
    """(`lm_eval/<task>` -> its metrics and `samples`, what evaluated) of `model` as it is."""
    lm_eval = _lm_eval()
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    logging.getLogger("lm_eval").propagate = False  # its messages: output.log (forge/logs.py), not the console
    specs = [task_spec(t) for t in eval_cfg.tasks]
    named = any(isinstance(s, str) for s in specs)
    side = tokenizer.padding_side
    with random_state_kept(), hub.libraries_offline(), _bars_only_on_a_terminal():
        lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=eval_cfg.batch_size)
        out = lm_eval.simple_evaluate(
            model=lm,
            tasks=specs,
            task_manager=TaskManager(include_defaults=named),
            limit=eval_cfg.limit,
            num_fewshot=eval_cfg.num_fewshot,
            apply_chat_template=eval_cfg.apply_chat_template,
            bootstrap_iters=0,  # a mean's standard error needs none
            log_samples=False,
            random_seed=None,  # None: lm-eval seeds nothing (the states are kept above anyway)
            numpy_random_seed=None,
            torch_random_seed=None,
        )
    tokenizer.padding_side = side
    results = {}
    for task, metrics in out["results"].items():
        numbers = {k: float(v) for k, v in metrics.items() if _number(v) and not k.startswith("sample_len")}
        samples = out.get("n-samples", {}).get(task, {}).get("effective")
        results[PREFIX + task] = {**numbers, **({"samples": samples} if samples is not None else {})}
    info = {
        "version": lm_eval.__version__,
        "tasks": {
            task: {
                "version": out["versions"].get(task),
                "config_hash": _hash(config),
                "higher_is_better": out.get("higher_is_better", {}).get(task, {}),
            }
            for task, config in out["configs"].items()
        },
    }
    return results, info


def _bars_only_on_a_terminal():
    """lm-eval draws progress bars with no switch to turn them off: off where stderr is no terminal."""
    import lm_eval.api.model
    import lm_eval.api.task
    import lm_eval.models.huggingface

    return bars_only_on_a_terminal(lm_eval.api.model, lm_eval.api.task, lm_eval.models.huggingface)


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value  # not NaN


def _hash(config: dict) -> str:
    """Of a task's config as lm-eval resolved it; a `!function` helper by its name (not its address)."""
    named = lambda o: f"{o.__module__}.{o.__qualname__}" if callable(o) else str(o)  # noqa: E731
    canonical = json.dumps(config, sort_keys=True, default=named, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def main_metric(eval_cfg, results: dict, info: dict) -> dict | None:
    """The metrics file's `main` record for eval.main_metric ("TASK/exact_match" names
    "exact_match,none"); None when it is not set."""
    if eval_cfg is None or eval_cfg.main_metric is None:
        return None
    task, metric = eval_cfg.main_metric.split("/", 1)
    found = results.get(PREFIX + task)
    if found is None:
        raise ConfigError(f"eval.main_metric: no task {task!r} was evaluated (these were: {', '.join(info['tasks'])})")
    if metric not in found and f"{metric},none" in found:
        metric = f"{metric},none"
    if metric not in found:
        names = ", ".join(k for k in found if k != "samples")
        raise ConfigError(f"eval.main_metric: {task} has no metric {metric!r} (it has: {names})")
    better = info["tasks"][task].get("higher_is_better", {}).get(metric.split(",")[0], True)
    return {"split": PREFIX + task, "metric": metric, "larger_is_better": bool(better)}
