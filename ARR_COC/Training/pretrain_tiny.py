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
from ARR_COC.Training.synthetic import KINDS, SyntheticVQA, make_sample

IMAGE_SIZE = 256          # 8 x 8 = 64 merged visual tokens
SEED = 1234
DATA_SEED = 99            # pretraining images differ from the selector's training set (seed 0)
EVAL_SEED = 98            # held-out images for the all-token accuracy printed at the end
STEPS, BATCH_SIZE, LEARNING_RATE = 600, 16, 1e-2
# Curriculum: the run is cut into equal phases (objects per image, cycled step
# by step; which visual tokens the LM gets). "objects": only the cells that
# hold an object, in raster order at their true positions (as a selector would
# keep them), so the few tokens that matter are not drowned among 64 while the
# model learns to bind the question's words to them; "all": every token.
PHASES = (((1, 2, 3), "objects"), ((2, 3, 4, 6), "objects"), ((3, 6, 12), "objects"), ((12,), "objects"),
          ((6, 12), "all"), ((12,), "all"))


def batch_inputs(backbone, samples: list[dict], kept: torch.Tensor | None = None) -> dict:
    """Qwen3-VL inputs for samples: every visual token, or the kept cells [B, K] in raster order."""
    import numpy as np

    vision = backbone.config.vision_config
    images = torch.from_numpy(np.stack([np.asarray(s["image"]) for s in samples])).permute(0, 3, 1, 2) / 255.0
    grid = (images.shape[2] // backbone.cell_pixels, images.shape[3] // backbone.cell_pixels)
    if kept is None:
        kept = torch.arange(grid[0] * grid[1]).expand(len(samples), -1)
    template = sequences.ChatTemplate.from_tokenizer(backbone.tokenizer)
    inputs = sequences.build_batch(template, [encode_text(backbone.tokenizer, s["question"], 48) for s in samples],
                                   [encode_text(backbone.tokenizer, s["answer"], 8) for s in samples], kept, grid)
    patches = grid[0] * vision.spatial_merge_size, grid[1] * vision.spatial_merge_size
    return {**inputs, "pixel_values": tiny_pixel_values(images, vision), "kept": kept,
            "image_grid_thw": torch.tensor([[1, *patches]] * len(samples))}


def forward(model, inputs: dict):
    """The tiny Qwen3-VL on the kept visual tokens only; the vision tower trains too."""
    from transformers.models.qwen3_vl.modeling_qwen3_vl import BaseModelOutputWithDeepstackFeatures

    features = model.model.get_image_features(inputs["pixel_values"], inputs["image_grid_thw"])
    kept = inputs["kept"]

    def pick(rows) -> tuple:
        rows = torch.stack(rows)
        return tuple(torch.gather(rows, 1, kept.unsqueeze(-1).expand(-1, -1, rows.shape[-1])))

    encoded = BaseModelOutputWithDeepstackFeatures(
        pooler_output=pick(features.pooler_output),
        deepstack_features=[pick(layer) for layer in features.deepstack_features])
    text = {name: inputs[name] for name in ("input_ids", "attention_mask", "position_ids", "labels")}
    return model(**text, mm_encoder_outputs={"image": encoded}, use_cache=False)


def phase_of(step: int, steps: int) -> tuple[int, bool]:
    """(objects per image, whether the LM sees every token) at a pretraining step (see PHASES)."""
    counts, tokens = PHASES[min(len(PHASES) - 1, step * len(PHASES) // steps)]
    return counts[step % len(counts)], tokens == "all"


def step_samples(seed: int, step: int, steps: int, batch_size: int, cell_pixels: int) -> tuple[list, object]:
    """The samples of one pretraining step and the cells the LM gets (None: all)."""
    objects, everything = phase_of(step, steps)
    samples = [make_sample(seed, step * batch_size + i, IMAGE_SIZE, cell_pixels, objects) for i in range(batch_size)]
    if everything:
        return samples, None
    return samples, torch.stack([torch.from_numpy(s["objects"].nonzero()[0]) for s in samples])


@torch.no_grad()
def all_token_accuracy(model, backbone, samples: int = 96, batch_size: int = 32) -> dict:
    """Per question kind, the share of held-out samples whose first answer token is right (all tokens)."""
    accuracy = {}
    for kind in KINDS:
        dataset = SyntheticVQA(samples, EVAL_SEED, IMAGE_SIZE, backbone.cell_pixels, kind=kind)
        correct = 0
        for start in range(0, samples, batch_size):
            inputs = batch_inputs(backbone, [dataset[i] for i in range(start, min(samples, start + batch_size))])
            logits = forward(model, inputs).logits
            first = (inputs["labels"] != sequences.IGNORE).int().argmax(dim=1)
            rows = torch.arange(len(first))
            correct += int((logits[rows, first - 1].argmax(-1) == inputs["labels"][rows, first]).sum())
        accuracy[kind] = correct / samples
    return accuracy


def pretrain(steps: int = STEPS, batch_size: int = BATCH_SIZE, learning_rate: float = LEARNING_RATE,
             seed: int = SEED, log=print) -> torch.nn.Module:
    """Train every backbone weight on the synthetic task; returns the model (eval mode)."""
    torch.manual_seed(seed)
    backbone = load_backbone("tiny", IMAGE_SIZE, seed=seed)
    model = build_tiny_model(seed=seed).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, learning_rate, total_steps=steps, pct_start=0.1)
    started = time.process_time()
    for step in range(steps):
        inputs = batch_inputs(backbone, *step_samples(DATA_SEED + seed - SEED, step, steps, batch_size,
                                                      backbone.cell_pixels))
        output = forward(model, inputs)
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


def write_backbone(path: str, seed: int = SEED, steps: int = STEPS, batch_size: int = BATCH_SIZE,
                   learning_rate: float = LEARNING_RATE, log=print) -> float:
    """Pretrain single-threaded and write the weights; returns the all-token accuracy."""
    from safetensors.torch import save_file

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the same bytes on any machine, whatever its core count
    try:
        model = pretrain(steps, batch_size, learning_rate, seed, log)
    finally:
        torch.set_num_threads(threads)
    state = {name: tensor.contiguous() for name, tensor in model.state_dict().items()}
    save_file(state, path, metadata={"steps": str(steps), "seed": str(seed),
                                     "all_token_accuracy": str(model.all_token_accuracy)})
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
