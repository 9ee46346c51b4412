"""The config schema for all three training modes (SFT, KD, RL).

pydantic does the type checking (it is already in the stack through wandb);
forge adds the did-you-mean for unknown keys and the cross-field rules.
Every key here is read by some part of forge.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, Strict, StrictBool, field_validator
from pydantic_core import PydanticCustomError

from forge import tasks
from forge.errors import ConfigError

# A folder name: no separators, no leading dot (its length: forge.config.MAX_NAME).
Name = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")]


# Numbers are what they say: a YAML boolean is never a number (`batch_size: true` is not 1),
# an int takes no float, and a float takes an int but never inf or nan (Strict below).
def _spelled_number(value):
    """YAML 1.1 reads `5e-5` (an exponent without a dot) as a string: it counts as the number it spells."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value  # refused below, with pydantic's message
    return value


Float = Annotated[float, BeforeValidator(_spelled_number), Strict()]
BIG = 2**31 - 1  # steps, sizes and counts beyond it overflow torch's and the Trainer's ints
PositiveInt = Annotated[int, Strict(), Field(gt=0, le=BIG)]
PositiveFloat = Annotated[Float, Field(gt=0)]
Seed = Annotated[int, Strict(), Field(ge=0, le=2**32 - 1)]  # what numpy, torch and datasets accept

Mode = Literal["sft", "kd", "rl"]

# In `student.run` / `teacher.run`, `{seed}` stands for this run's own `seed`: a sweep over seeds
# builds each seed on the upstream run of the same seed (`smollm2_sft.yaml#seed{seed}`). The
# config keeps the placeholder (so a sweep's seeds stay one point); `upstream_runs` fills it in.
SEED_PLACEHOLDER = "{seed}"
_PLACEHOLDER = re.compile(r"\{[^{}]*\}")


def _only_seed_placeholder(value: str | None) -> str | None:
    other = next((m for m in _PLACEHOLDER.findall(value or "") if m != SEED_PLACEHOLDER), None)
    if other is not None:
        raise PydanticCustomError(
            "placeholder", f"{other} is not a placeholder forge fills in (only {SEED_PLACEHOLDER}: the run's seed)"
        )
    return value


RunRef = Annotated[str | None, AfterValidator(_only_seed_placeholder)]


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class TaskConfig(Section):
    # A task of forge/tasks/: mnli (sentence-pair classification, GLUE MNLI), reasoning
    # (word problems answered by a causal LM, GSM8K's layout, for SFT warm starts and RL),
    # ocr (line images transcribed by a vision encoder-decoder).
    name: str
    # A Hub dataset id ("nyu-mll/glue"), a local directory in Hub format, or
    # "embedded:<name>" for a dataset forge generates offline.
    dataset: str
    dataset_config: str | None = None
    max_length: PositiveInt = 128
    # reasoning, ocr: tokens a model may generate per answer when it is evaluated.
    max_new_tokens: PositiveInt = 64
    # ocr: the dataset's columns, and whether rows whose image cannot be read are
    # skipped (with a warning naming them) instead of stopping prepare_data.
    image_column: str = "image"
    text_column: str = "text"
    skip_bad_images: StrictBool = False
    max_train_samples: PositiveInt | None = None
    max_eval_samples: PositiveInt | None = None
    # Draws the max_train_samples / max_eval_samples subsets. Apart from `seed` (the model's
    # initialisation, dropout, the data order) so that runs over several seeds see the same
    # examples; vary it to measure how much the choice of examples matters.
    data_seed: Seed = 42

    @field_validator("name")
    @classmethod
    def _a_known_task(cls, value: str) -> str:
        if value not in tasks.TASKS:
            known = [repr(n) for n in tasks.names()]
            choices = f"{', '.join(known[:-1])} or {known[-1]}" if len(known) > 1 else known[0]
            raise PydanticCustomError("task_name", f"Input should be {choices}")
        return value


class LoraConfig(Section):
    # LoRA through peft: only the low-rank adapters (and modules_to_save) train.
    r: PositiveInt = 8
    alpha: PositiveInt = 16
    dropout: Annotated[Float, Field(ge=0, lt=1)] = 0.0
    # Module names to adapt; unset: every linear layer except the ones saved whole.
    target_modules: list[str] | None = None
    # Modules trained and saved whole. Layers the checkpoint lacks (a fresh
    # classification head) are always added, or the adapter would not reproduce them.
    modules_to_save: list[str] = []
    # finalize saves <run>/adapter; merge: true also saves the merged <run>/model.
    merge: StrictBool = True


class ModelConfig(Section):
    # Short name used in the run directory: outputs/<task>/<name>/<run_name>.
    name: Name
    # Exactly one of: `path`, a Hub model id, a local directory in Hub format or
    # "embedded:<name>"; or `run`, the config file of another forge run whose final
    # model this run starts from (e.g. GRPO after an SFT warm start; run first). `{seed}`
    # in `run` is this run's own seed (e.g. `sft_sweep.yaml#seed{seed}`).
    path: str | None = None
    run: RunRef = None
    revision: str | None = None
    lora: LoraConfig | None = None
    # Keep only these layers of the model (increasing indices from 0): a student cut from
    # its teacher, as DistilBERT was from BERT (e.g. [0, 5] of a 6-layer model). Embeddings,
    # head and tokenizer stay; the final model is saved with this many layers.
    layers: list[Annotated[int, Strict(), Field(ge=0, le=BIG)]] | None = None
    # Run the model repository's own Python code (`auto_map` in its config), for models
    # transformers does not know. Off unless set here: that code runs with your rights.
    trust_remote_code: StrictBool = False  # a YAML true/false, never a string

    @field_validator("layers")
    @classmethod
    def _increasing(cls, value: list[int] | None) -> list[int] | None:
        if value is not None and (not value or any(a >= b for a, b in zip(value, value[1:], strict=False))):
            raise PydanticCustomError("layers", "Input should be a non-empty list of increasing layer indices")
        return value


class TeacherConfig(Section):
    # Exactly one of: `path`, a Hub id, a local directory in Hub format or
    # "embedded:<name>"; or `run`, the config file of another forge run, whose
    # final model is the teacher (Snakemake and forge.py run it first). `{seed}` in `run`
    # is this run's seed, as for the student.
    path: str | None = None
    run: RunRef = None
    revision: str | None = None
    trust_remote_code: StrictBool = False  # as for the student


class HiddenStateConfig(Section):
    # loss += weight * distance(project(student last hidden state), teacher last hidden
    # state), over the tokens that are not padding. The projection is learned
    # (a linear map) when the widths differ, and is not part of the final model.
    weight: Annotated[Float, Field(ge=0)] = 0.0
    loss: Literal["cosine", "mse"] = "cosine"


class DistillationConfig(Section):
    # Weight of the distillation loss: loss = (1 - alpha) * CE + alpha * KD.
    alpha: Annotated[Float, Field(ge=0, le=1)] = 0.0
    temperature: PositiveFloat = 2.0
    # The KD term's divergence between the teacher's (p) and the student's (q) softmax at T:
    # forward_kl KL(p||q) (Hinton et al.), reverse_kl KL(q||p) (mode-seeking, as MiniLLM),
    # jsd GKD's generalised Jensen-Shannon divergence, with `beta` (0.5: symmetric).
    loss: Literal["forward_kl", "reverse_kl", "jsd"] = "forward_kl"
    beta: Annotated[Float, Field(gt=0, lt=1)] = 0.5
    # true: the teacher runs once over the training data in prepare_data (forge/kd_cache.py);
    # false: online KD, the teacher runs on every training batch.
    teacher_cache: StrictBool = True
    # Cache only the k largest teacher logits per item (large vocabularies; a causal LM: per
    # answer token, required); unset: all. Every `loss` has a top-k form (forge/losses.py).
    cache_top_k: PositiveInt | None = None
    hidden: HiddenStateConfig = HiddenStateConfig()
    # A transfer set: this many more training rows, beyond the task.max_train_samples
    # labelled ones, which the student learns from through the teacher alone (their labels
    # are dropped: the CE term counts the labelled rows only, the KD term every row).
    transfer_samples: PositiveInt | None = None
    # On-policy distillation (GKD's λ): the share of micro-batches on which the student
    # answers the prompts itself (sampled, seeded) and learns the teacher's distribution over
    # its own answer tokens. A causal LM with the teacher online.
    on_policy: Annotated[Float, Field(ge=0, le=1)] = 0.0

    @property
    def distils(self) -> bool:
        return self.alpha > 0 or self.hidden.weight > 0


class RLConfig(Section):
    # reward name -> weight (a list of names: weight 1 each). Names: the built-ins of
    # forge/rewards.py (correctness, format) or package.module:function.
    rewards: dict[str, Float]

    @field_validator("rewards", mode="before")
    @classmethod
    def _names_weigh_one(cls, value):
        return dict.fromkeys(value, 1.0) if isinstance(value, list) else value

    # Completions sampled per prompt (the group whose rewards are compared);
    # training.batch_size counts completions, so it must be a multiple of this.
    num_generations: Annotated[int, Strict(), Field(ge=2, le=BIG)] = 4
    max_completion_length: PositiveInt = 64
    temperature: PositiveFloat = 1.0
    # KL penalty against the starting policy; 0 loads no reference model.
    beta: Annotated[Float, Field(ge=0)] = 0.0
    # trl's loss formulations (GRPOConfig.loss_type).
    loss_type: Literal["grpo", "dr_grpo", "dapo", "bnpo"] = "dapo"


class TrainingConfig(Section):
    epochs: PositiveFloat = 3.0
    # -1: train for `epochs`; otherwise overrides them
    max_steps: Annotated[int, Strict(), Field(ge=-1, le=BIG)] = -1
    batch_size: PositiveInt = 32
    eval_batch_size: PositiveInt = 64
    learning_rate: PositiveFloat = 5e-5
    weight_decay: Annotated[Float, Field(ge=0)] = 0.0
    warmup_steps: Annotated[Float, Field(ge=0)] = 0  # < 1: a fraction of all steps
    lr_scheduler: Literal[
        "linear",
        "cosine",
        "cosine_with_restarts",
        "polynomial",
        "constant",
        "constant_with_warmup",
        "inverse_sqrt",
    ] = "linear"
    gradient_accumulation_steps: PositiveInt = 1
    max_grad_norm: Annotated[Float, Field(ge=0)] = 1.0
    logging_steps: PositiveInt = 10
    save_steps: PositiveInt = 500
    eval_steps: PositiveInt | None = None  # None: evaluate at every save
    keep_checkpoints: PositiveInt = 2
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    # Recompute activations in the backward pass: less memory for large models, slower.
    activation_checkpointing: StrictBool = False
    dataloader_num_workers: Annotated[int, Strict(), Field(ge=0)] = 0


class WandbConfig(Section):
    # auto: online when WANDB_API_KEY is set, offline otherwise. WANDB_MODE wins.
    mode: Literal["auto", "online", "offline", "disabled"] = "auto"
    project: str = "forge"
    entity: str | None = None


class ForgeConfig(Section):
    run_name: Name
    seed: Seed = 42
    output_root: Annotated[str, Field(min_length=1)] = "outputs"
    debug: StrictBool = False
    task: TaskConfig
    student: ModelConfig
    teacher: TeacherConfig | None = None
    distillation: DistillationConfig = DistillationConfig()
    rl: RLConfig | None = None
    training: TrainingConfig = TrainingConfig()
    wandb: WandbConfig = WandbConfig()

    @property
    def mode(self) -> Mode:
        if self.rl is not None:
            return "rl"
        return "kd" if self.distillation.distils else "sft"

    @property
    def models(self) -> dict[str, ModelConfig | TeacherConfig]:
        """The models this run loads, by role: the student, and the teacher when the run
        distils (otherwise a configured teacher is never loaded)."""
        return {"student": self.student, **({"teacher": self.teacher} if self.mode == "kd" else {})}

    @property
    def references(self) -> list[str]:
        """What the run loads by reference (a Hub id, a local directory, "embedded:<name>"):
        its dataset and the `path` of each model it loads."""
        return [self.task.dataset, *(m.path for m in self.models.values() if m.path is not None)]

    @property
    def upstream_runs(self) -> dict[str, str]:
        """role ("teacher", "student") -> the config file of each run whose final model this
        run loads (forge/run/upstream.py), `{seed}` filled in with this run's seed."""
        seed = str(self.seed)
        return {role: m.run.replace(SEED_PLACEHOLDER, seed) for role, m in self.models.items() if m.run is not None}


def _listing(names: list[str]) -> str:
    return " and ".join(names) if len(names) < 3 else f"{', '.join(names[:-1])} and {names[-1]}"


def _unsupported(task: str, feature: str) -> str | None:
    """Why `task` cannot do `feature`, or None when it can."""
    spec = tasks.spec(task)
    if feature in spec.supports:
        return None
    own = spec.why_not.get(feature)
    return own or f"{tasks.FEATURES[feature]} is available for the {_listing(tasks.supporting(feature))} task(s)"


def rule_violations(cfg: ForgeConfig) -> list[tuple[tuple[str, ...], str]]:
    """Rules between fields, as (key the message is about, message). What a task supports
    comes from the task (its TaskSpec in forge/tasks/)."""
    found = []
    kd, task = cfg.distillation, cfg.task.name
    if (cfg.student.path is None) == (cfg.student.run is None):
        found.append((("student",), "set exactly one of path (a model) or run (another forge run's config)"))
    if cfg.rl is not None and _unsupported(task, "rl"):
        choices = " or ".join(tasks.supporting("rl"))
        found.append((("rl",), f"RL needs a task a policy can answer (task.name: {choices}), not {task!r}"))
    if cfg.rl is not None and cfg.teacher is not None:
        found.append((("teacher",), "an RL run learns from its rewards, not from a teacher: remove `teacher:`"))
    if cfg.rl is not None and cfg.training.batch_size % cfg.rl.num_generations:
        found.append(
            (
                ("training", "batch_size"),
                f"is {cfg.training.batch_size}, which counts completions: make it a multiple of "
                f"rl.num_generations ({cfg.rl.num_generations})",
            )
        )
    if cfg.rl is None and kd.distils and _unsupported(task, "distillation"):
        listed = _listing(tasks.supporting("distillation"))
        found.append((("distillation",), f"distillation is available for the {listed} tasks, not {task!r}"))
    elif cfg.rl is None and kd.distils:
        if kd.teacher_cache and (why := _unsupported(task, "teacher_cache")):
            found.append(
                (("distillation", "teacher_cache"), f"{why}: set distillation.teacher_cache: false (online KD)")
            )
        if kd.hidden.weight > 0 and _unsupported(task, "hidden_states"):
            listed = _listing(tasks.supporting("hidden_states"))
            found.append(
                (("distillation", "hidden", "weight"), f"the hidden-state loss is available for {listed} only")
            )
    if cfg.rl is not None and not cfg.rl.rewards:
        found.append((("rl", "rewards"), "RL needs at least one reward function"))
    if cfg.rl is not None:
        from forge.rewards import resolve

        for name in cfg.rl.rewards:
            try:
                resolve(name)
            except ConfigError as exc:
                found.append((("rl", "rewards"), str(exc).removeprefix("rl.rewards: ")))
    if cfg.rl is None and kd.distils and cfg.teacher is None:
        key, value = (("alpha",), kd.alpha) if kd.alpha > 0 else (("hidden", "weight"), kd.hidden.weight)
        found.append(
            (
                ("distillation", *key),
                f"is {value}, which needs a teacher: add a `teacher:` block "
                f"or set distillation.{'.'.join(key)} to 0 for plain fine-tuning",
            )
        )
    if cfg.rl is None and kd.hidden.weight > 0 and kd.teacher_cache:
        found.append(
            (
                ("distillation", "teacher_cache"),
                "the hidden-state loss needs the teacher's hidden states at every step, which "
                "are not cached: set distillation.teacher_cache: false (online KD)",
            )
        )
    if cfg.student.layers and cfg.student.lora is not None:
        found.append(
            (
                ("student", "layers"),
                "and student.lora together would save an adapter whose base is the uncut model: cut in one run "
                "(student.layers, no lora), then train LoRA on its final model (student.run)",
            )
        )
    if kd.transfer_samples is not None:
        found.extend(_transfer_set_violations(cfg))
    if kd.on_policy > 0:
        found.extend(_on_policy_violations(cfg))
    if (
        cfg.rl is None
        and kd.alpha > 0
        and kd.teacher_cache
        and kd.cache_top_k is None
        and tasks.spec(task).per_token_cache
    ):
        found.append(
            (
                ("distillation", "teacher_cache"),
                "a causal LM's cache keeps the k largest teacher logits of each answer token, not the whole "
                "vocabulary: set distillation.cache_top_k (e.g. 32), or teacher_cache: false (online KD)",
            )
        )
    if cfg.teacher is not None and (cfg.teacher.path is None) == (cfg.teacher.run is None):
        found.append((("teacher",), "set exactly one of path (a model) or run (another forge run's config)"))
    return found


def _on_policy_violations(cfg: ForgeConfig) -> list[tuple[tuple[str, ...], str]]:
    key, kd = ("distillation", "on_policy"), cfg.distillation
    if why := _unsupported(cfg.task.name, "on_policy"):
        return [(key, why)]
    if cfg.rl is not None or kd.alpha == 0:
        return [(key, "on-policy batches learn from the teacher alone: it needs distillation.alpha > 0")]
    if kd.teacher_cache:
        return [(key, "scores the student's own samples with the teacher, which must run online: "
                      "set distillation.teacher_cache: false")]  # fmt: skip
    return []


def _transfer_set_violations(cfg: ForgeConfig) -> list[tuple[tuple[str, ...], str]]:
    key = ("distillation", "transfer_samples")
    if cfg.rl is not None or cfg.distillation.alpha == 0:
        return [(key, "the transfer set's rows are learned from the teacher alone: it needs distillation.alpha > 0")]
    if why := _unsupported(cfg.task.name, "transfer_set"):
        return [(key, why)]
    if cfg.task.max_train_samples is None:
        return [
            (
                key,
                "needs task.max_train_samples, the labelled rows: the transfer set is the training rows beyond them",
            )
        ]
    return []


# Keys that may differ between a run's stored config.yaml and a resumed
# attempt's config: they change how long or how loudly a run goes, not what
# it computes up to the point it reached.
RESUME_SAFE_KEYS = frozenset(
    {
        ("training", "max_steps"),
        ("training", "epochs"),
        ("training", "logging_steps"),
        ("wandb", "mode"),
        ("wandb", "project"),
        ("wandb", "entity"),
    }
)
