"""The synthetic set: deterministic, and its relevant cells are exactly the named square's."""

import numpy as np

from ARR_COC.Training.synthetic import BACKGROUND, COLOURS, NAMED_SHAPE, SyntheticVQA

IMAGE_SIZE, CELL = 256, 32


def test_samples_are_deterministic():
    first, again = SyntheticVQA(8, 3, IMAGE_SIZE, CELL)[5], SyntheticVQA(8, 3, IMAGE_SIZE, CELL)[5]
    assert np.array_equal(np.asarray(first["image"]), np.asarray(again["image"]))
    assert (first["question"], first["answer"]) == (again["question"], again["answer"])
    assert np.array_equal(first["relevant"], again["relevant"])


def test_relevant_cell_holds_the_square_in_the_answer_colour_and_distractors_differ():
    for index in range(32):
        sample = SyntheticVQA(32, 0, IMAGE_SIZE, CELL)[index]
        assert sample["question"] == f"what colour is the {NAMED_SHAPE} ?"
        pixels = np.asarray(sample["image"]).reshape(-1, 3)
        grid = IMAGE_SIZE // CELL
        assert sample["relevant"].shape == (grid * grid,) and sample["relevant"].sum() == 1
        cell = int(np.flatnonzero(sample["relevant"])[0])
        row, column = divmod(cell, grid)
        patch = np.asarray(sample["image"])[row * CELL:(row + 1) * CELL, column * CELL:(column + 1) * CELL]
        colours = {tuple(p) for p in patch.reshape(-1, 3)} - {BACKGROUND}
        assert colours == {COLOURS[sample["answer"]]}
        present = {tuple(p) for p in pixels} - {BACKGROUND}
        assert len(present) == 3 and COLOURS[sample["answer"]] in present


def test_curriculum_single_colour_images():
    sample = SyntheticVQA(4, 0, IMAGE_SIZE, CELL, objects=lambda index: 0)[2]
    assert {tuple(p) for p in np.asarray(sample["image"]).reshape(-1, 3)} == {COLOURS[sample["answer"]]}


def test_object_cells_cover_every_object_and_the_target():
    """The benchmark's saliency (on_objects) and background controls read these cells."""
    for index in range(16):
        sample = SyntheticVQA(16, 5, IMAGE_SIZE, CELL)[index]
        assert sample["kind"] == "square"
        assert (sample["objects"] | ~sample["relevant"]).all(), "the target's cell is an object cell"
        grid = IMAGE_SIZE // CELL
        for cell in np.flatnonzero(~sample["objects"]):
            row, column = divmod(int(cell), grid)
            patch = np.asarray(sample["image"])[row * CELL:(row + 1) * CELL, column * CELL:(column + 1) * CELL]
            covered = (patch.reshape(-1, 3) != BACKGROUND).any(axis=1).mean()
            assert covered < 0.05, f"cell {cell} holds {covered:.0%} of an object but is not marked"
