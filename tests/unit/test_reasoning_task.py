"""The reasoning task's pieces: the SFT form masks the prompt, accuracy grades like the
reward, and greedy answering runs in batches."""

import pytest

from forge.tasks import reasoning


def test_the_sft_form_trains_on_the_answer_only(tiny_policy):
    _, tokenizer = tiny_policy
    features = reasoning.sft_features(tokenizer, "Ana has 2 pens and gets 3 more.", "2 + 3 = 5\n#### 5", 256)
    ids, labels = features["input_ids"], features["labels"]
    assert len(ids) == len(labels) == len(features["attention_mask"])
    first = next(i for i, label in enumerate(labels) if label != -100)
    assert tokenizer.decode(ids[:first]).endswith("<|im_start|>assistant\n")
    assert tokenizer.decode(labels[first:]) == "2 + 3 = 5\n#### 5<|im_end|>"
    assert labels[first:] == ids[first:]


def test_the_sft_form_is_cut_at_max_length(tiny_policy):
    _, tokenizer = tiny_policy
    features = reasoning.sft_features(tokenizer, "Ana has 2 pens.", "2\n#### 2", 10)
    assert len(features["input_ids"]) == len(features["labels"]) == 10


def test_accuracy_grades_like_the_correctness_reward():
    answers = ["x\n#### 5", "y\n#### 12", "z\n#### 7"]
    assert reasoning.accuracy(["so #### 5", "it is 12", "#### 8"], answers) == pytest.approx(2 / 3)
    assert reasoning.accuracy([], []) == 0.0


def test_greedy_answers_are_batched_and_deterministic(tiny_policy):
    model, tokenizer = tiny_policy
    questions = ["Ana has 2 pens.", "Ben has 30 coins and gives away 4. How many are left?", "Gus buys 3 bags."]
    first = reasoning.greedy_answers(model, tokenizer, questions, max_new_tokens=6, batch_size=2)
    one_by_one = [reasoning.greedy_answers(model, tokenizer, [q], max_new_tokens=6)[0] for q in questions]
    assert len(first) == 3 and first == one_by_one  # left padding does not change the answers
    assert tokenizer.padding_side == "right"
