"""Reward functions for the RL path, pure: completions in, one float per completion out.

They follow trl's reward-function signature, `f(prompts, completions, **columns)`, where
`columns` are the dataset's other columns (e.g. `answer`), one value per completion.
A completion is a string, or for chat data a list of messages whose last one is the
model's. Built-ins, by name in `rl.rewards`:

- `correctness`: 1.0 when the completion's final answer equals the reference answer.
- `format`: 1.0 when the completion ends with a final-answer line, `#### <number>`
  (the GSM8K convention), else 0.0.

Any other function is named as `package.module:function`. `rl.rewards` maps each
name to its weight.
"""

from __future__ import annotations

import importlib
import inspect
import re
from collections.abc import Callable, Sequence

from forge.errors import ConfigError, ForgeError

Reward = Callable[..., list[float]]

_NUMBER = r"-?\d[\d,]*(?:\.\d+)?"
_FINAL_LINE = re.compile(rf"####\s*({_NUMBER})\s*$")
_ANY_NUMBER = re.compile(_NUMBER)


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


def extract_answer(text: str) -> str | None:
    """The final answer of a completion or a reference: the number after `####`, else the
    last number in the text; None when there is none."""
    final = _FINAL_LINE.search(text.strip())
    if final:
        return normalize_number(final.group(1))
    numbers = _ANY_NUMBER.findall(text)
    return normalize_number(numbers[-1]) if numbers else None


def correctness(prompts, completions, answer, **_) -> list[float]:
    rewards = []
    for completion, reference in zip(completions, answer, strict=True):
        got, want = extract_answer(completion_text(completion)), extract_answer(str(reference))
        rewards.append(1.0 if got is not None and got == want else 0.0)
    return rewards


def format_reward(prompts, completions, **_) -> list[float]:
    return [1.0 if _FINAL_LINE.search(completion_text(c).strip()) else 0.0 for c in completions]


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
        values = list(values) if values is not None else []
        if len(values) != len(completions):
            raise ForgeError(f"reward {name!r} returned {len(values)} values for {len(completions)} completions")
        try:
            return [float(v) if v is not None else None for v in values]
        except (TypeError, ValueError):
            raise ForgeError(f"reward {name!r} returned a value that is not a number: {values!r}") from None

    reward.__name__ = name.replace(":", ".").replace(".", "_")  # trl logs rewards under their function's name
    return reward


def reward_functions(weights: dict[str, float]) -> tuple[list[Reward], list[float]]:
    """The checked functions of `rl.rewards` and their weights, in config order."""
    names = list(weights)
    return [checked(n, resolve(n)) for n in names], [float(weights[n]) for n in names]
