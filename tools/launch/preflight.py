"""What the job needs besides the image: Artifact Registry repository, bucket, service account.

Only APIs with an endpoint override may be called (a test or private setup
must never reach Google by accident), and the launcher has overrides only
for the registry, Vertex and Cloud Quotas. So the bucket, the Artifact
Registry repository and the service account are not checked here; each gets
a note with the command that creates it, printed before anything is pushed.
"""

from __future__ import annotations


def commands(plan: dict) -> dict:
    """The gcloud command that creates each thing the job needs (one place for them)."""
    p, r = plan["project"], plan["region"]
    out = {
        "bucket": f"gcloud storage buckets create gs://{plan['bucket']} --location={r} --project={p}",
    }
    if plan["registry"].endswith("-docker.pkg.dev"):
        repo = plan["repository"].split("/")[1]
        location = plan["registry"].split("//", 1)[1].split("-docker.pkg.dev")[0]
        out["artifact_registry"] = (
            f"gcloud artifacts repositories create {repo} --repository-format=docker "
            f"--location={location} --project={p}"
        )
    if plan.get("service_account"):
        name = plan["service_account"].split("@", 1)[0]
        out["service_account"] = f"gcloud iam service-accounts create {name} --project={p}"
    return out


def check(plan: dict, args) -> list[str]:
    """Notes for the log: what could not be checked and how to create it if missing."""
    return [
        f"preflight: {what} not checked (no endpoint override for its API); if missing: {cmd}"
        for what, cmd in commands(plan).items()
    ]
