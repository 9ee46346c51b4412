"""Reasoning: word problems answered by a causal LM, in GSM8K's layout.

The real run reads `openai/gsm8k` (config `main`) from the Hub; the offline twin reads
the generated copy (`embedded:synthetic-arithmetic`) by the same call. Rows have a
`question` and an `answer` that ends with `#### <number>`. SFT trains on the worked
answers (a warm start); RL (GRPO) samples answers to the prompts and rewards them.

- `prompt(question)`: the chat a policy answers (one user turn).
- `sft_features`: the causal-LM form for an SFT warm start: the prompt through the
  chat template, then the worked answer and the end-of-turn token; the loss covers
  only the answer.
- `evaluate`: the share of held-out problems whose greedy answer is right, graded like
  the `correctness` reward (forge/rewards.py), and the share in the answer format.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from forge.logs import progress
from forge.models.loading import CAUSAL_LM
from forge.rewards import extract_answer, format_reward
from forge.tasks import TaskSpec, sources

if TYPE_CHECKING:
    from forge.config.schema import ForgeConfig

HEAD = CAUSAL_LM
TRAIN_SPLIT, EVAL_SPLIT = "train", "test"
EVAL_SPLITS = (EVAL_SPLIT,)
DEFAULT_CONFIG = "main"
SPEC = TaskSpec(
    TRAIN_SPLIT,
    EVAL_SPLITS,
    metric="accuracy",
    larger_is_better=True,
    supports=frozenset({"rl", "distillation", "teacher_cache", "on_policy"}),  # KD: per answer token
    per_token_cache=True,  # the cache: the teacher's top-k logits of each answer token
)
# SFT evaluates the loss on the held-out worked answers while it trains; accuracy
# needs generation and is measured by pre_eval and post_eval.
PEAK_METRICS = {"eval_loss": False}
INSTRUCTION = "Solve the problem. End with a line '#### <answer>'."


def prompt(question: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"{INSTRUCTION}\n{question}"}]


def sft_features(tokenizer, question: str, answer: str, max_length: int) -> dict[str, list[int]]:
    """input_ids, attention_mask and labels (-100 over the prompt) for one problem."""
    chat = tokenizer.apply_chat_template(prompt(question), add_generation_prompt=True, return_dict=True)
    prompt_ids = chat["input_ids"]
    answer_ids = tokenizer(answer, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    ids = (list(prompt_ids) + answer_ids)[:max_length]
    labels = ([-100] * len(prompt_ids) + answer_ids)[:max_length]
    return {"input_ids": ids, "attention_mask": [1] * len(ids), "labels": labels}


def greedy_answers(model, tokenizer, questions: list[str], max_new_tokens: int, batch_size: int = 32) -> list[str]:
    """The model's greedy completions (text after the prompt, special tokens dropped)."""
    import torch

    side = tokenizer.padding_side
    tokenizer.padding_side = "left"  # generation continues at the right end of every row
    completions = []
    try:
        model.eval()
        for start in progress(range(0, len(questions), batch_size), "answering"):
            chats = [prompt(q) for q in questions[start : start + batch_size]]
            batch = tokenizer.apply_chat_template(
                chats, add_generation_prompt=True, padding=True, return_tensors="pt", return_dict=True
            ).to(model.device)
            with torch.no_grad():
                out = model.generate(
                    **batch, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tokenizer.pad_token_id
                )
            new = out[:, batch["input_ids"].shape[1] :]
            completions += tokenizer.batch_decode(new, skip_special_tokens=True)
    finally:
        tokenizer.padding_side = side
    return completions


def accuracy(completions: list[str], answers: list[str]) -> float:
    """The share of completions whose final answer equals the reference's."""
    right = 0
    for completion, reference in zip(completions, answers, strict=True):
        got = extract_answer(completion)
        right += got is not None and got == extract_answer(reference)
    return right / len(answers) if answers else 0.0


def data_needs(cfg: ForgeConfig) -> sources.Needs:
    return sources.Needs(cfg.task.dataset_config or DEFAULT_CONFIG, (TRAIN_SPLIT, EVAL_SPLIT), ("question", "answer"))


def prepare(cfg: ForgeConfig, tokenizer, out: Path) -> dict[str, int]:
    """Save the splits to `out`. Training rows are the SFT form, or for RL the chat
    `prompt` and reference `answer` GRPO samples and rewards against; the test split
    keeps `question` and `answer` (greedy accuracy) beside its SFT form (eval loss)."""
    from datasets import DatasetDict

    raw = sources.load(cfg.task.dataset, cfg.task.dataset_config or DEFAULT_CONFIG, (TRAIN_SPLIT, EVAL_SPLIT))
    for split in (TRAIN_SPLIT, EVAL_SPLIT):
        missing = {"question", "answer"} - set(raw[split].column_names)
        if missing:
            raise ValueError(f"dataset {cfg.task.dataset!r}: split {split} lacks the column(s) {', '.join(missing)}")
    train = sources.subset(raw[TRAIN_SPLIT], cfg.task.max_train_samples, cfg.task.data_seed)
    test = sources.subset(raw[EVAL_SPLIT], cfg.task.max_eval_samples, cfg.task.data_seed)

    def sft_form(row):
        return sft_features(tokenizer, row["question"], row["answer"], cfg.task.max_length)

    extra = [c for c in train.column_names if c not in ("question", "answer")]
    if cfg.mode == "rl":
        train = train.map(lambda row: {"prompt": prompt(row["question"])}, remove_columns=["question", *extra])
    else:
        train = train.map(sft_form, remove_columns=train.column_names)
    test = test.map(sft_form, remove_columns=[c for c in test.column_names if c not in ("question", "answer")])
    prepared = DatasetDict({TRAIN_SPLIT: train, EVAL_SPLIT: test})
    prepared.save_to_disk(str(out))
    return {name: len(split) for name, split in prepared.items()}


def load_prepared(path: Path):
    from datasets import load_from_disk

    return load_from_disk(str(path))


def trainer_inputs(cfg: ForgeConfig, data, tokenizer, model) -> dict:
    """What the SFT trainer reads: batches padded with labels -100 beyond each answer."""
    from transformers import DataCollatorForSeq2Seq

    return dict(
        train_dataset=data[TRAIN_SPLIT],
        eval_dataset=data[EVAL_SPLIT].remove_columns(["question", "answer"]),
        data_collator=DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=-100),
    )


def evaluate(session, model, tokenizer, data) -> dict[str, dict[str, float]]:
    """Greedy answers to the held-out problems: the share that is right (`accuracy`,
    graded like the correctness reward) and the share that ends with a final-answer
    line (`format`)."""
    from forge.models.loading import default_device

    test = data[EVAL_SPLIT]
    model.to(default_device())
    completions = greedy_answers(model, tokenizer, test["question"], session.cfg.task.max_new_tokens)
    formatted = format_reward(None, completions)
    return {
        EVAL_SPLIT: {
            "accuracy": accuracy(completions, test["answer"]),
            "format": sum(formatted) / len(formatted) if formatted else 0.0,
            "samples": len(test),
        }
    }
