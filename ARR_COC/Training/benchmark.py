"""Benchmark on the synthetic set with the pretrained tiny backbone frozen.

Trains a selector, then prints (JSON) answer accuracy and relevant-patch
recall@K for the trained selector, K random tokens and all tokens, and the
time of a forward step with K kept tokens versus all tokens.

    benchmark --backbone tiny_backbone.safetensors [--steps 200]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time

import torch

from ARR_COC.Training.config import load_config
from ARR_COC.Training.train import evaluate, run


def forward_seconds(model, batch, mode: str, repeats: int = 10) -> float:
    with torch.no_grad():
        model(batch, mode)
        started = time.perf_counter()
        for _ in range(repeats):
            model(batch, mode)
    return (time.perf_counter() - started) / repeats


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", required=True, help="pretrained tiny backbone (safetensors)")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--eval-samples", type=int, default=512)
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    output = tempfile.mkdtemp(prefix="arr_coc_benchmark_")
    config = load_config(None, environ={}, overrides={
        "tiny_backbone_weights": args.backbone, "max_steps": args.steps, "output_dir": output,
        "synthetic_train_size": args.steps * 32, "synthetic_eval_size": args.eval_samples,
        "eval_every_n_steps": 0, "save_every_n_steps": 0, "log_every_n_steps": 50})
    started = time.time()
    run(config, stream=sys.stderr)
    from ARR_COC.integration import load_selector
    from ARR_COC.preprocess import collate
    from ARR_COC.Training import data

    model = load_selector(f"{output}/model", weights_path=args.backbone)
    _, eval_set = data.build_datasets(config, model.backbone.cell_pixels)
    figures = {"train_steps": args.steps, "train_seconds": round(time.time() - started, 1),
               "k": config.num_visual_tokens, "n": (config.image_size // model.backbone.cell_pixels) ** 2,
               "eval_samples": len(eval_set)}
    for mode in ("select", "random", "all"):
        figures[mode] = {k: round(v, 4) for k, v in evaluate(model, eval_set, config, "cpu", mode).items()}
    batch = collate([eval_set[i] for i in range(config.batch_size)], model.backbone, config.image_size)
    figures["forward_ms_k_tokens"] = round(1000 * forward_seconds(model, batch, "select"), 2)
    figures["forward_ms_all_tokens"] = round(1000 * forward_seconds(model, batch, "all"), 2)
    print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
