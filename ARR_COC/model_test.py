"""ARRCOC on the random tiny Qwen3-VL: gradient flow, shapes, K, positions, stock equivalence."""

import numpy as np
import pytest
import torch

from ARR_COC.model import ARRCOC, build_model, load_selector
from ARR_COC.conftest import IMAGE_SIZE, tiny_samples

K = 5
N = (IMAGE_SIZE // 32) ** 2


@pytest.fixture()
def model(tiny_backbone) -> ARRCOC:
    return build_model(tiny_backbone, K, IMAGE_SIZE, seed=0)


@pytest.mark.parametrize("allocator", ["reinforce", "straight_through", "attention"])
def test_every_trainable_parameter_gets_a_gradient_and_the_backbone_none(tiny_backbone, tiny_batch, allocator):
    model = build_model(tiny_backbone, K, IMAGE_SIZE, seed=0, allocator=allocator)
    model.train()
    model(tiny_batch, "train")["loss"].backward()
    trainable = dict(model.selector.named_parameters())
    assert trainable and all(p.requires_grad for p in trainable.values())
    no_signal = [name for name, p in trainable.items() if p.grad is None or not p.grad.abs().sum() > 0]
    assert no_signal == []
    backbone = list(model.language_vision_model.parameters())
    assert all(not p.requires_grad and p.grad is None for p in backbone)


@pytest.mark.parametrize("allocator, mode, visual_tokens", [
    ("reinforce", "train", K), ("straight_through", "train", N), ("attention", "train", K),
    ("reinforce", "select", K), ("reinforce", "random", K), ("reinforce", "all", N)])
def test_shapes_and_budget(tiny_backbone, tiny_batch, allocator, mode, visual_tokens):
    model = build_model(tiny_backbone, K, IMAGE_SIZE, seed=0, allocator=allocator)
    output = model(tiny_batch, mode, torch.Generator().manual_seed(0))
    ids = output["inputs"]["input_ids"]
    image_pads = (ids == model.template.image_pad).sum(dim=1)
    assert image_pads.tolist() == [visual_tokens] * 3
    assert output["logits"].shape == (*ids.shape, model.language_vision_model.config.text_config.vocab_size)
    assert output["scores"].shape == (3, N)
    assert output["kept"].shape == (3, K if mode != "all" else N)
    assert torch.isfinite(output["loss"])


def test_select_mode_keeps_the_top_scored_tokens_at_their_true_positions(model, tiny_batch):
    output = model(tiny_batch, "select")
    kept = output["kept"]
    assert torch.equal(kept, output["scores"].topk(K, dim=1).indices.sort(dim=1).values)
    ids, positions = output["inputs"]["input_ids"], output["inputs"]["position_ids"]
    width = output["grid"][1]
    for row in range(ids.shape[0]):
        image = (ids[row] == model.template.image_pad).nonzero().flatten()
        start = int(image[0]) - 0  # the image block starts right after the prompt prefix
        expected = torch.stack([torch.full((K,), start), start + kept[row] // width, start + kept[row] % width])
        assert torch.equal(positions[:, row, image], expected)


def test_all_tokens_equal_the_stock_qwen3vl_forward(model, tiny_batch):
    output = model(tiny_batch, "all")
    inputs = output["inputs"]
    token_types = (inputs["input_ids"] == model.template.image_pad).int()
    stock = model.language_vision_model(
        input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"],
        pixel_values=tiny_batch["pixel_values"], image_grid_thw=tiny_batch["image_grid_thw"],
        mm_token_type_ids=token_types, use_cache=False)
    rope, _ = model.language_vision_model.model.get_rope_index(
        inputs["input_ids"], token_types, tiny_batch["image_grid_thw"], attention_mask=inputs["attention_mask"])
    assert torch.equal(rope, inputs["position_ids"])
    assert (stock.logits - output["logits"]).abs().max() < 1e-5


def test_unknown_allocator_is_refused(tiny_backbone):
    with pytest.raises(ValueError, match="reinforce"):
        build_model(tiny_backbone, K, IMAGE_SIZE, allocator="gumbel")


def test_reinforce_train_mode_really_keeps_k_sampled_tokens_and_value_is_the_answer_loss(tiny_backbone, tiny_batch):
    model = build_model(tiny_backbone, K, IMAGE_SIZE, seed=0, allocator="reinforce")
    features = model.encode_images(tiny_batch["pixel_values"], tiny_batch["image_grid_thw"])
    kept, scale = model.kept_tokens(model.scores(tiny_batch, features), "train")
    assert scale is None and kept.shape == (3, K)
    assert all(len(set(row)) == K for row in kept.tolist())
    output = model(tiny_batch, "train", torch.Generator().manual_seed(3))
    again = model(tiny_batch, "train", torch.Generator().manual_seed(3))
    assert torch.equal(output["loss"], again["loss"])
    # The value is the answer loss of the sampled selection (the REINFORCE term adds gradient, not value).
    labels, logits = output["inputs"]["labels"], output["logits"]
    answer_loss = torch.nn.functional.cross_entropy(logits[:, :-1].float().transpose(1, 2), labels[:, 1:],
                                                    ignore_index=-100)
    assert torch.allclose(output["loss"], answer_loss, atol=1e-5)


def test_train_mode_zeroes_the_unkept_tokens(tiny_backbone, tiny_batch):
    """The straight-through allocator: all N rows go in, only the K best are non-zero."""
    model = build_model(tiny_backbone, K, IMAGE_SIZE, seed=0, allocator="straight_through")
    features = model.encode_images(tiny_batch["pixel_values"], tiny_batch["image_grid_thw"])
    scores = model.scores(tiny_batch, features)
    kept, scale = model.kept_tokens(scores, "train")
    rows = model.encoder_outputs(features, kept, scale)["image"]
    nonzero = torch.stack([(r.abs().sum(-1) > 0) for r in rows.pooler_output])
    assert nonzero.sum(dim=1).tolist() == [K] * 3
    for layer in rows.deepstack_features:  # none on the tiny backbone (vision depth 0); Qwen3-VL has three
        assert torch.equal(nonzero, torch.stack([(r.abs().sum(-1) > 0) for r in layer]))


def test_generate_answers_greedily_from_the_k_kept_tokens(model, tiny_batch):
    """The first generated token is the argmax the teacher-forced pass predicts after the question."""
    answers, kept = model.generate(tiny_batch, max_new_tokens=3)
    assert len(answers) == 3 and all(len(a) <= 3 for a in answers)
    output = model(tiny_batch, "select")
    assert torch.equal(kept.sort(dim=1).values, output["kept"])
    labels = output["inputs"]["labels"]
    for i, answer in enumerate(answers):
        first = int((labels[i] != -100).nonzero()[0])
        assert int(output["logits"][i, first - 1].argmax()) == (answer[0] if answer else model.template.end)


def test_export_then_load_gives_the_same_scores(model, tiny_batch, tmp_path):
    with torch.no_grad():
        for parameter in model.selector.parameters():
            parameter.add_(0.01 * torch.randn_like(parameter))
    model.export(str(tmp_path))
    loaded = load_selector(str(tmp_path))
    features = model.encode_images(tiny_batch["pixel_values"], tiny_batch["image_grid_thw"])
    assert torch.allclose(model.scores(tiny_batch, features), loaded.scores(tiny_batch, features))
    assert loaded.num_visual_tokens == K


def test_unknown_mode_is_refused(model, tiny_batch):
    with pytest.raises(ValueError, match="not one of"):
        model(tiny_batch, "everything")


def image_cells(output, template) -> list[list[tuple[int, int]]]:
    """(row, column) of the visual tokens as the LM reads them, per sample."""
    ids, positions = output["inputs"]["input_ids"], output["inputs"]["position_ids"]
    cells = []
    for row in range(ids.shape[0]):
        image = (ids[row] == template.image_pad).nonzero().flatten()
        cells.append(list(zip(positions[1, row, image].tolist(), positions[2, row, image].tolist())))
    return cells


@pytest.mark.parametrize("mode", ["train", "select", "random"])
def test_kept_tokens_reach_the_language_model_in_raster_order(model, tiny_batch, mode):
    """Training must show the LM what evaluation shows it: the sampled tokens too go in raster order."""
    model.train(mode == "train")
    for cells in image_cells(model(tiny_batch, mode, torch.Generator().manual_seed(5)), model.template):
        assert cells == sorted(cells) and len(set(cells)) == K


def test_reinforce_gives_a_gradient_at_batch_size_one(tiny_backbone, tiny_batch):
    """The self-critical baseline (loss of the deterministic top-K) is not the sample's own loss."""
    model = build_model(tiny_backbone, K, IMAGE_SIZE, seed=0, allocator="reinforce").train()
    one = {name: (value[:1] if torch.is_tensor(value) or isinstance(value, list) else value)
           for name, value in tiny_batch.items()}
    one["pixel_values"] = tiny_batch["pixel_values"][: len(tiny_batch["pixel_values"]) // 3]
    model(one, "train", torch.Generator().manual_seed(1))["loss"].backward()
    gradient = sum(p.grad.abs().sum() for p in model.selector.parameters() if p.grad is not None)
    assert gradient > 0


def test_scores_stay_fp32_under_bf16_autocast(model, tiny_batch):
    features = model.encode_images(tiny_batch["pixel_values"], tiny_batch["image_grid_thw"])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        scores = model.scores(tiny_batch, features)
    assert scores.dtype == torch.float32
    assert torch.equal(scores, model.scores(tiny_batch, features))


def processor_batch(backbone, samples, image_size) -> dict:
    """The image processor's own pixel_values and grid, and the float images, as collate made them with PIL."""
    from ARR_COC.preprocess import square_rgb

    images = [square_rgb(sample["image"], image_size) for sample in samples]
    processed = backbone.image_processor(images=images, return_tensors="pt")
    pixels = torch.from_numpy(np.stack([np.asarray(image) for image in images])).permute(0, 3, 1, 2)
    return {"pixel_values": processed["pixel_values"], "image_grid_thw": processed["image_grid_thw"],
            "images": pixels.float() / 255.0}


def test_uint8_batch_made_float_on_the_training_side_equals_the_image_processor(tiny_backbone):
    """DataLoader workers hand uint8 images only; model_inputs must give the processor's exact bits."""
    from ARR_COC.preprocess import collate_uint8, model_inputs

    crossing = collate_uint8(tiny_samples(), tiny_backbone, IMAGE_SIZE)
    assert crossing["images"].dtype == torch.uint8 and "pixel_values" not in crossing
    made = model_inputs(crossing, tiny_backbone.config.vision_config)
    for name, expected in processor_batch(tiny_backbone, tiny_samples(), IMAGE_SIZE).items():
        assert made[name].dtype == expected.dtype and torch.equal(made[name], expected), name


@pytest.mark.parametrize("answer_probability", [0.5, 0.9, 0.01])
def test_reinforce_cost_is_minus_the_answer_probability(answer_probability):
    """Bounded: a confidently wrong answer costs barely more than a guess (not ~2.5 nats more)."""
    from ARR_COC.model import answer_cost

    others = (1 - answer_probability) / 5
    probabilities = torch.full((1, 3, 6), 1 / 6)
    probabilities[0, 0] = torch.tensor([others] * 3 + [answer_probability] + [others] * 2)
    labels = torch.tensor([[-100, 3, -100]])  # the answer token (3) is predicted at position 0
    assert answer_cost(probabilities.log(), labels).item() == pytest.approx(-answer_probability, rel=1e-5)


def test_attention_allocator_pulls_the_scores_towards_the_sharpened_spread_teacher(tiny_backbone, tiny_batch):
    """The gradient on the scores is that of the cross-entropy against the sharpened, spread teacher."""
    from ARR_COC import attending
    from ARR_COC.model import NEIGHBOUR_SHARE, TEACHER_POWER

    model = build_model(tiny_backbone, K, IMAGE_SIZE, seed=0, allocator="attention").train()
    output = model(tiny_batch, "train")
    scores = output["scores"]
    scores.retain_grad()
    output["loss"].backward()
    features = model.encode_images(tiny_batch["pixel_values"], tiny_batch["image_grid_thw"])
    target = attending.spread_to_neighbours(attending.sharpen(model.attention_flow(tiny_batch, features),
                                                              TEACHER_POWER), features.grid, NEIGHBOUR_SHARE)
    expected = (torch.softmax(scores.detach() / model.selector.config.temperature, 1) - target) / scores.shape[0]
    torch.testing.assert_close(scores.grad, expected / model.selector.config.temperature)


def test_attention_flow_is_the_rollout_from_where_the_answer_starts(model, tiny_batch):
    """Checked against the eager attention weights of a stock all-token forward, by hand: per sample,
    the product over layers of (share x head-mean attention + rest x identity), first layer on the
    right, on its unpadded positions; its last row's visual part, normalised."""
    from ARR_COC import sequences
    from ARR_COC.model import ROLLOUT_ATTENTION_SHARE as share

    features = model.encode_images(tiny_batch["pixel_values"], tiny_batch["image_grid_thw"])
    target = model.attention_flow(tiny_batch, features)
    assert target.shape == (3, N) and torch.allclose(target.sum(1), torch.ones(3))
    assert model.language_vision_model.config._attn_implementation != "eager", "the eager switch is undone"
    everything = torch.arange(N).expand(3, -1)
    inputs = sequences.build_batch(model.template, tiny_batch["question_ids"], None, everything, features.grid)
    lm = model.language_vision_model
    lm.set_attn_implementation("eager")
    try:
        with torch.no_grad():
            attentions = lm(**inputs, mm_encoder_outputs=model.encoder_outputs(features, everything, None),
                            output_attentions=True, use_cache=False).attentions
    finally:
        lm.set_attn_implementation("sdpa")
    start = len(model.template.before_image)
    lengths = inputs["attention_mask"].sum(1).tolist()
    assert len(set(lengths)) > 1, "the fixture pads some questions"
    for row, length in enumerate(lengths):
        rollout = torch.eye(length)
        for layer in attentions:
            rollout = (share * layer[row].mean(0)[:length, :length] + (1 - share) * torch.eye(length)) @ rollout
        expected = rollout[length - 1, start:start + N]
        torch.testing.assert_close(target[row], expected / expected.sum())


def test_attention_flow_of_a_sample_does_not_depend_on_the_batch_padding(tiny_backbone, model, tiny_batch):
    """The rollout starts at each sample's own last prompt position, not the padded batch's last."""
    from ARR_COC.conftest import tiny_samples
    from ARR_COC.preprocess import collate

    shortest = collate(tiny_samples()[2:], tiny_backbone, IMAGE_SIZE)
    alone = model.attention_flow(shortest, model.encode_images(shortest["pixel_values"], shortest["image_grid_thw"]))
    features = model.encode_images(tiny_batch["pixel_values"], tiny_batch["image_grid_thw"])
    torch.testing.assert_close(model.attention_flow(tiny_batch, features)[2:], alone)
