"""CER, WER and exact match against pairs whose edit distances are known by hand."""

import pytest

from forge.ocr_metrics import cer, exact_match, ocr_metrics, wer


def test_cer_counts_the_classic_pairs():
    assert cer(["sitting"], ["kitten"]) == pytest.approx(3 / 6)  # k->s, e->i, +g
    assert cer(["kitten"], ["sitting"]) == pytest.approx(3 / 7)  # over the reference's length
    assert cer(["flaw"], ["lawn"]) == pytest.approx(2 / 4)  # -f, +n
    assert cer(["abc"], ["abc"]) == 0.0
    assert cer([""], ["abc"]) == 1.0  # all deleted
    assert cer(["abcdef"], ["abc"]) == 1.0  # insertions can take it past 1


def test_cer_is_corpus_level_not_a_mean_of_lines():
    # 1 edit over 1 char, 0 edits over 9 chars: 1/10, not the mean (1 + 0) / 2
    assert cer(["x", "123456789"], ["y", "123456789"]) == pytest.approx(1 / 10)


def test_wer_counts_word_edits():
    ref = "the cat sat on the mat"
    assert wer(["the bat sat on mat"], [ref]) == pytest.approx(2 / 6)  # cat->bat, -the
    assert wer(["the cat sat on the mat today"], [ref]) == pytest.approx(1 / 6)
    assert wer(["  the   cat sat on the mat "], [ref]) == 0.0  # whitespace is not a word


def test_exact_match_and_all_three_at_once():
    predictions, references = ["42", "hello world", "7 days"], ["42", "hello  world", "7 day"]
    assert exact_match(predictions, references) == pytest.approx(1 / 3)
    metrics = ocr_metrics(predictions, references)
    assert metrics["exact_match"] == pytest.approx(1 / 3)
    assert metrics["cer"] == pytest.approx(2 / 19)  # a missing space, an extra s
    assert metrics["wer"] == pytest.approx(1 / 5)


def test_mismatched_or_empty_inputs_are_refused():
    with pytest.raises(ValueError, match="2 predictions for 1 references"):
        cer(["a", "b"], ["a"])
    with pytest.raises(ValueError, match="no references"):
        wer([], [])
    with pytest.raises(ValueError, match="references are empty"):
        cer([""], [" "])
