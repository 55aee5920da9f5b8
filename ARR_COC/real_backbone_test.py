"""Ready for the real backbone: Qwen3-VL-2B-Instruct built on the `meta` device by the project's own code.

The published config.json (ARR_COC/qwen3_vl_2b/, with its source and
revision) and the stand-in tokenizer with Qwen's special-token ids
(backbone.stand_in_tokenizer) go into a folder that `load_backbone(...,
architecture_only=True)` loads like a hub checkpoint, without weights; the
same architecture as `random:Qwen/Qwen3-VL-2B-Instruct` (the GPU smoke run's
backbone) is built from the pinned folder directly. Checked: the merged-token grid at the
production image size, the deepstack layers, the selector around the 2B
model, and the model's parameter count against the formula of
docs/training.md ("The real backbone").
"""

import json
import os
import shutil

import numpy as np
import pytest
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ARCHITECTURE = os.path.join(HERE, "qwen3_vl_2b")
VERTEX = os.path.join(HERE, "Training", "configs", "vertex.toml")


@pytest.fixture(scope="module")
def production():
    from ARR_COC.Training.config import load_config

    return load_config(VERTEX, environ={})


@pytest.fixture(scope="module")
def backbone(tmp_path_factory, production):
    from ARR_COC.backbone import load_backbone, stand_in_tokenizer

    folder = tmp_path_factory.mktemp("qwen3-vl-2b")
    shutil.copy(os.path.join(ARCHITECTURE, "config.json"), folder / "config.json")
    stand_in_tokenizer(ARCHITECTURE).save_pretrained(str(folder))
    return load_backbone(str(folder), production.image_size, dtype=torch.bfloat16, architecture_only=True)


def qwen3_vl_parameters(config) -> dict[str, int]:
    """Parameter count of Qwen3-VL from its config (the formula of docs/training.md)."""
    t, v = config.text_config, config.vision_config
    h, i, heads, kv, d = t.hidden_size, t.intermediate_size, t.num_attention_heads, t.num_key_value_heads, t.head_dim
    attention = h * heads * d + 2 * h * kv * d + heads * d * h + 2 * d      # q, k, v, o; q and k RMS norms
    layer = attention + 3 * h * i + 2 * h                                  # + SwiGLU MLP, two RMS norms
    embedding = t.vocab_size * h
    text = embedding + t.num_hidden_layers * layer + h + (0 if config.tie_word_embeddings else embedding)
    hv, iv, merged = v.hidden_size, v.intermediate_size, v.hidden_size * v.spatial_merge_size ** 2
    patch = v.in_channels * v.temporal_patch_size * v.patch_size ** 2 * hv + hv
    block = 4 * hv + (3 * hv * hv + 3 * hv) + (hv * hv + hv) + (hv * iv + iv) + (iv * hv + hv)
    merger_linears = (merged * merged + merged) + (merged * v.out_hidden_size + v.out_hidden_size)
    vision = (patch + v.num_position_embeddings * hv + v.depth * block
              + 2 * hv + merger_linears                                      # final merger: norm before the shuffle
              + len(v.deepstack_visual_indexes) * (2 * merged + merger_linears))  # deepstack: norm after it
    return {"text": text, "vision": vision, "total": text + vision}


def selector_parameters(token_dim: int, query_dim: int, channels: int) -> int:
    """The selector of knowing.py and balancing.py, layer by layer."""
    information = 2 * token_dim + (token_dim + channels) * 64 + 64 + 64 + 1
    perspectival = channels * 32 * 9 + 32 + 32 * 9 + 1
    participatory = 2 * token_dim + (token_dim + channels) * 64 + 64 + 2 * query_dim + query_dim * 64 + 64 + 1
    balancer = 2 * query_dim + query_dim * 32 + 32 + 32 * 3 + 3 + 3 * 9 + 1
    return information + perspectival + participatory + balancer


def test_it_is_the_published_architecture_on_meta(backbone):
    parameters = list(backbone.model.parameters())
    assert parameters and all(p.device.type == "meta" and p.dtype == torch.bfloat16 for p in parameters)
    assert all(not p.requires_grad for p in parameters)  # frozen
    counts = qwen3_vl_parameters(backbone.config)
    assert sum(p.numel() for p in parameters) == counts["total"] == 2_127_532_032
    assert sum(p.numel() for p in backbone.model.model.visual.parameters()) == counts["vision"]


def test_tokenizer_and_template_use_qwens_special_token_ids(backbone):
    from ARR_COC.sequences import ChatTemplate

    template = ChatTemplate.from_tokenizer(backbone.tokenizer)
    config = backbone.config
    assert template.image_pad == config.image_token_id == 151655
    assert template.before_image[-1] == config.vision_start_token_id and template.after_image == (151653,)
    assert template.end == config.text_config.eos_token_id == 151645


def test_merged_tokens_and_grid_at_the_production_image_size(backbone, production):
    from ARR_COC.preprocess import collate

    size = production.image_size
    image = np.random.default_rng(0).integers(0, 255, (size, size, 3), dtype=np.uint8)
    batch = collate([{"image": image, "question": "what colour is the square ?", "answer": "red"}],
                    backbone, size)
    merge = backbone.merge_size
    assert batch["image_grid_thw"].tolist() == [[1, size // 16, size // 16]]
    assert batch["pixel_values"].shape == ((size // 16) ** 2, 3 * 2 * 16 * 16)
    tokens = (size // 16) ** 2 // merge ** 2
    assert backbone.cell_pixels == 32 and tokens == (size // backbone.cell_pixels) ** 2 == 256
    assert production.num_visual_tokens < tokens


def test_uint8_batch_made_float_gives_the_processors_pixels_at_the_production_size(backbone, production):
    """The training side patches the uint8 images the loader workers hand over; on the 2B model's
    vision config (patch 16, temporal 2) that must be the image processor's output, bit for bit."""
    from ARR_COC.preprocess import collate_uint8, model_inputs

    size = production.image_size
    image = np.random.default_rng(1).integers(0, 256, (size, size, 3), dtype=np.uint8)
    crossing = collate_uint8([{"image": image, "question": "what colour is the square ?", "answer": "red"}],
                             backbone, size)
    processed = backbone.image_processor(images=[image], return_tensors="pt")
    made = model_inputs(crossing, backbone.config.vision_config)
    assert crossing["images"].dtype == torch.uint8
    assert torch.equal(made["pixel_values"], processed["pixel_values"])
    assert torch.equal(made["image_grid_thw"], processed["image_grid_thw"])


def test_deepstack_layers(backbone):
    visual = backbone.model.model.visual
    assert visual.deepstack_visual_indexes == [5, 11, 17]
    assert len(visual.deepstack_merger_list) == 3 and len(visual.blocks) == 24
    assert all(m.linear_fc2.out_features == backbone.text_hidden_size for m in visual.deepstack_merger_list)


def test_the_selector_fits_the_2b_model(backbone, production):
    from ARR_COC.model import build_model
    from ARR_COC.preprocess import collate
    from ARR_COC.texture import NUM_CHANNELS, texture_map

    model = build_model(backbone, production.num_visual_tokens, production.image_size)
    count = sum(p.numel() for p in model.selector.parameters())
    assert count == selector_parameters(2048, 2048, NUM_CHANNELS) == 481_282
    assert all(p.device.type == "cpu" and p.requires_grad for p in model.selector.parameters())
    # The selector runs on 2B-sized tokens over the production grid (the backbone's own are on meta).
    size, grid = production.image_size, production.image_size // backbone.cell_pixels
    image = np.zeros((size, size, 3), dtype=np.uint8)
    batch = collate([{"image": image, "question": "what colour is the square ?", "answer": "red"}], backbone, size)
    tokens = torch.randn(1, grid * grid, backbone.text_hidden_size)
    with torch.no_grad():
        scores = model.selector(texture_map(batch["images"], backbone.cell_pixels), tokens,
                                torch.randn(1, backbone.text_hidden_size))
    assert scores.shape == (1, 256) and torch.isfinite(scores).all()


RANDOM = "random:Qwen/Qwen3-VL-2B-Instruct"


def test_random_prefix_builds_the_same_architecture_offline(backbone, production):
    from ARR_COC.backbone import load_backbone

    random = load_backbone(RANDOM, production.image_size, dtype=torch.bfloat16, architecture_only=True)
    assert random.name == RANDOM and random.cell_pixels == 32
    assert sum(p.numel() for p in random.model.parameters()) == 2_127_532_032
    assert random.config.to_dict()["text_config"] == backbone.config.to_dict()["text_config"]


def test_an_unpinned_random_architecture_is_refused():
    from ARR_COC.backbone import load_backbone

    with pytest.raises(KeyError, match="no pinned architecture 'Qwen/Qwen9'; known: Qwen/Qwen3-VL-2B-Instruct"):
        load_backbone("random:Qwen/Qwen9", 512, architecture_only=True)


def test_the_stand_in_tokenizer_reads_and_says_the_synthetic_task(backbone, production):
    """Every question and answer of the synthetic set at 512 px, word for word, no <unk>."""
    from ARR_COC.Training.synthetic import SyntheticVQA

    tokenizer = backbone.tokenizer
    unknown = tokenizer.convert_tokens_to_ids("<unk>")
    samples = SyntheticVQA(48, 0, production.image_size, backbone.cell_pixels)
    for sample in (samples[i] for i in range(len(samples))):
        for text in (sample["question"], sample["answer"]):
            ids = tokenizer.encode(text, add_special_tokens=False)
            assert unknown not in ids and len(ids) == len(text.split())
            assert tokenizer.decode(ids) == text
    assert max(tokenizer.get_vocab().values()) < backbone.config.text_config.vocab_size


def small_pinned_copy(folder) -> str:
    """The pinned config cut to one layer each and a narrow text model (the vocabulary kept, so
    Qwen's special-token ids fit), beside the pinned special tokens: a real-device build in seconds."""
    with open(os.path.join(ARCHITECTURE, "config.json")) as handle:
        config = json.load(handle)
    config["text_config"].update(hidden_size=256, intermediate_size=256, num_hidden_layers=1,
                                 num_attention_heads=2, num_key_value_heads=1)
    config["vision_config"].update(depth=1, hidden_size=64, intermediate_size=64, num_heads=1,
                                   out_hidden_size=256, deepstack_visual_indexes=[0])
    with open(os.path.join(folder, "config.json"), "w") as handle:
        json.dump(config, handle)
    shutil.copy(os.path.join(ARCHITECTURE, "special_tokens.json"), os.path.join(folder, "special_tokens.json"))
    return str(folder)


def test_random_weights_are_real_seeded_and_run(tmp_path):
    from ARR_COC.backbone import Backbone, build_random_model, freeze, image_processor_for, stand_in_tokenizer
    from ARR_COC.model import build_model
    from ARR_COC.preprocess import collate

    folder = small_pinned_copy(tmp_path)
    first, again, other = (build_random_model(folder, torch.float32, seed) for seed in (3, 3, 4))
    weight = lambda model: model.model.language_model.layers[0].mlp.up_proj.weight  # noqa: E731
    assert all(p.device.type == "cpu" for p in first.parameters())
    assert torch.equal(weight(first), weight(again)) and not torch.equal(weight(first), weight(other))
    backbone = Backbone(freeze(first), stand_in_tokenizer(folder), image_processor_for(first.config, 64), "random")
    model = build_model(backbone, 4, 64)
    batch = collate([{"image": np.zeros((64, 64, 3), dtype=np.uint8), "question": "what colour is the square",
                      "answer": "red"}], backbone, 64)
    loss = model(batch, "train")["loss"]
    loss.backward()
    assert torch.isfinite(loss) and any(p.grad is not None for p in model.selector.parameters())
