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

from tools.launch import image_support as IS
from tools.launch import tables as T


@dataclasses.dataclass(frozen=True)
class Candidate:
    """One (GPU, region) option with its machine, price and quota, kept or dropped and why."""

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

    @classmethod
    def from_json(cls, data: dict) -> "Candidate":
        """The inverse of as_json (the plan stored with a launch)."""
        return cls(**{f.name: data[f.name] for f in dataclasses.fields(cls)})


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
    nodes: int = 1,
    support: IS.ImageSupport | None = None,
) -> list[Candidate]:
    """All (GPU, region) options in preference order, each kept or dropped with a reason.

    A GPU the training image cannot run (SUPPORT: gpu_support.toml) is listed
    dropped, with its compute capability and the image's arch list as the
    reason. Raises TableError when no GPU of the preference list fits at all
    (none the image runs, a bad count or region), so the user hears why instead
    of an empty plan.
    """
    T.check_scheduling(scheduling)
    support = support or IS.default_support()
    out: list[Candidate] = []
    shape_errors, refused = [], {}
    for name in gpu_preference:
        gpu = T.resolve_gpu(tables, name)
        runs, reason = IS.runs(gpu, support)
        if not runs:
            refused[gpu.name] = reason
        try:
            machine = T.machine_type(
                tables, gpu.name, count, scheduling, (machine_types or {}).get(gpu.name)
            )
        except T.TableError as e:
            if runs:
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
            out.append(_judge(c, quotas is not None, count * nodes) if runs
                       else dataclasses.replace(c, kept=False, why=f"the image cannot run it: {reason}"))
    if not any(c.gpu not in refused for c in out):
        _no_candidate(tables, gpu_preference, regions, support, shape_errors, refused)
    return out


def _no_candidate(tables, gpu_preference, regions, support, shape_errors, refused) -> None:
    """Raises the TableError that says why no GPU of the preference list can be planned."""
    works = ", ".join(IS.runnable(tables, support))
    refusals = [f"the training image cannot run {g}: {why}; GPUs it runs: {works}" for g, why in refused.items()]
    if shape_errors or not any(T.resolve_gpu(tables, g).name not in refused for g in gpu_preference):
        raise T.TableError("; ".join(refusals) if not shape_errors else
                           "no GPU in the preference list fits: " + "; ".join(shape_errors + refusals))
    offered = {g: ", ".join(T.regions_for(tables, g)) for g in gpu_preference}
    raise T.TableError(
        f"none of the regions {', '.join(regions or [])} offers "
        f"{', '.join(gpu_preference)}; regions that do: "
        + "; ".join(f"{g}: {r}" for g, r in offered.items())
    )


def _judge(c: Candidate, quota_checked: bool, needed: int) -> Candidate:
    """C kept when its region's quota covers NEEDED GPUs (count x nodes) or is unknown, with why."""
    if c.quota is None:
        kept, why = True, ("quota unknown (metric not listed by the quota API)" if quota_checked
                           else "quota not checked")
    elif c.quota < needed:
        kept, why = False, f"quota {c.quota:g} < {needed} GPU(s)"
    else:
        kept, why = True, f"quota {c.quota:g} >= {needed}"
    if kept and c.price_per_hour is None:
        why += "; price unknown"
    return dataclasses.replace(c, kept=kept, why=why)


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
    """How far an error reaches, which decides what it blocks."""

    QUOTA_REGION = "quota_region"
    QUOTA_GLOBAL = "quota_global"
    CAPACITY = "capacity"  # this candidate only (stockout, preemption, queued too long, bad pair)
    GPU = "gpu"  # this GPU type in every region (the image cannot run it)
    UNCLEAR = "unclear"  # the job may or may not exist: look it up before retrying
    FATAL = "fatal"  # the user's to fix: stop, relaunch nothing


# What counts as capacity, by message, with where each wording is documented or
# reported. Vertex puts these in the create error or in a failed job's `error`.
CAPACITY_MESSAGES = (
    # A regional stockout of a failed job: "Resources are insufficient in region: R.
    # Please try a different region." (github.com/openreview/openreview-expertise/issues/401)
    (r"resources? (are |is )?(insufficient|exhausted|unavailable)", "regional stockout"),
    # Compute Engine's zonal stockout wording, which Vertex passes through: "The zone ...
    # does not have enough resources available to fulfill the request"
    # (github.com/Zhen-Dong/HAWQ/issues/4, github.com/kubeflow/pipelines/issues/673)
    (r"not have enough resources|not enough resources|stockout|capacity", "zonal stockout"),
    # Spot VMs are reclaimed by Compute Engine "preemption"
    # (cloud.google.com/vertex-ai/docs/training/use-spot-vms); the job error names it.
    (r"preempt", "preemption"),
)
# Quota reached when the job starts or is created: "The following quota metrics exceed
# quota limits: aiplatform.googleapis.com/custom_model_training_..."
# (github.com/GoogleCloudPlatform/vertex-ai-samples/issues/3479).
_QUOTA = re.compile(r"quota", re.I)
# A quota that is not per region: "GPUS_ALL_REGIONS" (github.com/Zhen-Dong/HAWQ/issues/4).
_GLOBAL = re.compile(r"\bglobal\b|all[_ ]regions", re.I)
_CAPACITY = re.compile("|".join(p for p, _ in CAPACITY_MESSAGES), re.I)
_UNCLEAR_CODES = ("UNAVAILABLE", "INTERNAL", "UNKNOWN", "DEADLINE_EXCEEDED", "TRANSPORT")


def _names_pair(message: str, cand: "Candidate | None") -> bool:
    """An INVALID_ARGUMENT about this candidate's machine/accelerator pair, not the whole job."""
    return cand is not None and (cand.machine_type in message or cand.accelerator_type in message)


def classify_error(code: str, message: str, cand: Candidate | None = None) -> Scope:
    """Maps a Vertex create error (status name + message) to the scope it blocks.

    RESOURCE_EXHAUSTED moves on: a quota message blocks its region (all
    regions when the quota is global), anything else is a stockout of that
    candidate. Server-side or transport failures are UNCLEAR: the job may
    have been created. Vertex checks machine/accelerator compatibility: an
    INVALID_ARGUMENT naming this candidate's machine type or accelerator
    blocks that candidate only. Everything else is the user's to fix.
    """
    if code == "RESOURCE_EXHAUSTED":
        if _QUOTA.search(message):
            return Scope.QUOTA_GLOBAL if _GLOBAL.search(message) else Scope.QUOTA_REGION
        return Scope.CAPACITY
    if code in _UNCLEAR_CODES:
        return Scope.CAPACITY if _CAPACITY.search(message) else Scope.UNCLEAR
    if code == "INVALID_ARGUMENT" and _names_pair(message, cand):
        return Scope.CAPACITY
    return Scope.FATAL


# What a start-up check failure's `blocks` (gpu_support.toml) rules out.
STARTUP_SCOPES = {"gpu": Scope.GPU, "candidate": Scope.CAPACITY, "nothing": Scope.FATAL}


def startup_failure(message: str) -> IS.StartupFailure | None:
    """The image's start-up check failure a failed job's error names by its exit code, or None."""
    return IS.startup_failure(message)


def classify_job_failure(code: str, message: str) -> Scope:
    """Maps a FAILED job's error to what it blocks: capacity and quota relaunch, the rest stops.

    Unlike a create error, a failed job is never UNCLEAR: it exists and has
    ended. The start-up check's exit codes block what gpu_support.toml says
    (a GPU type, one candidate, or nothing: stop). Any other trainer exit or a
    bad argument ("The replica workerpool0-0 exited with a non-zero status of
    1") is FATAL: relaunching would fail again.
    """
    startup = startup_failure(message)
    if startup is not None:
        return STARTUP_SCOPES[startup.blocks]
    if _QUOTA.search(message) and code in ("RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "UNAVAILABLE"):
        return Scope.QUOTA_GLOBAL if _GLOBAL.search(message) else Scope.QUOTA_REGION
    if _CAPACITY.search(message):
        return Scope.CAPACITY
    return Scope.FATAL


def capacity_policy() -> dict:
    """What counts as capacity, for --dry-run (the same table the classifiers use)."""
    return {
        "relaunch_on": [why for _, why in CAPACITY_MESSAGES] + ["quota reached", "queued too long"],
        "messages": {why: pattern for pattern, why in CAPACITY_MESSAGES},
        "quota": _QUOTA.pattern,
        "stops_on": "any other failure (trainer exit code, bad argument): its error and last log lines are shown",
        "start_up_check": {str(e.code): {"class": e.name, "blocks": e.blocks}
                           for e in IS.startup_failures(IS.default_support()).values()},
    }


@dataclasses.dataclass
class Blocklist:
    """What earlier failures rule out for the rest of this launch.

    A candidate's key names its GPU: one N1 machine type carries T4, V100,
    P100 or P4, so (region, machine, scheduling) alone would block them all.
    """

    regions: set = dataclasses.field(default_factory=set)  # (region, quota_metric)
    candidates: set = dataclasses.field(default_factory=set)  # (region, machine_type, scheduling, gpu)
    everything: bool = False
    gpus: set = dataclasses.field(default_factory=set)  # GPU names, in every region

    def record(self, c: Candidate, scope: Scope) -> None:
        if scope is Scope.QUOTA_GLOBAL:
            self.everything = True
        elif scope is Scope.QUOTA_REGION:
            self.regions.add((c.region, c.quota_metric))
        elif scope is Scope.CAPACITY:
            self.candidates.add(candidate_key(c))
        elif scope is Scope.GPU:
            self.gpus.add(c.gpu)

    def as_json(self) -> dict:
        return {"regions": sorted(map(list, self.regions)), "candidates": sorted(map(list, self.candidates)),
                "everything": self.everything, "gpus": sorted(self.gpus)}

    @classmethod
    def from_json(cls, data: dict | None) -> "Blocklist":
        data = data or {}
        return cls({tuple(r) for r in data.get("regions", ())}, {tuple(c) for c in data.get("candidates", ())},
                   bool(data.get("everything", False)), set(data.get("gpus", ())))

    def blocks(self, c: Candidate) -> bool:
        return (
            self.everything
            or c.gpu in self.gpus
            or (c.region, c.quota_metric) in self.regions
            or candidate_key(c) in self.candidates
            or candidate_key(c)[:3] in self.candidates  # a record of a launcher that keyed without the GPU
        )


def candidate_key(c: Candidate) -> tuple[str, str, str, str]:
    return (c.region, c.machine_type, c.scheduling, c.gpu)
