"""Benchmark the selector on the synthetic task against strong controls.

Trains a selector on the frozen pretrained tiny backbone, then answers
held-out questions with K tokens kept by: the trained selector, K random
tokens, a text-agnostic saliency rule (the K cells whose colour stands out
most from the image), K background-only cells, and all tokens. Prints, as
the last stdout line, one JSON object (its fields in docs/training.md) and
writes two PNGs: accuracy against K, and the tokens kept by the trained
selector and by the saliency rule on a few images.

    benchmark --backbone tiny_backbone.safetensors [--seed N] [--k K] [--seeds] [--out DIR]

--seeds trains 3 selector seeds on each of 3 backbone seeds (the cached
backbone and two more pretrained here) and reports means and spreads.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

import torch

from ARR_COC.Training.synthetic import KINDS, SyntheticVQA

CURVE_KS = (2, 4, 6, 8, 16)
CURVE_METHODS = ("trained", "random", "saliency")
METHODS = ("trained", "random", "saliency", "background", "all", "lm_attention")
EXTRA_BACKBONE_SEEDS = (1, 2)   # --seeds: pretrained here, next to the cached backbone
SELECTOR_SEEDS = 3              # --seeds: selector seeds seed, seed + 1, seed + 2 on each backbone
EVAL_SEED_OFFSET = 20_000       # held-out images: neither the selector's training set nor pretraining's
SWAP_IMAGES = 128               # images asked two questions for question_swap_jaccard
SELECTOR_LEARNING_RATE = 1e-2   # distillation learnt alike at 3e-3 and 1e-2; REINFORCE needs 1e-2 (docs/training.md)


def saliency_indices(images: torch.Tensor, cell_pixels: int, k: int) -> torch.Tensor:
    """[B, K] the K cells whose mean Lab colour is farthest from the image's: no question read."""
    from ARR_COC.texture import CHANNELS, texture_map

    saliency = texture_map(images.float(), cell_pixels)[:, CHANNELS.index("saliency")].flatten(1)
    return saliency.topk(k, dim=1).indices


def background_indices(objects: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
    """[B, K] random cells that hold no object at all (so none overlaps the target)."""
    noise = torch.rand(objects.shape, generator=generator).masked_fill(objects, -1.0)
    if int((~objects).sum(1).min()) < k:
        raise ValueError(f"fewer than {k} empty cells in an image: lower --k")
    return noise.topk(k, dim=1).indices


def kept_for(method: str, k: int, model, batch: dict, features, scores: torch.Tensor, objects: torch.Tensor,
             generator: torch.Generator) -> torch.Tensor:
    """[B, K] cells a method keeps (the LM reads them in raster order whatever the order here).

    `lm_attention` is the default allocator's teacher: the K tokens the LM's answer reads most
    with all tokens given (a reference that needs the all-token pass, not a selector)."""
    from ARR_COC import attending

    batch_size, n = scores.shape
    if method == "trained":
        return attending.top_k_indices(scores, k)
    if method == "random":
        return attending.random_indices(batch_size, n, k, generator)
    if method == "saliency":
        return saliency_indices(batch["images"], model.backbone.cell_pixels, k)
    if method == "background":
        return background_indices(objects, k, generator)
    if method == "all":
        return torch.arange(n).expand(batch_size, -1)
    if method == "lm_attention":
        return attending.top_k_indices(model.attention_flow(batch, features), k)
    raise ValueError(f"unknown method {method!r}; known: {METHODS}")


def method_budgets(k: int, n: int) -> list[tuple[str, int]]:
    """(method, K) pairs to evaluate: every method at K, the curve methods at every CURVE_K."""
    pairs = {(method, budget) for method in CURVE_METHODS for budget in (*CURVE_KS, k) if budget < n}
    pairs |= {("background", k), ("lm_attention", k), ("all", n)}
    return sorted(pairs)


def chance(samples: list[dict]) -> float:
    """Accuracy of always giving the most frequent answer of each question kind."""
    correct = 0
    for kind in KINDS:
        answers = [s["answer"] for s in samples if s["kind"] == kind]
        correct += max((answers.count(a) for a in set(answers)), default=0)
    return correct / len(samples)


@torch.no_grad()
def evaluate_methods(model, dataset, k: int, seed: int, batch_size: int = 32) -> dict:
    """{(method, K): {"correct": [...], "recall": [...], "kind": [...]}} and on_objects of saliency at K."""
    from ARR_COC.preprocess import collate
    from ARR_COC.Training.metrics import normalize_answer

    model.eval()
    generator = torch.Generator().manual_seed(seed)
    n = None
    rows: dict = {}
    on_objects = []
    for start in range(0, len(dataset), batch_size):
        samples = [dataset[i] for i in range(start, min(len(dataset), start + batch_size))]
        batch = collate(samples, model.backbone, dataset.image_size)
        objects = torch.stack([torch.as_tensor(s["objects"]) for s in samples])
        features = model.encode_images(batch["pixel_values"], batch["image_grid_thw"])
        scores = model.scores(batch, features)
        n = scores.shape[1]
        for method, budget in method_budgets(k, n):
            kept = kept_for(method, budget, model, batch, features, scores, objects, generator)
            texts = model.backbone.tokenizer.batch_decode(model.answer(batch, features, kept, 4),
                                                          skip_special_tokens=True)
            hits = torch.zeros_like(batch["relevant"]).scatter(1, kept, True) & batch["relevant"]
            row = rows.setdefault((method, budget), {"correct": [], "recall": [], "kind": []})
            row["correct"] += [float(normalize_answer(text) == normalize_answer(sample["answer"]))
                               for text, sample in zip(texts, samples)]
            row["recall"] += (hits.sum(1) / batch["relevant"].sum(1).clamp_min(1)).tolist()
            row["kind"] += [s["kind"] for s in samples]
            if method == "saliency" and budget == k:
                on_objects += objects.gather(1, kept).float().mean(1).tolist()
    return {"rows": rows, "on_objects": statistics.fmean(on_objects), "tokens": n}


def summarize(row: dict) -> dict:
    """accuracy, recall_at_k and by_kind of one method's per-sample results."""
    def figures(indices):
        return {"accuracy": statistics.fmean(row["correct"][i] for i in indices),
                "recall_at_k": statistics.fmean(row["recall"][i] for i in indices)}

    everything = range(len(row["correct"]))
    by_kind = {kind: figures([i for i in everything if row["kind"][i] == kind]) for kind in KINDS}
    return {**figures(everything), "by_kind": by_kind}


@torch.no_grad()
def question_swap_jaccard(model, seed: int, k: int, images: int = SWAP_IMAGES) -> float | None:
    """Mean overlap of the kept sets for two questions about different objects of the same image
    (None while the synthetic set has a single question kind)."""
    from ARR_COC import attending
    from ARR_COC.preprocess import collate

    if len(KINDS) < 2:
        return None
    kept = {}
    for kind in KINDS:
        samples = SyntheticVQA(images, seed, model.selector.config.image_size, model.backbone.cell_pixels, kind=kind)
        chosen = []
        for start in range(0, images, 32):
            batch = collate([samples[i] for i in range(start, min(images, start + 32))], model.backbone,
                            samples.image_size)
            features = model.encode_images(batch["pixel_values"], batch["image_grid_thw"])
            chosen += [set(row) for row in attending.top_k_indices(model.scores(batch, features), k).tolist()]
        kept[kind] = chosen
    overlaps = [len(a & b) / len(a | b) for first in range(len(KINDS)) for second in range(first + 1, len(KINDS))
                for a, b in zip(kept[KINDS[first]], kept[KINDS[second]])]
    return statistics.fmean(overlaps)


def step_ms(model, dataset, repeats: int = 5) -> dict:
    """Milliseconds of one forward step (vision, selector, LM) at batch 16, K kept vs all tokens."""
    from ARR_COC.preprocess import collate

    batch = collate([dataset[i] for i in range(16)], model.backbone, dataset.image_size)
    timings = {}
    with torch.no_grad():
        for name, mode in (("k", "select"), ("all", "all")):
            model(batch, mode)
            started = time.perf_counter()
            for _ in range(repeats):
                model(batch, mode)
            timings[name] = round(1000 * (time.perf_counter() - started) / repeats, 1)
    return timings


def train_selector(backbone_path: str, seed: int, k: int, steps: int, log) -> object:
    """A selector trained by the project's own training loop; returns the loaded model."""
    from ARR_COC.model import load_selector
    from ARR_COC.Training.config import load_config
    from ARR_COC.Training.train import run

    output = tempfile.mkdtemp(prefix="arr_coc_benchmark_")
    config = load_config(None, environ={}, overrides={
        "tiny_backbone_weights": backbone_path, "max_steps": steps, "output_dir": output, "seed": seed,
        "learning_rate": SELECTOR_LEARNING_RATE,
        "num_visual_tokens": k, "synthetic_train_size": steps * 16, "batch_size": 16,
        "gradient_accumulation_steps": 1, "eval_every_n_steps": 0, "save_every_n_steps": 0,
        "log_every_n_steps": 50})
    run(config, stream=log)
    return load_selector(f"{output}/model", weights_path=backbone_path)


def one_run(backbone_path: str, seed: int, k: int, steps: int, eval_samples: int,
            picture: str | None = None) -> dict:
    """Train one selector and measure every method; returns raw per-(method, K) summaries, and with
    `picture` draws the kept-tokens PNG there. Single-threaded, so runs side by side give the
    figures they give alone (a worker process each: see `all_runs`)."""
    torch.set_num_threads(1)
    model = train_selector(backbone_path, seed, k, steps, sys.stderr)
    dataset = SyntheticVQA(eval_samples, seed + EVAL_SEED_OFFSET, model.selector.config.image_size,
                           model.backbone.cell_pixels)
    measured = evaluate_methods(model, dataset, k, seed)
    result = {"summaries": {key: summarize(row) for key, row in measured["rows"].items()},
              "on_objects": measured["on_objects"], "tokens": measured["tokens"],
              "chance": chance([dataset[i] for i in range(len(dataset))]),
              "question_swap_jaccard": question_swap_jaccard(model, seed + EVAL_SEED_OFFSET, k),
              "step_ms": step_ms(model, dataset), "backbone": backbone_path, "seed": seed}
    if picture:
        from ARR_COC.Training import pictures

        result["picture"] = pictures.kept_tokens(model, dataset, k, picture)
    at_k = {m: round(result["summaries"][(m, result["tokens"] if m == "all" else k)]["accuracy"], 4)
            for m in METHODS}
    print(json.dumps({"backbone": backbone_path, "seed": seed, "accuracy": at_k}), file=sys.stderr, flush=True)
    return result


def mean_and_spread(values: list[float], name: str, into: dict) -> None:
    into[name] = round(statistics.fmean(values), 4)
    if len(values) > 1:
        into[f"{name}_std"] = round(statistics.stdev(values), 4)


def combine(runs: list[dict], k: int) -> dict:
    """The report: means over runs (and *_std when there are several)."""
    tokens = runs[0]["tokens"]
    methods = {}
    for method in METHODS:
        key = (method, tokens if method == "all" else k)
        entry: dict = {}
        for figure in ("accuracy", "recall_at_k"):
            mean_and_spread([r["summaries"][key][figure] for r in runs], figure, entry)
        entry["by_kind"] = {}
        for kind in KINDS:
            entry["by_kind"][kind] = {}
            for figure in ("accuracy", "recall_at_k"):
                mean_and_spread([r["summaries"][key]["by_kind"][kind][figure] for r in runs], figure,
                                entry["by_kind"][kind])
        methods[method] = entry
    mean_and_spread([r["on_objects"] for r in runs], "on_objects", methods["saliency"])
    report = {"k": k, "tokens": tokens, "methods": methods}
    mean_and_spread([r["chance"] for r in runs], "chance", report)
    swaps = [r["question_swap_jaccard"] for r in runs if r["question_swap_jaccard"] is not None]
    if swaps:
        mean_and_spread(swaps, "question_swap_jaccard", report)
    else:
        report["question_swap_jaccard"] = None
    report["step_ms"] = {name: round(statistics.fmean(r["step_ms"][name] for r in runs), 1) for name in ("k", "all")}
    report["runs"] = len(runs)
    return report


def runs_by_backbone(runs: list[dict], k: int) -> list[dict]:
    """Per backbone, per selector seed: the trained selector's accuracy and all tokens' on the same
    questions (the spread of --seeds comes from the backbones or from the selectors: this says which)."""
    rows: dict = {}
    for run in runs:
        row = rows.setdefault(run["backbone"], {"backbone": os.path.basename(run["backbone"]), "trained": [],
                                                "all": []})
        row["trained"].append(round(run["summaries"][("trained", k)]["accuracy"], 4))
        row["all"].append(round(run["summaries"][("all", run["tokens"])]["accuracy"], 4))
    return list(rows.values())


def curve(runs: list[dict]) -> dict:
    """{method: [(K, mean accuracy)]} for the accuracy-against-K picture."""
    keys = sorted(runs[0]["summaries"])
    lines: dict = {}
    for method, budget in keys:
        if method in (*CURVE_METHODS, "all"):
            accuracy = statistics.fmean(r["summaries"][(method, budget)]["accuracy"] for r in runs)
            lines.setdefault(method, []).append((budget, accuracy))
    return lines


def write_extra_backbone(path: str, seed: int) -> str:
    """Pretrain one more backbone (single-threaded, so the same bytes as in Bazel)."""
    from ARR_COC.Training import pretrain_tiny

    pretrain_tiny.write_backbone(path, seed=seed, log=lambda line: print(line, file=sys.stderr, flush=True))
    return path


def worker_pool():
    """One single-threaded worker process per core: the runs are independent."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    return ProcessPoolExecutor(os.cpu_count() or 1, mp_context=multiprocessing.get_context("spawn"))


def backbones(cached: str, all_seeds: bool, pool) -> list[str]:
    """The cached backbone, and with --seeds two more pretrained here with other seeds."""
    if not all_seeds:
        return [cached]
    from ARR_COC.Training.pretrain_tiny import SEED

    folder = tempfile.mkdtemp(prefix="arr_coc_backbones_")
    seeds = [SEED + offset for offset in EXTRA_BACKBONE_SEEDS]
    paths = [os.path.join(folder, f"tiny_backbone_seed{seed}.safetensors") for seed in seeds]
    return [cached, *pool.map(write_extra_backbone, paths, seeds)]


def all_runs(args, picture: str) -> list[dict]:
    """Every (backbone, selector seed) run, spread over the cores; the first draws the picture."""
    with worker_pool() as pool:
        jobs = [(path, args.seed + offset) for path in backbones(args.backbone, args.seeds, pool)
                for offset in range(SELECTOR_SEEDS if args.seeds else 1)]
        futures = [pool.submit(one_run, path, seed, args.k, args.steps, args.eval_samples,
                               picture if index == 0 else None) for index, (path, seed) in enumerate(jobs)]
        return [future.result() for future in futures]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", required=True, help="pretrained tiny backbone (safetensors)")
    parser.add_argument("--seed", type=int, default=0, help="selector and evaluation seed")
    parser.add_argument("--k", type=int, default=6, help="visual tokens kept (of 64)")
    parser.add_argument("--seeds", action="store_true", help="3 backbone seeds x 3 selector seeds")
    parser.add_argument("--out", default=None, help="folder for the PNGs (default: a temp folder)")
    parser.add_argument("--steps", type=int, default=400, help="selector training steps (batch 16)")
    parser.add_argument("--eval-samples", type=int, default=384)
    args = parser.parse_args(argv)
    if not 0 < args.k < 64:
        parser.error(f"--k must be between 1 and 63, got {args.k}")
    torch.set_num_threads(1)
    out = os.path.abspath(os.path.join(os.environ.get("BUILD_WORKING_DIRECTORY", ""), args.out)) if args.out \
        else tempfile.mkdtemp(prefix="arr_coc_benchmark_pictures_")
    os.makedirs(out, exist_ok=True)
    started = time.perf_counter()
    runs = all_runs(args, os.path.join(out, "kept_tokens.png"))
    from ARR_COC.Training import pictures

    report = combine(runs, args.k)
    report["pictures"] = {
        "accuracy_vs_k": pictures.accuracy_against_k(curve(runs), report["tokens"],
                                                     os.path.join(out, "accuracy_vs_k.png")),
        "kept_tokens": runs[0]["picture"],
    }
    report["runs_by_backbone"] = runs_by_backbone(runs, args.k)
    report["wall_seconds"] = round(time.perf_counter() - started, 1)
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
