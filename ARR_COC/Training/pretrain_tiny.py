"""Briefly pretrain the tiny Qwen3-VL on the synthetic set with all visual tokens.

A random backbone cannot answer anything, so no selector can lower its loss
(QWEN3VL.md). This step teaches the tiny backbone the synthetic task on all
tokens, deterministically (fixed seed, CPU), and writes its weights as one
safetensors file: a cached Bazel build step that the tests, the local run and
the benchmark share.

    pretrain_tiny --output tiny_backbone.safetensors
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import torch

from ARR_COC import sequences
from ARR_COC.backbone import build_tiny_model, load_backbone
from ARR_COC.preprocess import collate
from ARR_COC.Training.synthetic import SyntheticVQA

IMAGE_SIZE = 256          # 8 x 8 = 64 merged visual tokens
SEED = 1234
DATA_SEED = 99            # pretraining images differ from the selector's training set (seed 0)
EVAL_SEED = 98            # held-out images for the all-token accuracy printed at the end
# Curriculum: the run is cut into equal phases; within a phase, sample i has
# phase[i % len(phase)] objects (0 = a single-colour image, which teaches the
# colour words before the model must find the square among distractors).
PHASES = ("0111", "1223", "2333", "2333")


def full_image_inputs(backbone, batch: dict) -> dict:
    """Stock Qwen3-VL inputs with every visual token (the vision encoder trains too)."""
    grid = tuple(int(v) // backbone.merge_size for v in batch["image_grid_thw"][0, 1:])
    everything = torch.arange(grid[0] * grid[1]).expand(len(batch["question_ids"]), -1)
    template = sequences.ChatTemplate.from_tokenizer(backbone.tokenizer)
    inputs = sequences.build_batch(template, batch["question_ids"], batch["answer_ids"], everything, grid)
    inputs["mm_token_type_ids"] = (inputs["input_ids"] == template.image_pad).int()
    return {**inputs, "pixel_values": batch["pixel_values"], "image_grid_thw": batch["image_grid_thw"]}


def curriculum(steps: int, batch_size: int):
    """Objects in pretraining sample i (see PHASES)."""
    def objects(index: int) -> int:
        phase = PHASES[min(len(PHASES) - 1, (index // batch_size) * len(PHASES) // steps)]
        return int(phase[index % len(phase)])

    return objects


@torch.no_grad()
def all_token_accuracy(model, backbone, samples: int = 256, batch_size: int = 32) -> float:
    """Share of held-out synthetic samples whose first answer token is right, every visual token given."""
    dataset = SyntheticVQA(samples, EVAL_SEED, IMAGE_SIZE, backbone.cell_pixels)
    correct = 0
    for start in range(0, samples, batch_size):
        batch = collate([dataset[i] for i in range(start, min(samples, start + batch_size))], backbone, IMAGE_SIZE)
        inputs = full_image_inputs(backbone, batch)
        logits = model(**inputs, use_cache=False).logits
        first = (inputs["labels"] != sequences.IGNORE).int().argmax(dim=1)
        rows = torch.arange(len(first))
        correct += int((logits[rows, first - 1].argmax(-1) == inputs["labels"][rows, first]).sum())
    return correct / samples


def pretrain(steps: int, batch_size: int, learning_rate: float, log=print) -> torch.nn.Module:
    """Train every backbone weight on the synthetic task; returns the model (eval mode)."""
    torch.manual_seed(SEED)
    backbone = load_backbone("tiny", IMAGE_SIZE, seed=SEED)
    model = build_tiny_model(seed=SEED).train()
    dataset = SyntheticVQA(steps * batch_size, DATA_SEED, IMAGE_SIZE, backbone.cell_pixels,
                           objects=curriculum(steps, batch_size))
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, learning_rate, total_steps=steps, pct_start=0.1)
    started = time.time()
    for step in range(steps):
        batch = collate([dataset[step * batch_size + i] for i in range(batch_size)], backbone, IMAGE_SIZE)
        output = model(**full_image_inputs(backbone, batch), use_cache=False)
        output.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        if step % 25 == 0 or step == steps - 1:
            log(json.dumps({"pretrain_step": step, "loss": round(output.loss.item(), 4),
                            "seconds": round(time.time() - started, 1)}))
    model.eval()
    accuracy = all_token_accuracy(model, backbone)
    log(json.dumps({"pretrain_done": steps, "all_token_accuracy": accuracy,
                    "seconds": round(time.time() - started, 1)}))
    model.all_token_accuracy = accuracy
    return model


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", required=True, help="safetensors file to write")
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--learning-rate", type=float, default=3e-3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    model = pretrain(args.steps, args.batch_size, args.learning_rate, log=lambda line: print(line, file=sys.stderr))
    from safetensors.torch import save_file

    state = {name: tensor.contiguous() for name, tensor in model.state_dict().items()}
    save_file(state, args.output, metadata={"steps": str(args.steps), "seed": str(SEED),
                                                  "all_token_accuracy": str(model.all_token_accuracy)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
