"""Reward functions for the RL path, pure: completions in, one float per completion out.

They follow trl's reward-function signature, `f(prompts, completions, **columns)`, where
`columns` are the dataset's other columns, one value per completion: the row's own columns
by their names in the data, and `reference`, the text of the task's completion column (the
reference answer). A completion is a string, or for chat data a list of messages whose last
one is the model's. Built-ins, by name in `rl.rewards`:

- `correctness`: 1.0 when the completion's answer equals the reference's, both read by the
  task's `answer_pattern` (`extract_answer`), else 0.0.
- `format`: 1.0 when the completion has its answer where the first answer pattern looks
  for it (GSM8K's: a final line `#### <number>`), else 0.0.

The generation task's greedy accuracy grades with the same `extract_answer`. Any other
function is named as `package.module:function`. `rl.rewards` maps each name to its weight.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import math
import re
from collections.abc import Callable, Sequence

from forge.errors import ConfigError, ForgeError

Reward = Callable[..., list[float]]

_NUMBER = r"-?\d[\d,]*(?:\.\d+)?"
# GSM8K's answers end with a line `#### <number>`; a completion without one is read by its
# last number. The first pattern that matches a text decides; of its matches, the last.
GSM8K_ANSWER = (rf"####\s*({_NUMBER})\s*$", rf"({_NUMBER})")
_A_NUMBER = re.compile(rf"{_NUMBER}")


def completion_text(completion) -> str:
    """The model's text of a completion: a string, or the last message of a chat."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, Sequence) and completion and isinstance(completion[-1], dict):
        return str(completion[-1].get("content", ""))
    raise TypeError(f"a completion is a string or a list of chat messages, not {type(completion).__name__}")


def normalize_number(text: str) -> str:
    """'1,200' → '1200', '3.50' → '3.5', '4.0' → '4'."""
    text = text.replace(",", "")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def patterns_of(answer_pattern: str | Sequence[str] | None) -> tuple[str, ...]:
    """A task's `answer_pattern` (one regex or a list tried in order) as a tuple."""
    if answer_pattern is None:
        return GSM8K_ANSWER
    return (answer_pattern,) if isinstance(answer_pattern, str) else tuple(answer_pattern)


@functools.lru_cache(maxsize=64)
def _compiled(pattern: str) -> re.Pattern:
    return re.compile(pattern)


def extract_answer(text: str, patterns: Sequence[str] = GSM8K_ANSWER) -> str | None:
    """The answer in a completion or a reference: the last match of the first pattern that
    matches (its first group, or the whole match without groups), stripped; a number is
    normalised ('1,200' and '1200.0' are '1200'). None when no pattern matches. An empty match
    reads nothing (a pattern such as '\\d*' matches everywhere; '' would equal every other '')."""
    text = text.strip()
    for pattern in patterns:
        found = [answer for m in _compiled(pattern).finditer(text) if (answer := _read(m))]
        if found:
            return normalize_number(found[-1]) if _A_NUMBER.fullmatch(found[-1]) else found[-1]
    return None


def _read(match) -> str:
    """A match's answer: its first group (the whole match without groups), stripped."""
    return ((match.group(1) if match.re.groups else match.group(0)) or "").strip()


def correctness(prompts, completions, reference, patterns: Sequence[str] = GSM8K_ANSWER, **_) -> list[float]:
    rewards = []
    for completion, wanted in zip(completions, reference, strict=True):
        got, want = extract_answer(completion_text(completion), patterns), extract_answer(str(wanted), patterns)
        rewards.append(1.0 if got is not None and got == want else 0.0)
    return rewards


def format_reward(prompts, completions, patterns: Sequence[str] = GSM8K_ANSWER, **_) -> list[float]:
    first = _compiled(patterns[0])
    return [1.0 if first.search(completion_text(c).strip()) else 0.0 for c in completions]


BUILTINS: dict[str, Reward] = {"correctness": correctness, "format": format_reward}


def resolve(name: str) -> Reward:
    """A built-in by name, or `package.module:function`; a ConfigError that says which
    part is wrong otherwise."""
    if name in BUILTINS:
        return BUILTINS[name]
    if ":" not in name:
        raise ConfigError(
            f"rl.rewards: unknown reward {name!r}; built-ins are {', '.join(BUILTINS)}, "
            "anything else is named as package.module:function"
        )
    module_name, _, attribute = name.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"rl.rewards: {name!r}: cannot import {module_name!r} ({exc})") from None
    function = getattr(module, attribute, None)
    if not callable(function):
        raise ConfigError(f"rl.rewards: {name!r}: {module_name} has no function {attribute!r}")
    if not takes_reward_arguments(function):
        raise ConfigError(
            f"rl.rewards: {name!r} takes {_signature(function)}; a reward function takes "
            "(prompts, completions, **columns) and returns one number per completion"
        )
    return function


def _signature(function) -> str:
    try:
        return str(inspect.signature(function))
    except (TypeError, ValueError):
        return "arguments forge cannot see"


def takes_reward_arguments(function) -> bool:
    """Whether `function` can be called as trl calls a reward: everything by keyword
    (prompts, completions and the dataset's columns, which **columns may ignore). A
    parameter without a default is taken for one of those names; one that can only be
    given by position cannot be."""
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):  # a builtin without a signature: nothing says it fits
        return False
    takes_columns = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)
    by_position_only = any(p.kind is inspect.Parameter.POSITIONAL_ONLY and p.default is p.empty for p in parameters)
    return takes_columns and not by_position_only


def checked(name: str, function: Reward) -> Reward:
    """`function`, failing with a message that names it when it raises or returns
    something other than one number per completion."""

    def reward(prompts, completions, **columns) -> list[float]:
        try:
            values = function(prompts=prompts, completions=completions, **columns)
        except Exception as exc:
            raise ForgeError(f"reward {name!r} failed: {type(exc).__name__}: {exc}") from exc
        if values is None:
            raise ForgeError(f"reward {name!r} returned None, not one number per completion")
        values = list(values)
        if len(values) != len(completions):
            raise ForgeError(f"reward {name!r} returned {len(values)} values for {len(completions)} completions")
        try:
            numbers = [float(v) if v is not None else None for v in values]
        except (TypeError, ValueError):
            raise ForgeError(f"reward {name!r} returned a value that is not a number: {values!r}") from None
        odd = next((i for i, v in enumerate(numbers) if v is not None and not math.isfinite(v)), None)
        if odd is not None:  # NaN vanishes from trl's sums and its log; inf zeroes every advantage
            raise ForgeError(
                f"reward {name!r} returned {numbers[odd]} for completion {odd}: a reward is a finite number "
                "(None: no reward from this function for that completion)"
            )
        return numbers

    reward.__name__ = name.replace(":", ".").replace(".", "_")  # trl logs rewards under their function's name
    return reward


def reward_functions(
    weights: dict[str, float], patterns: Sequence[str] = GSM8K_ANSWER
) -> tuple[list[Reward], list[float]]:
    """The checked functions of `rl.rewards` and their weights, in config order; the
    built-ins read answers with the task's `patterns`."""
    names = list(weights)
    functions = [functools.partial(BUILTINS[n], patterns=tuple(patterns)) if n in BUILTINS else resolve(n)
                 for n in names]  # fmt: skip
    return [checked(n, f) for n, f in zip(names, functions, strict=True)], [float(weights[n]) for n in names]
