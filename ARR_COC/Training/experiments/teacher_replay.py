"""Which teacher can the selector learn on a given backbone? Replays the selector's training on
stored inputs and teacher targets (docs/training.md, "Why the rollout from the answer").

Research code, not the product, never run by tests. It runs the frozen backbone once over the
training and held-out questions (about 2 CPU-minutes for 6400 + 384), keeps what the selector
sees (texture map, visual tokens, query) and the teacher's target, then trains only the selector
on them with the training loop's loss, batch size, optimiser, schedule and clipping (about 10
CPU-seconds per selector seed). It reports how often the teacher puts the target first, and the replayed
selector's recall@6 per question kind:

    tools/bazel run //ARR_COC/Training/experiments:teacher_replay -- \\
        --backbone /abs/tiny_backbone_seed1237.safetensors --teacher question_words --selector-seeds 0,7
"""

from __future__ import annotations

import argparse
import json

import torch

torch.set_num_threads(1)

from ARR_COC import attending, model as arrcoc  # noqa: E402
from ARR_COC.Training.synthetic import KINDS, SyntheticVQA  # noqa: E402

TEACHERS = ("rollout", "question_words")


@torch.no_grad()
def question_words_target(model, batch: dict, features) -> torch.Tensor:
    """[B, N] the teacher before the rollout: per visual token, the largest share of its image
    attention (mean of heads) that any question word gives it in any layer; normalised."""
    n = features.tokens.shape[1]
    attentions, inputs = model.all_token_attentions(batch, features)
    image_start = len(model.template.before_image)
    question_start = image_start + n + len(model.template.after_image)
    positions = torch.arange(inputs["input_ids"].shape[1])
    lengths = torch.tensor([len(q) for q in batch["question_ids"]])
    asking = (positions >= question_start) & (positions < question_start + lengths[:, None])
    looked_at = torch.zeros(len(lengths), n)
    for layer in attentions:
        to_image = layer.mean(1, dtype=torch.float32)[:, :, image_start:image_start + n]
        share = to_image / to_image.sum(-1, keepdim=True).clamp_min(1e-12)
        looked_at = torch.maximum(looked_at, (share * asking[..., None]).amax(1))
    return looked_at / looked_at.sum(1, keepdim=True)


@torch.no_grad()
def collect(model, size: int, seed: int, teacher: str) -> dict:
    """What the selector sees for `size` questions of the synthetic set, and the teacher's target."""
    from ARR_COC.preprocess import collate
    from ARR_COC.texture import texture_map

    data = SyntheticVQA(size, seed, model.selector.config.image_size, model.backbone.cell_pixels)
    rows: dict = {name: [] for name in ("texture", "tokens", "query", "target", "relevant", "kind")}
    for start in range(0, size, 32):
        samples = [data[i] for i in range(start, min(size, start + 32))]
        batch = collate(samples, model.backbone, data.image_size)
        features = model.encode_images(batch["pixel_values"], batch["image_grid_thw"])
        rows["texture"].append(texture_map(batch["images"], model.backbone.cell_pixels))
        rows["tokens"].append(features.tokens.float())
        rows["query"].append(model.query_embedding(batch["question_ids"]))
        rows["target"].append(model.attention_flow(batch, features) if teacher == "rollout"
                              else question_words_target(model, batch, features))
        rows["relevant"].append(batch["relevant"])
        rows["kind"].append(torch.tensor([KINDS.index(s["kind"]) for s in samples]))
    return {name: torch.cat(values) for name, values in rows.items()}


def replay(model, train: dict, held_out: dict, config, seed: int) -> dict:
    """Train a fresh selector (seeded) on the stored targets as ARRCOC.forward's "attention"
    allocator would; recall@K of its top-K on the held-out questions, overall and per kind."""
    from ARR_COC.Training.train import warmup_then_linear

    torch.manual_seed(seed)
    selector = arrcoc.Selector(model.selector.config)
    optimizer = torch.optim.AdamW(selector.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_then_linear(config.max_steps, config.warmup_ratio))
    target = arrcoc.distillation_target(train["target"], tuple(train["texture"].shape[2:]))
    order = torch.randperm(len(target), generator=torch.Generator().manual_seed(seed))
    for step in range(config.max_steps):
        rows = order[(step * config.batch_size) % len(order):][:config.batch_size]
        scores = selector(train["texture"][rows], train["tokens"][rows], train["query"][rows])
        loss = attending.distillation_surrogate(scores, target[rows], model.selector.config.temperature)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(selector.parameters(), config.max_grad_norm)
        optimizer.step()
        schedule.step()
    with torch.no_grad():
        kept = selector(held_out["texture"], held_out["tokens"], held_out["query"]).topk(model.num_visual_tokens, 1).indices
    found = held_out["relevant"].gather(1, kept).any(1).float()
    return {"selector_seed": seed, "recall_at_k": round(found.mean().item(), 3),
            "by_kind": {kind: round(found[held_out["kind"] == i].mean().item(), 3) for i, kind in enumerate(KINDS)}}


def main(argv: list[str] | None = None) -> int:
    from ARR_COC.backbone import load_backbone
    from ARR_COC.Training.benchmark import EVAL_SEED_OFFSET, SELECTOR_LEARNING_RATE
    from ARR_COC.Training.config import load_config

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", required=True, help="pretrained tiny backbone (safetensors, absolute path)")
    parser.add_argument("--teacher", choices=TEACHERS, default="rollout")
    parser.add_argument("--rollout-share", type=float, default=arrcoc.ROLLOUT_ATTENTION_SHARE)
    parser.add_argument("--selector-seeds", default="0,7")
    parser.add_argument("--steps", type=int, default=400, help="selector steps (batch 16), as the benchmark")
    parser.add_argument("--held-out", type=int, default=384)
    args = parser.parse_args(argv)
    arrcoc.ROLLOUT_ATTENTION_SHARE = args.rollout_share  # read by attention_flow at call time
    config = load_config(None, environ={}, overrides={
        "tiny_backbone_weights": args.backbone, "max_steps": args.steps, "batch_size": 16,
        "learning_rate": SELECTOR_LEARNING_RATE})
    model = arrcoc.build_model(load_backbone("tiny", config.image_size, args.backbone), config.num_visual_tokens,
                               config.image_size).eval()
    train = collect(model, args.steps * config.batch_size, 0, args.teacher)
    held_out = collect(model, args.held_out, EVAL_SEED_OFFSET, args.teacher)
    first = (held_out["target"].argmax(1) == held_out["relevant"].float().argmax(1)).float()
    report = {"backbone": args.backbone, "teacher": args.teacher, "rollout_share": args.rollout_share,
              "teacher_target_first": round(first.mean().item(), 3),
              "teacher_target_first_by_kind": {k: round(first[held_out["kind"] == i].mean().item(), 3)
                                               for i, k in enumerate(KINDS)},
              "replays": [replay(model, train, held_out, config, int(seed)) for seed in args.selector_seeds.split(",")]}
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
