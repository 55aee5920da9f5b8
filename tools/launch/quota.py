"""Live GPU quota per region from the Cloud Quotas API (service aiplatform.googleapis.com)."""

from __future__ import annotations

from tools.launch import endpoints
from tools.launch import tables as T
from tools.launch.errors import QuotaError

DEFAULT_ENDPOINT = "cloudquotas.googleapis.com"
API_TIMEOUT_S = 30.0  # every API call carries a timeout: a hung endpoint must not hang the plan


def _client(endpoint: str | None):
    from google.cloud import cloudquotas_v1  # heavy: imported only when quota is checked

    endpoint = endpoint or DEFAULT_ENDPOINT
    return cloudquotas_v1.CloudQuotasClient(
        transport="rest",
        client_options={"api_endpoint": endpoints.api_endpoint(endpoint)},
        credentials=endpoints.google_credentials(endpoint),
    )


def to_table(quota_infos) -> dict:
    """{metric: {region or "": limit}} from QuotaInfo messages.

    A dimensions info without a region is the metric's default for all regions.
    Only the metrics of the GPU quota family are kept; others are irrelevant.
    """
    out: dict = {}
    for info in quota_infos:
        metric = info.metric
        if "custom_model_training_" not in metric or not metric.endswith("_gpus"):
            continue
        if "/" not in metric:
            metric = f"{T.QUOTA_SERVICE}/{metric}"
        per_region = out.setdefault(metric, {})
        for dim in info.dimensions_infos:
            region = dict(dim.dimensions).get("region", "")
            per_region[region] = float(dim.details.value)
    return out


def fetch(project: str, endpoint: str | None = None) -> dict:
    """The GPU quota table of PROJECT; raises QuotaError when the API cannot be read."""
    from google.api_core import exceptions as gexc

    parent = f"projects/{project}/locations/global/services/{T.QUOTA_SERVICE}"
    try:
        return to_table(_client(endpoint).list_quota_infos(parent=parent, timeout=API_TIMEOUT_S))
    except gexc.GoogleAPICallError as e:
        raise QuotaError(f"quota API {endpoint or DEFAULT_ENDPOINT}: {e.message or e}") from None
    except Exception as e:  # transport errors: connection refused, DNS, TLS
        if isinstance(e, endpoints.EndpointError):
            raise
        raise QuotaError(
            f"quota API {endpoint or DEFAULT_ENDPOINT} unreachable: {type(e).__name__}: {e}"
        ) from None
