"""The generation type on GSM8K's layout (configs/reasoning/gsm8k): the SFT form masks the
prompt and learns the answer and its end token once, accuracy grades like the reward, and
greedy answering runs in batches."""

import pytest

from forge.rewards import GSM8K_ANSWER
from forge.tasks import chat
from forge.tasks.generation import accuracy, greedy_answers

PROMPT = "Solve the problem. End with a line '#### <answer>'.\n{question}"


def conversation(question: str, answer: str) -> list[dict]:
    return [{"role": "user", "content": PROMPT.format(question=question)}, {"role": "assistant", "content": answer}]


def test_the_sft_form_trains_on_the_answer_and_its_end_token_once(tiny_policy):
    _, tokenizer = tiny_policy
    ids, labels = chat.supervise(tokenizer, conversation("Ana has 2 pens and gets 3 more.", "2 + 3 = 5\n#### 5"),
                                 "completion")  # fmt: skip
    assert len(ids) == len(labels)
    first = next(i for i, label in enumerate(labels) if label != -100)
    assert tokenizer.decode(ids[:first]).endswith("<|im_start|>assistant\n")
    assert tokenizer.decode(labels[first:]) == "2 + 3 = 5\n#### 5<|im_end|>"
    assert labels[first:] == ids[first:] and ids.count(tokenizer.eos_token_id) == 2  # the user turn's, the answer's
    # what the prompt's chat alone renders, then the answer's tokens and the end token: nothing after it
    prompt = tokenizer.apply_chat_template(conversation("Ana has 2 pens and gets 3 more.", "")[:1],
                                           add_generation_prompt=True, return_dict=True)["input_ids"]  # fmt: skip
    answer = tokenizer("2 + 3 = 5\n#### 5", add_special_tokens=False)["input_ids"]
    assert ids == [*prompt, *answer, tokenizer.eos_token_id]


def test_accuracy_grades_like_the_correctness_reward():
    answers = ["x\n#### 5", "y\n#### 12", "z\n#### 7"]
    assert accuracy(["so #### 5", "it is 12", "#### 8"], answers, GSM8K_ANSWER) == pytest.approx(2 / 3)
    assert accuracy([], [], GSM8K_ANSWER) == 0.0


def test_greedy_answers_are_batched_and_deterministic(tiny_policy):
    model, tokenizer = tiny_policy
    questions = ["Ana has 2 pens.", "Ben has 30 coins and gives away 4. How many are left?", "Gus buys 3 bags."]
    prompts = [conversation(q, "")[:1] for q in questions]
    first = greedy_answers(model, tokenizer, prompts, max_new_tokens=6, batch_size=2)
    one_by_one = [greedy_answers(model, tokenizer, [p], max_new_tokens=6)[0] for p in prompts]
    assert len(first) == 3 and first == one_by_one  # left padding does not change the answers
    assert tokenizer.padding_side == "right"
    # a prompt over max_length is cut from the left: answered as its last max_length tokens are
    long = [{"role": "user", "content": "word " * 300 + questions[1]}]
    ids = tokenizer.apply_chat_template(long, add_generation_prompt=True, return_dict=True)["input_ids"]
    tail = tokenizer.decode(ids[-40:])
    cut = greedy_answers(model, tokenizer, [long, prompts[0]], max_new_tokens=6, max_length=40)
    assert cut == [greedy_answers(model, tokenizer, [long], max_new_tokens=6, max_length=40)[0], first[0]]
    alone = tokenizer(tail, add_special_tokens=False, return_tensors="pt")
    out = model.generate(**alone, max_new_tokens=6, do_sample=False, pad_token_id=tokenizer.pad_token_id)
    assert cut[0] == tokenizer.decode(out[0, alone["input_ids"].shape[1] :], skip_special_tokens=True)
    assert tokenizer.truncation_side == "right"


def test_a_packed_batch_trains_each_sequence_as_if_it_were_alone(tiny_policy):
    """Packed rows (trl's pack_dataset) through forge's collator: each sequence attends to itself
    only, its first token is no target of the sequence before, the padding carries no loss: the
    summed next-token loss is the sum of the sequences' own."""
    import torch
    from datasets import Dataset
    from trl.data_utils import pack_dataset

    from forge.losses import next_token_cross_entropy
    from forge.tasks.generation import PackedCollator

    model, tokenizer = tiny_policy
    rows = [chat.supervise(tokenizer, conversation(q, a), "completion")
            for q, a in (("1 + 2?", "3 #### 3"), ("10 - 4?", "6 #### 6"), ("7 + 7?", "14 #### 14"))]  # fmt: skip
    packed = pack_dataset(Dataset.from_dict({"input_ids": [r[0] for r in rows], "labels": [r[1] for r in rows]}),
                          seq_length=160, strategy="bfd")  # fmt: skip
    assert len(packed) < len(rows)  # something was packed together
    batch = PackedCollator(tokenizer.pad_token_id)([packed[i] for i in range(len(packed))])
    model.eval()
    with torch.no_grad():
        labels = batch.pop("labels")
        together = next_token_cross_entropy(model(**batch).logits, labels, num_items_in_batch=1)
        alone = sum(next_token_cross_entropy(model(input_ids=torch.tensor([ids])).logits, torch.tensor([lab]),
                                             num_items_in_batch=1) for ids, lab in rows)  # fmt: skip
    torch.testing.assert_close(together, alone, rtol=1e-5, atol=1e-5)
