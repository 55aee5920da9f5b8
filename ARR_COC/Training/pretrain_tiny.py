"""Briefly pretrain the tiny Qwen3-VL on the synthetic set with all visual tokens.

A random backbone cannot answer anything, so no selector can lower its loss.
This step teaches the tiny backbone the synthetic task on all tokens and
writes its weights as one safetensors file: a cached Bazel build step that
the tests, the local run and the benchmark share. It runs single-threaded
(torch.set_num_threads(1)) with fixed seeds, so the bytes it writes do not
depend on how many cores the machine has.

    pretrain_tiny --output tiny_backbone.safetensors [--seed N]
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import torch

from ARR_COC import sequences
from ARR_COC.backbone import build_tiny_model, load_backbone, tiny_pixel_values
from ARR_COC.preprocess import encode_text
from ARR_COC.Training.synthetic import KINDS, SyntheticVQA

IMAGE_SIZE = 256          # 8 x 8 = 64 merged visual tokens
SEED = 1234
DATA_SEED = 99            # pretraining images differ from the selector's training set (seed 0)
EVAL_SEED = 98            # held-out images for the all-token accuracy printed at the end
STEPS, BATCH_SIZE, LEARNING_RATE = 600, 16, 3e-3
# Curriculum: the run is cut into equal phases; within a phase, sample i has
# phase[i % len(phase)] objects (0 = a single-colour image, which teaches the
# colour words before the model must find the square among distractors).
PHASES = ("0111", "1223", "2333", "2333")


def batch_inputs(backbone, samples: list[dict]) -> dict:
    """Stock Qwen3-VL inputs with every visual token (the vision encoder trains too).

    Pixels are patched by tiny_pixel_values (the image processor's exact
    output without PIL, which took a quarter of a step at batch 16).
    """
    import numpy as np

    vision = backbone.config.vision_config
    images = torch.from_numpy(np.stack([np.asarray(s["image"]) for s in samples])).permute(0, 3, 1, 2) / 255.0
    grid = (images.shape[2] // backbone.cell_pixels, images.shape[3] // backbone.cell_pixels)
    everything = torch.arange(grid[0] * grid[1]).expand(len(samples), -1)
    template = sequences.ChatTemplate.from_tokenizer(backbone.tokenizer)
    inputs = sequences.build_batch(template, [encode_text(backbone.tokenizer, s["question"], 48) for s in samples],
                                   [encode_text(backbone.tokenizer, s["answer"], 8) for s in samples], everything, grid)
    inputs["mm_token_type_ids"] = (inputs["input_ids"] == template.image_pad).int()
    patches = grid[0] * vision.spatial_merge_size, grid[1] * vision.spatial_merge_size
    return {**inputs, "pixel_values": tiny_pixel_values(images, vision),
            "image_grid_thw": torch.tensor([[1, *patches]] * len(samples))}


def curriculum(steps: int, batch_size: int):
    """Objects in pretraining sample i (see PHASES)."""
    def objects(index: int) -> int:
        phase = PHASES[min(len(PHASES) - 1, (index // batch_size) * len(PHASES) // steps)]
        return int(phase[index % len(phase)])

    return objects


@torch.no_grad()
def all_token_accuracy(model, backbone, samples: int = 256, batch_size: int = 32) -> dict:
    """Per question kind, the share of held-out samples whose first answer token is right (all tokens)."""
    accuracy = {}
    for kind in KINDS:
        dataset = [s for s in SyntheticVQA(samples, EVAL_SEED, IMAGE_SIZE, backbone.cell_pixels) if s["kind"] == kind]
        correct = 0
        for start in range(0, len(dataset), batch_size):
            inputs = batch_inputs(backbone, dataset[start:start + batch_size])
            logits = model(**inputs, use_cache=False).logits
            first = (inputs["labels"] != sequences.IGNORE).int().argmax(dim=1)
            rows = torch.arange(len(first))
            correct += int((logits[rows, first - 1].argmax(-1) == inputs["labels"][rows, first]).sum())
        accuracy[kind] = correct / len(dataset)
    return accuracy


def pretrain(steps: int = STEPS, batch_size: int = BATCH_SIZE, learning_rate: float = LEARNING_RATE,
             seed: int = SEED, log=print) -> torch.nn.Module:
    """Train every backbone weight on the synthetic task; returns the model (eval mode)."""
    torch.manual_seed(seed)
    backbone = load_backbone("tiny", IMAGE_SIZE, seed=seed)
    model = build_tiny_model(seed=seed).train()
    dataset = SyntheticVQA(steps * batch_size, DATA_SEED, IMAGE_SIZE, backbone.cell_pixels,
                           objects=curriculum(steps, batch_size))
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, learning_rate, total_steps=steps, pct_start=0.1)
    started = time.process_time()
    for step in range(steps):
        output = model(**batch_inputs(backbone, [dataset[step * batch_size + i] for i in range(batch_size)]),
                       use_cache=False)
        output.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        if step % 50 == 0 or step == steps - 1:
            log(json.dumps({"pretrain_step": step, "loss": round(output.loss.item(), 4),
                            "cpu_seconds": round(time.process_time() - started, 1)}))
    model.eval()
    by_kind = all_token_accuracy(model, backbone)
    model.all_token_accuracy = sum(by_kind.values()) / len(by_kind)
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
    save_weights(model.state_dict(), path, {"steps": steps, "seed": seed,
                                            "all_token_accuracy": model.all_token_accuracy})
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
