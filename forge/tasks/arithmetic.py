"""Reasoning (word problems) for the RL path: GSM8K's layout through `datasets.load_dataset`.

The real run reads `openai/gsm8k` (config `main`) from the Hub; the offline twin reads
the generated copy (`embedded:synthetic-arithmetic`) by the same call. Rows have a
`question` and an `answer` that ends with `#### <number>`.

- `prompt(question)`: the chat a policy answers (one user turn).
- `sft_features`: the causal-LM form for an SFT warm start: the prompt through the
  chat template, then the worked answer and the end-of-turn token; the loss covers
  only the answer.
- `greedy_accuracy`: the share of problems whose greedy answer is right, graded like
  the `correctness` reward (forge/rewards.py).
"""

from __future__ import annotations

from forge.rewards import extract_answer

TRAIN_SPLIT, EVAL_SPLIT = "train", "test"
DEFAULT_CONFIG = "main"
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
        for start in range(0, len(questions), batch_size):
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


def greedy_accuracy(model, tokenizer, rows: dict[str, list[str]], max_new_tokens: int) -> float:
    completions = greedy_answers(model, tokenizer, rows["question"], max_new_tokens)
    return accuracy(completions, rows["answer"])
