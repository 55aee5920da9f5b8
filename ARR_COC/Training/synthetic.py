"""A deterministic synthetic VQA set where the question decides which token matters.

Each image (dark background, 8 x 8 merged-token cells at 256 px) holds
NUM_OBJECTS equally salient objects (4 shapes, 6 colours), each inside its
own token cell. Three of them can be asked about, one per question kind
(KINDS). The word that names the object is the question's last word, and its
category fixes what is answered, so the language model needs one attention
hop, from that word to the object's token (docs/training.md):

- shape:    "what colour is the triangle"  (the only triangle: its colour)
- colour:   "what shape is the red"        (the only red object: its shape)
- position: "what colour is the topleft"   (the object in that corner cell: its colour)

The image depends only on (seed, index). The kind is drawn from (seed, index)
too unless asked for, so the same image can be asked about different objects
(the benchmark's question swap). `relevant` marks the target's cell,
`objects` every object's cell (the saliency and background controls), and
`cell_shapes` / `cell_colours` each cell's attributes (0 = empty), which
pretraining teaches the tiny vision tower before the language model.

Why selection is needed: there are more than twice as many objects as the
K = 6 kept tokens, so a rule that keeps the most salient cells without
reading the question keeps the target 6/14 of the time (0.43); and the tiny
vision tower has no attention across cells, so a background token carries
nothing about any object.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image, ImageDraw

from ARR_COC.vocabulary import COLOURS, CORNERS, SHAPES

BACKGROUND = (20, 20, 24)
KINDS = ("shape", "colour", "position")
TARGET = {"position": 0, "shape": 1, "colour": 2}  # the object each kind asks about (with fewer objects they share)
NUM_OBJECTS = 14          # over twice the K = 6 kept tokens: saliency alone keeps the target 6/14 of the time


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


def corner_cells(grid: int) -> tuple[int, ...]:
    """Raster indices of the four corner cells, in the order of CORNERS."""
    return (0, grid - 1, grid * (grid - 1), grid * grid - 1)


def target_of(kind: str, count: int) -> int:
    """The object a question kind asks about."""
    return TARGET[kind] % count


def object_cells(rng: np.random.Generator, count: int, grid: int) -> list[int]:
    """`count` distinct cells; object 0 (the position question's target) lies in a corner, and the
    others anywhere, other corners included: were it the only object in a corner, a selector could
    keep it without reading the question (one did, docs/training.md)."""
    corners = corner_cells(grid)
    corner = corners[int(rng.integers(len(corners)))]
    return [corner] + [cell for cell in rng.permutation(grid * grid).tolist() if cell != corner][:count - 1]


def boxes_in_cells(rng: np.random.Generator, cells: list[int], grid: int, cell_pixels: int) -> np.ndarray:
    """[count, 4] boxes (left, top, right, bottom), each inside its cell, of side 5/8 to ~9/10 of a
    cell, jittered (drawn all at once: per-object draws were a third of the sample's cost)."""
    count = len(cells)
    sides = rng.integers(cell_pixels * 5 // 8, cell_pixels - 3, size=count)
    offsets = rng.integers(1, cell_pixels - sides, size=(2, count))
    rows, columns = np.divmod(np.asarray(cells), grid)
    left, top = columns * cell_pixels + offsets[0], rows * cell_pixels + offsets[1]
    return np.stack([left, top, left + sides - 1, top + sides - 1], axis=1)


def object_attributes(rng: np.random.Generator, count: int) -> tuple[list[str], list[str]]:
    """Shapes and colours: the shape question's target is the only one of its shape, the colour
    question's target the only one of its colour."""
    unique_shape = SHAPES[int(rng.integers(len(SHAPES)))]
    unique_colour = list(COLOURS)[int(rng.integers(len(COLOURS)))]
    other_shapes = [shape for shape in SHAPES if shape != unique_shape]
    other_colours = [colour for colour in COLOURS if colour != unique_colour]
    shapes = [other_shapes[int(i)] for i in rng.integers(len(other_shapes), size=count)]
    colours = [other_colours[int(i)] for i in rng.integers(len(other_colours), size=count)]
    shapes[target_of("shape", count)] = unique_shape
    colours[target_of("colour", count)] = unique_colour
    return shapes, colours


def question_for(kind: str, shapes: list[str], colours: list[str], corner: str) -> tuple[str, str, int]:
    """(question, answer, target object) of a question kind; the naming word comes last."""
    if kind not in KINDS:
        raise ValueError(f"unknown question kind {kind!r}; known: {KINDS}")
    target = target_of(kind, len(shapes))
    if kind == "shape":
        return f"what colour is the {shapes[target]}", colours[target], target
    if kind == "colour":
        return f"what shape is the {colours[target]}", shapes[target], target
    return f"what colour is the {corner}", colours[target], target


def make_sample(seed: int, index: int, image_size: int, cell_pixels: int, num_objects: int = NUM_OBJECTS,
                kind: str | None = None) -> dict:
    """One image with a question of `kind` (drawn when None), fixed by (seed, index).

    The image does not depend on the kind: asking another kind asks about
    another object of the same image.
    """
    grid = image_size // cell_pixels
    if not 0 < num_objects <= grid * grid:
        raise ValueError(f"num_objects must be between 1 and {grid * grid}, got {num_objects}")
    rng = np.random.default_rng([seed, index])
    cells = object_cells(rng, num_objects, grid)
    boxes = boxes_in_cells(rng, cells, grid, cell_pixels)
    shapes, colours = object_attributes(rng, num_objects)
    kind = kind or KINDS[int(np.random.default_rng([seed, index, 2]).integers(len(KINDS)))]
    corner = CORNERS[corner_cells(grid).index(cells[target_of("position", num_objects)])]
    question, answer, target = question_for(kind, shapes, colours, corner)
    image = Image.new("RGB", (image_size, image_size), BACKGROUND)
    draw = ImageDraw.Draw(image)
    for shape, colour, box in zip(shapes, colours, boxes.tolist()):
        draw_shape(draw, shape, tuple(box), COLOURS[colour])
    relevant = np.zeros(grid * grid, dtype=bool)
    relevant[cells[target]] = True  # every object lies inside its own cell (synthetic_test checks the pixels)
    objects = np.zeros(grid * grid, dtype=bool)
    objects[cells] = True
    cell_shapes = np.zeros(grid * grid, dtype=np.int64)
    cell_colours = np.zeros(grid * grid, dtype=np.int64)
    cell_shapes[cells] = [1 + SHAPES.index(shape) for shape in shapes]
    cell_colours[cells] = [1 + list(COLOURS).index(colour) for colour in colours]
    return {"image": image, "question": question, "answer": answer, "kind": kind,
            "relevant": relevant, "objects": objects,
            "cell_shapes": cell_shapes, "cell_colours": cell_colours}


class SyntheticVQA(torch.utils.data.Dataset):
    """`size` samples of the synthetic task; sample i is the same on every machine and run.

    `objects` is the number of objects per image, or a function of the sample
    index (a pretraining curriculum). `kind` fixes the question kind of every
    sample (None: drawn per sample).
    """

    def __init__(self, size: int, seed: int, image_size: int, cell_pixels: int, objects=NUM_OBJECTS,
                 kind: str | None = None):
        self.size, self.seed, self.image_size, self.cell_pixels = size, seed, image_size, cell_pixels
        self.objects, self.kind = objects, kind

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < self.size:
            raise IndexError(index)
        count = self.objects(index) if callable(self.objects) else self.objects
        return make_sample(self.seed, index, self.image_size, self.cell_pixels, count, self.kind)
