"""What the job needs besides the image: the registry repository, the bucket, the service account.

Checked before anything is pushed, so a missing piece stops the launch with
the exact command that creates it instead of failing after a long push or
inside Vertex. Only APIs that `Endpoints.may_call` allows are called (a test or
private setup must never reach Google by accident):

- the repository through the registry itself (the push's own session and auth);
- the bucket through `google.cloud.storage.Client`: at `--storage-endpoint`,
  or at Google's outside a private setup; otherwise it is not checked;
- the service account through the IAM REST API, only at `--iam-endpoint`
  (the lock has no IAM client library; google-auth's AuthorizedSession does
  the call); otherwise it is reported as not checked.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from tools.launch import endpoints
from tools.launch.errors import PreflightError

if TYPE_CHECKING:
    from tools.launch.plan import Plan

OK, MISSING, UNCHECKED = "ok", "missing", "not checked"
STORAGE_DEFAULT = "https://storage.googleapis.com"
# The storage client retries transient errors for 120 s by default; a preflight
# that waits that long for an unreachable endpoint helps nobody.
STORAGE_RETRY_S = 10.0


@dataclasses.dataclass(frozen=True)
class Finding:
    what: str  # artifact_registry, bucket, service_account
    state: str  # OK, MISSING or UNCHECKED
    detail: str


def commands(plan: Plan) -> dict:
    """The gcloud command that creates each thing the job needs (one place for them)."""
    p, r = plan.project, plan.region
    out = {
        "bucket": f"gcloud storage buckets create gs://{plan.bucket} --location={r} --project={p}",
    }
    if is_artifact_registry(plan.registry):
        repo = plan.repository.split("/")[1]
        out["artifact_registry"] = (
            f"gcloud artifacts repositories create {repo} --repository-format=docker "
            f"--location={ar_location(plan.registry)} --project={p}"
        )
    if plan.service_account:
        name = plan.service_account.split("@", 1)[0]
        out["service_account"] = f"gcloud iam service-accounts create {name} --project={p}"
    return out


def is_artifact_registry(registry_base: str) -> bool:
    return endpoints.parse_registry(registry_base).host.endswith("-docker.pkg.dev")


def ar_location(registry_base: str) -> str:
    return endpoints.parse_registry(registry_base).host.split("-docker.pkg.dev")[0]


# -- the checks ---------------------------------------------------------------


def check_repository(plan: Plan, auth) -> Finding:
    from tools.launch import registry

    unknown = registry.missing_repository(plan.registry, plan.repository, auth=auth)
    where = f"{plan.registry}/{plan.repository}"
    if unknown is None:
        return Finding("artifact_registry", OK, f"{where}: push can start")
    return Finding("artifact_registry", MISSING, f"{where}: {unknown}")


def storage_client(project: str, endpoint: str):
    """The real storage client at ENDPOINT (anonymous on loopback, ADC elsewhere)."""
    from google.cloud import storage

    endpoints.api_endpoint(endpoint)  # the loopback rule for plain HTTP
    return storage.Client(
        project=project,
        credentials=endpoints.google_credentials(endpoint),
        client_options={"api_endpoint": endpoint if "://" in endpoint else "https://" + endpoint},
    )


def lookup_bucket(project: str, bucket: str, endpoint: str):
    """GET storage/v1/b/BUCKET with the real storage client: the Bucket, or None on 404."""
    from google.api_core import exceptions as gexc
    from google.cloud import storage

    client = storage_client(project, endpoint)
    try:
        return client.lookup_bucket(
            bucket, timeout=30, retry=storage.retry.DEFAULT_RETRY.with_timeout(STORAGE_RETRY_S))
    except gexc.Forbidden as e:
        raise PreflightError(f"bucket gs://{bucket}: access refused ({e.message}); the job's service "
                             "account needs roles/storage.objectAdmin on it") from None
    except gexc.GoogleAPICallError as e:
        raise PreflightError(f"storage API {endpoint}: {e.message or e}") from None
    except Exception as e:  # transport errors
        if isinstance(e, endpoints.EndpointError):
            raise
        raise PreflightError(f"storage API {endpoint} unreachable: {type(e).__name__}: {e}") from None


def check_bucket(plan: Plan, endpoint: str) -> Finding:
    bucket = f"gs://{plan.bucket}"
    found = lookup_bucket(plan.project, plan.bucket, endpoint)
    if found is None:
        return Finding("bucket", MISSING, f"{bucket} does not exist")
    return Finding("bucket", OK, f"{bucket} exists ({found.location_type} {found.location})")


def storage_endpoint(eps: endpoints.Endpoints) -> str | None:
    """Where the bucket may be read: --storage-endpoint, Google's, or None (not to be called)."""
    return (eps.storage or STORAGE_DEFAULT) if eps.may_call("storage") else None


def bucket_location(project: str, bucket: str, eps: endpoints.Endpoints) -> tuple[str | None, str | None]:
    """(location, locationType) of the output bucket from its metadata; (None, None) if unknown.

    Unknown when the bucket may not be read here (private setup without
    --storage-endpoint) or does not exist yet (preflight then says how to create it).
    """
    endpoint = storage_endpoint(eps)
    found = lookup_bucket(project, bucket, endpoint) if endpoint else None
    if found is None:
        return None, None
    return found.location, found.location_type


def check_service_account(plan: Plan, endpoint: str) -> Finding:
    """GET v1/projects/P/serviceAccounts/EMAIL on the IAM API (200: exists, 404: missing)."""
    import google.auth.transport.requests
    import requests

    endpoints.api_endpoint(endpoint)
    base = endpoint if "://" in endpoint else "https://" + endpoint
    email = plan.service_account
    session = google.auth.transport.requests.AuthorizedSession(endpoints.google_credentials(endpoint))
    url = f"{base.rstrip('/')}/v1/projects/{plan.project}/serviceAccounts/{email}"
    try:
        resp = session.get(url, timeout=30)
    except requests.RequestException as e:
        raise PreflightError(f"IAM API {endpoint} unreachable: {type(e).__name__}: {e}") from None
    if resp.status_code == 200:
        return Finding("service_account", OK, f"{email} exists")
    if resp.status_code == 404:
        return Finding("service_account", MISSING, f"{email} does not exist")
    raise PreflightError(f"IAM API {endpoint}: HTTP {resp.status_code} for {email}: {resp.text[:200]}")


def run(plan: Plan, eps: endpoints.Endpoints, auth) -> list[Finding]:
    """Every check that may run here; the others come back as UNCHECKED with why."""
    findings = [check_repository(plan, auth)]
    storage = storage_endpoint(eps)
    findings.append(check_bucket(plan, storage) if storage else Finding(
        "bucket", UNCHECKED, f"gs://{plan.bucket}: {eps.why_not('storage')}"))
    if plan.service_account:
        findings.append(check_service_account(plan, eps.iam) if eps.may_call("iam") else Finding(
            "service_account", UNCHECKED, f"{plan.service_account}: {eps.why_not('iam')}"))
    return findings


def report(plan: Plan, findings: list[Finding]) -> list[str]:
    """Log lines; raises PreflightError listing each missing thing and its create command."""
    cmds = commands(plan)
    lines, missing = [], []
    for f in findings:
        line = f"preflight: {f.what}: {f.state}: {f.detail}"
        if f.state == UNCHECKED and f.what in cmds:
            line += f"; if missing: {cmds[f.what]}"
        lines.append(line)
        if f.state == MISSING:
            cmd = cmds.get(f.what) or "create it in that registry"
            missing.append(f"{f.what} {f.detail}; create it with: {cmd}")
    if missing:
        raise PreflightError("missing before launch (nothing was pushed or submitted):\n  "
                             + "\n  ".join(missing))
    return lines
