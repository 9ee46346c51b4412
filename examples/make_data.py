"""Write the example data of docs/data.md ("Your own data"): one small dataset per task type,
as a user would bring it: files in a folder, nothing forge-specific about them.

    sentiment/train.csv                 sentence,sentiment (positive / negative); no validation file
    chats/train.jsonl, chats/eval.jsonl  multi-turn chats: {"messages": [{"role", "content"}, ...]}
    problems/train.jsonl, test.jsonl     word problems: {"question", "solution"}, the solution ending
                                        "The answer is N."
    lines/train.csv, lines/test.csv      file,text: line images in lines/images/, paths relative

    .venv/bin/python examples/make_data.py      # rewrites them; the same bytes every time

The files are committed; tests/integration/test_your_own_data.py checks that this script
writes them unchanged and runs every example config (configs/examples/) on them.
"""

from __future__ import annotations

import csv
import io
import json
import random
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

GOOD = ["great", "lovely", "fun", "warm", "bright", "clever", "kind", "sweet"]
BAD = ["dull", "slow", "cold", "grim", "messy", "weak", "sad", "harsh"]
THINGS = ["film", "book", "song", "meal", "trip", "game", "show", "park"]


def sentiment(rng: random.Random, rows: int = 240) -> list[tuple[str, str]]:
    out = []
    for _ in range(rows):
        label = rng.choice(["positive", "negative"])
        words = GOOD if label == "positive" else BAD
        thing = rng.choice(THINGS)
        template = rng.choice(["a {w} {t}", "the {t} was {w}", "what a {w} {t}", "{w} and {v}, this {t}"])
        out.append((template.format(w=rng.choice(words), v=rng.choice(words), t=thing), label))
    return out


def _sum(rng: random.Random) -> tuple[str, int]:
    a, b = rng.randrange(1, 20), rng.randrange(1, 20)
    return f"{a} + {b}", a + b


def chats(rng: random.Random, rows: int) -> list[dict]:
    """Two-turn chats: a sum, then that result doubled; every assistant turn ends the same way."""
    out = []
    for _ in range(rows):
        question, value = _sum(rng)
        doubled = value * 2
        out.append({"messages": [
            {"role": "user", "content": f"What is {question}?"},
            {"role": "assistant", "content": f"{question} = {value}. The answer is {value}."},
            {"role": "user", "content": "And twice that?"},
            {"role": "assistant", "content": f"2 * {value} = {doubled}. The answer is {doubled}."},
        ]})  # fmt: skip
    return out


def problems(rng: random.Random, rows: int) -> list[dict]:
    out = []
    for _ in range(rows):
        name, item = rng.choice(["Ana", "Ben", "Gus", "Ida"]), rng.choice(["pens", "coins", "cards", "shells"])
        a, b = rng.randrange(2, 30), rng.randrange(1, 20)
        out.append({"question": f"{name} has {a} {item} and finds {b} more. How many {item} does {name} have now?",
                    "solution": f"{a} + {b} = {a + b}. The answer is {a + b}."})  # fmt: skip
    return out


def lines(rng: random.Random, rows: int, split: str, folder: Path) -> list[tuple[str, str]]:
    sys.path.insert(0, str(HERE.parent))
    from forge.embedded import synthetic_ocr

    out = []
    for i in range(rows):
        word = synthetic_ocr.WORDS[rng.randrange(len(synthetic_ocr.WORDS))]
        text = f"{word} {rng.randrange(10, 100)}" if rng.random() < 0.5 else word
        name = f"images/{split}-{i:03d}.png"
        buffer = io.BytesIO()
        synthetic_ocr.render(text, rng).convert("L").save(
            buffer, format="PNG", optimize=True
        )  # grey: a third the bytes
        (folder / name).write_bytes(buffer.getvalue())
        out.append((name, text))
    return out


def write_csv(path: Path, header: list[str], rows: list[tuple]) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    path.write_text(buffer.getvalue())


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))


def main(root: Path = HERE) -> None:
    for name in ("sentiment", "chats", "problems", "lines/images"):
        (root / name).mkdir(parents=True, exist_ok=True)
    write_csv(root / "sentiment" / "train.csv", ["sentence", "sentiment"], sentiment(random.Random(1)))
    rng = random.Random(2)
    write_jsonl(root / "chats" / "train.jsonl", chats(rng, 400))
    write_jsonl(root / "chats" / "eval.jsonl", chats(rng, 40))
    rng = random.Random(3)
    write_jsonl(root / "problems" / "train.jsonl", problems(rng, 400))
    write_jsonl(root / "problems" / "test.jsonl", problems(rng, 40))
    rng = random.Random(4)
    write_csv(root / "lines" / "train.csv", ["file", "text"], lines(rng, 80, "train", root / "lines"))
    write_csv(root / "lines" / "test.csv", ["file", "text"], lines(rng, 16, "test", root / "lines"))


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE)
