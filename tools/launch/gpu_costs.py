"""`tools/bazel run //tools/launch:gpu_costs [-- --scheduling SPOT --json]`: cost per sample, GPU by GPU.

The proxy is tables.cost_per_eflop: the machine's hourly price over its peak
dense tensor throughput (machines.toml, NVIDIA's datasheets), i.e. what 10^18
FLOP cost at peak; a training step of one model costs the same FLOPs per sample
on any GPU, so at equal utilisation cost per sample follows it. Per GPU: its
smallest machine offered with the scheduling, in the cheapest region the price table has. docs/launch.md
("Which GPUs by default") records the figures and what they decided.
"""

from __future__ import annotations

import argparse
import json
import sys

from tools.launch import image_support as IS
from tools.launch import tables as T


def rows(tables: T.Tables, support: IS.ImageSupport, scheduling: str) -> list[dict]:
    """One row per GPU, cheapest per EFLOP first (unpriced last), with its ratio to the cheapest."""
    out = []
    for gpu in tables.gpus.values():
        shapes = []
        for count in T.valid_counts(gpu):
            try:
                shapes.append((count, T.machine_type(tables, gpu.name, count, scheduling)))
            except T.TableError:  # this count (or GPU) is not offered with this scheduling
                continue
        if not shapes:
            continue
        count, machine = shapes[0]
        priced = [(T.cost_per_eflop(tables, gpu.name, machine, r, scheduling), r) for r in gpu.regions]
        priced = sorted(p for p in priced if p[0] is not None)
        cost, region = priced[0] if priced else (None, None)
        out.append({"gpu": gpu.name, "compute_capability": gpu.compute_capability,
                    "image_runs_it": IS.runs(gpu, support)[0], "dense_tflops": gpu.dense_tflops,
                    "tflops_dtype": gpu.tflops_dtype, "machine_type": machine, "gpus": count, "region": region,
                    "price_per_hour": T.price(tables, gpu.name, machine, region, scheduling) if region else None,
                    "usd_per_eflop": round(cost, 4) if cost is not None else None})
    out.sort(key=lambda r: (r["usd_per_eflop"] is None, r["usd_per_eflop"] or 0.0))
    best = next((r["usd_per_eflop"] for r in out if r["usd_per_eflop"] and r["image_runs_it"]), None)
    for r in out:
        r["vs_cheapest"] = round(r["usd_per_eflop"] / best, 2) if best and r["usd_per_eflop"] else None
    return out


def table(found: list[dict], scheduling: str, price_date: str) -> str:
    head = (f"| GPU ({scheduling}, prices of {price_date}) | capability | image runs it | dense TFLOPS | machine "
            "| cheapest region | USD/h | USD per 10^18 FLOP | x cheapest |\n|---|---|---|---|---|---|---|---|---|\n")
    return head + "".join(
        f"| {r['gpu']} | {r['compute_capability']} | {'yes' if r['image_runs_it'] else 'no'} | "
        f"{r['dense_tflops']:g} {r['tflops_dtype']} | {r['machine_type']} (x{r['gpus']}) | {r['region'] or '-'} | "
        f"{r['price_per_hour'] if r['price_per_hour'] is not None else '-'} | "
        f"{r['usd_per_eflop'] if r['usd_per_eflop'] is not None else 'unpriced'} | "
        f"{r['vs_cheapest'] if r['vs_cheapest'] is not None else '-'} |\n" for r in found)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="gpu_costs", description=__doc__.splitlines()[0])
    p.add_argument("--scheduling", choices=T.SCHEDULINGS, default="SPOT")
    p.add_argument("--json", action="store_true", help="one JSON list instead of a Markdown table")
    args = p.parse_args(argv)
    tables = T.default_tables()
    found = rows(tables, IS.default_support(), args.scheduling)
    print(json.dumps(found, indent=1) if args.json else table(found, args.scheduling, tables.price_date), end="\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
