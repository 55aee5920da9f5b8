"""Fixtures for training tests: the pretrained tiny backbone from the cached build step."""

import os

import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def pretrained_backbone_path() -> str:
    """Path given by Bazel (ARR_COC_TINY_BACKBONE=$(rootpath :tiny_backbone)) or by the caller."""
    path = os.environ.get("ARR_COC_TINY_BACKBONE", "")
    if not path or not os.path.exists(path):
        pytest.fail("ARR_COC_TINY_BACKBONE must point at the pretrained tiny backbone "
                    "(bazel builds it: //ARR_COC/Training:tiny_backbone)")
    return path
