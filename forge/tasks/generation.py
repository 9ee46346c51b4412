"""generation: a causal LM trained on its own words. A row is one of three forms, named by the
column map (or, when it names none, found by TRL's column names in the data):

    messages             a chat: a list of {role, content} (`message_property_mappings` and
                         `roles` map other field names and role names, as axolotl's do)
    prompt + completion  a user turn and the answer to it (`prompt_template` writes the user
                         turn from any of the row's columns, `system_prompt` adds a system turn)
    text                 plain text, every token learned

Chats and prompt/completion rows go through the tokenizer's chat template, or
`task.chat_template`; a model without one, given none, is refused in one line. The loss
covers the completion (`loss_on: completion`, the default for prompt/completion rows), every
assistant turn (`assistant`, the default for chats) or every token (`all`); each learned turn
ends with the end-of-sequence token once (forge/tasks/chat.py). A row longer than
`max_length` is truncated, dropped or an error (`overlength`), counted in the log. `packing`
packs the SFT rows into `max_length` blocks (trl's best-fit decreasing), each sequence seeing
only itself.

Evaluation: the held-out loss always; with `answer_pattern` (a regex, or a list tried in
order, forge/rewards.py) the greedy answers' accuracy, graded by the function the GRPO
correctness reward uses, and the share in the pattern's form. For RL (an `rl:` block) the
training rows are the chat prompts, with the reference answer (`reference`) and the row's
own columns for the reward functions.
"""

from __future__ import annotations

import logging
from pathlib import Path

from forge.errors import ConfigError
from forge.logs import progress
from forge.models.loading import CAUSAL_LM, Head
from forge.rewards import correctness, extract_answer, format_reward, patterns_of
from forge.tasks import chat
from forge.tasks import data as sources
from forge.tasks.base import TRAIN, Alignment, MainMetric, TaskType, TrainerInputs

log = logging.getLogger("forge.tasks")

ROLES = ("system", "user", "assistant", "tool")
PROMPT, REFERENCE = "prompt", "reference"  # the prepared columns of a prompt and its reference answer
FORMS = ("messages", "prompt_completion", "text")


class Generation(TaskType):
    name = "generation"
    alignment = Alignment.NEXT_TOKEN
    supports = frozenset({"rl", "distillation", "teacher_cache", "on_policy", "lm_eval"})
    why_not = {
        "hidden_states": "the hidden-state loss compares one state per example (task.type: classification)",
        "transfer_set": "a transfer set is unlabelled rows for a classifier's teacher (task.type: classification)",
    }

    def head(self, data_dir: Path | None = None) -> Head:
        return CAUSAL_LM

    @property
    def patterns(self) -> tuple[str, ...] | None:
        return patterns_of(self.task.answer_pattern) if self.task.answer_pattern is not None else None

    def main_metric(self, data_dir: Path | None = None) -> MainMetric:
        return MainMetric(None, "accuracy", True) if self.patterns else MainMetric(None, "loss", False)

    # -- rows ---------------------------------------------------------------

    def form(self, columns: list[str]) -> str:
        """The rows' form, from the column map or else from the data's column names."""
        mapped = self.task.columns
        if mapped.messages:
            return "messages"
        if mapped.completion:
            return "prompt_completion"
        if mapped.text:
            return "text"
        if "messages" in columns:
            return "messages"
        if "completion" in columns and ("prompt" in columns or self.task.prompt_template):
            return "prompt_completion"
        if "text" in columns:
            return "text"
        raise sources.DataError(
            f"the rows have none of the columns forge reads a generation task from (messages; prompt and completion; "
            f"text): they have {sources.listed(columns)}; name yours in task.columns"
        )

    def _column(self, role: str) -> str:
        return getattr(self.task.columns, role) or role

    def conversation(self, row: dict, form: str) -> list[dict] | str:
        """The row as a chat (a list of {role, content}), or as text for the text form;
        a ValueError says what is wrong with it."""
        task = self.task
        if form == "text":
            text = row[self._column("text")]
            if not isinstance(text, str) or not text.strip():
                raise ValueError(
                    f"column {self._column('text')!r}: {sources.not_text(None if isinstance(text, str) else text)}"
                )
            return text
        if form == "messages":
            turns = self._messages(row[self._column("messages")])
            if task.system_prompt and not any(turn["role"] == "system" for turn in turns):
                turns.insert(0, {"role": "system", "content": task.system_prompt})
            return turns
        if task.prompt_template:
            try:
                prompt = task.prompt_template.format(**row)
            except (KeyError, IndexError) as exc:
                raise ConfigError(
                    f"task.prompt_template: {{{exc.args[0]}}} names no column of the data "
                    f"(it has: {sources.listed(row)})"
                ) from None
            empty = next((name for name in _template_columns(task.prompt_template) if row.get(name) is None), None)
            if empty is not None:  # else the prompt would say "None"
                raise ValueError(f"column {empty!r}: no text (task.prompt_template writes it into the prompt)")
        else:
            prompt = row[self._column("prompt")]
        completion = row[self._column("completion")]
        for what, value in (("prompt", prompt), ("completion", completion)):
            if not isinstance(value, str) or not value.strip():
                return_column = "prompt_template" if what == "prompt" and task.prompt_template else self._column(what)
                said = sources.not_text(None if isinstance(value, str) else value, f"{what} text")
                raise ValueError(f"column {return_column!r}: {said}")
        turns = []
        system = task.system_prompt or (row.get(task.columns.system) if task.columns.system else None)
        if system:
            turns.append({"role": "system", "content": system})
        return [*turns, {"role": "user", "content": prompt}, {"role": "assistant", "content": completion}]

    def _messages(self, value) -> list[dict]:
        task = self.task
        fields = task.message_property_mappings or {}
        role_key, content_key = fields.get("role", "role"), fields.get("content", "content")
        renamed = {source: target for target, sources_ in (task.roles or {}).items() for source in sources_}
        if not isinstance(value, list) or not value:
            if isinstance(value, list):
                raise ValueError("messages: an empty list of turns")
            hint = " (text: a csv cell? write the chats as JSON Lines)" if isinstance(value, str) else ""
            raise ValueError(f"messages: not a list of turns{hint}")
        turns = []
        for i, turn in enumerate(value):
            if not isinstance(turn, dict) or role_key not in turn or content_key not in turn:
                keys = (f" (its keys: {', '.join(map(str, turn))}; name the role's and the content's in "
                        "task.message_property_mappings)") if isinstance(turn, dict) else ""  # fmt: skip
                raise ValueError(f"turn {i}: not a {{{role_key}, {content_key}}} mapping{keys}")
            role = renamed.get(turn[role_key], turn[role_key])
            if role not in ROLES:
                raise ValueError(
                    f"turn {i}: role {turn[role_key]!r} is none of {', '.join(ROLES)} (map it in task.roles)"
                )
            content = turn[content_key]
            tools = (
                " (its tool_calls: forge learns text turns, and renders no tool calls)" if "tool_calls" in turn else ""
            )
            if not isinstance(content, str):
                raise ValueError(f"turn {i}: {content_key!r} is not text{tools}")
            if role == "assistant" and not content.strip():  # it would learn to answer with the end token
                raise ValueError(f"turn {i}: an assistant turn with no text{tools}")
            if _weight(turn) not in (0, 1):  # axolotl's per-turn weight: 0 leaves the turn unlearned
                raise ValueError(f"turn {i}: weight {turn['weight']!r} is neither 0 (not learned) nor 1 (learned)")
            if role == "assistant" and i == 0:  # the template renders nothing before it to prompt it
                raise ValueError("turn 0: an assistant turn with nothing before it (a chat begins with a user turn)")
            turns.append({"role": role, "content": content})
        if not any(_weight(raw) for raw, turn in zip(value, turns, strict=True) if turn["role"] == "assistant"):
            raise ValueError("no assistant turn to learn from (each has weight 0)")
        return turns

    def learned(self, row: dict, form: str) -> list[bool] | None:
        """Per assistant turn of a chat, whether it is learned (its `weight`, axolotl's and
        ShareGPT's key: 0 leaves it out); None for rows of another form."""
        if form != "messages":
            return None
        value = row[self._column("messages")]
        turns = self._messages(value)  # one turn per entry of the row's list
        return [bool(_weight(raw)) for raw, turn in zip(value, turns, strict=True) if turn["role"] == "assistant"]

    @staticmethod
    def prompt_and_reference(turns: list[dict]) -> tuple[list[dict], str]:
        """A chat's prompt (everything before its last assistant turn) and that turn's text."""
        last = max(i for i, t in enumerate(turns) if t["role"] == "assistant")
        return turns[:last], turns[last]["content"]

    def loss_on(self, form: str) -> str:
        if self.task.loss_on is not None:
            return self.task.loss_on
        return {"messages": "assistant", "prompt_completion": "completion", "text": "all"}[form]

    # -- prepare ------------------------------------------------------------

    def check_template(self, tokenizer) -> None:
        if self.task.chat_template is None and not getattr(tokenizer, "chat_template", None):
            raise ConfigError(
                "task: the model's tokenizer has no chat template, and chats and prompt/completion rows are rendered "
                "with one: give task.chat_template (a Jinja template, e.g. ChatML's), or train on plain text "
                "(task.columns.text)"
            )
        probe = [
            {"role": "user", "content": "forge probe question"},
            {"role": "assistant", "content": "forge probe answer"},
        ]
        try:
            written = tokenizer.apply_chat_template(probe, chat_template=self.task.chat_template, tokenize=False)
        except Exception:  # a template that refuses this chat: the rows' own rendering says why
            return
        missing = [turn["role"] for turn in probe if turn["content"] not in written]
        if missing:
            raise ConfigError(
                f"task: the chat template writes no {' and no '.join(missing)} text (the {missing[0]} turn of a "
                f"probe chat is not in what it renders: {written[:80]!r}): check its role names"
            )

    def prepare(self, tokenizer, out: Path) -> dict[str, int]:
        from datasets import DatasetDict

        task, cfg = self.task, self.cfg
        cache = sources.fresh_cache()
        try:
            raw = sources.load(task, cache)
            splits = sources.select(task, raw)
            form = self.form(splits[TRAIN].column_names)
            needed = self._needed_columns(form)
            for name, rows in splits.items():
                sources.require_columns(rows, name, needed)
            if form != "text":
                self.check_template(tokenizer)
            loss_on = self.loss_on(form)
            if form == "text" and loss_on != "all":
                raise ConfigError(f"task.loss_on: {loss_on} needs prompts or chats; plain text rows learn every token")
            if cfg.mode == "rl" and form == "text":
                raise ConfigError("rl: GRPO needs prompts to answer (prompt and completion columns, or chats)")
            bad = sources.BadRows(task)
            specials = [t for t in tokenizer.all_special_tokens if t] if form != "text" else []
            prepared = {}
            for name, rows in splits.items():
                rows = bad.keep(rows, name, lambda row: self._row_problem(row, form, specials))
                if name == TRAIN:
                    rows = sources.subset(rows, task.max_train_samples, task.data_seed)
                prepared[name] = self._prepared(rows, name, form, loss_on, tokenizer, train=name == TRAIN)
                if self.patterns and REFERENCE in prepared[name].column_names:
                    self._check_references(prepared[name][REFERENCE], name, train=name == TRAIN)
            data = DatasetDict(prepared)
            data.save_to_disk(str(out))
        finally:
            sources.remove(cache)
        return {name: len(split) for name, split in data.items()}

    def _check_references(self, references: list[str], split: str, train: bool) -> None:
        """Every reference of a split graded by answer_pattern (forge check reads the first rows
        only): none read is an error; some not read are said, with what they cost."""
        unread = [r for r in references if extract_answer(r, self.patterns) is None]
        if not unread:
            return
        example = f"e.g. {unread[0][-80:]!r}"
        if len(unread) == len(references):
            raise sources.DataError(
                f"split {split}: task.answer_pattern reads no answer from any of its {len(references)} references "
                f"({example})"
            )
        log.warning(
            "split %s: task.answer_pattern reads no answer from %d of %d references (%s): %s",
            split,
            len(unread),
            len(references),
            example,
            "their prompts earn no correctness reward" if train else "those rows count as wrong in the accuracy",
        )

    def _needed_columns(self, form: str) -> dict[str, str]:
        if form == "messages":
            return {"messages": self._column("messages")}
        if form == "text":
            return {"text": self._column("text")}
        needed = {"completion": self._column("completion")}
        if not self.task.prompt_template:
            needed["prompt"] = self._column("prompt")
        if self.task.columns.system:
            needed["system"] = self.task.columns.system
        return needed

    def _row_problem(self, row: dict, form: str, specials: list[str] = ()) -> str | None:
        """What is wrong with a row; `specials`: the tokenizer's special tokens, which a turn's
        text must not hold (the template's text is tokenized whole: '<|im_end|>' written in an
        answer would end the turn there, and the rest of it would be learned by nobody)."""
        try:
            turns = self.conversation(row, form)
        except ValueError as exc:
            return str(exc)
        if form != "text" and not any(t["role"] == "assistant" for t in turns):
            return "no assistant turn to learn from"
        for i, turn in enumerate(turns if specials else []):
            if found := next((token for token in specials if token in turn["content"]), None):
                where = f"turn {i}, " if form == "messages" else ""
                return f"{where}the {turn['role']}'s text holds the special token {found!r}: it would be read as it"
        return None

    def _prepared(self, rows, split: str, form: str, loss_on: str, tokenizer, train: bool):
        """A split in the form its stage reads: SFT rows (input_ids, attention_mask, labels);
        for RL the training rows are prompts; evaluation rows keep their prompt and reference."""
        task, cfg = self.task, self.cfg
        keep_prompts = form != "text" and (not train or cfg.mode == "rl")
        if train and cfg.mode == "rl":
            return self._prompts(rows, split, form, tokenizer)
        limit, policy = task.max_length, task.overlength
        counts = {"truncated": 0, "dropped": 0, "no_loss": 0, "long_prompts": 0}

        def supervised(batch, indices):
            out = {
                "input_ids": [],
                "attention_mask": [],
                "labels": [],
                **({PROMPT: [], REFERENCE: []} if keep_prompts else {}),
            }
            keys = list(batch)
            for i in range(len(batch[keys[0]])):
                row = {k: batch[k][i] for k in keys}
                turns = self.conversation(row, form)
                if form == "text":
                    ids, labels = chat.plain_text(tokenizer, turns)
                else:
                    ids, labels = chat.supervise(tokenizer, turns, loss_on, task.chat_template, self.learned(row, form))
                cut = len(ids) > limit
                if cut:
                    if policy == "error":
                        row_at = sources.source_row(rows, indices[i])
                        where = sources.row_name(task, sources.BadRows(task).source(split), row_at)
                        raise sources.DataError(
                            f"{where}: {len(ids)} tokens, more than task.max_length "
                            f"({limit}); raise it, or set task.overlength: truncate or drop"
                        )
                    if policy == "drop":
                        counts["dropped"] += 1
                        continue
                    ids, labels = ids[:limit], labels[:limit]
                    counts["truncated"] += 1
                if all(label == chat.IGNORE for label in labels[1:]):
                    counts["no_loss"] += 1
                out["input_ids"].append(ids)
                out["attention_mask"].append([1] * len(ids))
                out["labels"].append(labels)
                if keep_prompts:
                    prompt, reference = self.prompt_and_reference(turns)
                    out[PROMPT].append(prompt)
                    out[REFERENCE].append(reference)
                    if cut and len(chat.render(tokenizer, prompt, task.chat_template, True)) > limit:
                        counts["long_prompts"] += 1
            return out

        prepared = rows.map(supervised, batched=True, with_indices=True, remove_columns=rows.column_names)
        if counts["truncated"] or counts["dropped"]:
            log.warning(
                "split %s: %d row(s) longer than task.max_length (%d) %s",
                split,
                counts["truncated"] + counts["dropped"],
                limit,
                "dropped" if counts["dropped"] else "truncated",
            )
        if counts["long_prompts"]:
            log.warning(
                "split %s: %d prompt(s) longer than task.max_length (%d): cut from the left for the greedy answers",
                split,
                counts["long_prompts"],
                limit,
            )
        if counts["no_loss"]:
            log.warning(
                "split %s: %d row(s) have no token with loss left (their learned part lies beyond task.max_length)",
                split,
                counts["no_loss"],
            )
        if len(prepared) == 0:
            raise sources.DataError(f"split {split}: no row left (each longer than task.max_length, {limit})")
        if counts["no_loss"] == len(prepared):
            raise sources.DataError(
                f"split {split}: no row has a token to learn from within task.max_length ({limit}): each one's "
                "learned part lies beyond it; raise task.max_length"
            )
        if train and task.packing:
            from trl.data_utils import pack_dataset

            before = len(prepared)
            prepared = pack_dataset(prepared.remove_columns("attention_mask"), limit, strategy="bfd")
            log.info("packed %d training rows into %d blocks of at most %d tokens", before, len(prepared), limit)
        return prepared

    def _prompts(self, rows, split: str, form: str, tokenizer):
        """The training rows of RL: the chat prompt, its reference answer, and the row's own
        columns. A prompt longer than task.max_length (its tokens through the chat template) is an
        error under `overlength: error`, dropped and counted under `drop`, and under `truncate`
        kept whole with a warning: GRPO takes the prompt as a chat and cuts none."""
        task = self.task
        own = [c for c in rows.column_names if c not in (PROMPT, REFERENCE)]
        limit, policy = task.max_length, task.overlength

        def prompts(row, index):
            prompt, reference = self.prompt_and_reference(self.conversation(row, form))
            tokens = len(chat.render(tokenizer, prompt, task.chat_template, generation_prompt=True))
            if tokens > limit and policy == "error":
                where = sources.row_name(task, sources.BadRows(task).source(split), sources.source_row(rows, index))
                raise sources.DataError(
                    f"{where}: a prompt of {tokens} tokens, more than task.max_length ({limit}); raise it, or set "
                    "task.overlength: drop"
                )
            return {PROMPT: prompt, REFERENCE: reference, "_over": tokens > limit}

        prompted = rows.map(prompts, with_indices=True, remove_columns=[c for c in rows.column_names if c not in own])
        over = sum(prompted["_over"])
        if over and policy == "drop":
            prompted = prompted.filter(lambda row: not row["_over"])
            if len(prompted) == 0:
                raise sources.DataError(f"split {split}: no prompt left (each longer than task.max_length, {limit})")
        if over:
            log.warning(
                "split %s: %d prompt(s) longer than task.max_length (%d) %s",
                split,
                over,
                limit,
                "dropped"
                if policy == "drop"
                else "kept whole (GRPO cuts no prompt; task.overlength: drop leaves them out)",
            )
        return prompted.remove_columns("_over")

    def load_prepared(self, path: Path):
        data = super().load_prepared(path)
        return _with_legacy_columns(data, self.task)

    # -- checked before anything is created ----------------------------------

    def columns(self, train_columns: list[str]) -> dict[str, str]:
        return self._needed_columns(self.form(train_columns))

    def row_problem(self, row: dict, train_columns: list[str]) -> str | None:
        return self._row_problem(row, self.form(train_columns))

    def check_rows(self, seen, roles, tokenizer) -> tuple[list[str], list[str]]:
        problems, notes = [], []
        train = seen.rows[roles.train]
        form = self.form(seen.columns[roles.train])
        notes.append(f"rows read as {form.replace('_', ' + ')}, the loss on {self.loss_on(form)}")
        if tokenizer is not None and form != "text":
            try:
                self.check_template(tokenizer)
                for row in train[:3]:
                    chat.supervise(tokenizer, self.conversation(row, form), self.loss_on(form), self.task.chat_template)
            except ConfigError as exc:
                problems.append(str(exc).removeprefix("task: "))
        elif form != "text":
            notes.append("the chat template: checked when the student model is on this machine")
        if self.patterns and form != "text":
            references = [self.prompt_and_reference(self.conversation(row, form))[1] for row in train]
            read = sum(extract_answer(r, self.patterns) is not None for r in references)
            answers = {extract_answer(r, self.patterns) for r in references} - {None}
            if references and read == 0:
                problems.append(f"task.answer_pattern reads no answer from the first {len(references)} references "
                                f"(e.g. {references[0][-80:]!r})")  # fmt: skip
            elif read >= 10 and len(answers) == 1:  # e.g. a group around the words, not the answer
                problems.append(f"task.answer_pattern reads the same answer ({answers.pop()!r}) from all {read} "
                                "references it reads; does its first group hold the answer?")  # fmt: skip
            else:
                notes.append(
                    f"task.answer_pattern reads the answer of {read} of the first {len(references)} references"
                )
        return problems, notes

    def examples(self, rows: list[dict], tokenizer) -> list[str]:
        form = self.form(list(rows[0]) if rows else [])
        shown = []
        for row in rows:
            turns = self.conversation(row, form)
            if form == "text":
                ids, labels = chat.plain_text(tokenizer, turns)
            else:
                learned = self.learned(row, form)
                ids, labels = chat.supervise(tokenizer, turns, self.loss_on(form), self.task.chat_template, learned)
            shown.append(marked(tokenizer, ids, labels))
        return shown

    # -- train and evaluate --------------------------------------------------

    def trainer_inputs(self, data, tokenizer, model) -> TrainerInputs:
        """What the SFT trainer reads: batches padded with labels -100 beyond each answer (or
        packed blocks, each sequence attending to itself)."""
        from transformers import DataCollatorForSeq2Seq

        main = self.eval_splits(data)[0]
        evaluation = data[main].remove_columns([c for c in (PROMPT, REFERENCE) if c in data[main].column_names])
        padded = DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=-100)
        train = data[TRAIN]
        collator = PackedCollator(tokenizer.pad_token_id) if "seq_lengths" in train.column_names else padded
        return TrainerInputs(train, evaluation, data_collator=collator)

    def evaluate(self, session, model, tokenizer, data) -> dict[str, dict[str, float]]:
        """The held-out loss (mean over the learned tokens) and, with an answer pattern, the
        share of greedy answers that are right (`accuracy`, graded as the correctness reward
        grades) and in the pattern's form (`format`)."""
        from forge.models.loading import default_device

        model.to(default_device())
        results = {}
        for split in self.eval_splits(data):
            rows = data[split]
            scores = {"loss": held_out_loss(model, tokenizer, rows, session.cfg.training.eval_batch_size)}
            if self.patterns and PROMPT in rows.column_names:
                answers = greedy_answers(
                    model,
                    tokenizer,
                    rows[PROMPT],
                    self.task.max_new_tokens,
                    chat_template=self.task.chat_template,
                    max_length=self.task.max_length,
                )
                right = correctness(None, answers, rows[REFERENCE], patterns=self.patterns)
                formed = format_reward(None, answers, patterns=self.patterns)
                scores = {"accuracy": _mean(right), "format": _mean(formed), **scores}
            results[split] = {**scores, "samples": len(rows)}
        return results


def _weight(turn: dict):
    """A chat turn's `weight` (1 where it has none: arrow gives every turn of a split the keys of
    any, None where unset)."""
    weight = turn.get("weight")
    return 1 if weight is None else weight


def _template_columns(template: str) -> list[str]:
    """The columns a format string writes: {question} and {row.field} name `question` and `row`."""
    import string

    return [field.split(".")[0].split("[")[0] for _, field, _, _ in string.Formatter().parse(template) if field]


def marked(tokenizer, ids: list[int], labels: list[int]) -> str:
    """The tokens as text, those that carry the loss between [[ and ]]."""
    parts, start = [], 0
    for i in range(1, len(ids) + 1):
        if i == len(ids) or (labels[i] != chat.IGNORE) != (labels[start] != chat.IGNORE):
            text = tokenizer.decode(ids[start:i])
            parts.append(f"[[{text}]]" if labels[start] != chat.IGNORE else text)
            start = i
    return "".join(parts)


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0


class PackedCollator:
    """Packed rows (trl's `pack_dataset`: their `seq_lengths`) as a batch in which each packed
    sequence attends only to itself: no attention mask, position ids that restart at every
    sequence (transformers builds the block-diagonal mask from them, or flash attention its
    varlen kernels), no cache. Rows are padded to the longest; the padding is a sequence of
    its own that nothing attends to, and carries no loss. A sequence's first token is never
    the target of the one before it. (One long padding-free row per batch, as trl's collator
    makes, costs attention over the whole batch's length where no flash attention runs.)"""

    def __init__(self, pad_token_id: int):
        self.pad = pad_token_id

    def __call__(self, rows: list[dict]) -> dict:
        import torch

        width = max(len(row["input_ids"]) for row in rows)
        ids, labels, positions = [], [], []
        for row in rows:
            fill = width - len(row["input_ids"])
            lengths = [*row.get("seq_lengths", [len(row["input_ids"])]), *([fill] if fill else [])]
            position = [p for n in lengths for p in range(n)]
            label = list(row["labels"]) + [chat.IGNORE] * fill
            for start in (sum(lengths[:k]) for k in range(len(lengths))):
                label[start] = chat.IGNORE  # the first token of a sequence: nothing before it predicts it
            ids.append(list(row["input_ids"]) + [self.pad] * fill)
            labels.append(label)
            positions.append(position)
        return {"input_ids": torch.tensor(ids), "labels": torch.tensor(labels), "position_ids": torch.tensor(positions),
                "use_cache": False}  # fmt: skip


def held_out_loss(model, tokenizer, rows, batch_size: int) -> float:
    """Mean next-token cross-entropy over the learned tokens of `rows`."""
    import torch
    from torch.utils.data import DataLoader
    from transformers import DataCollatorForSeq2Seq

    columns = [c for c in ("input_ids", "attention_mask", "labels") if c in rows.column_names]
    collate = DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=-100)
    total, tokens = 0.0, 0
    model.eval()
    for batch in progress(
        DataLoader(rows.select_columns(columns), batch_size=batch_size, collate_fn=collate), "held-out loss"
    ):
        batch = {k: v.to(model.device) for k, v in batch.items()}
        with torch.no_grad():
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits.float()
        targets = batch["labels"][:, 1:]
        total += torch.nn.functional.cross_entropy(
            logits[:, :-1].reshape(-1, logits.size(-1)), targets.reshape(-1), ignore_index=chat.IGNORE, reduction="sum"
        ).item()
        tokens += int((targets != chat.IGNORE).sum())
    return total / tokens if tokens else 0.0


def greedy_answers(
    model,
    tokenizer,
    prompts: list[list[dict]],
    max_new_tokens: int,
    batch_size: int = 32,
    chat_template: str | None = None,
    max_length: int | None = None,
) -> list[str]:
    """The model's greedy completions of chat `prompts` (text after the prompt, special tokens
    dropped); a prompt longer than `max_length` tokens is cut from the left (its end, and the
    generation prompt, kept), as a model with a fixed context reads it."""
    import torch

    side, cut = tokenizer.padding_side, tokenizer.truncation_side
    tokenizer.padding_side = "left"  # generation continues at the right end of every row
    tokenizer.truncation_side = "left"
    limit = {"truncation": True, "max_length": max_length} if max_length is not None else {}
    completions = []
    try:
        model.eval()
        for start in progress(range(0, len(prompts), batch_size), "answering"):
            chats = [list(p) for p in prompts[start : start + batch_size]]
            batch = tokenizer.apply_chat_template(
                chats,
                chat_template=chat_template,
                add_generation_prompt=True,
                padding=True,
                return_tensors="pt",
                return_dict=True,
                **limit,
            ).to(model.device)
            with torch.no_grad():
                out = model.generate(
                    **batch, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tokenizer.pad_token_id
                )
            new = out[:, batch["input_ids"].shape[1] :]
            completions += tokenizer.batch_decode(new, skip_special_tokens=True)
    finally:
        tokenizer.padding_side, tokenizer.truncation_side = side, cut
    return completions


def accuracy(completions: list[str], references: list[str], patterns) -> float:
    """The share of completions whose answer equals the reference's."""
    right = 0
    for completion, reference in zip(completions, references, strict=True):
        got = extract_answer(completion, patterns)
        right += got is not None and got == extract_answer(reference, patterns)
    return right / len(references) if references else 0.0


def _with_legacy_columns(data, task):
    """Data prepared before generation became a type (the reasoning task) named the prompt's
    question `question` and the reference `answer`: give such splits the columns a
    generation task reads (the prompt as the task's template writes it)."""
    for name in list(data):
        split = data[name]
        columns = split.column_names
        if REFERENCE not in columns and "answer" in columns:
            split = split.add_column(REFERENCE, split["answer"])
        if PROMPT not in columns and "question" in columns:
            template = task.prompt_template or "{question}"
            split = split.add_column(
                PROMPT, [[{"role": "user", "content": template.format(question=q)}] for q in split["question"]]
            )
        data[name] = split
    return data
