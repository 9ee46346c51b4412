"""The helpers of the lm-eval task files in this folder (lm-eval imports them through
`!function grading.NAME`): answers read and graded as forge's own accuracy and GRPO's
correctness reward read and grade them (forge/rewards.py), so the two numbers agree."""

from forge.rewards import GSM8K_ANSWER, correctness, extract_answer, format_reward


def graded(doc, results):
    """A greedy answer to a word problem: right (exact_match) and in the `#### n` form (format)."""
    answer = results[0]
    return {
        "exact_match": correctness(None, [answer], [doc["answer"]], patterns=GSM8K_ANSWER)[0],
        "format": format_reward(None, [answer], patterns=GSM8K_ANSWER)[0],
    }


def _answer(doc) -> int:
    return int(extract_answer(doc["answer"], GSM8K_ANSWER))


def choices(doc) -> list[str]:
    """The right number and three near misses, in numeric order (so the right one's place varies)."""
    right = _answer(doc)
    return [str(n) for n in sorted({right, right + 1, right - 1, right + 10})]


def target(doc) -> int:
    return choices(doc).index(str(_answer(doc)))
