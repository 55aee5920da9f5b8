"""A deterministic synthetic VQA set where the question decides which token matters.

Each image (dark background, 8 x 8 merged-token cells at 256 px) holds
NUM_OBJECTS equally salient objects (4 shapes, 6 colours), each inside its
own token cell. Three of them can be asked about, each by one question kind
(`KINDS`):

- shape:    "what colour is the triangle ?"  (the only object of that shape)
- colour:   "what shape is the red object ?" (the only object of that colour)
- position: "what shape is in the top left ?" (the object in that corner cell)

The image depends only on (seed, index); the kind is drawn from (seed,
index) too, unless asked for, so the same image can be asked two questions
about different objects (the benchmark's question swap). The relevant cell
is the target object's one; `objects` marks every cell that holds an object
(the saliency and background-only controls use it).

Why this design needs query-dependent selection (docs/training.md): there are
more objects than K kept tokens (12 vs 6), so a rule that keeps the most
salient cells without reading the question keeps the target only about K/12
of the time; and the tiny vision tower has no attention across cells, so a
background token carries nothing about any object.
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
CORNERS = ("top left", "top right", "bottom left", "bottom right")
KINDS = ("shape", "colour", "position")
RELEVANT_FRACTION = 0.05  # a cell is relevant when the target covers at least 5 % of it
NUM_OBJECTS = 12          # more than the K = 6 kept tokens, so saliency alone cannot find the target


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
    """The object a question kind asks about: objects 0, 1, 2 (fewer objects: they share)."""
    return KINDS.index(kind) % count


def object_cells(rng: np.random.Generator, count: int, grid: int) -> list[int]:
    """`count` distinct cells; the position question's target lies in a corner cell."""
    corner = corner_cells(grid)[int(rng.integers(len(CORNERS)))]
    others = [cell for cell in rng.permutation(grid * grid).tolist() if cell != corner][:count - 1]
    at = target_of("position", count)
    return others[:at] + [corner] + others[at:]


def box_in_cell(rng: np.random.Generator, cell: int, grid: int, cell_pixels: int) -> tuple[int, int, int, int]:
    """A box of side 5/8 to ~9/10 of a cell, jittered, inside the cell."""
    row, column = divmod(cell, grid)
    side = int(rng.integers(cell_pixels * 5 // 8, cell_pixels - 3))
    dx, dy = (int(v) for v in rng.integers(1, cell_pixels - side, size=2))
    left, top = column * cell_pixels + dx, row * cell_pixels + dy
    return left, top, left + side - 1, top + side - 1


def object_attributes(rng: np.random.Generator, count: int) -> tuple[list[str], list[str]]:
    """Shapes and colours: the shape question's target has the only one of its shape, the colour
    question's target the only one of its colour."""
    unique_shape, unique_colour = SHAPES[int(rng.integers(len(SHAPES)))], list(COLOURS)[int(rng.integers(len(COLOURS)))]
    other_shapes = [s for s in SHAPES if s != unique_shape]
    other_colours = [c for c in COLOURS if c != unique_colour]
    shapes = [other_shapes[int(i)] for i in rng.integers(len(other_shapes), size=count)]
    colours = [other_colours[int(i)] for i in rng.integers(len(other_colours), size=count)]
    shapes[target_of("shape", count)] = unique_shape
    colours[target_of("colour", count)] = unique_colour
    return shapes, colours


def question_for(kind: str, shapes: list[str], colours: list[str], corner: str) -> tuple[str, str, int]:
    """(question, answer, target object) of a question kind."""
    if kind not in KINDS:
        raise ValueError(f"unknown question kind {kind!r}; known: {KINDS}")
    target = target_of(kind, len(shapes))
    if kind == "shape":
        return f"what colour is the {shapes[target]} ?", colours[target], target
    if kind == "colour":
        return f"what shape is the {colours[target]} object ?", shapes[target], target
    return f"what shape is in the {corner} ?", shapes[target], target


def cells_covered(mask: np.ndarray, cell_pixels: int) -> np.ndarray:
    """[N] bool, raster order: cells where the mask covers at least RELEVANT_FRACTION."""
    rows, columns = mask.shape[0] // cell_pixels, mask.shape[1] // cell_pixels
    coverage = mask.reshape(rows, cell_pixels, columns, cell_pixels).mean(axis=(1, 3))
    return (coverage >= RELEVANT_FRACTION).reshape(-1)


def make_sample(seed: int, index: int, image_size: int, cell_pixels: int, num_objects: int = NUM_OBJECTS,
                kind: str | None = None) -> dict:
    """One image with a question of `kind` (drawn when None), fixed by (seed, index).

    The image does not depend on the kind: asking another kind asks about
    another object of the same image.
    """
    if not 0 < num_objects <= (image_size // cell_pixels) ** 2:
        raise ValueError(f"num_objects must be between 1 and the number of cells, got {num_objects}")
    rng = np.random.default_rng([seed, index])
    grid = image_size // cell_pixels
    cells = object_cells(rng, num_objects, grid)
    boxes = [box_in_cell(rng, cell, grid, cell_pixels) for cell in cells]
    shapes, colours = object_attributes(rng, num_objects)
    kind = kind or KINDS[int(np.random.default_rng([seed, index, 2]).integers(len(KINDS)))]
    corner = CORNERS[corner_cells(grid).index(cells[target_of("position", num_objects)])]
    question, answer, target = question_for(kind, shapes, colours, corner)
    image = Image.new("RGB", (image_size, image_size), BACKGROUND)
    draw = ImageDraw.Draw(image)
    for shape, colour, box in zip(shapes, colours, boxes):
        draw_shape(draw, shape, box, COLOURS[colour])
    target_mask = Image.new("L", (image_size, image_size), 0)
    draw_shape(ImageDraw.Draw(target_mask), shapes[target], boxes[target], 255)
    objects = np.zeros(grid * grid, dtype=bool)
    objects[cells] = True
    return {"image": image, "question": question, "answer": answer, "kind": kind,
            "relevant": cells_covered(np.asarray(target_mask) > 0, cell_pixels), "objects": objects}


class SyntheticVQA(torch.utils.data.Dataset):
    """`size` samples of the synthetic task; sample i is the same on every machine and run.

    `objects` is the number of objects per image, or a function of the sample
    index. `kind` fixes the question kind of every
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
