"""A conversation as a causal LM trains on it: token ids and labels, the tokens that carry the
loss marked by their own ids and every other one by -100.

The tokenizer's chat template (or the task's `chat_template`) renders the conversation. An
assistant turn's tokens are those the template adds between the conversation before it
(rendered with the generation prompt: the assistant's header is context, not something to
learn) and the conversation with it. Where the template wraps assistant output in
`{% generation %}` markers, that span is the one `return_assistant_tokens_mask` reports, as
trl reads it; without markers it is read by rendering prefixes, which asks only that the
template render a conversation's beginning the same way whatever follows (checked on every
row). Each learned turn ends with the model's end-of-sequence token, once: a turn the
template does not end with it gets it appended; what the template writes after it (a
newline) is context. Nothing after the last learned token is kept.

Plain text rows are tokenized as they are, the tokenizer's own BOS once and EOS once.
"""

from __future__ import annotations

from collections.abc import Sequence

from forge.errors import ForgeError

IGNORE = -100
LOSS_ON = ("completion", "assistant", "all")


class TemplateError(ForgeError):
    """A chat template that cannot say which tokens are the assistant's."""


def _ids(encoded) -> list[int]:
    ids = encoded["input_ids"] if not isinstance(encoded, list) else encoded
    return list(ids)


def render(
    tokenizer, messages: Sequence[dict], chat_template: str | None, generation_prompt: bool = False
) -> list[int]:
    """The token ids of `messages` through the chat template (its text tokenized without the
    tokenizer adding special tokens again: the template writes them)."""
    return _ids(
        tokenizer.apply_chat_template(
            list(messages),
            chat_template=chat_template,
            add_generation_prompt=generation_prompt,
            tokenize=True,
            return_dict=True,
        )
    )


def _turn_spans(tokenizer, messages, chat_template, full: list[int]) -> list[tuple[int, int]]:
    """[start, end) of each assistant turn's tokens in `full`, by prefix rendering."""
    spans = []
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        before = render(tokenizer, messages[:i], chat_template, generation_prompt=True)
        through = render(tokenizer, messages[: i + 1], chat_template)
        if full[: len(before)] != before or full[: len(through)] != through or len(through) < len(before):
            raise TemplateError(
                "the chat template renders the start of a conversation differently depending on what follows, "
                "so forge cannot tell which tokens are the assistant's; give task.chat_template with "
                "{% generation %} markers around assistant output, or task.loss_on: all"
            )
        spans.append((len(before), len(through)))
    return spans


def _marker_spans(tokenizer, messages, chat_template) -> tuple[list[int], list[tuple[int, int]]]:
    encoded = tokenizer.apply_chat_template(
        list(messages), chat_template=chat_template, tokenize=True, return_dict=True, return_assistant_tokens_mask=True
    )
    ids, mask = _ids(encoded), list(encoded["assistant_masks"])
    spans, start = [], None
    for i, flag in enumerate([*mask, 0]):
        if flag and start is None:
            start = i
        elif not flag and start is not None:
            spans.append((start, i))
            start = None
    return ids, spans


def has_generation_markers(template: str | None) -> bool:
    import re

    return bool(template) and re.search(r"\{%-?\s*generation\s*-?%\}", template) is not None


def supervise(
    tokenizer,
    messages: Sequence[dict],
    loss_on: str,
    chat_template: str | None = None,
    learned: Sequence[bool] | None = None,
) -> tuple[list[int], list[int]]:
    """(input_ids, labels) of one conversation. `loss_on`: "assistant" (every assistant turn),
    "completion" (the last assistant turn), "all" (every token). `learned`: per assistant turn,
    whether it is learned (a chat's per-turn `weight`); None: every one."""
    if loss_on not in LOSS_ON:
        raise ValueError(f"loss_on is one of {LOSS_ON}, not {loss_on!r}")
    template = chat_template or tokenizer.chat_template
    if has_generation_markers(template if isinstance(template, str) else None):
        full, spans = _marker_spans(tokenizer, messages, chat_template)
    else:
        full = render(tokenizer, messages, chat_template)
        spans = _turn_spans(tokenizer, messages, chat_template, full) if loss_on != "all" else []
    if loss_on == "all":
        return full, list(full)
    if learned is not None and not all(learned):
        if len(spans) != len(learned):
            raise TemplateError(
                f"the chat template marks {len(spans)} assistant spans for {len(learned)} assistant turns, so forge "
                "cannot tell which turn a per-turn weight leaves out"
            )
        spans = [span for span, learn in zip(spans, learned, strict=True) if learn]
    if loss_on == "completion":
        spans = spans[-1:]
    if not spans:
        raise TemplateError("the conversation has no assistant turn to learn")
    eos = tokenizer.eos_token_id
    ids, labels = list(full), [IGNORE] * len(full)
    cut = None
    for start, end in reversed(spans):
        turn = ids[start:end]
        if eos is not None and eos in turn:
            end = start + turn.index(eos) + 1  # the template's newline after the end token is context
        elif eos is not None and end == len(ids):  # the last turn, not ended by the template: end it
            ids.append(eos)
            labels.append(IGNORE)
            end += 1
        labels[start:end] = ids[start:end]
        cut = end if cut is None else cut
    return ids[:cut], labels[:cut]


def plain_text(tokenizer, text: str) -> tuple[list[int], list[int]]:
    """(input_ids, labels) of a text row: every token learned, the tokenizer's BOS once (a
    text that starts with its own BOS does not get a second) and the EOS once."""
    ids = list(tokenizer(text)["input_ids"])
    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    if bos is not None and len(ids) > 1 and ids[0] == bos and ids[1] == bos:
        ids = ids[1:]
    if eos is not None and (not ids or ids[-1] != eos):
        ids.append(eos)
    return ids, list(ids)
