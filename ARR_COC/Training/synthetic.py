"""A deterministic synthetic VQA set whose relevant patches are known.

Each image holds a few shapes of distinct kinds and colours on a dark
background; the question names one shape ("what colour is the circle ?") and
the answer is its colour. The cells (merged-token squares) covered by that
shape are the relevant ones, so a selector's recall@K can be measured.
Sample i depends only on (seed, i).
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image, ImageDraw

SHAPES = ("square", "circle", "triangle", "cross")
COLOURS = {
    "red": (220, 40, 40), "green": (40, 200, 60), "blue": (50, 80, 230),
    "yellow": (230, 220, 50), "purple": (160, 60, 200), "orange": (240, 140, 30),
}
BACKGROUND = (20, 20, 24)
RELEVANT_FRACTION = 0.05  # a cell is relevant when the named shape covers at least 5 % of it


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


def place_boxes(rng: np.random.Generator, count: int, image_size: int, side: int) -> list[tuple]:
    """Non-overlapping square boxes (with a gap), by rejection sampling."""
    boxes: list[tuple] = []
    while len(boxes) < count:
        left, top = (int(v) for v in rng.integers(0, image_size - side, size=2))
        box = (left, top, left + side - 1, top + side - 1)
        if all(left > b[2] + 4 or b[0] > box[2] + 4 or top > b[3] + 4 or b[1] > box[3] + 4 for b in boxes):
            boxes.append(box)
    return boxes


def relevant_cells(mask: np.ndarray, cell_pixels: int) -> np.ndarray:
    """[N] bool, raster order: cells where the mask covers at least RELEVANT_FRACTION."""
    rows, columns = mask.shape[0] // cell_pixels, mask.shape[1] // cell_pixels
    coverage = mask.reshape(rows, cell_pixels, columns, cell_pixels).mean(axis=(1, 3))
    return (coverage >= RELEVANT_FRACTION).reshape(-1)


def make_sample(seed: int, index: int, image_size: int, cell_pixels: int, num_objects: int = 3) -> dict:
    """One image, question, answer and relevant-cell mask, fixed by (seed, index)."""
    rng = np.random.default_rng([seed, index])
    shapes = [SHAPES[i] for i in rng.permutation(len(SHAPES))[:num_objects]]
    colour_names = list(COLOURS)
    colours = [colour_names[i] for i in rng.permutation(len(colour_names))[:num_objects]]
    side = cell_pixels
    boxes = place_boxes(rng, num_objects, image_size, side)
    image = Image.new("RGB", (image_size, image_size), BACKGROUND)
    draw = ImageDraw.Draw(image)
    for shape, colour, box in zip(shapes, colours, boxes):
        draw_shape(draw, shape, box, COLOURS[colour])
    target = int(rng.integers(num_objects))
    mask = Image.new("L", (image_size, image_size), 0)
    draw_shape(ImageDraw.Draw(mask), shapes[target], boxes[target], 255)
    return {
        "image": image,
        "question": f"what colour is the {shapes[target]} ?",
        "answer": colours[target],
        "relevant": relevant_cells(np.asarray(mask) > 0, cell_pixels),
    }


def make_warmup_sample(seed: int, index: int, image_size: int, cell_pixels: int) -> dict:
    """Easier samples that teach a fresh backbone colour words and looking at objects.

    One in five images is a single colour; the rest hold 1, 2 or 3 shapes. The
    tiny backbone pretrained only on 3-shape images stayed at chance within
    the few hundred steps a cached build step can afford.
    """
    rng = np.random.default_rng([seed, index, 1])
    if rng.random() < 0.2:
        colour = list(COLOURS)[int(rng.integers(len(COLOURS)))]
        shape = SHAPES[int(rng.integers(len(SHAPES)))]
        return {"image": Image.new("RGB", (image_size, image_size), COLOURS[colour]),
                "question": f"what colour is the {shape} ?", "answer": colour,
                "relevant": np.ones((image_size // cell_pixels) ** 2, dtype=bool)}
    return make_sample(seed, index, image_size, cell_pixels, num_objects=1 + index % 3)


class SyntheticVQA(torch.utils.data.Dataset):
    """`size` samples of the synthetic task; sample i is the same on every machine and run."""

    def __init__(self, size: int, seed: int, image_size: int, cell_pixels: int, warmup: bool = False):
        self.size, self.seed, self.image_size, self.cell_pixels = size, seed, image_size, cell_pixels
        self.make = make_warmup_sample if warmup else make_sample

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < self.size:
            raise IndexError(index)
        return self.make(self.seed, index, self.image_size, self.cell_pixels)
