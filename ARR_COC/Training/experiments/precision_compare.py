"""Does the selector train alike under fp32, bf16 and fp16 (+ loss scaling)? The CPU proxy behind
docs/training.md's "Precision": which precision `auto` runs on a GPU without native bf16 (T4).

Research code, not the product, never run by tests. For each precision it loads the pretrained tiny
backbone in that precision's weight dtype, trains a fresh selector (same seed, same batches) with the
training loop's loss, optimiser, schedule and clipping under CPU autocast in that dtype (fp16 with
torch.amp.GradScaler, as accelerate's fp16 path on a GPU), then evaluates it as train.evaluate does
(no autocast, the backbone in its dtype). Prints one JSON object: per precision the final training
loss, held-out accuracy and recall@K, the loss scaler's end state and skipped steps, the largest
finite selector gradient norm before clipping (unscaled), and on a fixed held-out batch the share of
each sample's K kept tokens that the fp32 and bf16 selectors also keep; and the tiny backbone's
largest activation (what fp16's 65504 ceiling is compared with). 1.5-3 CPU-minutes per precision at
the default 128 steps (docs/training.md, "Precision", has the figures):

    tools/bazel run //ARR_COC/Training/experiments:precision_compare -- \\
        --backbone /abs/tiny_backbone.safetensors [--allocator straight_through --steps 64]
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import time

import torch

# name: (autocast dtype or None, frozen backbone weights, loss scaling)
PRECISIONS = {
    "fp32": (None, torch.float32, False),
    "bf16": (torch.bfloat16, torch.bfloat16, False),                 # train.py on capability >= 8.0
    "fp16": (torch.float16, torch.float32, True),                    # fp16 autocast over fp32 weights
    "fp16_weights": (torch.float16, torch.float16, True),            # the backbone itself in fp16
}


def autocast(dtype):
    return torch.autocast("cpu", dtype=dtype, enabled=dtype is not None)


def train_selector(model, train_set, config, precision: str) -> dict:
    """train.run's loop on one process: AdamW, warm-up then linear decay, clipping after unscaling."""
    from ARR_COC.preprocess import collate
    from ARR_COC.Training import data
    from ARR_COC.Training.train import warmup_then_linear

    dtype, _, scaling = PRECISIONS[precision]
    optimizer = torch.optim.AdamW(model.selector.parameters(), lr=config.learning_rate,
                                  weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_then_linear(config.max_steps, config.warmup_ratio))
    scaler = torch.amp.GradScaler("cpu", enabled=scaling)
    loader = torch.utils.data.DataLoader(
        train_set, batch_size=config.batch_size, sampler=data.epoch_order(len(train_set), config.seed, 0),
        collate_fn=functools.partial(collate, backbone=model.backbone, image_size=config.image_size))
    losses, norms, skipped = [], [], 0
    model.train()
    for step, batch in zip(range(config.max_steps), loader):
        with autocast(dtype):
            loss = model(batch, "train")["loss"]
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
        norms.append(torch.nn.utils.clip_grad_norm_(model.selector.parameters(), config.max_grad_norm).item())
        scale = scaler.get_scale() if scaling else 1.0
        scaler.step(optimizer)
        scaler.update()
        skipped += int(scaling and scaler.get_scale() < scale)  # the scaler skips a step whose gradients overflowed
        optimizer.zero_grad(set_to_none=True)
        scheduler.step()
        losses.append(loss.item())
    model.eval()
    tail = losses[-16:]
    return {"final_loss": round(sum(tail) / len(tail), 4), "first_loss": round(losses[0], 4),
            "non_finite_losses": sum(not torch.isfinite(torch.tensor(x)) for x in losses),
            "loss_scale": scaler.get_scale() if scaling else None, "skipped_steps": skipped,
            "largest_gradient_norm": max((n for n in norms if math.isfinite(n)), default=None)}


@torch.no_grad()
def kept_sets(model, batch) -> torch.Tensor:
    """[B, K] the tokens model.generate keeps for a batch (what evaluation and inference read)."""
    features = model.encode_images(batch["pixel_values"], batch["image_grid_thw"])
    return model.kept_tokens(model.scores(batch, features), "select")[0]


def overlap(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean share of each sample's K kept tokens that both selections keep."""
    same = (a[:, :, None] == b[:, None, :]).any(2).float().sum(1) / a.shape[1]
    return round(same.mean().item(), 3)


@torch.no_grad()
def largest_activation(model, batch) -> float:
    """The largest |value| any fp32 text decoder layer of the backbone outputs on a batch, all tokens kept."""
    largest = []
    layers = model.language_vision_model.model.language_model.layers
    hooks = [layer.register_forward_hook(lambda _, __, out: largest.append(
        (out[0] if isinstance(out, tuple) else out).abs().max().item())) for layer in layers]
    try:
        model(batch, "all")
    finally:
        for hook in hooks:
            hook.remove()
    return round(max(largest), 2)


def main(argv: list[str] | None = None) -> int:
    from ARR_COC.backbone import load_backbone
    from ARR_COC.model import build_model
    from ARR_COC.preprocess import collate
    from ARR_COC.Training import data
    from ARR_COC.Training.benchmark import SELECTOR_LEARNING_RATE
    from ARR_COC.Training.config import load_config
    from ARR_COC.Training.train import evaluate

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", required=True, help="pretrained tiny backbone (safetensors, absolute path)")
    parser.add_argument("--precisions", default=",".join(PRECISIONS))
    parser.add_argument("--steps", type=int, default=128, help="selector steps (batch 16), as learning_test")
    parser.add_argument("--allocator", default="attention")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    config = load_config(None, environ={}, overrides={
        "tiny_backbone_weights": args.backbone, "max_steps": args.steps, "batch_size": 16,
        "gradient_accumulation_steps": 1, "synthetic_train_size": 16 * args.steps, "synthetic_eval_size": 128,
        "learning_rate": SELECTOR_LEARNING_RATE, "allocator": args.allocator, "seed": args.seed})
    results, kept = {}, {}
    for precision in args.precisions.split(","):
        started = time.process_time()
        backbone = load_backbone("tiny", config.image_size, args.backbone, PRECISIONS[precision][1])
        model = build_model(backbone, config.num_visual_tokens, config.image_size, config.seed, config.allocator)
        train_set, eval_set = data.build_datasets(config, backbone.cell_pixels)
        eval_batch = collate([eval_set[i] for i in range(len(eval_set))], backbone, config.image_size)
        torch.manual_seed(config.seed)
        figures = train_selector(model, train_set, config, precision)
        figures.update(evaluate(model, eval_set, config, "cpu"))
        model.eval()
        kept[precision] = kept_sets(model, eval_batch)
        with autocast(PRECISIONS[precision][0]):  # the same selector, its visual tokens from autocast
            figures["kept_overlap_autocast_vs_not"] = overlap(kept_sets(model, eval_batch), kept[precision])
        if precision == "fp32":
            figures["largest_activation"] = largest_activation(model, collate(
                [eval_set[i] for i in range(16)], backbone, config.image_size))
        figures["cpu_seconds"] = round(time.process_time() - started, 1)
        results[precision] = figures
    for precision, rows in kept.items():
        for reference in ("fp32", "bf16"):
            if reference in kept and reference != precision:
                results[precision][f"kept_overlap_with_{reference}"] = overlap(rows, kept[reference])
    print(json.dumps({"backbone": args.backbone, "steps": args.steps, "allocator": args.allocator,
                      "seed": args.seed, "eval_samples": len(eval_set), "fp16_max": torch.finfo(torch.float16).max,
                      "precisions": results}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
