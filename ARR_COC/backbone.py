"""The frozen Qwen3-VL backbone, its tokenizer and its image processor.

`BASE_MODEL=tiny` builds a tiny Qwen3-VL in code (random weights, or weights
from a local safetensors file such as the cached pretrain step's output) with
an offline word-level tokenizer, so tests and the local run never touch the
hub. `random:NAME` builds a pinned published architecture (ARR_COC/architectures.py)
at full size with random weights and a stand-in tokenizer that carries the
model's special-token ids, also offline. Any other value goes to
`from_pretrained` (hub name, local folder, or a gs:// folder that is copied
locally first); with a hub cache root, a hub name is staged once per revision
in the run's bucket (ARR_COC/hub_cache.py).
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass

import torch

from ARR_COC import architectures, hub_cache
from ARR_COC.vocabulary import TINY_WORDS

TINY = "tiny"

# Special tokens first, so their ids are fixed (0..6) whatever the vocabulary.
SPECIAL_TOKENS = (
    "<|endoftext|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
    "<|im_start|>",
)
UNKNOWN_TOKEN = "<unk>"

# After them: the words the tiny model can read and say, ARR_COC.vocabulary.TINY_WORDS.
TINY_VOCAB_SIZE = 512
TINY_PATCH_SIZE = 16
TINY_MERGE_SIZE = 2
TINY_TEMPORAL_PATCH = 1  # a still image repeated over 2 frames doubled the patch embedding's cost


@dataclass
class Backbone:
    """A frozen vision-language model with the tokenizer and image processor that fit it."""

    model: torch.nn.Module
    tokenizer: object
    image_processor: object
    name: str

    @property
    def config(self):
        return self.model.config

    @property
    def merge_size(self) -> int:
        return self.model.config.vision_config.spatial_merge_size

    @property
    def cell_pixels(self) -> int:
        """Side in pixels of the image square behind one merged visual token."""
        vision = self.model.config.vision_config
        return vision.patch_size * vision.spatial_merge_size

    @property
    def text_hidden_size(self) -> int:
        return self.model.config.text_config.hidden_size


def tiny_config():
    """A Qwen3-VL small enough to pretrain single-threaded in a few CPU-minutes.

    Its vision tower has no transformer blocks (depth 0: patch and position
    embedding and the 2 x 2 merger only), so each merged token sees only its
    own 32 px cell. With attention across the image, every token carried the
    answer and K background tokens answered almost as well as the right ones
    (docs/training.md), so no selector was needed.
    """
    from transformers import Qwen3VLConfig

    ids = {token: index for index, token in enumerate(SPECIAL_TOKENS)}
    text = dict(
        vocab_size=TINY_VOCAB_SIZE, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, head_dim=16, max_position_embeddings=1024,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0,
                         "mrope_section": [4, 2, 2], "mrope_interleaved": True},
        tie_word_embeddings=False,
    )
    vision = dict(
        depth=0, hidden_size=64, intermediate_size=128, num_heads=4, patch_size=TINY_PATCH_SIZE,
        spatial_merge_size=TINY_MERGE_SIZE, temporal_patch_size=TINY_TEMPORAL_PATCH,
        out_hidden_size=64, num_position_embeddings=256, deepstack_visual_indexes=[],
    )
    return Qwen3VLConfig(
        text_config=text, vision_config=vision,
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=False,
    )


def word_tokenizer(vocabulary: dict[str, int], special: list[str]):
    """A word-level tokenizer over VOCABULARY (token -> id), built offline and identically every time."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.WordLevel(vocab=vocabulary, unk_token=UNKNOWN_TOKEN))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    core.add_special_tokens(special)
    return PreTrainedTokenizerFast(
        tokenizer_object=core, eos_token="<|im_end|>", pad_token="<|endoftext|>", unk_token=UNKNOWN_TOKEN,
    )


def tiny_tokenizer():
    """Word-level tokenizer over TINY_WORDS, the special tokens first (ids 0..6)."""
    tokens = SPECIAL_TOKENS + (UNKNOWN_TOKEN,) + TINY_WORDS
    return word_tokenizer({token: index for index, token in enumerate(tokens)}, list(SPECIAL_TOKENS))


def stand_in_tokenizer(folder: str):
    """A pinned architecture's special tokens at their real ids (special_tokens.json), then <unk> and
    TINY_WORDS from id 0: it reads and says the synthetic task, and the model's config finds its image,
    vision and end tokens where the real tokenizer puts them (the real one is 11 MB and on the hub)."""
    with open(os.path.join(folder, "special_tokens.json")) as handle:
        special = {token: index for token, index in json.load(handle).items() if not token.startswith("_")}
    words = {token: index for index, token in enumerate((UNKNOWN_TOKEN,) + TINY_WORDS)}
    clash = set(words.values()) & set(special.values())
    if clash:
        raise ValueError(f"{folder}: the words' ids {sorted(clash)} collide with special tokens")
    return word_tokenizer({**words, **special}, list(special))


def build_random_model(folder: str, dtype: torch.dtype, seed: int = 0):
    """A pinned architecture from its config.json with random weights drawn from `seed`, in `dtype`, on
    the CPU (accelerate moves it to the GPU): real shapes, real memory and speed, no weights to fetch."""
    from transformers import AutoConfig, Qwen3VLForConditionalGeneration

    torch.manual_seed(seed)
    config = AutoConfig.from_pretrained(folder)
    return Qwen3VLForConditionalGeneration._from_config(config, dtype=dtype)


def image_processor_for(model_config, image_size: int):
    """PIL image processor (no torchvision) that keeps an image_size square image as it is."""
    from transformers import Qwen2VLImageProcessorPil

    vision = model_config.vision_config
    pixels = image_size * image_size
    return Qwen2VLImageProcessorPil(
        patch_size=vision.patch_size, merge_size=vision.spatial_merge_size,
        temporal_patch_size=vision.temporal_patch_size,
        size={"shortest_edge": pixels, "longest_edge": pixels},
        image_mean=[0.5, 0.5, 0.5], image_std=[0.5, 0.5, 0.5],
    )


def tiny_pixel_values(images: torch.Tensor, vision_config) -> torch.Tensor:
    """What image_processor_for gives for sRGB images [B, 3, H, W] (uint8, or float in 0..1),
    without PIL (fast): cut into patches in merge-window order, repeated over the temporal patch,
    scaled to -1..1. uint8 images are cut before they are made float (a quarter of the bytes moved)."""
    patch, merge = vision_config.patch_size, vision_config.spatial_merge_size
    temporal = vision_config.temporal_patch_size
    batch, channels, height, width = images.shape
    rows, columns = height // patch, width // patch
    x = images[:, None].expand(batch, temporal, channels, height, width)
    x = x.reshape(batch, temporal, channels, rows // merge, merge, patch, columns // merge, merge, patch)
    x = x.permute(0, 3, 6, 4, 7, 2, 1, 5, 8).reshape(batch * rows * columns, channels * temporal * patch * patch)
    x = x.float().div_(255.0) if x.dtype == torch.uint8 else x.clone()
    return x.mul_(2.0).sub_(1.0)  # in place: a fresh 12 MB buffer per op cost more than the arithmetic


def embed_patches_by_matmul(model) -> None:
    """Run the vision tower's patch embedding as the matmul it is (a conv3d whose kernel is its
    stride): the same numbers to 1e-5, and 4.5 ms instead of 30 ms per 16 images on one CPU
    thread, where it was a fifth of a pretraining step. The weights keep their conv shape."""
    embed = model.model.visual.patch_embed

    def forward(hidden_states: torch.Tensor) -> torch.Tensor:
        weight = embed.proj.weight
        return torch.nn.functional.linear(hidden_states.to(weight.dtype), weight.reshape(weight.shape[0], -1),
                                          embed.proj.bias)

    embed.forward = forward


def freeze(model: torch.nn.Module) -> torch.nn.Module:
    """The backbone is never trained by ARR-COC: no gradients, eval mode (no dropout)."""
    model.requires_grad_(False)
    model.eval()
    return model


def build_tiny_model(weights_path: str | None = None, seed: int = 0):
    """The tiny Qwen3-VL: random weights from `seed`, or the weights in `weights_path`."""
    from transformers import Qwen3VLForConditionalGeneration

    torch.manual_seed(seed)
    model = Qwen3VLForConditionalGeneration(tiny_config())
    embed_patches_by_matmul(model)
    if weights_path:
        from safetensors.torch import load_file

        missing, unexpected = model.load_state_dict(load_file(weights_path), strict=False)
        real_missing = [name for name in missing if name != "lm_head.weight" or not model.config.tie_word_embeddings]
        if real_missing or unexpected:
            raise ValueError(f"{weights_path} does not fit the tiny backbone: missing {real_missing}, unexpected {unexpected}")
    return model


def localize(path: str) -> str:
    """A gs:// (or other fsspec) folder is copied to a local temp folder; others pass through."""
    if "://" not in path:
        return path
    import fsspec

    filesystem, root = fsspec.core.url_to_fs(path)
    local = tempfile.mkdtemp(prefix="arr_coc_model_")
    filesystem.get(root.rstrip("/") + "/", local + "/", recursive=True)
    return local


def model_source(name: str, revision: str | None, hub_cache_root: str = "", fetch=None) -> tuple[str, str | None]:
    """(what from_pretrained loads, its revision): a pinned hub model staged under `hub_cache_root`
    when one is set (a local folder then, no revision), else the name as it is (URLs copied locally)."""
    if hub_cache_root and revision and hub_cache.is_hub_name(name):
        fetch = fetch or hub_cache.from_hub("models", name, revision)
        return hub_cache.staged("models", name, revision, hub_cache_root, fetch), None
    return localize(name), revision


def load_backbone(name: str, image_size: int, weights_path: str | None = None,
                  dtype: torch.dtype = torch.float32, seed: int = 0, revision: str | None = None,
                  architecture_only: bool = False, hub_cache_root: str = "") -> Backbone:
    """Load and freeze the backbone named by BASE_MODEL (`tiny`, `random:NAME`, hub name, local or gs:// path).

    `revision` pins a hub commit. `architecture_only` builds the model from its
    config.json on the `meta` device (shapes and parameter counts, no weights,
    no memory): how the 2B model's structure is checked without downloading it.
    `hub_cache_root` (config hub_cache_dir) keeps one copy of a pinned hub model per revision.
    """
    random_name = architectures.random_architecture(name)
    if name == TINY:
        model = build_tiny_model(weights_path, seed)
        tokenizer = tiny_tokenizer()
    elif random_name is not None:
        folder = architectures.pinned_folder(random_name)
        tokenizer = stand_in_tokenizer(folder)
        if architecture_only:
            with torch.device("meta"):
                model = build_random_model(folder, dtype, seed)
        else:
            model = build_random_model(folder, dtype, seed)
    else:
        from transformers import AutoConfig, AutoTokenizer, Qwen3VLForConditionalGeneration

        source, revision = model_source(name, revision, "" if architecture_only else hub_cache_root)
        tokenizer = AutoTokenizer.from_pretrained(source, revision=revision)
        if architecture_only:
            with torch.device("meta"):
                model = Qwen3VLForConditionalGeneration._from_config(
                    AutoConfig.from_pretrained(source, revision=revision), dtype=dtype)
        else:
            model = Qwen3VLForConditionalGeneration.from_pretrained(source, revision=revision, dtype=dtype)
    model = freeze(model.to(dtype))
    return Backbone(model, tokenizer, image_processor_for(model.config, image_size), name)
