"""Candidates (GPU x region), their ranking, and failover blocklists.

In the style of SkyPilot's optimizer: every option considered is kept in the
plan with the reason it was kept or dropped, the kept ones are ranked
(GPU preference, then price), and submission walks them in order. Errors
block candidates by scope: a quota error blocks that region for that quota
metric (Vertex quota is per region, per GPU, per spot/on-demand), a global
quota error blocks everything, a capacity error only that one candidate.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import re

from tools.launch import tables as T


@dataclasses.dataclass
class Candidate:
    gpu: str
    accelerator_type: str
    accelerator_count: int
    machine_type: str
    region: str
    scheduling: str
    quota_metric: str
    price_per_hour: float | None
    quota: float | None = None  # None: the quota API did not list this metric/region
    kept: bool = True
    why: str = ""

    @property
    def quota_known(self) -> bool:
        return self.quota is not None

    def as_json(self) -> dict:
        return {
            "gpu": self.gpu,
            "region": self.region,
            "machine_type": self.machine_type,
            "accelerator_type": self.accelerator_type,
            "accelerator_count": self.accelerator_count,
            "scheduling": self.scheduling,
            "price_per_hour": self.price_per_hour,
            "quota_metric": self.quota_metric,
            "quota": self.quota,
            "kept": self.kept,
            "why": self.why,
        }


def quota_limit(quotas: dict | None, metric: str, region: str) -> float | None:
    """Quota for METRIC in REGION from {metric: {region or "": value}}; None if unlisted.

    A region-less entry ("") is the metric's default for every region.
    """
    if quotas is None or metric not in quotas:
        return None
    per_region = quotas[metric]
    if region in per_region:
        return per_region[region]
    return per_region.get("")


def build_candidates(
    tables: T.Tables,
    gpu_preference: list[str],
    count: int,
    scheduling: str,
    regions: list[str] | None = None,
    quotas: dict | None = None,
    machine_types: dict | None = None,
) -> list[Candidate]:
    """All (GPU, region) options in preference order, each kept or dropped with a reason.

    Raises TableError when no GPU of the preference list fits at all, so the
    user hears about the bad count or region instead of an empty plan.
    """
    T.check_scheduling(scheduling)
    out: list[Candidate] = []
    shape_errors = []
    for name in gpu_preference:
        gpu = T.resolve_gpu(tables, name)
        try:
            machine = T.machine_type(
                tables, gpu.name, count, scheduling, (machine_types or {}).get(gpu.name)
            )
        except T.TableError as e:
            shape_errors.append(str(e))
            continue
        metric = T.quota_metric(tables, gpu.name, scheduling)
        wanted_regions = gpu.regions if not regions else [r for r in regions if r in gpu.regions]
        for region in wanted_regions:
            c = Candidate(
                gpu=gpu.name,
                accelerator_type=gpu.accelerator,
                accelerator_count=count,
                machine_type=machine,
                region=region,
                scheduling=scheduling,
                quota_metric=metric,
                price_per_hour=T.price(tables, gpu.name, machine, region, scheduling),
                quota=quota_limit(quotas, metric, region),
            )
            _judge(c, quotas is not None)
            out.append(c)
    if not out:
        if shape_errors:
            raise T.TableError("no GPU in the preference list fits: " + "; ".join(shape_errors))
        offered = {
            g: ", ".join(T.regions_for(tables, g)) for g in gpu_preference
        }
        raise T.TableError(
            f"none of the regions {', '.join(regions or [])} offers "
            f"{', '.join(gpu_preference)}; regions that do: "
            + "; ".join(f"{g}: {r}" for g, r in offered.items())
        )
    return out


def _judge(c: Candidate, quota_checked: bool) -> None:
    if c.quota is None:
        c.kept = True
        c.why = "quota unknown (metric not listed by the quota API)" if quota_checked else (
            "quota not checked"
        )
    elif c.quota < c.accelerator_count:
        c.kept = False
        c.why = f"quota {c.quota:g} < {c.accelerator_count} GPU(s)"
    else:
        c.kept = True
        c.why = f"quota {c.quota:g} >= {c.accelerator_count}"
    if c.kept and c.price_per_hour is None:
        c.why += "; price unknown"


def rank(candidates: list[Candidate], gpu_preference: list[str], tables: T.Tables) -> list[Candidate]:
    """Kept candidates first: known quota before unknown, then GPU preference, then price.

    Unknown prices sort after known ones of the same GPU; region name breaks
    ties so the order is stable. Dropped candidates follow, in the same order.
    """
    order = {T.resolve_gpu(tables, g).name: i for i, g in enumerate(gpu_preference)}

    def key(c: Candidate):
        price = c.price_per_hour if c.price_per_hour is not None else math.inf
        return (not c.kept, not c.quota_known, order.get(c.gpu, len(order)), price, c.region)

    return sorted(candidates, key=key)


class Scope(enum.Enum):
    """How far a submission error reaches, which decides what it blocks."""

    QUOTA_REGION = "quota_region"
    QUOTA_GLOBAL = "quota_global"
    CAPACITY = "capacity"
    UNCLEAR = "unclear"  # the job may or may not exist: look it up before retrying
    FATAL = "fatal"


_QUOTA = re.compile(r"quota", re.I)
_GLOBAL = re.compile(r"\bglobal\b|all[_ ]regions", re.I)
_CAPACITY = re.compile(
    r"resources? (are |is )?(insufficient|exhausted|unavailable)|not enough resources|"
    r"stockout|capacity", re.I)
_UNCLEAR_CODES = ("UNAVAILABLE", "INTERNAL", "UNKNOWN", "DEADLINE_EXCEEDED", "TRANSPORT")


def classify_error(code: str, message: str) -> Scope:
    """Maps a Vertex error (status name + message) to the scope it blocks.

    RESOURCE_EXHAUSTED moves on: a quota message blocks its region (all
    regions when the quota is global), anything else is a stockout of that
    candidate. Server-side or transport failures are UNCLEAR: the job may
    have been created. Everything else is the user's to fix and stops failover.
    """
    if code == "RESOURCE_EXHAUSTED":
        if _QUOTA.search(message):
            return Scope.QUOTA_GLOBAL if _GLOBAL.search(message) else Scope.QUOTA_REGION
        return Scope.CAPACITY
    if code in _UNCLEAR_CODES:
        return Scope.CAPACITY if _CAPACITY.search(message) else Scope.UNCLEAR
    return Scope.FATAL


@dataclasses.dataclass
class Blocklist:
    """What earlier failures rule out for the rest of this launch."""

    regions: set = dataclasses.field(default_factory=set)  # (region, quota_metric)
    candidates: set = dataclasses.field(default_factory=set)  # (region, machine_type, scheduling)
    everything: bool = False

    def record(self, c: Candidate, scope: Scope) -> None:
        if scope is Scope.QUOTA_GLOBAL:
            self.everything = True
        elif scope is Scope.QUOTA_REGION:
            self.regions.add((c.region, c.quota_metric))
        elif scope is Scope.CAPACITY:
            self.candidates.add((c.region, c.machine_type, c.scheduling))

    def blocks(self, c: Candidate) -> bool:
        return (
            self.everything
            or (c.region, c.quota_metric) in self.regions
            or (c.region, c.machine_type, c.scheduling) in self.candidates
        )
