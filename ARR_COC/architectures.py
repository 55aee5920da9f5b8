"""The published architectures the repository pins, by hub name: `random:NAME` builds one offline.

A pinned architecture is a folder beside this module holding the model's
published config.json and its special-token ids (its README names the
source and revision). `random:NAME` in BASE_MODEL builds the real model from
that config with random weights and a stand-in tokenizer: the full-size
memory and speed of a training step, with no download (the GPU smoke run).
Torch-free, so the config validation can ask it.
"""

from __future__ import annotations

import os

RANDOM_PREFIX = "random:"
HERE = os.path.dirname(os.path.abspath(__file__))
PINNED = {"Qwen/Qwen3-VL-2B-Instruct": os.path.join(HERE, "qwen3_vl_2b")}


def random_architecture(base_model: str) -> str | None:
    """The hub name of a `random:NAME` base model, or None for any other base model."""
    return base_model[len(RANDOM_PREFIX):] if base_model.startswith(RANDOM_PREFIX) else None


def pinned_folder(name: str) -> str:
    """The folder of a pinned architecture; KeyError naming the known ones otherwise."""
    if name not in PINNED:
        raise KeyError(f"no pinned architecture {name!r}; known: {', '.join(sorted(PINNED))}")
    return PINNED[name]
