"""Transcription metrics, pure: predicted and reference texts in, a number out.

- `cer`: character error rate, the edits (insertions, deletions, substitutions) that
  turn every prediction into its reference, over the reference characters, summed
  over the whole set (corpus-level, as jiwer and the OCR literature count it);
- `wer`: the same over words (whitespace-separated);
- `exact_match`: the share of predictions equal to their reference.

Texts are compared after stripping surrounding whitespace; the edit distance is
rapidfuzz's Levenshtein (C++, the library jiwer builds on).
"""

from __future__ import annotations

from collections.abc import Sequence

from rapidfuzz.distance import Levenshtein


def _pairs(predictions: Sequence[str], references: Sequence[str]) -> list[tuple[str, str]]:
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions for {len(references)} references")
    if not references:
        raise ValueError("no references to compare with")
    return [(p.strip(), r.strip()) for p, r in zip(predictions, references, strict=True)]


def _error_rate(pairs: list[tuple[Sequence, Sequence]]) -> float:
    length = sum(len(reference) for _, reference in pairs)
    if length == 0:
        raise ValueError("the references are empty: an error rate needs reference text")
    return sum(Levenshtein.distance(p, r) for p, r in pairs) / length


def cer(predictions: Sequence[str], references: Sequence[str]) -> float:
    return _error_rate(_pairs(predictions, references))


def wer(predictions: Sequence[str], references: Sequence[str]) -> float:
    return _error_rate([(p.split(), r.split()) for p, r in _pairs(predictions, references)])


def exact_match(predictions: Sequence[str], references: Sequence[str]) -> float:
    pairs = _pairs(predictions, references)
    return sum(p == r for p, r in pairs) / len(pairs)


def ocr_metrics(predictions: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    return {
        "cer": cer(predictions, references),
        "wer": wer(predictions, references),
        "exact_match": exact_match(predictions, references),
    }
