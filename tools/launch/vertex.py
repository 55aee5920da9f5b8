"""Vertex AI CustomJob submission, failover, lookup, wait and cancel.

Uses the real `google.cloud.aiplatform_v1` JobServiceClient (REST), with the
endpoint overridable for tests and private setups. The job is built from the
plan only, so the submitted spec is exactly what `--dry-run` showed.
"""

from __future__ import annotations

import dataclasses
import sys
import time

from tools.launch import candidates as C
from tools.launch import endpoints
from tools.launch import plan as P
from tools.launch.errors import CandidatesExhausted, SubmitError

ACTIVE_STATES = {
    "JOB_STATE_QUEUED", "JOB_STATE_PENDING", "JOB_STATE_RUNNING", "JOB_STATE_CANCELLING",
    "JOB_STATE_PAUSED", "JOB_STATE_UPDATING",
}
TERMINAL_STATES = {
    "JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED", "JOB_STATE_CANCELLED", "JOB_STATE_EXPIRED",
    "JOB_STATE_PARTIALLY_SUCCEEDED",
}
UNCLEAR_RETRIES = 3
API_TIMEOUT_S = 30.0  # every Vertex call carries it: a hung connection must not hang the launcher


def _v1():
    from google.cloud import aiplatform_v1  # heavy: imported only when submitting

    return aiplatform_v1


def client_for(region: str, endpoint: str | None = None):
    """JobServiceClient for REGION (Vertex endpoints are regional) or the override."""
    endpoint = endpoint or f"{region}-aiplatform.googleapis.com"
    return _v1().JobServiceClient(
        transport="rest",
        client_options={"api_endpoint": endpoints.api_endpoint(endpoint)},
        credentials=endpoints.google_credentials(endpoint),
    )


def labels(plan: P.Plan, launch_id: str, attempt: int = 1) -> dict:
    """Provenance on the job, not in the image (so the digest stays stable).

    Label values are limited to 63 characters: the image digest label keeps
    the first 63 hex characters; the full reference is the job's image URI.
    `attempt` tells the relaunches of one launch apart, so an unclear create
    is looked up as exactly that attempt.
    """
    return {
        "image_sha256": plan.digest.split(":", 1)[1][:63],
        "git_commit": (plan.git_commit or "unknown")[:63],
        "git_dirty": "true" if plan.git_dirty else "false",
        "launch_id": launch_id,
        "attempt": str(attempt),
        "run_name": plan.run_name,
    }


SECRET_REFS_ENV = "ARR_SECRET_REFS"  # the trainer resolves these with Secret Manager at start
HUB_CACHE_ENV = "ARR_HUB_CACHE"  # the trainer keeps one copy of hub weights and data per revision there


def env_vars(plan: P.Plan, cand: C.Candidate) -> dict:
    """Hyperparameters plus what the trainer needs to know about its placement.

    Secrets travel as Secret Manager references only (ENV=projects/P/secrets/S[/versions/V]);
    their values never enter the job spec. The run's bucket holds the hub cache (--env may override it).
    """
    env = {
        HUB_CACHE_ENV: f"gs://{plan.bucket}/cache/hf",
        **plan.env,
        "CUDA_VISIBLE_DEVICES": ",".join(str(i) for i in range(cand.accelerator_count)),
        "TRAINING_GPU": cand.gpu,
        "ARR_RUN_NAME": plan.run_name,
        "ARR_IMAGE": plan.image,
    }
    if plan.secrets:
        env[SECRET_REFS_ENV] = ",".join(f"{k}={v}" for k, v in sorted(plan.secrets.items()))
    return env


def build_job(plan: P.Plan, cand: C.Candidate, launch_id: str, attempt: int = 1,
              container_args: tuple[str, ...] = ()):
    """The CustomJob for one candidate: image by digest, chief + workers, resumable output.

    Pool 0 is the chief (one replica); with --nodes N pool 1 holds N-1 workers
    with the identical machine and container spec (Vertex sets CLUSTER_SPEC).
    `container_args` replace the image's CMD (its training config) and keep
    its entry point, start-up check included (`launch smoke`).
    """
    v1 = _v1()
    from google.protobuf import duration_pb2

    strategy = v1.Scheduling.Strategy[cand.scheduling]
    scheduling = v1.Scheduling(
        timeout=duration_pb2.Duration(seconds=int(plan.timeout_s)),
        restart_job_on_worker_restart=True,
        strategy=strategy,
    )
    if cand.scheduling == "FLEX_START":
        scheduling.max_wait_duration = duration_pb2.Duration(seconds=int(plan.max_wait_s))

    def pool(replicas: int):
        return v1.WorkerPoolSpec(
            machine_spec=v1.MachineSpec(
                machine_type=cand.machine_type,
                accelerator_type=v1.AcceleratorType[cand.accelerator_type],
                accelerator_count=cand.accelerator_count,
            ),
            replica_count=replicas,
            container_spec=v1.ContainerSpec(
                image_uri=plan.image,
                args=list(container_args),
                env=[v1.EnvVar(name=k, value=str(v)) for k, v in env_vars(plan, cand).items()],
            ),
        )

    nodes = int(plan.nodes)
    pools = [pool(1)] + ([pool(nodes - 1)] if nodes > 1 else [])
    spec = v1.CustomJobSpec(
        worker_pool_specs=pools,
        scheduling=scheduling,
        base_output_directory=v1.GcsDestination(output_uri_prefix=plan.base_output_dir),
    )
    if plan.service_account:
        spec.service_account = plan.service_account
    return v1.CustomJob(display_name=plan.run_name, labels=labels(plan, launch_id, attempt),
                        job_spec=spec)


def parent(project: str, region: str) -> str:
    return f"projects/{project}/locations/{region}"


def list_jobs(client, project: str, region: str, filt: str) -> list:
    return list(client.list_custom_jobs(request={"parent": parent(project, region), "filter": filt},
                                        timeout=API_TIMEOUT_S))


def get_job(client, name: str):
    return client.get_custom_job(name=name, timeout=API_TIMEOUT_S)


def cancel(client, name: str) -> None:
    client.cancel_custom_job(name=name, timeout=API_TIMEOUT_S)


def find_by_launch_id(client, project: str, region: str, launch_id: str, attempt: int | None = None):
    """The newest job of this launch (and attempt) in REGION, or None."""
    filt = f'labels.launch_id="{launch_id}"'
    if attempt is not None:
        filt += f' AND labels.attempt="{attempt}"'
    jobs = list_jobs(client, project, region, filt)
    return max(jobs, key=lambda j: (_attempt_of(j), j.name)) if jobs else None


def _attempt_of(job) -> int:
    value = dict(job.labels).get("attempt", "1")
    return int(value) if value.isdigit() else 1


def find_launch(client_factory, project: str, regions, launch_id: str):
    """The newest job of LAUNCH_ID in any of REGIONS: a rerun adopts it instead of creating another."""
    found = [j for region in dict.fromkeys(regions)
             if (j := find_by_launch_id(client_factory(region), project, region, launch_id)) is not None]
    return max(found, key=lambda j: (_attempt_of(j), j.name)) if found else None


def state_name(job) -> str:
    return _v1().JobState(job.state).name


def active_runs(client_factory, project: str, regions: list[str], run_name: str) -> list:
    """Active jobs named RUN_NAME in any of REGIONS (a relaunch would fight over its output)."""
    found = []
    for region in dict.fromkeys(regions):
        for job in list_jobs(client_factory(region), project, region, f'labels.run_name="{run_name}"'):
            if state_name(job) in ACTIVE_STATES:
                found.append(job)
    return found


def reachable(fn, what: str):
    """Runs FN; a transport failure (refused, reset, DNS) becomes a SubmitError naming WHAT."""
    from google.api_core import exceptions as gexc

    try:
        return fn()
    except gexc.GoogleAPICallError:
        raise
    except Exception as e:
        raise SubmitError(f"Vertex API unreachable ({what}): {type(e).__name__}: {e}") from None


# HTTP status -> Google status name, for REST errors that carry no gRPC code
# (api_core's TooManyRequests has none, yet 429 is RESOURCE_EXHAUSTED).
_HTTP_STATUS = {400: "INVALID_ARGUMENT", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
                409: "ALREADY_EXISTS", 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL",
                503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}


def _error_code(e) -> str:
    """The Google status name of an API error: gRPC code, else by HTTP status."""
    code = getattr(e, "grpc_status_code", None)
    if code is not None:
        return getattr(code, "name", str(code))
    return _HTTP_STATUS.get(getattr(e, "code", None), f"HTTP_{getattr(e, 'code', '?')}")


def job_error(job) -> tuple[str, str]:
    """A failed job's `error` (google.rpc.Status) as (status name, message)."""
    from google.rpc import code_pb2

    code = int(job.error.code)
    name = code_pb2.Code.Name(code) if code in code_pb2.Code.values() else f"CODE_{code}"
    return name, job.error.message


@dataclasses.dataclass
class Attempt:
    """One create call or one submitted job's fate, for the result and the state file."""

    region: str
    machine_type: str
    outcome: str
    job: str | None = None


def submit(plan: P.Plan, launch_id: str, client_factory, *, blocked: C.Blocklist | None = None,
           attempt: int = 1, check_active: bool = True,
           log=lambda msg: print(msg, file=sys.stderr), backoff: float = 1.0,
           container_args: tuple[str, ...] = ()):
    """Submits exactly one CustomJob, walking the plan's candidates on quota/capacity errors.

    Returns (job, candidate, attempts). Candidates in BLOCKED are skipped (it
    is updated in place with what this call learns). Before every retry of an
    unclear failure, and once more before giving up, this attempt is looked up
    by its launch id label, so a lost response never becomes a second job.
    """
    from google.api_core import exceptions as gexc

    cands = plan.kept
    blocked = blocked if blocked is not None else C.Blocklist()
    if check_active:
        running = reachable(
            lambda: active_runs(client_factory, plan.project, [c.region for c in cands], plan.run_name),
            "listing active jobs of this run name")
        if running:
            raise SubmitError(
                f"run {plan.run_name!r} is already active ({', '.join(j.name for j in running)}); "
                "wait for it, cancel it, or pass --force"
            )
    attempts: list[Attempt] = []
    for cand in cands:
        if blocked.blocks(cand):
            continue
        client = client_factory(cand.region)
        job = build_job(plan, cand, launch_id, attempt, container_args)

        def found():
            """This attempt's job if an unclear create made it after all (recorded), else None."""
            existing = reachable(
                lambda: find_by_launch_id(client, plan.project, cand.region, launch_id, attempt),
                f"looking up launch id {launch_id}")
            if existing is not None:
                log(f"launch {launch_id} was submitted after all: {existing.name}")
                attempts.append(Attempt(cand.region, cand.machine_type, "submitted (found by launch id)",
                                        existing.name))
            return existing

        for retry in range(UNCLEAR_RETRIES + 1):
            if retry and (existing := found()) is not None:
                return existing, cand, attempts
            try:
                created = client.create_custom_job(parent=parent(plan.project, cand.region),
                                                   custom_job=job, timeout=API_TIMEOUT_S)
                attempts.append(Attempt(cand.region, cand.machine_type, "submitted", created.name))
                return created, cand, attempts
            except gexc.GoogleAPICallError as e:
                code, message = _error_code(e), e.message or str(e)
            except Exception as e:  # transport: connection reset, timeout
                code, message = "TRANSPORT", f"{type(e).__name__}: {e}"
            scope = C.classify_error(code, message, cand)
            attempts.append(Attempt(cand.region, cand.machine_type, f"{code}: {message} -> {scope.value}"))
            if scope is C.Scope.FATAL:
                raise SubmitError(f"Vertex refused the job in {cand.region}: {code}: {message}")
            if scope is not C.Scope.UNCLEAR:
                log(f"{cand.gpu} {cand.machine_type} in {cand.region}: {code} ({scope.value}); "
                    "trying the next candidate")
                blocked.record(cand, scope)
                break
            log(f"unclear failure in {cand.region} ({code}: {message}); checking launch id {launch_id}")
            time.sleep(backoff * (2**retry))
        else:
            if (existing := found()) is not None:
                return existing, cand, attempts
            raise SubmitError(f"Vertex in {cand.region} kept failing ({code}: {message}); "
                              f"launch id {launch_id} was not found, nothing was submitted")
    raise CandidatesExhausted(
        "no candidate accepted the job; tried: "
        + ("; ".join(f"{a.region} {a.machine_type}: {a.outcome}" for a in attempts) or "nothing (all blocked)")
    )


def logs_hint(job_name: str) -> str:
    """Where the job's logs are: Cloud Logging by job id, and the gcloud command."""
    parts = job_name.split("/")
    project, region, job_id = parts[1], parts[3], parts[5]
    return (
        f"logs: https://console.cloud.google.com/vertex-ai/locations/{region}/training/{job_id}"
        f"?project={project}  or  gcloud ai custom-jobs stream-logs {job_id} "
        f"--region={region} --project={project}"
    )


def region_of(job_name: str) -> str:
    parts = job_name.split("/")
    if len(parts) != 6 or parts[0] != "projects" or parts[2] != "locations" or parts[4] != "customJobs":
        raise SubmitError(f"{job_name!r} is not a job name (projects/P/locations/R/customJobs/ID)")
    return parts[3]


def job_id(job_name: str) -> str:
    return job_name.rsplit("/", 1)[-1]
