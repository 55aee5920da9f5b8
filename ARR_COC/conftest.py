"""Shared fixtures: a random tiny backbone and a small synthetic-looking batch (no hub, CPU)."""

import numpy as np
import pytest
import torch

torch.set_num_threads(1)

IMAGE_SIZE = 128  # 4 x 4 merged tokens on the tiny backbone


def striped_image(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    image = np.full((IMAGE_SIZE, IMAGE_SIZE, 3), 30, dtype=np.uint8)
    for _ in range(3):
        top, left = rng.integers(0, IMAGE_SIZE - 40, size=2)
        image[top:top + 40, left:left + 40] = rng.integers(60, 255, size=3)
    return image


@pytest.fixture(scope="session")
def tiny_backbone():
    from ARR_COC.backbone import load_backbone

    return load_backbone("tiny", IMAGE_SIZE, seed=0)


def tiny_samples() -> list[dict]:
    """Three samples whose questions differ in length (so batches of them are padded)."""
    return [
        {"image": striped_image(0), "question": "what colour is the square ?", "answer": "red"},
        {"image": striped_image(1), "question": "what shape is the blue object ?", "answer": "circle"},
        {"image": striped_image(2), "question": "where is the cross ?", "answer": "top left"},
    ]


@pytest.fixture(scope="session")
def tiny_batch(tiny_backbone):
    from ARR_COC.preprocess import collate

    return collate(tiny_samples(), tiny_backbone, IMAGE_SIZE)
