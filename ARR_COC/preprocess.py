"""Turn (image, question, answer) samples into the batch ARRCOC.forward takes.

Every image is resized to one square size that is a multiple of the token
cell, so a batch shares one merged-token grid and the texture map and the
visual tokens line up cell for cell.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image


def square_rgb(image, image_size: int) -> Image.Image:
    """RGB image_size x image_size copy of a PIL image or an HxWx3 uint8 array."""
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    image = image.convert("RGB")
    if image.size != (image_size, image_size):
        image = image.resize((image_size, image_size), Image.BICUBIC)
    return image


def encode_text(tokenizer, text: str, limit: int) -> list[int]:
    return tokenizer.encode(text, add_special_tokens=False)[:limit]


def collate(samples: list[dict], backbone, image_size: int, max_question_tokens: int = 48,
            max_answer_tokens: int = 8) -> dict:
    """Batch of samples {"image", "question", "answer", optional "answers", "relevant"}."""
    if image_size % backbone.cell_pixels:
        raise ValueError(f"image_size {image_size} must be a multiple of {backbone.cell_pixels}")
    images = [square_rgb(sample["image"], image_size) for sample in samples]
    processed = backbone.image_processor(images=images, return_tensors="pt")
    pixels = torch.from_numpy(np.stack([np.asarray(image) for image in images])).permute(0, 3, 1, 2)
    batch = {
        "pixel_values": processed["pixel_values"],
        "image_grid_thw": processed["image_grid_thw"],
        "images": pixels.float() / 255.0,
        "question_ids": [encode_text(backbone.tokenizer, s["question"], max_question_tokens) for s in samples],
        "answer_ids": [encode_text(backbone.tokenizer, s["answer"], max_answer_tokens) for s in samples],
        "answers": [list(s.get("answers") or [s["answer"]]) for s in samples],
    }
    if all("relevant" in sample for sample in samples):
        batch["relevant"] = torch.stack([torch.as_tensor(sample["relevant"], dtype=torch.bool) for sample in samples])
    return batch
