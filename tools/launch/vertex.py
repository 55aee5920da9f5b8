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

ACTIVE_STATES = {
    "JOB_STATE_QUEUED", "JOB_STATE_PENDING", "JOB_STATE_RUNNING", "JOB_STATE_CANCELLING",
    "JOB_STATE_PAUSED", "JOB_STATE_UPDATING",
}
TERMINAL_STATES = {
    "JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED", "JOB_STATE_CANCELLED", "JOB_STATE_EXPIRED",
    "JOB_STATE_PARTIALLY_SUCCEEDED",
}
UNCLEAR_RETRIES = 3


class SubmitError(RuntimeError):
    """Submission failed for a reason failover cannot fix; says what was tried."""


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


def labels(plan: dict, launch_id: str) -> dict:
    """Provenance on the job, not in the image (so the digest stays stable).

    Label values are limited to 63 characters: the image digest label keeps
    the first 63 hex characters; the full reference is the job's image URI.
    """
    return {
        "image_sha256": plan["digest"].split(":", 1)[1][:63],
        "git_commit": (plan["git_commit"] or "unknown")[:63],
        "git_dirty": "true" if plan["git_dirty"] else "false",
        "launch_id": launch_id,
        "run_name": plan["run_name"],
    }


def env_vars(plan: dict, cand: C.Candidate) -> dict:
    """Hyperparameters plus what the trainer needs to know about its placement."""
    return {
        **plan["env"],
        "CUDA_VISIBLE_DEVICES": ",".join(str(i) for i in range(cand.accelerator_count)),
        "TRAINING_GPU": cand.gpu,
        "ARR_RUN_NAME": plan["run_name"],
        "ARR_IMAGE": plan["image"],
    }


def build_job(plan: dict, cand: C.Candidate, launch_id: str):
    """The CustomJob for one candidate: image by digest, one chief worker, resumable output."""
    v1 = _v1()
    from google.protobuf import duration_pb2

    strategy = v1.Scheduling.Strategy[cand.scheduling]
    scheduling = v1.Scheduling(
        timeout=duration_pb2.Duration(seconds=int(plan["timeout_s"])),
        restart_job_on_worker_restart=True,
        strategy=strategy,
    )
    if cand.scheduling == "FLEX_START":
        scheduling.max_wait_duration = duration_pb2.Duration(seconds=int(plan["max_wait_s"]))
    pool = v1.WorkerPoolSpec(
        machine_spec=v1.MachineSpec(
            machine_type=cand.machine_type,
            accelerator_type=v1.AcceleratorType[cand.accelerator_type],
            accelerator_count=cand.accelerator_count,
        ),
        replica_count=1,
        container_spec=v1.ContainerSpec(
            image_uri=plan["image"],
            env=[v1.EnvVar(name=k, value=str(v)) for k, v in env_vars(plan, cand).items()],
        ),
    )
    spec = v1.CustomJobSpec(
        worker_pool_specs=[pool],
        scheduling=scheduling,
        base_output_directory=v1.GcsDestination(output_uri_prefix=plan["base_output_dir"]),
    )
    if plan.get("service_account"):
        spec.service_account = plan["service_account"]
    return v1.CustomJob(display_name=plan["run_name"], labels=labels(plan, launch_id), job_spec=spec)


def parent(project: str, region: str) -> str:
    return f"projects/{project}/locations/{region}"


def list_jobs(client, project: str, region: str, filt: str) -> list:
    return list(client.list_custom_jobs(request={"parent": parent(project, region), "filter": filt}))


def find_by_launch_id(client, project: str, region: str, launch_id: str):
    jobs = list_jobs(client, project, region, f'labels.launch_id="{launch_id}"')
    return jobs[0] if jobs else None


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


@dataclasses.dataclass
class Attempt:
    region: str
    machine_type: str
    outcome: str


def submit(plan: dict, launch_id: str, client_factory, *, force: bool = False,
           log=lambda msg: print(msg, file=sys.stderr), backoff: float = 1.0):
    """Submits exactly one CustomJob, walking the plan's candidates on quota/capacity errors.

    Returns (job, attempts). Before every retry of an unclear failure the
    launch id is looked up, so a lost response never becomes a second job.
    """
    from google.api_core import exceptions as gexc

    cands = P.candidates_from_plan(plan)
    if not force:
        running = reachable(
            lambda: active_runs(client_factory, plan["project"], [c.region for c in cands], plan["run_name"]),
            "listing active jobs of this run name")
        if running:
            raise SubmitError(
                f"run {plan['run_name']!r} is already active ({', '.join(j.name for j in running)}); "
                "wait for it, cancel it, or pass --force"
            )
    blocked = C.Blocklist()
    attempts: list[Attempt] = []
    for cand in cands:
        if blocked.blocks(cand):
            attempts.append(Attempt(cand.region, cand.machine_type, "skipped: blocked by an earlier error"))
            continue
        client = client_factory(cand.region)
        job = build_job(plan, cand, launch_id)
        for retry in range(UNCLEAR_RETRIES + 1):
            if retry:
                existing = reachable(
                    lambda: find_by_launch_id(client, plan["project"], cand.region, launch_id),
                    f"looking up launch id {launch_id}")
                if existing is not None:
                    log(f"launch {launch_id} was submitted after all: {existing.name}")
                    attempts.append(Attempt(cand.region, cand.machine_type, "submitted (found by launch id)"))
                    return existing, attempts
            try:
                created = client.create_custom_job(parent=parent(plan["project"], cand.region), custom_job=job)
                attempts.append(Attempt(cand.region, cand.machine_type, "submitted"))
                return created, attempts
            except gexc.GoogleAPICallError as e:
                code, message = _error_code(e), e.message or str(e)
            except Exception as e:  # transport: connection reset, timeout
                code, message = "TRANSPORT", f"{type(e).__name__}: {e}"
            scope = C.classify_error(code, message)
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
            raise SubmitError(f"Vertex in {cand.region} kept failing ({code}: {message}); "
                              f"launch id {launch_id} was not found, nothing was submitted")
    raise SubmitError(
        "no candidate accepted the job; tried: "
        + "; ".join(f"{a.region} {a.machine_type}: {a.outcome}" for a in attempts)
    )


def wait(client, name: str, *, poll_s: float = 30.0, log=lambda msg: print(msg, file=sys.stderr)):
    """Follows the job to a terminal state, logging each change; returns the final job."""
    last = None
    while True:
        job = client.get_custom_job(name=name)
        state = state_name(job)
        if state != last:
            log(f"{name}: {state}")
            last = state
        if state in TERMINAL_STATES:
            return job
        time.sleep(poll_s)


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


def cancel(client, name: str) -> None:
    client.cancel_custom_job(name=name)
