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
  pipeline_complete      written last
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

STAGES = ("prepare_data", "pre_eval", "train", "finalize", "post_eval")
CHECKPOINT_PREFIX = "checkpoint-"
LOCK_OWNER = ".lock.owner"


@dataclass(frozen=True)
class RunDir:
    root: Path

    @property
    def config(self) -> Path:
        return self.root / "config.yaml"

    @property
    def metadata(self) -> Path:
        return self.root / "run_metadata.json"

    @property
    def upstream(self) -> Path:
        return self.root / "upstream.json"

    @property
    def state(self) -> Path:
        return self.root / "training_state.json"

    @property
    def log(self) -> Path:
        return self.root / "output.log"

    @property
    def lock(self) -> Path:
        return self.root / ".lock"

    @property
    def lock_owner(self) -> Path:
        """Who holds the lock (pid, host, since); present only while it is held, or left
        behind by a holder that was killed."""
        return self.root / LOCK_OWNER

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics"

    @property
    def model(self) -> Path:
        return self.root / "model"

    @property
    def adapter(self) -> Path:
        return self.root / "adapter"

    @property
    def final_model(self) -> Path:
        """What users (and post_eval, and a run using this one as teacher) load."""
        return self.model if self.model.exists() or not self.adapter.exists() else self.adapter

    @property
    def wandb(self) -> Path:
        return self.root / "wandb"

    @property
    def latest_checkpoint(self) -> Path:
        return self.root / "latest_checkpoint"

    @property
    def complete(self) -> Path:
        return self.root / "pipeline_complete"

    def stage_marker(self, stage: str) -> Path:
        if stage not in STAGES:
            raise ValueError(f"unknown stage {stage!r}; stages are {', '.join(STAGES)}")
        return self.root / "stages" / f"{stage}.done"

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
    validated ForgeConfig, or the path of a config file, of which only those keys are read
    (cheap enough to place every run of a large plan)."""
    if isinstance(config, (str, Path)):
        from forge.config.loader import placement

        placed = placement(config)
        return RunDir(Path(placed["output_root"], placed["task"], placed["student"], placed["run_name"]))
    return RunDir(Path(config.output_root, config.task.name, config.student.name, config.run_name))
