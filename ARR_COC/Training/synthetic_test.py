"""The synthetic set: deterministic, one image per (seed, index) whatever the question, and each
question kind's relevant cell is exactly the object its naming word picks out."""

import numpy as np
import pytest

from ARR_COC.Training.synthetic import (BACKGROUND, COLOURS, CORNERS, KINDS, NUM_OBJECTS, SHAPES, SyntheticVQA,
                                        corner_cells, make_sample)

IMAGE_SIZE, CELL = 256, 32
GRID = IMAGE_SIZE // CELL


def cell_pixels(sample: dict, cell: int) -> np.ndarray:
    row, column = divmod(cell, GRID)
    return np.asarray(sample["image"])[row * CELL:(row + 1) * CELL, column * CELL:(column + 1) * CELL]


def test_samples_are_deterministic():
    first, again = SyntheticVQA(8, 3, IMAGE_SIZE, CELL)[5], SyntheticVQA(8, 3, IMAGE_SIZE, CELL)[5]
    assert np.array_equal(np.asarray(first["image"]), np.asarray(again["image"]))
    assert (first["question"], first["answer"], first["kind"]) == (again["question"], again["answer"], again["kind"])
    assert np.array_equal(first["relevant"], again["relevant"])


def test_every_kind_is_drawn():
    kinds = [SyntheticVQA(60, 0, IMAGE_SIZE, CELL)[i]["kind"] for i in range(60)]
    assert {kind: kinds.count(kind) > 10 for kind in KINDS} == {kind: True for kind in KINDS}


def test_the_image_does_not_depend_on_the_question_and_kinds_name_different_objects():
    for index in range(8):
        samples = [make_sample(4, index, IMAGE_SIZE, CELL, kind=kind) for kind in KINDS]
        images = [np.asarray(s["image"]) for s in samples]
        assert all(np.array_equal(images[0], image) for image in images[1:])
        targets = [int(np.flatnonzero(s["relevant"])[0]) for s in samples]
        assert len(set(targets)) == len(KINDS)


@pytest.mark.parametrize("kind", KINDS)
def test_the_naming_word_is_last_and_picks_out_the_one_object_with_the_answer(kind):
    colour_names = list(COLOURS)
    for index in range(24):
        sample = make_sample(0, index, IMAGE_SIZE, CELL, kind=kind)
        assert sample["relevant"].sum() == 1
        cell = int(np.flatnonzero(sample["relevant"])[0])
        naming = sample["question"].split()[-1]
        shapes, colours = sample["cell_shapes"], sample["cell_colours"]
        if kind == "shape":     # the only object of that shape; answer its colour
            assert naming in SHAPES and (shapes == 1 + SHAPES.index(naming)).sum() == 1
            assert shapes[cell] == 1 + SHAPES.index(naming) and sample["answer"] == colour_names[colours[cell] - 1]
        elif kind == "colour":  # the only object of that colour; answer its shape
            assert naming in COLOURS and (colours == 1 + colour_names.index(naming)).sum() == 1
            assert colours[cell] == 1 + colour_names.index(naming) and sample["answer"] == SHAPES[shapes[cell] - 1]
        else:                   # the object in that corner; answer its colour
            assert naming in CORNERS and cell == corner_cells(GRID)[CORNERS.index(naming)]
            assert sample["answer"] == colour_names[colours[cell] - 1]
        drawn = {tuple(p) for p in cell_pixels(sample, cell).reshape(-1, 3)} - {BACKGROUND}
        assert drawn == {COLOURS[colour_names[colours[cell] - 1]]}


def test_object_cells_cover_every_object_and_the_target():
    """The benchmark's saliency (on_objects) and background controls read these cells."""
    for index in range(16):
        sample = SyntheticVQA(16, 5, IMAGE_SIZE, CELL)[index]
        assert sample["objects"].sum() == NUM_OBJECTS == (sample["cell_shapes"] > 0).sum()
        assert (sample["objects"] | ~sample["relevant"]).all(), "the target's cell is an object cell"
        for cell in np.flatnonzero(~sample["objects"]):
            covered = (cell_pixels(sample, int(cell)).reshape(-1, 3) != BACKGROUND).any(axis=1).mean()
            assert covered == 0, f"cell {cell} holds {covered:.0%} of an object but is not marked"


def test_curriculum_sets_the_number_of_objects():
    dataset = SyntheticVQA(4, 0, IMAGE_SIZE, CELL, objects=lambda index: index + 1)
    assert [int(dataset[i]["objects"].sum()) for i in range(4)] == [1, 2, 3, 4]


def test_other_objects_may_sit_in_the_other_corners():
    """Else the position question's object would be the only one in a corner: findable unasked."""
    occupied = [sum(bool(SyntheticVQA(200, 6, IMAGE_SIZE, CELL)[i]["objects"][c]) for c in corner_cells(GRID))
                for i in range(200)]
    assert min(occupied) == 1 and max(occupied) >= 3 and sum(o > 1 for o in occupied) > 40


@pytest.mark.parametrize("count", [0, GRID * GRID + 1])
def test_impossible_object_counts_are_refused(count):
    with pytest.raises(ValueError, match="num_objects"):
        make_sample(0, 0, IMAGE_SIZE, CELL, num_objects=count)


def test_unknown_kind_is_refused():
    with pytest.raises(ValueError, match="unknown question kind 'size'"):
        make_sample(0, 0, IMAGE_SIZE, CELL, kind="size")


def test_a_valid_task_at_the_production_size():
    """512 px in 32 px cells, the real 16 x 16 grid of the 2B model (the GPU smoke run's data)."""
    size, cell, grid = 512, 32, 16
    for index in range(12):
        sample = make_sample(1, index, size, cell)
        assert sample["image"].size == (size, size) and sample["relevant"].shape == (grid * grid,)
        assert sample["relevant"].sum() == 1 and sample["objects"].sum() == NUM_OBJECTS
        target = int(np.flatnonzero(sample["relevant"])[0])
        pixels = np.asarray(sample["image"])
        row, column = divmod(target, grid)
        drawn = {tuple(p) for p in pixels[row * cell:(row + 1) * cell, column * cell:(column + 1) * cell].reshape(-1, 3)}
        assert drawn - {BACKGROUND}, "the target's cell holds its object"
        if sample["kind"] == "position":
            assert target == corner_cells(grid)[CORNERS.index(sample["question"].split()[-1])]
        empty = ~sample["objects"].reshape(grid, grid)
        background = pixels.reshape(grid, cell, grid, cell, 3).transpose(0, 2, 1, 3, 4)[empty]
        assert (background == BACKGROUND).all(), "no object spills into an empty cell"
