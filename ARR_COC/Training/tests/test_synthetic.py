"""The synthetic set: deterministic, one image for every question kind, and targets that are unique."""

import numpy as np
import pytest

from ARR_COC.Training.synthetic import (BACKGROUND, COLOURS, CORNERS, KINDS, NUM_OBJECTS, SHAPES, SyntheticVQA,
                                        corner_cells, make_sample)

IMAGE_SIZE, CELL = 256, 32
GRID = IMAGE_SIZE // CELL


def cell_pixels(image, cell: int) -> np.ndarray:
    row, column = divmod(cell, GRID)
    return np.asarray(image)[row * CELL:(row + 1) * CELL, column * CELL:(column + 1) * CELL].reshape(-1, 3)


def colours_in(image, cell: int) -> set:
    return {tuple(p) for p in cell_pixels(image, cell)} - {BACKGROUND}


def test_samples_are_deterministic():
    first, again = SyntheticVQA(8, 3, IMAGE_SIZE, CELL)[5], SyntheticVQA(8, 3, IMAGE_SIZE, CELL)[5]
    assert np.array_equal(np.asarray(first["image"]), np.asarray(again["image"]))
    assert (first["question"], first["answer"], first["kind"]) == (again["question"], again["answer"], again["kind"])
    assert np.array_equal(first["relevant"], again["relevant"])


def test_every_kind_asks_about_the_same_image_and_a_different_object():
    samples = {kind: make_sample(0, 7, IMAGE_SIZE, CELL, kind=kind) for kind in KINDS}
    images = [np.asarray(s["image"]) for s in samples.values()]
    assert all(np.array_equal(images[0], other) for other in images[1:])
    targets = [int(np.flatnonzero(s["relevant"])[0]) for s in samples.values()]
    assert len(set(targets)) == len(KINDS)


@pytest.mark.parametrize("kind", KINDS)
def test_the_target_is_one_object_cell_and_holds_the_answer(kind):
    for index in range(24):
        sample = make_sample(1, index, IMAGE_SIZE, CELL, kind=kind)
        assert sample["objects"].sum() == NUM_OBJECTS
        assert sample["relevant"].sum() == 1 and sample["objects"][sample["relevant"]].all()
        target = int(np.flatnonzero(sample["relevant"])[0])
        present = colours_in(sample["image"], target)
        assert len(present) == 1
        if kind == "shape":
            assert present == {COLOURS[sample["answer"]]}
        else:
            assert sample["answer"] in SHAPES


def test_named_attributes_are_unique_in_the_image():
    """The colour question's colour and the position question's corner each pick exactly one object."""
    for index in range(24):
        colour = make_sample(2, index, IMAGE_SIZE, CELL, kind="colour")
        named = colour["question"].split()[-3]
        holders = [c for c in np.flatnonzero(colour["objects"]) if COLOURS[named] in colours_in(colour["image"], c)]
        assert holders == list(np.flatnonzero(colour["relevant"]))
        position = make_sample(2, index, IMAGE_SIZE, CELL, kind="position")
        corner = CORNERS.index(" ".join(position["question"].split()[-3:-1]))
        assert position["relevant"][corner_cells(GRID)[corner]]


def test_kinds_are_mixed_and_answers_spread():
    samples = [SyntheticVQA(300, 4, IMAGE_SIZE, CELL)[i] for i in range(300)]
    kinds = [s["kind"] for s in samples]
    assert all(kinds.count(kind) > 60 for kind in KINDS)
    answers = [s["answer"] for s in samples if s["kind"] == "shape"]
    assert max(answers.count(a) for a in set(answers)) < 0.35 * len(answers)


def test_fewer_objects_for_the_curriculum_and_a_clear_error_for_none():
    assert make_sample(0, 0, IMAGE_SIZE, CELL, num_objects=1, kind="position")["objects"].sum() == 1
    with pytest.raises(ValueError, match="num_objects"):
        make_sample(0, 0, IMAGE_SIZE, CELL, num_objects=0)
