"""The generated word problems: GSM8K's layout, correct answers, reproducible."""

import re

from forge import rewards
from forge.embedded import synthetic_arithmetic as arithmetic


def test_every_answer_is_the_value_of_its_worked_steps():
    data = arithmetic.generate("train")
    assert len(data["question"]) == arithmetic.SPLITS["train"]
    for answer in data["answer"][:500]:
        steps, final = answer.split("\n#### ")
        last = steps.split(", ")[-1]
        left, right = last.split(" = ")
        assert eval(left) == int(right) == int(final)  # noqa: S307 - generated arithmetic only
        assert rewards.extract_answer(answer) == final


def test_generation_is_reproducible_and_splits_differ():
    assert arithmetic.generate("test", seed=0) == arithmetic.generate("test", seed=0)
    assert arithmetic.generate("test", seed=0) != arithmetic.generate("test", seed=1)
    test, train = arithmetic.generate("test")["question"], arithmetic.generate("train")["question"]
    assert len(set(test) & set(train)) < len(test) // 10  # different draws, rare coincidences


def test_the_layout_loads_like_openai_gsm8k(tmp_path):
    from datasets import load_dataset

    arithmetic.write_hub_layout(tmp_path)
    data = load_dataset(str(tmp_path), "main")
    assert set(data) == {"train", "test"}
    assert data["test"].column_names == ["question", "answer"]
    assert re.search(r"#### -?\d+$", data["test"][0]["answer"])
