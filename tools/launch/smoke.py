"""`launch smoke`: a short job of the same image on the planned GPU before the expensive one.

The job runs the image's own entry point (its start-up check included) with
`--config ARR_COC/Training/configs/smoke_gpu.toml`: the production model at
full size with random weights, synthetic data at the production image size,
a few optimizer steps. The trainer writes smoke.json (samples/s, peak GPU
memory) into the run's output folder, which this module reads back through
the storage client; the result is kept in the state file by (image digest,
GPU type), where `launch --require-smoke` looks for it.
"""

from __future__ import annotations

import json

from tools.launch import preflight
from tools.launch.errors import SmokeFailed, SmokeRequired

IMAGE_CONFIG = "ARR_COC/Training/configs/smoke_gpu.toml"  # relative to the image's working directory
CONTAINER_ARGS = ("--config", IMAGE_CONFIG)  # replace the image's CMD; its entry point stays
TIMEOUT_S = 1800
FILE = "smoke.json"  # ARR_COC/Training/smoke_report.py writes it


def location(base_output_dir: str) -> tuple[str, str]:
    """(bucket, object name) of smoke.json under a gs://BUCKET/RUN base output directory."""
    if not base_output_dir.startswith("gs://"):
        raise SmokeFailed(f"base output directory {base_output_dir!r} is not gs://")
    bucket, _, prefix = base_output_dir[len("gs://"):].partition("/")
    return bucket, f"{prefix.strip('/')}/{FILE}" if prefix.strip("/") else FILE


def read_result(project: str, base_output_dir: str, eps) -> dict:
    """smoke.json of a finished smoke job, read with the storage client."""
    from google.api_core import exceptions as gexc

    endpoint = preflight.storage_endpoint(eps)
    bucket, name = location(base_output_dir)
    where = f"gs://{bucket}/{name}"
    if endpoint is None:
        raise SmokeFailed(f"cannot read {where}: {eps.why_not('storage')}")
    try:
        data = preflight.storage_client(project, endpoint).bucket(bucket).blob(name).download_as_bytes(timeout=30)
    except gexc.NotFound:
        raise SmokeFailed(f"the smoke job succeeded but wrote no {where}: does the image's trainer "
                          "have ARR_COC/Training/smoke_report.py?") from None
    except gexc.GoogleAPICallError as e:
        raise SmokeFailed(f"reading {where}: {e.message or e}") from None
    try:
        return json.loads(data)
    except ValueError:
        raise SmokeFailed(f"{where} is not JSON: {data[:200]!r}") from None


def problem(result: dict, digest: str) -> str | None:
    """What is wrong with a smoke.json for DIGEST, None when it reports a run of that image that trained."""
    if not str(result.get("image", "")).endswith("@" + digest):
        return f"smoke.json is of image {result.get('image')!r}, not of {digest} (an older run of this run name?)"
    if result.get("event") != "smoke" or int(result.get("steps") or 0) <= 0 or float(result.get("samples_per_s") or 0) <= 0:
        return f"smoke.json reports no training: {result}"
    return None


def unsmoked(gpus, digest: str, passing) -> list[str]:
    """The GPUs (in order, once each) without a passing smoke of DIGEST; PASSING(digest, gpu) looks one up."""
    return [gpu for gpu in dict.fromkeys(gpus) if passing(digest, gpu) is None]


def refusal(digest: str, gpus: list[str]) -> SmokeRequired:
    return SmokeRequired(
        f"--require-smoke: image {digest} has no passing smoke run on {', '.join(gpus)}; run "
        f"`tools/bazel run //tools:launch -- smoke --gpu {gpus[0]} ...` with this launch's other flags "
        "first (nothing was pushed or submitted)")
