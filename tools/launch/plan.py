"""The launch plan: everything the launcher will do, decided before it does anything.

`--dry-run` prints this plan; push and submit only read it (docs/architecture.md,
decision 6), so what is shown is what happens. `Plan` is frozen and holds typed
candidates; `to_json`/`from_json` are the one mapping to the JSON that
`--dry-run` prints and the state file keeps for `launch watch`.
"""

from __future__ import annotations

import dataclasses
import datetime
import re
import types
from collections.abc import Mapping

from tools.launch import bucket as B
from tools.launch import candidates as C
from tools.launch import built_image, endpoints, gitinfo
from tools.launch import image_support as IS
from tools.launch import tables as T
from tools.launch.errors import PlanError


def default_run_name(now: datetime.datetime) -> str:
    return "arr-coc-" + now.strftime("%Y%m%d-%H%M%S")


_RUN_NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,62}$")


def check_run_name(name: str) -> str:
    """Run names go into gs:// paths, display names and label values: keep them label-safe."""
    if not _RUN_NAME_RE.match(name):
        raise PlanError(
            f"run name {name!r}: use 1-63 lowercase letters, digits or dashes, starting with a letter"
        )
    return name


def registry_url(cfg: dict, region: str) -> str:
    """--registry, or the chosen region's Artifact Registry repository."""
    if cfg["registry"]:
        return cfg["registry"]
    return f"https://{region}-docker.pkg.dev/{cfg['project']}/{cfg['repository']}"


def check_regions(tables: T.Tables, regions: list[str]) -> None:
    """Names every region no GPU table knows, before it turns into a confusing "no shape" error."""
    known = {r for gpu in tables.gpus.values() for r in gpu.regions}
    unknown = [r for r in regions if r not in known]
    if unknown:
        raise PlanError(f"unknown region(s) {', '.join(unknown)} (--region); known regions: "
                        + ", ".join(sorted(known)))


def bucket_name(cfg: dict) -> str:
    """--bucket, or the project's default output bucket."""
    return cfg["bucket"] or f"{cfg['project']}-arr-coc"


def ranked_candidates(
    cfg: dict, quotas: dict | None, tables: T.Tables, bucket_rule: B.BucketRule | None = None,
    support: IS.ImageSupport | None = None,
) -> list[C.Candidate]:
    check_regions(tables, cfg["regions"])
    cands = C.build_candidates(
        tables, cfg["gpu_preference"], cfg["count"], cfg["scheduling"], cfg["regions"] or None, quotas,
        nodes=cfg["nodes"], support=support,
    )
    if bucket_rule is not None:
        cands = B.restrict(cands, bucket_rule)
    return C.rank(cands, cfg["gpu_preference"], tables)


def check_request(cfg: dict, tables: T.Tables | None = None, support: IS.ImageSupport | None = None) -> None:
    """Raises for what the tables alone refuse (a GPU the image cannot run, a bad count, region or limit).

    The launcher calls it before building the image, so `--gpu V100` fails in
    a second instead of after the image build; make() checks the same again.
    """
    tables = tables or T.default_tables()
    T.check_job_limits(tables, cfg["scheduling"], cfg["timeout_s"], cfg["max_wait_s"])
    ranked_candidates(cfg, None, tables, support=support)


@dataclasses.dataclass(frozen=True)
class Plan:
    """What the launch does: image, registry, the chosen candidate and every one considered."""

    image: str  # HOST/REPOSITORY@sha256:..., what Vertex pulls
    digest: str
    tag: str
    registry: str
    repository: str
    layout_dir: str
    project: str
    region: str
    gpu: str
    machine_type: str
    accelerator_type: str
    accelerator_count: int
    nodes: int
    scheduling: str
    price_per_hour: float | None
    price_date: str
    currency: str
    image_cuda: Mapping[str, object]  # ImageSupport.as_json(): the image's torch, CUDA, min driver, arch list
    quota_checked: bool
    run_name: str
    bucket: str
    bucket_location: Mapping[str, object]  # BucketRule.as_json()
    base_output_dir: str
    service_account: str | None
    timeout_s: int
    max_wait_s: int
    env: Mapping[str, str]  # --env overrides -> job environment (hyperparameters live in the training config)
    secrets: Mapping[str, str]  # ENV -> Secret Manager reference; values never enter the plan
    git_commit: str | None
    git_dirty: bool
    candidates: tuple[C.Candidate, ...]  # ranked, kept ones first

    def __post_init__(self):
        """Read-only views of the mappings and a tuple of candidates: the whole plan is immutable."""
        for name in ("env", "secrets", "bucket_location"):
            object.__setattr__(self, name, types.MappingProxyType(dict(getattr(self, name))))
        object.__setattr__(self, "image_cuda", types.MappingProxyType(  # arch_list as a tuple
            {k: tuple(v) if isinstance(v, list) else v for k, v in self.image_cuda.items()}))
        object.__setattr__(self, "candidates", tuple(self.candidates))

    @property
    def kept(self) -> tuple[C.Candidate, ...]:
        """The kept candidates in failover order (submit and relaunch walk these)."""
        return tuple(c for c in self.candidates if c.kept)

    def to_json(self) -> dict:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out.update(env=dict(self.env), secrets=dict(self.secrets), bucket_location=dict(self.bucket_location),
                   image_cuda={k: list(v) if isinstance(v, tuple) else v for k, v in self.image_cuda.items()},
                   candidates=[c.as_json() for c in self.candidates])
        return out

    @classmethod
    def from_json(cls, data: dict) -> "Plan":
        """A plan as to_json wrote it; a record missing fields names them instead of failing later."""
        names = [f.name for f in dataclasses.fields(cls)]
        missing = [n for n in names if n not in data]
        if missing:
            raise PlanError(f"stored plan lacks {', '.join(missing)}: it was written by another version "
                            "of the launcher; launch again (or use `launch status`, which needs no plan)")
        fields = {n: data[n] for n in names}
        fields["candidates"] = tuple(C.Candidate.from_json(c) for c in data["candidates"])
        return cls(**fields)


def make(
    cfg: dict,
    layout_dir: str,
    digest_file: str,
    quotas: dict | None,
    tables: T.Tables | None = None,
    now: datetime.datetime | None = None,
    git: tuple[str, bool] | None = None,
    secrets: dict | None = None,
    bucket_location: tuple[str | None, str | None] = (None, None),
    support: IS.ImageSupport | None = None,
) -> Plan:
    """The plan (pure given its inputs).

    Quota and the output bucket's (location, locationType) are read by the
    caller (preflight.bucket_location); a single-region bucket keeps the
    candidates to its region (bucket.py says why).
    """
    tables = tables or T.default_tables()
    support = support or IS.default_support()
    now = now or datetime.datetime.now(datetime.timezone.utc)
    if not cfg["project"]:
        raise PlanError("no project: pass --project ID or set project in launch.toml")
    digest = built_image.read_digest(digest_file)
    built_image.check_layout(layout_dir, digest)
    T.check_job_limits(tables, cfg["scheduling"], cfg["timeout_s"], cfg["max_wait_s"])
    bucket = bucket_name(cfg)
    rule = B.allowed_regions(*bucket_location)
    ranked = ranked_candidates(cfg, quotas, tables, rule, support)
    kept = [c for c in ranked if c.kept]
    if not kept:
        lead, hint = ("no quota anywhere", "") if rule.regions is None else (
            "no candidate left",
            f"; gs://{bucket} is single-region {', '.join(sorted(rule.regions))}: use a --bucket in a "
            "region offering these GPUs, or a multi-region one, or --region there")
        raise PlanError(
            f"{lead} for "
            f"{cfg['count']} x {'/'.join(cfg['gpu_preference'])} ({cfg['scheduling']})"
            + (f" on {cfg['nodes']} nodes" if cfg["nodes"] > 1 else "") + "; considered: "
            + "; ".join(f"{c.gpu} {c.region}: {c.why}" for c in ranked) + hint
        )
    best = kept[0]
    reg = endpoints.parse_registry(registry_url(cfg, best.region))
    repository = reg.repository(cfg["image_name"])
    run_name = check_run_name(cfg["run_name"] or default_run_name(now))
    commit, dirty = git if git is not None else gitinfo.commit_and_dirty()
    return Plan(
        image=built_image.reference(reg.host, repository, digest),
        digest=digest,
        tag=built_image.short_tag(digest),
        registry=reg.base,
        repository=repository,
        layout_dir=layout_dir,
        project=cfg["project"],
        region=best.region,
        gpu=best.gpu,
        machine_type=best.machine_type,
        accelerator_type=best.accelerator_type,
        accelerator_count=best.accelerator_count,
        nodes=cfg["nodes"],
        scheduling=best.scheduling,
        price_per_hour=best.price_per_hour,
        price_date=tables.price_date,
        currency=tables.currency,
        image_cuda=support.as_json(),
        quota_checked=quotas is not None,
        run_name=run_name,
        bucket=bucket,
        bucket_location=rule.as_json(),
        base_output_dir=f"gs://{bucket}/{run_name}",
        service_account=cfg["service_account"] or None,
        timeout_s=cfg["timeout_s"],
        max_wait_s=cfg["max_wait_s"],
        env=dict(cfg["env"]),
        secrets=dict(secrets or {}),
        git_commit=commit,
        git_dirty=dirty,
        candidates=tuple(ranked),
    )
