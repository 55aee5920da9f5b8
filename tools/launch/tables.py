"""Pure, table-driven lookups over the launcher's data files.

Machine shapes, region availability, quota metric names and prices are facts
about Google Cloud that change over time; they live in `data/*.toml` so that a
refresh is a data change, and every function here only reads those tables.
Vertex does not check machine/accelerator compatibility itself, so these
functions must refuse bad combinations with an error that says what to fix.
"""

from __future__ import annotations

import dataclasses
import functools
import pathlib
import re
import tomllib

DATA_DIR = pathlib.Path(__file__).resolve().parent / "data"

SCHEDULINGS = ("SPOT", "STANDARD", "FLEX_START")
QUOTA_SERVICE = "aiplatform.googleapis.com"


class TableError(ValueError):
    """A request the data tables cannot satisfy; the message says what to fix."""


@dataclasses.dataclass(frozen=True)
class Shape:
    machine_type: str
    gpus: int
    spot_only: bool = False
    cpus: int = 0  # vCPUs and memory (GiB): what the price refresh prices a machine by
    memory_gb: float = 0.0


@dataclasses.dataclass(frozen=True)
class Gpu:
    name: str
    accelerator: str
    quota: str
    aliases: tuple[str, ...]
    shapes: tuple[Shape, ...]
    regions: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class Tables:
    gpus: dict  # name -> Gpu, in file order
    prices: dict  # machine_type -> region -> {on_demand, spot, flex_start}
    price_date: str
    currency: str


def _load_toml(path: pathlib.Path) -> dict:
    with open(path, "rb") as f:
        return tomllib.load(f)


def load_tables(data_dir: pathlib.Path | str = DATA_DIR) -> Tables:
    """Reads the three data files into one immutable view (pure given the files)."""
    data_dir = pathlib.Path(data_dir)
    machines = _load_toml(data_dir / "machines.toml")["gpu"]
    regions = _load_toml(data_dir / "regions.toml")["gpu"]
    prices = _load_toml(data_dir / "prices.toml")
    gpus = {}
    for name, spec in machines.items():
        spot_only = set(spec.get("spot_only", ()))
        shapes = tuple(
            Shape(s["type"], int(s["gpus"]), s["type"] in spot_only,
                  int(s.get("cpus", 0)), float(s.get("memory_gb", 0)))
            for s in spec["shapes"]
        )
        gpus[name] = Gpu(
            name=name,
            accelerator=spec["accelerator"],
            quota=spec["quota"],
            aliases=tuple(spec.get("aliases", ())),
            shapes=shapes,
            regions=tuple(regions.get(name, ())),
        )
    return Tables(
        gpus=gpus,
        prices=prices.get("machine", {}),
        price_date=str(prices.get("date", "unknown")),
        currency=prices.get("currency", "USD"),
    )


@functools.lru_cache(maxsize=1)
def default_tables() -> Tables:
    return load_tables(DATA_DIR)


def _norm(name: str) -> str:
    return re.sub(r"[^A-Z0-9]", "", name.upper())


def resolve_gpu(tables: Tables, name: str) -> Gpu:
    """Finds a GPU by its table name, an alias or its Vertex enum name."""
    wanted = _norm(name)
    for gpu in tables.gpus.values():
        if wanted in {_norm(gpu.name), _norm(gpu.accelerator), *map(_norm, gpu.aliases)}:
            return gpu
    raise TableError(f"unknown GPU {name!r}; known GPUs: {', '.join(tables.gpus)}")


def valid_counts(gpu: Gpu) -> list[int]:
    return sorted({s.gpus for s in gpu.shapes})


def machine_type(
    tables: Tables, gpu_name: str, count: int, scheduling: str = "SPOT", preferred: str | None = None
) -> str:
    """The machine type for COUNT GPUs, or an error listing the counts that exist.

    The first shape in table order wins, so the table decides the default
    (the smallest host for that GPU count); `preferred` picks another shape
    with the same count. Spot-only shapes are refused for STANDARD.
    """
    check_scheduling(scheduling)
    gpu = resolve_gpu(tables, gpu_name)
    shapes = [s for s in gpu.shapes if s.gpus == count]
    if not shapes:
        raise TableError(
            f"{gpu.name}: no machine shape has {count} GPU(s); valid counts: "
            f"{', '.join(map(str, valid_counts(gpu)))}"
        )
    if scheduling == "STANDARD":
        allowed = [s for s in shapes if not s.spot_only]
        if not allowed:
            raise TableError(
                f"{gpu.name} x{count} ({', '.join(s.machine_type for s in shapes)}) is offered "
                "only with SPOT or FLEX_START scheduling"
            )
        shapes = allowed
    if preferred:
        for s in shapes:
            if s.machine_type == preferred:
                return s.machine_type
        raise TableError(
            f"machine type {preferred!r} does not fit {gpu.name} x{count}; "
            f"use one of: {', '.join(s.machine_type for s in shapes)}"
        )
    return shapes[0].machine_type


def regions_for(tables: Tables, gpu_name: str) -> tuple[str, ...]:
    return resolve_gpu(tables, gpu_name).regions


def check_region(tables: Tables, gpu_name: str, region: str) -> None:
    """Raises with the regions that do offer the GPU when REGION does not."""
    gpu = resolve_gpu(tables, gpu_name)
    if region not in gpu.regions:
        raise TableError(
            f"region {region} does not offer {gpu.name} for Vertex AI training; "
            f"regions that do: {', '.join(gpu.regions)}"
        )


def check_scheduling(scheduling: str) -> str:
    if scheduling not in SCHEDULINGS:
        raise TableError(f"unknown scheduling {scheduling!r}; use one of: {', '.join(SCHEDULINGS)}")
    return scheduling


def quota_metric(tables: Tables, gpu_name: str, scheduling: str) -> str:
    """The Cloud Quotas metric that limits this GPU under this scheduling.

    Spot capacity is counted against the preemptible metric; STANDARD and
    FLEX_START against the on-demand one.
    """
    gpu = resolve_gpu(tables, gpu_name)
    check_scheduling(scheduling)
    kind = "preemptible_" if scheduling == "SPOT" else ""
    return f"{QUOTA_SERVICE}/custom_model_training_{kind}nvidia_{gpu.quota}_gpus"


_PRICE_COLUMN = {"SPOT": "spot", "STANDARD": "on_demand", "FLEX_START": "flex_start"}


def price(tables: Tables, machine: str, region: str, scheduling: str) -> float | None:
    """Hourly price of the whole machine, or None when the table does not know it."""
    row = tables.prices.get(machine, {}).get(region)
    if not row:
        return None
    value = row.get(_PRICE_COLUMN[check_scheduling(scheduling)])
    return float(value) if value is not None else None
