"""A deterministic synthetic VQA set whose relevant patches are known.

Each image (dark background, 8 x 8 merged-token cells at 256 px) holds the
named object, a square, and distractors of other shapes and other colours;
every object lies inside its own token cell. The question is "what colour is
the square ?" and the answer is its colour, so a model that looks at the
wrong cells answers with a distractor's colour (or guesses). The cells the
square covers are the relevant ones, so a selector's recall@K can be
measured. Sample i depends only on (seed, i).

Why the square is always the one asked about: a question that names any of
the four shapes needs the tiny 2-layer language model to bind the shape word
to the matching visual token (two attention hops); pretrained for the few
hundred steps a cached build step affords, it stayed at chance among the
colours present (0.3-0.5), so no selector could show an effect on it. With
the square always named, the backbone reaches high accuracy on all tokens and
the selector still has to find the square among distractors (docs/training.md).
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image, ImageDraw

from ARR_COC.vocabulary import COLOURS, SHAPES

NAMED_SHAPE = "square"
BACKGROUND = (20, 20, 24)
RELEVANT_FRACTION = 0.05  # a cell is relevant when the named shape covers at least 5 % of it
NUM_OBJECTS = 3           # the square and two distractors
KINDS = ("square",)       # question kinds (one: see above); the benchmark reports figures per kind


def draw_shape(draw: ImageDraw.ImageDraw, shape: str, box: tuple[int, int, int, int], fill) -> None:
    left, top, right, bottom = box
    if shape == "square":
        draw.rectangle(box, fill=fill)
    elif shape == "circle":
        draw.ellipse(box, fill=fill)
    elif shape == "triangle":
        draw.polygon([((left + right) / 2, top), (right, bottom), (left, bottom)], fill=fill)
    elif shape == "cross":
        third_w, third_h = (right - left) / 3, (bottom - top) / 3
        draw.rectangle((left + third_w, top, right - third_w, bottom), fill=fill)
        draw.rectangle((left, top + third_h, right, bottom - third_h), fill=fill)
    else:
        raise ValueError(f"unknown shape {shape!r}; known: {SHAPES}")


def place_in_cells(rng: np.random.Generator, count: int, image_size: int, cell_pixels: int) -> list[tuple]:
    """`count` boxes, each inside a distinct token cell, of side 5/8 to ~9/10 of a cell, jittered."""
    grid = image_size // cell_pixels
    boxes = []
    for cell in rng.choice(grid * grid, size=count, replace=False):
        row, column = divmod(int(cell), grid)
        side = int(rng.integers(cell_pixels * 5 // 8, cell_pixels - 3))
        dx, dy = (int(v) for v in rng.integers(1, cell_pixels - side, size=2))
        left, top = column * cell_pixels + dx, row * cell_pixels + dy
        boxes.append((left, top, left + side - 1, top + side - 1))
    return boxes


def relevant_cells(mask: np.ndarray, cell_pixels: int) -> np.ndarray:
    """[N] bool, raster order: cells where the mask covers at least RELEVANT_FRACTION."""
    rows, columns = mask.shape[0] // cell_pixels, mask.shape[1] // cell_pixels
    coverage = mask.reshape(rows, cell_pixels, columns, cell_pixels).mean(axis=(1, 3))
    return (coverage >= RELEVANT_FRACTION).reshape(-1)


def make_sample(seed: int, index: int, image_size: int, cell_pixels: int, num_objects: int = NUM_OBJECTS) -> dict:
    """One image, question, answer and relevant-cell mask, fixed by (seed, index).

    The square plus num_objects - 1 distractors, all shapes and colours distinct.
    """
    rng = np.random.default_rng([seed, index])
    others = [shape for shape in SHAPES if shape != NAMED_SHAPE]
    shapes = [NAMED_SHAPE] + [others[i] for i in rng.permutation(len(others))[:num_objects - 1]]
    colour_names = list(COLOURS)
    colours = [colour_names[i] for i in rng.permutation(len(colour_names))[:num_objects]]
    boxes = place_in_cells(rng, num_objects, image_size, cell_pixels)
    image = Image.new("RGB", (image_size, image_size), BACKGROUND)
    draw = ImageDraw.Draw(image)
    for shape, colour, box in zip(shapes, colours, boxes):
        draw_shape(draw, shape, box, COLOURS[colour])
    mask = Image.new("L", (image_size, image_size), 0)
    draw_shape(ImageDraw.Draw(mask), NAMED_SHAPE, boxes[0], 255)
    everything = Image.new("L", (image_size, image_size), 0)
    for shape, box in zip(shapes, boxes):
        draw_shape(ImageDraw.Draw(everything), shape, box, 255)
    return {
        "image": image,
        "question": f"what colour is the {NAMED_SHAPE} ?",
        "answer": colours[0],
        "kind": KINDS[0],
        "relevant": relevant_cells(np.asarray(mask) > 0, cell_pixels),
        "objects": relevant_cells(np.asarray(everything) > 0, cell_pixels),
    }


def make_single_colour_sample(seed: int, index: int, image_size: int, cell_pixels: int) -> dict:
    """The whole image one colour: every visual token carries the answer (teaches colour words)."""
    rng = np.random.default_rng([seed, index, 1])
    colour = list(COLOURS)[int(rng.integers(len(COLOURS)))]
    everything = np.ones((image_size // cell_pixels) ** 2, dtype=bool)
    return {"image": Image.new("RGB", (image_size, image_size), COLOURS[colour]),
            "question": f"what colour is the {NAMED_SHAPE} ?", "answer": colour, "kind": KINDS[0],
            "relevant": everything, "objects": everything}


def make_curriculum_sample(seed: int, index: int, image_size: int, cell_pixels: int, num_objects: int) -> dict:
    """num_objects = 0: a single-colour image; else make_sample with that many objects."""
    if num_objects == 0:
        return make_single_colour_sample(seed, index, image_size, cell_pixels)
    return make_sample(seed, index, image_size, cell_pixels, num_objects)


class SyntheticVQA(torch.utils.data.Dataset):
    """`size` samples of the synthetic task; sample i is the same on every machine and run.

    `objects` is the number of objects per image, or a function of the sample
    index (a pretraining curriculum; 0 = a single-colour image).
    """

    def __init__(self, size: int, seed: int, image_size: int, cell_pixels: int, objects=NUM_OBJECTS):
        self.size, self.seed, self.image_size, self.cell_pixels = size, seed, image_size, cell_pixels
        self.objects = objects

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < self.size:
            raise IndexError(index)
        count = self.objects(index) if callable(self.objects) else self.objects
        return make_curriculum_sample(self.seed, index, self.image_size, self.cell_pixels, count)
