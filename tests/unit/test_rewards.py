"""Reward functions: answers extracted as a grader would, built-ins scored per completion,
user functions resolved by name, and a misbehaving reward named in the error."""

import pytest

from forge import rewards
from forge.errors import ConfigError, ForgeError


@pytest.mark.parametrize(
    ("text", "answer"),
    [
        ("3 + 5 = 8. #### 8", "8"),
        ("So she pays 1,200 dollars.\n#### 1,200", "1200"),
        ("first 4, then 7, so 11", "11"),
        ("#### 3.50", "3.5"),
        ("#### -4.0", "-4"),
        ("no number here", None),
    ],
)
def test_extract_answer(text, answer):
    assert rewards.extract_answer(text) == answer


def test_correctness_compares_final_answers():
    completions = ["2 + 2 = 4\n#### 4", "#### 5", "it is 4", "I don't know"]
    assert rewards.correctness(["q"] * 4, completions, reference=["#### 4"] * 4) == [1.0, 0.0, 1.0, 0.0]


def test_format_wants_a_final_answer_line():
    completions = ["so #### 12", "so 12", "#### 12 and more text", "#### twelve"]
    assert rewards.format_reward(["q"] * 4, completions) == [1.0, 0.0, 0.0, 0.0]


def test_chat_completions_are_read_from_the_last_message():
    chat = [[{"role": "assistant", "content": "#### 9"}], [{"role": "assistant", "content": "#### 8"}]]
    assert rewards.correctness(["q", "q"], chat, reference=["9", "9"]) == [1.0, 0.0]
    assert rewards.format_reward(["q", "q"], chat) == [1.0, 1.0]


def test_names_resolve_to_builtins_or_importable_functions():
    assert rewards.resolve("correctness") is rewards.correctness
    assert rewards.resolve("forge.rewards:format_reward") is rewards.format_reward
    with pytest.raises(ConfigError, match="unknown reward 'exact'"):
        rewards.resolve("exact")
    with pytest.raises(ConfigError, match="cannot import"):
        rewards.resolve("no_such_module:f")
    with pytest.raises(ConfigError, match="has no function 'nope'"):
        rewards.resolve("forge.rewards:nope")


def test_a_reward_that_raises_is_named():
    def broken(prompts, completions, **_):
        raise KeyError("answer")

    with pytest.raises(ForgeError, match="reward 'mine:broken' failed: KeyError"):
        rewards.checked("mine:broken", broken)(["q"], ["a"])


def test_a_reward_of_the_wrong_length_is_named():
    short = rewards.checked("short", lambda prompts, completions, **_: [1.0])
    with pytest.raises(ForgeError, match="reward 'short' returned 1 values for 2 completions"):
        short(["q", "q"], ["a", "b"])
    words = rewards.checked("words", lambda prompts, completions, **_: ["good", "bad"])
    with pytest.raises(ForgeError, match="reward 'words' returned a value that is not a number"):
        words(["q", "q"], ["a", "b"])
    nothing = rewards.checked("nothing", lambda prompts, completions, **_: None)
    with pytest.raises(ForgeError, match="reward 'nothing' returned None, not one number per completion"):
        nothing(["q"], ["a"])


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_a_reward_that_is_not_finite_is_named(bad):
    """NaN vanished from trl's sums and its log; inf made every advantage 0: the policy never moved."""
    odd = rewards.checked("odd", lambda prompts, completions, **_: [1.0, bad])
    with pytest.raises(ForgeError, match=rf"reward 'odd' returned {bad} for completion 1: a reward is a finite"):
        odd(["q", "q"], ["a", "b"])
    assert rewards.checked("some", lambda prompts, completions, **_: [None, 2])(["q", "q"], ["a", "b"]) == [None, 2.0]


def test_config_weights_keep_their_order():
    functions, weights = rewards.reward_functions({"format": 0.2, "correctness": 1.0})
    assert weights == [0.2, 1.0]
    assert functions[1](["q"], ["#### 3"], reference=["3"]) == [1.0]
    assert [f.__name__ for f in functions] == ["format", "correctness"]


def test_only_functions_callable_as_trl_calls_a_reward_are_accepted():
    import operator
    import os

    from forge.errors import ConfigError

    def exact(prompts, completions, answer, **columns):
        return [1.0] * len(completions)

    def no_columns(prompts, completions):
        return [1.0] * len(completions)

    assert rewards.takes_reward_arguments(rewards.correctness) and rewards.takes_reward_arguments(exact)
    for wrong in (os.system, operator.add, no_columns, len):
        assert not rewards.takes_reward_arguments(wrong), wrong
    with pytest.raises(ConfigError, match=r"'os:system' takes \(command\); a reward function takes"):
        rewards.resolve("os:system")


def test_an_empty_match_reads_no_answer():
    """'\\d*' matches everywhere; an empty answer would equal every other empty one."""
    assert rewards.extract_answer("nothing to read", (r"\d*",)) is None
    assert rewards.extract_answer("first 4, then 17 and more", (r"\d*",)) == "17"
    assert rewards.extract_answer("The answer is x", (r"The answer is (x?)", r"(\w+)$")) == "x"
    assert rewards.extract_answer("The answer is ", (r"The answer is (x?)",)) is None
    assert rewards.correctness(None, ["nothing"], ["no number either"], patterns=(r"\d*",)) == [0.0]
