"""Pretrain the tiny Qwen3-VL on the synthetic set.

A random backbone cannot answer anything, so no selector can lower its loss.
This step teaches the tiny backbone the synthetic task on all tokens and
writes its weights as one safetensors file: a cached Bazel build step that
the tests, the local run and the benchmark share. Two stages
(docs/training.md says why each is needed):

1. the vision tower alone learns each cell's shape and colour, then is frozen;
2. the language model learns the one-hop questions, objects per image
   growing 1, 2, 4, 8, then NUM_OBJECTS (14), with the answer also scored at the naming word;
   in its second half every other step sees only the target's cell and a
   random number of others, so that it also answers from a few tokens.

It runs single-threaded (torch.set_num_threads(1)) with fixed seeds, so the
bytes it writes do not depend on how many cores the machine has.

    pretrain_tiny --output tiny_backbone.safetensors [--seed N]
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np
import torch

from ARR_COC import sequences
from ARR_COC.backbone import build_tiny_model, load_backbone, tiny_pixel_values
from ARR_COC.preprocess import encode_text
from ARR_COC.Training.synthetic import KINDS, NUM_OBJECTS, SyntheticVQA
from ARR_COC.vocabulary import COLOURS, SHAPES

IMAGE_SIZE = 256          # 8 x 8 = 64 merged visual tokens
SEED = 1234
VISION_SEED = 97          # images of the vision tower's own stage
DATA_SEED = 99            # pretraining images differ from the selector's training set (seed 0)
EVAL_SEED = 98            # held-out images for the all-token accuracy printed at the end
BATCH_SIZE = 16
VISION_STEPS, VISION_LEARNING_RATE = 150, 3e-3
STEPS, LEARNING_RATE = 4800, 5e-3  # 3600 left one backbone seed in three unable to answer one kind
# Stage 2 curriculum: the run is cut into equal phases; phase p has PHASES[p] objects per image
# (one object first, so the words are learnt before the object has to be found among others).
PHASES = (1, 2, 4, 8) + (NUM_OBJECTS,) * 8
# In the second half of stage 2 every other step keeps only some visual tokens (pruned_cells): on all
# tokens alone, one backbone in three answered 0.18 from the 6 that hold the answer (docs/training.md).
PRUNED_FROM, PRUNED_EVERY = 0.5, 2


def pixel_batch(backbone, samples: list[dict]) -> tuple[torch.Tensor, torch.Tensor, tuple[int, int]]:
    """(pixel_values, image_grid_thw, merged grid) by tiny_pixel_values: the image processor's
    exact output without PIL, which took a quarter of a step at batch 16."""
    vision = backbone.config.vision_config
    images = torch.from_numpy(np.stack([np.asarray(s["image"]) for s in samples])).permute(0, 3, 1, 2)
    grid = (images.shape[2] // backbone.cell_pixels, images.shape[3] // backbone.cell_pixels)
    patches = grid[0] * vision.spatial_merge_size, grid[1] * vision.spatial_merge_size
    return tiny_pixel_values(images, vision), torch.tensor([[1, *patches]] * len(samples)), grid


def batch_inputs(backbone, samples: list[dict], kept: torch.Tensor | None = None) -> dict:
    """Stock Qwen3-VL inputs with every visual token, or with the kept ones [B, K] (raster order)."""
    pixel_values, grid_thw, grid = pixel_batch(backbone, samples)
    everything = torch.arange(grid[0] * grid[1]).expand(len(samples), -1)
    template = sequences.ChatTemplate.from_tokenizer(backbone.tokenizer)
    inputs = sequences.build_batch(template, [encode_text(backbone.tokenizer, s["question"], 48) for s in samples],
                                   [encode_text(backbone.tokenizer, s["answer"], 8) for s in samples],
                                   everything if kept is None else kept, grid)
    inputs["mm_token_type_ids"] = (inputs["input_ids"] == template.image_pad).int()
    inputs = {**inputs, "pixel_values": pixel_values, "image_grid_thw": grid_thw}
    return inputs if kept is None else {**inputs, "kept": kept}


def pruned_cells(samples: list[dict], generator: torch.Generator) -> torch.Tensor:
    """[B, K] the target's cell and K - 1 other random cells, raster order, K drawn from 1..N per
    batch: the LM learns to answer from the few tokens a selector keeps, not only from all of them."""
    relevant = torch.from_numpy(np.stack([s["relevant"] for s in samples]))
    k = int(torch.randint(1, relevant.shape[1] + 1, (1,), generator=generator))
    noise = torch.rand(relevant.shape, generator=generator) + 2.0 * relevant  # the target always kept
    return noise.topk(k, dim=1).indices.sort(dim=1).values


def language_logits(model, inputs: dict) -> torch.Tensor:
    """The stock forward's logits for these inputs, computed the short way (a third less CPU):
    vision tokens scattered into the embeddings, then the language model with the given M-RoPE
    positions. pretrain_tiny_test checks it against model(**inputs)."""
    with torch.no_grad():  # the tower is frozen in stage 2
        visual = model.model.visual(inputs["pixel_values"], grid_thw=inputs["image_grid_thw"]).pooler_output
    embeddings = model.model.language_model.embed_tokens(inputs["input_ids"])
    slots = (inputs["input_ids"] == model.config.image_token_id).unsqueeze(-1)
    if "kept" in inputs:  # only the kept rows of each image's merged tokens
        kept = inputs["kept"]
        visual = visual.view(kept.shape[0], -1, visual.shape[-1])
        visual = sequences.kept_rows(visual, kept)
    embeddings = embeddings.masked_scatter(slots, visual.to(embeddings.dtype))
    hidden = model.model.language_model(inputs_embeds=embeddings, attention_mask=inputs["attention_mask"],
                                        position_ids=inputs["position_ids"], use_cache=False).last_hidden_state
    return model.lm_head(hidden)


def first_answer_positions(labels: torch.Tensor) -> torch.Tensor:
    """[B] index of each sample's first answer token."""
    return (labels != sequences.IGNORE).int().argmax(dim=1)


def curriculum(steps: int, batch_size: int):
    """Objects in pretraining sample i (see PHASES)."""
    def objects(index: int) -> int:
        return PHASES[min(len(PHASES) - 1, (index // batch_size) * len(PHASES) // steps)]

    return objects


def train_vision_tower(model, backbone, steps: int, batch_size: int, learning_rate: float, log) -> None:
    """Stage 1: the tower (patch and position embedding, merger) learns each cell's shape and colour
    (0 = empty) through two linear heads, then is frozen. Trained together with the language model
    instead, its tokens kept moving and the language model stayed at chance (docs/training.md)."""
    visual = model.model.visual
    shape_classes = 1 + len(SHAPES)
    heads = torch.nn.Linear(model.config.vision_config.out_hidden_size, shape_classes + 1 + len(COLOURS))
    optimizer = torch.optim.AdamW([*visual.parameters(), *heads.parameters()], lr=learning_rate, weight_decay=0.01)
    dataset = SyntheticVQA(steps * batch_size, VISION_SEED, IMAGE_SIZE, backbone.cell_pixels)
    for step in range(steps):
        samples = [dataset[step * batch_size + i] for i in range(batch_size)]
        pixel_values, grid_thw, _ = pixel_batch(backbone, samples)
        logits = heads(visual(pixel_values, grid_thw=grid_thw).pooler_output)  # merged tokens in raster order
        shapes = torch.from_numpy(np.concatenate([s["cell_shapes"] for s in samples]))
        colours = torch.from_numpy(np.concatenate([s["cell_colours"] for s in samples]))
        loss = (torch.nn.functional.cross_entropy(logits[:, :shape_classes], shapes)
                + torch.nn.functional.cross_entropy(logits[:, shape_classes:], colours))
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if step % 50 == 0 or step == steps - 1:
            log(json.dumps({"vision_step": step, "loss": round(loss.item(), 4)}))
    visual.requires_grad_(False)


def answer_and_naming_word_loss(model, inputs: dict, naming_offset: int) -> torch.Tensor:
    """The answer loss, plus the first answer token predicted at the question's last (naming)
    word: a one-hop target (naming word -> the object's token) that the answer position then
    only has to copy. Without it the 2-layer model stayed at chance (docs/training.md)."""
    logits = language_logits(model, inputs)
    labels = inputs["labels"]
    answer_loss = torch.nn.functional.cross_entropy(logits[:, :-1].transpose(1, 2), labels[:, 1:],
                                                    ignore_index=sequences.IGNORE)
    first = first_answer_positions(labels)
    rows = torch.arange(len(first))
    return answer_loss + torch.nn.functional.cross_entropy(logits[rows, first - naming_offset], labels[rows, first])


@torch.no_grad()
def all_token_accuracy(model, backbone, samples: int = 96, batch_size: int = 32) -> dict:
    """Per question kind, the share of held-out samples whose first answer token is right (all tokens)."""
    accuracy = {}
    for kind in KINDS:
        dataset = SyntheticVQA(samples, EVAL_SEED, IMAGE_SIZE, backbone.cell_pixels, kind=kind)
        correct = 0
        for start in range(0, samples, batch_size):
            inputs = batch_inputs(backbone, [dataset[i] for i in range(start, min(samples, start + batch_size))])
            logits = language_logits(model, inputs)
            first = first_answer_positions(inputs["labels"])
            rows = torch.arange(len(first))
            correct += int((logits[rows, first - 1].argmax(-1) == inputs["labels"][rows, first]).sum())
        accuracy[kind] = correct / samples
    return accuracy


def pretrain(steps: int = STEPS, batch_size: int = BATCH_SIZE, learning_rate: float = LEARNING_RATE,
             seed: int = SEED, log=print, vision_steps: int = VISION_STEPS) -> torch.nn.Module:
    """Stage 1 the vision tower (then frozen), stage 2 the language model; returns the model (eval mode)."""
    torch.manual_seed(seed)
    backbone = load_backbone("tiny", IMAGE_SIZE, seed=seed)
    model = build_tiny_model(seed=seed).train()
    started = time.process_time()
    train_vision_tower(model, backbone, vision_steps, batch_size, VISION_LEARNING_RATE, log)
    template = sequences.ChatTemplate.from_tokenizer(backbone.tokenizer)
    naming_offset = len(template.before_answer) + 1
    dataset = SyntheticVQA(steps * batch_size, DATA_SEED, IMAGE_SIZE, backbone.cell_pixels,
                           objects=curriculum(steps, batch_size))
    trained = [parameter for parameter in model.parameters() if parameter.requires_grad]
    optimizer = torch.optim.AdamW(trained, lr=learning_rate, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, learning_rate, total_steps=steps, pct_start=0.1)
    pruning = torch.Generator().manual_seed(seed)
    for step in range(steps):
        samples = [dataset[step * batch_size + i] for i in range(batch_size)]
        pruned = step >= PRUNED_FROM * steps and step % PRUNED_EVERY == PRUNED_EVERY - 1
        inputs = batch_inputs(backbone, samples, pruned_cells(samples, pruning) if pruned else None)
        loss = answer_and_naming_word_loss(model, inputs, naming_offset)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trained, 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        if step % 100 == 0 or step == steps - 1:
            log(json.dumps({"pretrain_step": step, "loss": round(loss.item(), 4),
                            "cpu_seconds": round(time.process_time() - started, 1)}))
    model.eval()
    by_kind = all_token_accuracy(model, backbone)
    model.all_token_accuracy = sum(by_kind.values()) / len(by_kind)
    model.by_kind = by_kind
    log(json.dumps({"pretrain_done": steps, "all_token_accuracy": model.all_token_accuracy, "by_kind": by_kind,
                    "cpu_seconds": round(time.process_time() - started, 1)}))
    return model


def save_weights(state: dict, path: str, recipe: dict) -> None:
    """Weights plus the recipe as safetensors, the same bytes for the same weights in any process.

    One metadata key: safetensors writes its metadata map in hash order, which
    differs between processes, so several keys made tensor-for-tensor equal
    files with different sha256.
    """
    from safetensors.torch import save_file

    tensors = {name: tensor.contiguous() for name, tensor in state.items()}
    save_file(tensors, path, metadata={"pretrain_tiny": json.dumps(recipe, sort_keys=True)})


def write_backbone(path: str, seed: int = SEED, steps: int = STEPS, batch_size: int = BATCH_SIZE,
                   learning_rate: float = LEARNING_RATE, log=print) -> float:
    """Pretrain single-threaded and write the weights; returns the all-token accuracy."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the same bytes on any machine, whatever its core count
    try:
        model = pretrain(steps, batch_size, learning_rate, seed, log)
    finally:
        torch.set_num_threads(threads)
    save_weights(model.state_dict(), path, {"steps": steps, "vision_steps": VISION_STEPS, "seed": seed,
                                            "pruned_from": PRUNED_FROM, "pruned_every": PRUNED_EVERY,
                                            "all_token_accuracy": model.all_token_accuracy,
                                            "by_kind": model.by_kind})
    return model.all_token_accuracy


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", required=True, help="safetensors file to write")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--steps", type=int, default=STEPS)
    parser.add_argument("--batch-size", type=int, default=BATCH_SIZE)
    parser.add_argument("--learning-rate", type=float, default=LEARNING_RATE)
    args = parser.parse_args(argv)
    write_backbone(args.output, args.seed, args.steps, args.batch_size, args.learning_rate,
                   log=lambda line: print(line, file=sys.stderr, flush=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
