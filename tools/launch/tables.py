"""Pure, table-driven lookups over the launcher's data files.

Machine shapes, region availability, scheduling rules, quota metric names and
prices are facts about Google Cloud that change over time; they live in
`data/*.toml` so that a refresh is a data change, and every function here only
reads those tables. Vertex refuses a machine/accelerator pair that does not fit
only at job creation; these functions refuse it (and any other combination
Vertex would reject) before anything is pushed, with an error that says what to fix.
"""

from __future__ import annotations

import dataclasses
import functools
import pathlib
import re
import tomllib

from tools.launch.errors import TableError

DATA_DIR = pathlib.Path(__file__).resolve().parent / "data"

SCHEDULINGS = ("SPOT", "STANDARD", "FLEX_START")
QUOTA_SERVICE = "aiplatform.googleapis.com"


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
    compute_capability: str = ""  # "8.9": which of the image's compiled kernels load (image_support.runs)
    dense_tflops: float = 0.0  # peak dense tensor throughput per GPU, in tflops_dtype (datasheets)
    tflops_dtype: str = ""  # "bf16"; "fp16" or "fp32" where the GPU has no bf16 tensor cores


@dataclasses.dataclass(frozen=True)
class Scheduling:
    """What one Vertex scheduling strategy allows (data/scheduling.toml)."""

    name: str
    preemptible_quota: bool  # counted against the preemptible quota metric
    gpus: tuple[str, ...] | None  # GPU names offered with it; None: every GPU
    max_timeout_s: int | None
    max_wait_s: tuple[int, int] | None  # accepted max_wait_duration range; None: not used


@dataclasses.dataclass(frozen=True)
class Tables:
    gpus: dict  # name -> Gpu, in file order
    prices: dict  # GPU name -> machine_type -> region -> {on_demand, spot, flex_start}
    price_date: str
    currency: str
    schedulings: dict  # name -> Scheduling


def _load_toml(path: pathlib.Path) -> dict:
    with open(path, "rb") as f:
        return tomllib.load(f)


def load_tables(data_dir: pathlib.Path | str = DATA_DIR) -> Tables:
    """Reads the four data files into one immutable view (pure given the files)."""
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
            **_performance(name, spec),
        )
    return Tables(
        gpus=gpus,
        prices=prices.get("gpu", {}),
        price_date=str(prices.get("date", "unknown")),
        currency=prices.get("currency", "USD"),
        schedulings=_schedulings(_load_toml(data_dir / "scheduling.toml")["strategy"], gpus),
    )


_CAPABILITY = re.compile(r"^[0-9]+\.[0-9]$")
_DTYPES = ("bf16", "fp16", "fp32")


def _performance(name: str, spec: dict) -> dict:
    """A GPU's compute capability and throughput from machines.toml; missing or malformed is a TableError."""
    missing = [k for k in ("compute_capability", "dense_tflops", "tflops_dtype") if k not in spec]
    if missing:
        raise TableError(f"machines.toml: [gpu.{name}] lacks {', '.join(missing)} (NVIDIA's datasheet "
                         "and CUDA GPU compute capability list give them)")
    cap, tflops, dtype = str(spec["compute_capability"]), spec["dense_tflops"], spec["tflops_dtype"]
    if not _CAPABILITY.match(cap):
        raise TableError(f"machines.toml: [gpu.{name}] compute_capability {cap!r} is not MAJOR.MINOR, e.g. \"8.9\"")
    if not isinstance(tflops, (int, float)) or tflops <= 0 or dtype not in _DTYPES:
        raise TableError(f"machines.toml: [gpu.{name}] wants dense_tflops above 0 and tflops_dtype one of "
                         f"{', '.join(_DTYPES)}; got {tflops!r}, {dtype!r}")
    return {"compute_capability": cap, "dense_tflops": float(tflops), "tflops_dtype": dtype}


def _schedulings(raw: dict, gpus: dict) -> dict:
    """scheduling.toml as Scheduling rows; a GPU name or quota kind it does not know is a TableError."""
    out = {}
    for name, spec in raw.items():
        if spec["quota"] not in ("preemptible", "on_demand"):
            raise TableError(f"scheduling.toml: {name}.quota must be preemptible or on_demand, "
                             f"not {spec['quota']!r}")
        unknown = [g for g in spec.get("gpus", ()) if g not in gpus]
        if unknown:
            raise TableError(f"scheduling.toml: {name}.gpus names {', '.join(unknown)}, not in "
                             f"machines.toml ({', '.join(gpus)})")
        wait = spec.get("max_wait_s")
        out[name] = Scheduling(
            name=name,
            preemptible_quota=spec["quota"] == "preemptible",
            gpus=tuple(spec["gpus"]) if "gpus" in spec else None,
            max_timeout_s=spec.get("max_timeout_s"),
            max_wait_s=(int(wait[0]), int(wait[1])) if wait else None,
        )
    return out


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
    with the same count. Spot-only shapes are refused for STANDARD, GPUs the
    scheduling does not offer (FLEX_START: data/scheduling.toml) for it.
    """
    gpu = resolve_gpu(tables, gpu_name)
    check_gpu_scheduling(tables, gpu.name, scheduling)
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


def check_scheduling(scheduling: str) -> str:
    if scheduling not in SCHEDULINGS:
        raise TableError(f"unknown scheduling {scheduling!r}; use one of: {', '.join(SCHEDULINGS)}")
    return scheduling


def scheduling_rules(tables: Tables, scheduling: str) -> Scheduling:
    check_scheduling(scheduling)
    if scheduling not in tables.schedulings:
        raise TableError(f"scheduling.toml has no [strategy.{scheduling}]: add it")
    return tables.schedulings[scheduling]


def check_gpu_scheduling(tables: Tables, gpu_name: str, scheduling: str) -> None:
    """Raises when SCHEDULING is not offered for this GPU (FLEX_START: only some GPUs)."""
    gpu = resolve_gpu(tables, gpu_name)
    rules = scheduling_rules(tables, scheduling)
    if rules.gpus is not None and gpu.name not in rules.gpus:
        others = [n for n, r in tables.schedulings.items() if r.gpus is None or gpu.name in r.gpus]
        raise TableError(
            f"{gpu.name} is not offered with {scheduling} scheduling (only {', '.join(rules.gpus)}): "
            f"use --scheduling {' or '.join(others)} for {gpu.name}, or one of those GPUs"
        )


def check_job_limits(tables: Tables, scheduling: str, timeout_s: int, max_wait_s: int) -> None:
    """Raises when the job's timeout or max wait is outside what SCHEDULING accepts."""
    rules = scheduling_rules(tables, scheduling)
    if timeout_s < 1:
        raise TableError(f"timeout_s must be at least 1 second, got {timeout_s}: fix --timeout-s "
                         "or timeout_s in the launch config")
    if rules.max_timeout_s is not None and timeout_s > rules.max_timeout_s:
        others = [n for n, r in tables.schedulings.items()
                  if r.max_timeout_s is None or r.max_timeout_s >= timeout_s]
        raise TableError(
            f"{scheduling} jobs may run at most {rules.max_timeout_s} s "
            f"({rules.max_timeout_s / 86400:g} days), got timeout_s {timeout_s}: lower --timeout-s "
            f"(timeout_s in the launch config) or use --scheduling {' or '.join(others)}"
        )
    if rules.max_wait_s is not None:
        least, most = rules.max_wait_s
        if not least <= max_wait_s <= most:
            raise TableError(
                f"{scheduling} max_wait_s must be between {least} and {most} s (how long to queue "
                f"for capacity; Vertex reads 0 as forever), got {max_wait_s}: fix --max-wait-s "
                "or max_wait_s in the launch config"
            )


def quota_metric(tables: Tables, gpu_name: str, scheduling: str) -> str:
    """The Cloud Quotas metric that limits this GPU under this scheduling.

    SPOT and FLEX_START are counted against the preemptible metric, STANDARD
    against the on-demand one (data/scheduling.toml says which).
    """
    gpu = resolve_gpu(tables, gpu_name)
    kind = "preemptible_" if scheduling_rules(tables, scheduling).preemptible_quota else ""
    return f"{QUOTA_SERVICE}/custom_model_training_{kind}nvidia_{gpu.quota}_gpus"


_PRICE_COLUMN = {"SPOT": "spot", "STANDARD": "on_demand", "FLEX_START": "flex_start"}


def price(tables: Tables, gpu_name: str, machine: str, region: str, scheduling: str) -> float | None:
    """Hourly price of the whole machine with GPU_NAME's GPUs, or None when the table does not know it.

    Keyed by GPU too: one N1 machine type takes T4, V100, P100 or P4 at different prices.
    """
    row = tables.prices.get(resolve_gpu(tables, gpu_name).name, {}).get(machine, {}).get(region)
    if not row:
        return None
    value = row.get(_PRICE_COLUMN[check_scheduling(scheduling)])
    return float(value) if value is not None else None


def cost_per_eflop(tables: Tables, gpu_name: str, machine: str, region: str, scheduling: str) -> float | None:
    """Price of 10^18 FLOP at the machine's peak dense throughput: the cost-per-sample proxy.

    Hourly price of the whole machine / (its GPUs x dense_tflops x 3600 s) x 10^6. A training step of a fixed model costs a fixed number of FLOPs per
    sample, so at equal utilisation the cost per sample is proportional to this.
    None when the price is unknown.
    """
    gpu = resolve_gpu(tables, gpu_name)
    hourly = price(tables, gpu.name, machine, region, scheduling)
    count = next((s.gpus for s in gpu.shapes if s.machine_type == machine), None)
    if hourly is None or count is None:
        return None
    return hourly / (count * gpu.dense_tflops * 3600) * 1e6
