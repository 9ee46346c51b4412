"""The config schema for all three training modes (SFT, KD, RL).

pydantic does the type checking (it is already in the stack through wandb);
forge adds the did-you-mean for unknown keys and the cross-field rules.
Every key here is read by some part of forge.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    StrictBool,
    StrictInt,
    StrictStr,
    field_validator,
    model_validator,
)
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


class Splits(Section):
    # The source's splits a run reads: the training split, and the evaluation split(s), the
    # main one first. Unset: "train", and the first of validation / test / eval / dev present.
    train: str | None = None
    eval: str | Annotated[list[str], Field(min_length=1)] | None = None


def _regexes(value):
    import re

    for pattern in [value] if isinstance(value, str) else value or []:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise PydanticCustomError("regex", f"{pattern!r} is not a regular expression ({exc})") from None
    return value


class TaskBase(Section):
    # The run's label: its place under outputs/ (<output_root>/<task.name>/<student>/<run_name>).
    name: Name
    # Where the data is: a Hub dataset id ("nyu-mll/glue"), a local directory in Hub format or
    # a folder of csv / json / jsonl / parquet files, or "embedded:<name>" for a dataset forge
    # generates offline. With `data_files` it is the folder they are relative to (unset: the
    # folder of the config that names them).
    dataset: str | None = None
    dataset_config: str | None = None
    # Files per split ({train: train.csv, eval: [a.jsonl, b.jsonl]}); their suffix says the format.
    data_files: dict[str, str | Annotated[list[str], Field(min_length=1)]] | None = None
    splits: Splits | None = None
    # Carve this share of the training rows off as the evaluation split (drawn with data_seed,
    # the same rows in every attempt) when the data has no evaluation split.
    eval_split: Annotated[Float, Field(gt=0, lt=1)] | None = None
    max_length: PositiveInt = 128
    max_train_samples: PositiveInt | None = None
    max_eval_samples: PositiveInt | None = None
    # Draws the max_train_samples / max_eval_samples subsets and a carved eval_split. Apart from
    # `seed` (the model's initialisation, dropout, the data order) so that runs over several seeds
    # see the same examples; vary it to measure how much the choice of examples matters.
    data_seed: Seed = 42
    # A row that cannot be used (no text, a label outside the set, an image that does not open):
    # error (one line naming split and row) or skip (left out, counted in the log).
    bad_rows: Literal["error", "skip"] = "error"

    @model_validator(mode="after")
    def _some_data(self):
        if self.dataset is None and self.data_files is None:
            raise PydanticCustomError("no_data", "name the data: task.dataset, task.data_files, or both")
        return self


class ClassificationColumns(Section):
    text: str = "text"
    text_pair: str | None = None  # a second text (NLI's hypothesis)
    label: str = "label"


class ClassificationTask(TaskBase):
    # A text (and a second one) -> one of the labels; float labels -> a number (regression).
    type: Literal["classification"]
    columns: ClassificationColumns = ClassificationColumns()
    # The classes, in id order: the label column's values (integer ones: their names by index).
    # Unset: the data's ClassLabel names, else the sorted distinct values of the training split.
    labels: Annotated[list[StrictStr | StrictInt], Field(min_length=2)] | None = None

    @field_validator("labels")
    @classmethod
    def _distinct(cls, value):
        if value is not None and len(set(map(str, value))) != len(value):
            raise PydanticCustomError("labels", "Input should list each label once")
        return value


class GenerationColumns(Section):
    # One form of row: `messages` (a chat), `prompt` + `completion`, or `text`. Unset: found by
    # these names in the data.
    messages: str | None = None
    prompt: str | None = None
    completion: str | None = None
    text: str | None = None
    system: str | None = None  # a per-row system prompt (prompt + completion rows)


Role = Literal["system", "user", "assistant", "tool"]


class GenerationTask(TaskBase):
    # A causal LM: chats, prompt + completion pairs, or plain text (forge/tasks/generation.py).
    type: Literal["generation"]
    columns: GenerationColumns = GenerationColumns()
    # The user turn written from the row's columns ("Solve: {question}"), instead of a prompt column.
    prompt_template: str | None = None
    system_prompt: str | None = None  # a system turn before every prompt
    # A Jinja chat template used instead of the tokenizer's (a model without one needs it).
    chat_template: str | None = None
    # A chat's field names ({role: from, content: value}) and role names ({assistant: [gpt]}),
    # as axolotl's keys of the same names.
    message_property_mappings: dict[Literal["role", "content"], str] | None = None
    roles: dict[Role, Annotated[list[str], Field(min_length=1)]] | None = None
    # The tokens that carry the loss. Unset: completion for prompt + completion rows, assistant
    # (every assistant turn) for chats, all for text.
    loss_on: Literal["completion", "assistant", "all"] | None = None
    overlength: Literal["truncate", "drop", "error"] = "truncate"  # a row longer than max_length
    packing: StrictBool = False  # SFT rows packed into max_length blocks
    # The answer in a completion and a reference: a regex whose first group (or whole match) is
    # it, the last match counting; or a list of them, the first that matches deciding. Sets the
    # held-out accuracy and the correctness / format rewards' reading.
    answer_pattern: Annotated[str | Annotated[list[str], Field(min_length=1)] | None, AfterValidator(_regexes)] = None
    # Tokens a model may generate per answer when it is evaluated.
    max_new_tokens: PositiveInt = 64


class ImageToTextColumns(Section):
    image: str = "image"  # an image, image bytes, or a file path relative to the dataset folder
    text: str = "text"


class ImageToTextTask(TaskBase):
    # An image -> its text, by a vision encoder-decoder (OCR).
    type: Literal["image_to_text"]
    columns: ImageToTextColumns = ImageToTextColumns()
    max_new_tokens: PositiveInt = 64  # tokens a model may generate per transcription


TaskConfig = Annotated[ClassificationTask | GenerationTask | ImageToTextTask, Field(discriminator="type")]
TASK_TYPES = {"classification": ClassificationTask, "generation": GenerationTask, "image_to_text": ImageToTextTask}


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


class EvalConfig(Section):
    """lm-evaluation-harness tasks run on the model in memory, beside the task's own metrics
    (forge/harness.py). Key names are lm-eval's."""

    # lm-eval task names (a warm Hub cache), or task files (.yaml, lm-eval's format; relative to
    # the config file); a file's relative data_files and dataset_path are relative to it
    tasks: Annotated[list[Annotated[str, Field(min_length=1)]], Field(min_length=1)]
    stages: Annotated[list[Literal["pre_eval", "post_eval"]], Field(min_length=1)] = ["pre_eval", "post_eval"]
    limit: PositiveInt | None = None  # rows per task (all when unset)
    num_fewshot: Annotated[int, Strict(), Field(ge=0, le=BIG)] | None = None
    batch_size: PositiveInt = 8
    apply_chat_template: StrictBool = False
    # "TASK/METRIC" (METRIC as lm-eval names it, "exact_match,strict-match"; ",none" may be left
    # out): the run's main metric in forge status and report instead of the task's own
    main_metric: Annotated[str, Field(pattern=r"^[^/]+/.+$")] | None = None


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
    eval: EvalConfig | None = None

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
        data = [self.task.dataset] if self.task.dataset is not None else []
        return [*data, *(m.path for m in self.models.values() if m.path is not None)]

    @property
    def upstream_runs(self) -> dict[str, str]:
        """role ("teacher", "student") -> the config file of each run whose final model this
        run loads (forge/run/upstream.py), `{seed}` filled in with this run's seed."""
        seed = str(self.seed)
        return {role: m.run.replace(SEED_PLACEHOLDER, seed) for role, m in self.models.items() if m.run is not None}


def _listing(names: list[str]) -> str:
    return " and ".join(names) if len(names) < 3 else f"{', '.join(names[:-1])} and {names[-1]}"


Violations = list[tuple[tuple[str, ...], str]]  # (the key a message is about, the message)


def _unsupported(cfg: ForgeConfig, feature: str) -> str | None:
    """Why the run's task type cannot do `feature`, or None when it can."""
    kind = tasks.TYPES[cfg.task.type]
    if feature in kind.supports:
        return None
    own = kind.why_not.get(feature)
    listed = _listing(tasks.supporting(feature))
    return own or f"{tasks.FEATURES[feature]} is available for task.type {listed}, not {cfg.task.type}"


def _model_rules(cfg: ForgeConfig) -> Violations:
    """Each model names one thing to load; a cut student trains whole, not through LoRA."""
    found = []
    if (cfg.student.path is None) == (cfg.student.run is None):
        found.append((("student",), "set exactly one of path (a model) or run (another forge run's config)"))
    if cfg.teacher is not None and (cfg.teacher.path is None) == (cfg.teacher.run is None):
        found.append((("teacher",), "set exactly one of path (a model) or run (another forge run's config)"))
    if cfg.student.layers and cfg.student.lora is not None:
        found.append(
            (
                ("student", "layers"),
                "and student.lora together would save an adapter whose base is the uncut "
                "model: cut in one run (student.layers, no lora), then train LoRA on its final model "
                "(student.run)",
            )
        )
    return found


def _rl_rules(cfg: ForgeConfig) -> Violations:
    """An `rl:` block: a task a policy answers, rewards that resolve, whole groups per batch."""
    if cfg.rl is None:
        return []
    found = []
    if why := _unsupported(cfg, "rl"):
        found.append((("rl",), why))
    if cfg.teacher is not None:
        found.append((("teacher",), "an RL run learns from its rewards, not from a teacher: remove `teacher:`"))
    if cfg.training.batch_size % cfg.rl.num_generations:
        found.append(
            (
                ("training", "batch_size"),
                f"is {cfg.training.batch_size}, which counts completions: make it a "
                f"multiple of rl.num_generations ({cfg.rl.num_generations})",
            )
        )
    if not cfg.rl.rewards:
        found.append((("rl", "rewards"), "RL needs at least one reward function"))
    from forge.rewards import BUILTINS, resolve

    for name in cfg.rl.rewards:
        try:
            resolve(name)
        except ConfigError as exc:
            found.append((("rl", "rewards"), str(exc).removeprefix("rl.rewards: ")))
    graders = [n for n in cfg.rl.rewards if n in BUILTINS]
    if graders and cfg.task.type == "generation" and cfg.task.answer_pattern is None:
        found.append(
            (
                ("task", "answer_pattern"),
                f"is unset, and the {_listing(graders)} reward(s) read answers by it: set it (GSM8K's: '####\\s*(.+)')",
            )
        )
    return found


def _kd_rules(cfg: ForgeConfig) -> Violations:
    """Distillation: a teacher, and what the task type's logits allow (cache, hidden states)."""
    kd = cfg.distillation
    if cfg.rl is not None or not kd.distils:
        return []
    if why := _unsupported(cfg, "distillation"):
        return [(("distillation",), why)]
    found = []
    if cfg.teacher is None:
        key, value = (("alpha",), kd.alpha) if kd.alpha > 0 else (("hidden", "weight"), kd.hidden.weight)
        found.append(
            (
                ("distillation", *key),
                f"is {value}, which needs a teacher: add a `teacher:` block or set "
                f"distillation.{'.'.join(key)} to 0 for plain fine-tuning",
            )
        )
    if kd.teacher_cache and (why := _unsupported(cfg, "teacher_cache")):
        found.append((("distillation", "teacher_cache"), f"{why}: set distillation.teacher_cache: false (online KD)"))
    if kd.hidden.weight > 0 and (why := _unsupported(cfg, "hidden_states")):
        found.append((("distillation", "hidden", "weight"), why))
    if kd.hidden.weight > 0 and kd.teacher_cache:
        found.append(
            (
                ("distillation", "teacher_cache"),
                "the hidden-state loss needs the teacher's hidden states "
                "at every step, which are not cached: set distillation.teacher_cache: false (online KD)",
            )
        )
    per_token = tasks.TYPES[cfg.task.type].alignment is tasks.Alignment.NEXT_TOKEN
    if kd.alpha > 0 and kd.teacher_cache and kd.cache_top_k is None and per_token:
        found.append(
            (
                ("distillation", "teacher_cache"),
                "a causal LM's cache keeps the k largest teacher logits of "
                "each answer token, not the whole vocabulary: set distillation.cache_top_k (e.g. 32), or "
                "teacher_cache: false (online KD)",
            )
        )
    return found


def _transfer_set_rules(cfg: ForgeConfig) -> Violations:
    key = ("distillation", "transfer_samples")
    if cfg.distillation.transfer_samples is None:
        return []
    if cfg.rl is not None or cfg.distillation.alpha == 0:
        return [(key, "the transfer set's rows are learned from the teacher alone: it needs distillation.alpha > 0")]
    if why := _unsupported(cfg, "transfer_set"):
        return [(key, why)]
    if cfg.task.max_train_samples is None:
        return [
            (key, "needs task.max_train_samples, the labelled rows: the transfer set is the training rows beyond them")
        ]
    return []


def _on_policy_rules(cfg: ForgeConfig) -> Violations:
    key, kd = ("distillation", "on_policy"), cfg.distillation
    if kd.on_policy == 0:
        return []
    if why := _unsupported(cfg, "on_policy"):
        return [(key, why)]
    if cfg.rl is not None or kd.alpha == 0:
        return [(key, "on-policy batches learn from the teacher alone: it needs distillation.alpha > 0")]
    if kd.teacher_cache:
        return [
            (
                key,
                "scores the student's own samples with the teacher, which must run online: "
                "set distillation.teacher_cache: false",
            )
        ]
    return []


def _task_rules(cfg: ForgeConfig) -> Violations:
    """The task section's own keys against each other, and against the run's mode."""
    task, found = cfg.task, []
    if task.eval_split is not None and task.splits is not None and task.splits.eval is not None:
        found.append((("task", "eval_split"), "and task.splits.eval both say where the evaluation rows are: keep one"))
    named = [(role, column) for role, column in task.columns.model_dump().items() if column is not None]
    twice = next(((role, c) for i, (role, c) in enumerate(named) if c in [other for _, other in named[:i]]), None)
    if twice is not None:  # e.g. the text read as its own label
        first = next(role for role, c in named if c == twice[1])
        found.append((("task", "columns", twice[0]), f"names the column {twice[1]!r}, as task.columns.{first} does"))
    if task.type != "generation":
        return found
    columns = task.columns
    forms = [
        name
        for name, set_ in (
            ("messages", columns.messages),
            ("prompt/completion", columns.completion),
            ("text", columns.text),
        )
        if set_
    ]
    if len(forms) > 1:
        found.append((("task", "columns"), f"names {' and '.join(forms)} columns: a row is one form; keep one"))
    if columns.prompt and task.prompt_template:
        found.append((("task", "columns", "prompt"), "and task.prompt_template both write the user turn: keep one"))
    if columns.text and task.loss_on in ("completion", "assistant"):
        found.append(
            (
                ("task", "loss_on"),
                f"is {task.loss_on}, which needs prompts or chats; plain text rows learn every token (loss_on: all)",
            )
        )
    if task.packing and cfg.mode != "sft":
        found.append(
            (
                ("task", "packing"),
                f"packs SFT rows; a {cfg.mode.upper()} run reads its rows one by one "
                "(a teacher's logits per row, or prompts to sample from)",
            )
        )
    return found


def _eval_rules(cfg: ForgeConfig) -> Violations:
    """lm-eval evaluates causal LMs (the task type says); a main metric of its is shown before -> after."""
    found: Violations = []
    if cfg.eval is None:
        return found
    if why := _unsupported(cfg, "lm_eval"):
        found.append((("eval",), why))
    if cfg.eval.main_metric is not None and set(cfg.eval.stages) != {"pre_eval", "post_eval"}:
        found.append((("eval", "main_metric"), "the run's main metric is shown before and after training: "
                      "eval.stages must be both pre_eval and post_eval"))  # fmt: skip
    return found


RULES = (_model_rules, _task_rules, _rl_rules, _kd_rules, _transfer_set_rules, _on_policy_rules, _eval_rules)


def rule_violations(cfg: ForgeConfig) -> Violations:
    """Rules between fields, as (key the message is about, message), one function per kind of
    rule. What a task type supports comes from the type (forge/tasks/)."""
    return [found for rules in RULES for found in rules(cfg)]


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
