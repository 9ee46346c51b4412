"""Where everything of a run lives. One run, one directory:

outputs/<task>/<model>/<run_name>/
  config.yaml            the resolved config (stages read only this)
  run_metadata.json      attempts (each with its exit record), command lines, hosts, versions, W&B id
  upstream.json          the runs this one builds on (teacher.run, student.run): run dir, final model,
                         config hash, resolved once when the run was created
  training_state.json    stage progress, global step, peak metrics
  output.log             forge's and the trainer's logs, appended per attempt
  data/                  the tokenized dataset (prepare_data)
  metrics/               pre_eval.json, post_eval.json, steps.jsonl (every logged training number)
  checkpoint-N/          trainer checkpoints; complete once forge_complete.json exists
  latest_checkpoint      the name of the newest complete checkpoint
  model/                 final model + tokenizer (finalize; LoRA: merged, when lora.merge)
  adapter/               LoRA runs: the adapter + tokenizer, naming its base (finalize)
  stages/<stage>.done    one marker per finished stage
  logs/<stage>.attempt-N.log  a stage run on its own (Snakemake's jobs): each attempt's log, kept
  pipeline_complete      written last
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

STAGES = ("prepare_data", "pre_eval", "train", "finalize", "post_eval")
CHECKPOINT_PREFIX = "checkpoint-"

# The names of a run's files and folders: RunDir below, and `forge status`, which reads
# many runs with plain string paths (os.path.join(root, METADATA)), use these.
CONFIG = "config.yaml"
METADATA = "run_metadata.json"
UPSTREAM = "upstream.json"
STATE = "training_state.json"
LOG = "output.log"
LOCK = ".lock"
LOCK_OWNER = ".lock.owner"
DATA = "data"
METRICS = "metrics"
MODEL = "model"
ADAPTER = "adapter"
WANDB = "wandb"
LATEST_CHECKPOINT = "latest_checkpoint"
COMPLETE = "pipeline_complete"
STAGE_MARKERS = "stages"
STAGE_MARKER_SUFFIX = ".done"


@dataclass(frozen=True)
class RunDir:
    root: Path

    @property
    def config(self) -> Path:
        return self.root / CONFIG

    @property
    def metadata(self) -> Path:
        return self.root / METADATA

    @property
    def upstream(self) -> Path:
        return self.root / UPSTREAM

    @property
    def state(self) -> Path:
        return self.root / STATE

    @property
    def log(self) -> Path:
        return self.root / LOG

    @property
    def lock(self) -> Path:
        return self.root / LOCK

    def stage_log(self, stage: str, attempt: int) -> Path:
        """The log of one attempt of a stage run on its own (`forge stage`): Snakemake empties
        its rule's log before each job, so forge keeps every attempt's here too."""
        return self.root / "logs" / f"{stage}.attempt-{attempt}.log"

    @property
    def lock_owner(self) -> Path:
        """Who holds the lock (pid, host, since); present only while it is held, or left
        behind by a holder that was killed."""
        return self.root / LOCK_OWNER

    @property
    def data(self) -> Path:
        return self.root / DATA

    @property
    def data_record(self) -> Path:
        """What the data was when prepared (a copy of data/fingerprint.json kept outside data/:
        a deleted data/ is prepared again, and checked against it first)."""
        return self.root / "data_fingerprint.json"

    @property
    def metrics(self) -> Path:
        return self.root / METRICS

    @property
    def model(self) -> Path:
        return self.root / MODEL

    @property
    def adapter(self) -> Path:
        return self.root / ADAPTER

    @property
    def final_model(self) -> Path:
        """What users (and post_eval, and a run using this one as teacher) load."""
        return self.model if self.model.exists() or not self.adapter.exists() else self.adapter

    @property
    def wandb(self) -> Path:
        return self.root / WANDB

    @property
    def latest_checkpoint(self) -> Path:
        return self.root / LATEST_CHECKPOINT

    @property
    def complete(self) -> Path:
        return self.root / COMPLETE

    def stage_marker(self, stage: str) -> Path:
        if stage not in STAGES:
            raise ValueError(f"unknown stage {stage!r}; stages are {', '.join(STAGES)}")
        return self.root / STAGE_MARKERS / f"{stage}{STAGE_MARKER_SUFFIX}"

    def checkpoint(self, step: int) -> Path:
        return self.root / f"{CHECKPOINT_PREFIX}{step}"

    def checkpoints(self) -> list[tuple[int, Path]]:
        """(step, path) of every checkpoint-N directory, newest step first."""
        found = []
        for path in self.root.glob(f"{CHECKPOINT_PREFIX}*"):
            step = checkpoint_step(path)
            if step is not None and path.is_dir():
                found.append((step, path))
        return sorted(found, reverse=True)


def checkpoint_step(path: Path) -> int | None:
    suffix = path.name.removeprefix(CHECKPOINT_PREFIX)
    if path.name.startswith(CHECKPOINT_PREFIX) and suffix.isdigit():
        return int(suffix)
    return None


def run_dir_of(config) -> RunDir:
    """Where a run lives: <output_root>/<task.name>/<student.name>/<run_name>. `config` is a
    validated ForgeConfig, or the path of a config file (or of a sweep's point,
    `SWEEP.yaml#label`), of which only those keys are read (cheap enough to place every run
    of a large plan)."""
    if isinstance(config, (str, Path)):
        from forge.config import sweep
        from forge.config.loader import placement
        from forge.errors import ConfigError

        file, label = sweep.split_ref(str(config))
        placed = placement(file)
        run = placed_run_dir(placed)
        if label is None:
            return run
        if "sweep" not in placed:
            raise ConfigError(f"{config}: {file} is not a sweep (it has no `sweep:` block)")
        point = sweep.parse(*placed["sweep"]).point(label)  # a ConfigError naming the label
        return RunDir(run.root.with_name(point.run_name(run.root.name)))
    return RunDir(Path(config.output_root, config.task.name, config.student.name, config.run_name))


def placed_run_dir(placed: dict) -> RunDir:
    """The run directory of a config's placement (forge.config.loader.placement)."""
    return RunDir(Path(placed["output_root"], placed["task"], placed["student"], placed["run_name"]))
