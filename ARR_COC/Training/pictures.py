"""The benchmark's two pictures, drawn with Pillow (no plotting library needed).

- accuracy against K for each selection rule (the curve token-pruning papers draw);
- a few images with the tokens the trained selector and the saliency rule keep.
"""

from __future__ import annotations

import torch
from PIL import Image, ImageDraw

LINE_COLOURS = {"trained": (31, 119, 180), "random": (127, 127, 127), "saliency": (255, 127, 14),
                "all": (44, 160, 44)}
WHITE, BLACK, GRID = (255, 255, 255), (0, 0, 0), (225, 225, 225)


def accuracy_against_k(lines: dict, tokens: int, path: str, size=(720, 440)) -> str:
    """Accuracy (0..1) against K on a log-like axis of the evaluated budgets; `all` as a dashed level."""
    width, height = size
    left, right, top, bottom = 70, width - 150, 30, height - 60
    image = Image.new("RGB", size, WHITE)
    draw = ImageDraw.Draw(image)
    budgets = sorted({k for method, points in lines.items() if method != "all" for k, _ in points})
    x_of = {k: left + (right - left) * i / max(1, len(budgets) - 1) for i, k in enumerate(budgets)}

    def y_of(accuracy: float) -> float:
        return bottom - (bottom - top) * accuracy

    for tick in range(0, 11, 2):
        y = y_of(tick / 10)
        draw.line((left, y, right, y), fill=GRID)
        draw.text((left - 35, y - 6), f"{tick / 10:.1f}", fill=BLACK)
    for k, x in x_of.items():
        draw.line((x, top, x, bottom), fill=GRID)
        draw.text((x - 6, bottom + 8), str(k), fill=BLACK)
    draw.rectangle((left, top, right, bottom), outline=BLACK)
    draw.text(((left + right) / 2 - 80, bottom + 30), f"K: visual tokens kept (of {tokens})", fill=BLACK)
    draw.text((10, top - 20), "answer accuracy", fill=BLACK)
    for row, (method, points) in enumerate(sorted(lines.items())):
        colour = LINE_COLOURS.get(method, BLACK)
        if method == "all":
            y = y_of(points[0][1])
            for x in range(left, right, 12):
                draw.line((x, y, min(x + 6, right), y), fill=colour, width=2)
        else:
            xy = [(x_of[k], y_of(a)) for k, a in sorted(points)]
            draw.line(xy, fill=colour, width=3)
            for x, y in xy:
                draw.ellipse((x - 4, y - 4, x + 4, y + 4), fill=colour)
        legend_y = top + 10 + 22 * row
        draw.line((right + 15, legend_y + 6, right + 45, legend_y + 6), fill=colour, width=3)
        draw.text((right + 52, legend_y), method if method != "all" else f"all {tokens}", fill=BLACK)
    image.save(path)
    return path


def outline_cells(draw: ImageDraw.ImageDraw, cells, grid: int, cell_pixels: int, colour, width: int) -> None:
    for cell in cells:
        row, column = divmod(int(cell), grid)
        draw.rectangle((column * cell_pixels, row * cell_pixels, (column + 1) * cell_pixels - 1,
                        (row + 1) * cell_pixels - 1), outline=colour, width=width)


@torch.no_grad()
def kept_tokens(model, dataset, k: int, path: str, images: int = 3) -> str:
    """Rows of images; columns: the K cells (white) kept by the trained selector and by the saliency
    rule; the target cell in green; the question and each column's answer above."""
    from ARR_COC import attending
    from ARR_COC.preprocess import collate
    from ARR_COC.Training.benchmark import saliency_indices

    size, cell_pixels = dataset.image_size, model.backbone.cell_pixels
    grid = size // cell_pixels
    caption, gap = 34, 10
    samples = [dataset[i] for i in range(images)]
    batch = collate(samples, model.backbone, size)
    features = model.encode_images(batch["pixel_values"], batch["image_grid_thw"])
    columns = {"trained": attending.top_k_indices(model.scores(batch, features), k),
               "saliency": saliency_indices(batch["images"], cell_pixels, k)}
    canvas = Image.new("RGB", (len(columns) * (size + gap) + gap, images * (size + caption + gap) + gap), WHITE)
    text = ImageDraw.Draw(canvas)
    for column, (rule, kept) in enumerate(columns.items()):
        answers = model.backbone.tokenizer.batch_decode(model.answer(batch, features, kept, 4),
                                                        skip_special_tokens=True)
        for row, sample in enumerate(samples):
            picture = sample["image"].copy()
            draw = ImageDraw.Draw(picture)
            outline_cells(draw, sample["relevant"].nonzero()[0], grid, cell_pixels, (0, 255, 0), 5)
            outline_cells(draw, kept[row].tolist(), grid, cell_pixels, WHITE, 2)
            x, y = gap + column * (size + gap), gap + row * (size + caption + gap)
            text.text((x, y), f"{rule}, K={k}: {sample['question']}", fill=BLACK)
            text.text((x, y + 14), f"answer: {answers[row] or '?'} (truth: {sample['answer']})", fill=BLACK)
            canvas.paste(picture, (x, y + caption))
    canvas.save(path)
    return path
