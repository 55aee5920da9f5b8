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


def collate_uint8(samples: list[dict], backbone, image_size: int, max_question_tokens: int = 48,
                  max_answer_tokens: int = 8) -> dict:
    """The batch as it crosses from DataLoader workers through shared memory: images as uint8
    [B, 3, H, W] and nothing derived from them, since float images are 4x the bytes and the image
    processor's pixel_values are the same pixels again, float and repeated over the temporal
    patch (8x). `model_inputs` makes both on the training side (on its device)."""
    if image_size % backbone.cell_pixels:
        raise ValueError(f"image_size {image_size} must be a multiple of {backbone.cell_pixels}")
    images = [np.asarray(square_rgb(sample["image"], image_size)) for sample in samples]
    patches = image_size // backbone.config.vision_config.patch_size
    batch = {
        "images": torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous(),
        "image_grid_thw": torch.tensor([[1, patches, patches]] * len(samples)),
        "question_ids": [encode_text(backbone.tokenizer, s["question"], max_question_tokens) for s in samples],
        "answer_ids": [encode_text(backbone.tokenizer, s["answer"], max_answer_tokens) for s in samples],
        "answers": [list(s.get("answers") or [s["answer"]]) for s in samples],
    }
    if all("relevant" in sample for sample in samples):
        batch["relevant"] = torch.stack([torch.as_tensor(sample["relevant"], dtype=torch.bool) for sample in samples])
    return batch


def model_inputs(batch: dict, vision_config) -> dict:
    """What ARRCOC.forward takes from a collate_uint8 batch: images as float in 0..1 and the image
    processor's pixel_values (tiny_pixel_values gives its exact bits: preprocess_test)."""
    from ARR_COC.backbone import tiny_pixel_values

    images = batch["images"]
    return {**batch, "images": images.float() / 255.0, "pixel_values": tiny_pixel_values(images, vision_config)}


def collate(samples: list[dict], backbone, image_size: int, max_question_tokens: int = 48,
            max_answer_tokens: int = 8) -> dict:
    """Batch of samples {"image", "question", "answer", optional "answers", "relevant"}."""
    batch = collate_uint8(samples, backbone, image_size, max_question_tokens, max_answer_tokens)
    return model_inputs(batch, backbone.config.vision_config)
