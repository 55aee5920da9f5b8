"""The official VQA accuracy (10 choose 9 averaging) and its answer normalisation, table-driven."""

import pytest

from ARR_COC.Training.metrics import normalize_answer, vqa_accuracy

TEN = 10


def answers(matching: int, answer: str = "2", other: str = "3") -> list[str]:
    """Ten annotator answers, `matching` of them equal to `answer`."""
    return [answer] * matching + [other] * (TEN - matching)


@pytest.mark.parametrize("matching, expected", [
    (0, 0.0),
    (1, 0.3),   # 9 subsets without the match score 1/3, the one leaving it out scores 0
    (2, 0.6),   # (8 * 2/3 + 2 * 1/3) / 10
    (3, 0.9),   # (7 * 1 + 3 * 2/3) / 10: three humans are not quite full credit
    (4, 1.0),
    (10, 1.0),
])
def test_accuracy_averages_the_leave_one_out_subsets(matching, expected):
    assert vqa_accuracy("2", answers(matching)) == pytest.approx(expected)


@pytest.mark.parametrize("prediction, references, expected", [
    ("red", ["red"], 1.0),              # one reference answer (synthetic data): exact match
    ("blue", ["red"], 0.0),
    ("Two", answers(10, "2"), 1.0),     # number words become digits
    ("the dog", answers(4, "dog"), 1.0),
    ("yes.", answers(2, "yes"), 0.6),
    ("", answers(10, "2"), 0.0),
])
def test_accuracy_after_normalisation(prediction, references, expected):
    assert vqa_accuracy(prediction, references) == pytest.approx(expected)


@pytest.mark.parametrize("text, normalized", [
    ("Yes", "yes"),
    ("  A Red  Car! ", "red car"),
    ("two", "2"),
    ("none", "0"),
    ("3.5", "3.5"),
    ("1,000", "1000"),
    ("end.", "end"),
    ("dont", "don't"),
    ("black-and-white", "black and white"),
])
def test_normalize_answer(text, normalized):
    assert normalize_answer(text) == normalized
