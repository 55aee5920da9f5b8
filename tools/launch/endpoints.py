"""Endpoints, the private-setup rule, the loopback rule and credentials: one place for each.

Every external endpoint can be overridden (docs/architecture.md, decision 7).
`Endpoints` is built once from a command's flags and is the only place that
decides which API may be called: a setup that moves the registry or Vertex off
Google is *private*, and there an optional API (quota, storage, logging) is
called only at its own override, never at Google's by accident. A loopback
endpoint is a local test or private server: Google clients then use anonymous
credentials, and plain HTTP is allowed only there.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import urllib.parse

from tools.launch.errors import EndpointError


# The APIs a launch may call, and the flag that overrides each.
FLAGS = {"registry": "--registry", "vertex": "--vertex-endpoint", "quota": "--quota-endpoint",
         "storage": "--storage-endpoint", "iam": "--iam-endpoint", "logging": "--logging-endpoint"}
# Called at Google's own endpoint when not overridden, outside a private setup. The
# IAM check is not: it runs only with --iam-endpoint.
GOOGLE_BY_DEFAULT = frozenset({"quota", "storage", "logging"})


@dataclasses.dataclass(frozen=True)
class Endpoints:
    """A command's endpoint overrides (None: Google's own), built once from its flags."""

    registry: str | None = None
    vertex: str | None = None
    quota: str | None = None
    storage: str | None = None
    iam: str | None = None
    logging: str | None = None

    @classmethod
    def from_flags(cls, args) -> "Endpoints":
        """From parsed flags; a subcommand without a flag leaves that endpoint None."""
        return cls(**{api: getattr(args, flag[2:].replace("-", "_"), None) or None for api, flag in FLAGS.items()})

    @property
    def private(self) -> bool:
        """The registry or Vertex is not Google's: a test or private setup."""
        return bool(self.registry or self.vertex)

    def may_call(self, api: str) -> bool:
        """Whether API may be called: at its own override, or at Google's outside a private setup."""
        return bool(getattr(self, api)) or (api in GOOGLE_BY_DEFAULT and not self.private)

    def why_not(self, api: str) -> str:
        """Why API is not called (for the note that says so)."""
        if api not in GOOGLE_BY_DEFAULT:
            return f"no {FLAGS[api]} given"
        return f"endpoints are overridden but {FLAGS[api]} is not"

    def over(self, stored: "Endpoints") -> "Endpoints":
        """These flags over a launch's stored endpoints (status, watch, logs of an earlier launch)."""
        return Endpoints(**{api: getattr(self, api) or getattr(stored, api) for api in FLAGS})

    def as_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_record(cls, record: dict | None) -> "Endpoints":
        """The endpoints stored with a launch; records of older launchers kept only Vertex's and Logging's."""
        record = record or {}
        if "endpoints" in record:
            return cls(**{api: record["endpoints"].get(api) for api in FLAGS})
        return cls(vertex=record.get("vertex_endpoint"), logging=record.get("logging_endpoint"))


def is_loopback_host(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclasses.dataclass(frozen=True)
class RegistryUrl:
    scheme: str
    host: str  # host[:port], as it appears in image references
    path: str  # repository prefix without slashes at either end ("" for none)

    @property
    def base(self) -> str:
        return f"{self.scheme}://{self.host}"

    def repository(self, name: str) -> str:
        return f"{self.path}/{name}" if self.path else name


def parse_registry(url: str) -> RegistryUrl:
    """`http://127.0.0.1:5000/team` or `us-docker.pkg.dev/p/repo` (https implied)."""
    if "://" not in url:
        url = "https://" + url
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise EndpointError(f"registry URL {url!r}: want http(s)://HOST[:PORT][/PATH]")
    if parts.scheme == "http" and not is_loopback_host(parts.hostname or ""):
        raise EndpointError(
            f"registry {url}: plain HTTP is only allowed to loopback; use https://"
        )
    return RegistryUrl(parts.scheme, parts.netloc, parts.path.strip("/"))


def api_endpoint(url: str) -> str:
    """A Google API endpoint override as the clients want it (scheme kept for http)."""
    parts = urllib.parse.urlsplit(url if "://" in url else "https://" + url)
    if parts.scheme == "http" and not is_loopback_host(parts.hostname or ""):
        raise EndpointError(f"endpoint {url}: plain HTTP is only allowed to loopback")
    return url if parts.scheme == "http" else parts.netloc


def endpoint_is_loopback(url: str | None) -> bool:
    if not url:
        return False
    parts = urllib.parse.urlsplit(url if "://" in url else "https://" + url)
    return is_loopback_host(parts.hostname or "")


def google_credentials(endpoint: str | None):
    """Anonymous credentials for loopback endpoints, else Application Default Credentials."""
    if endpoint_is_loopback(endpoint):
        from google.auth.credentials import AnonymousCredentials

        return AnonymousCredentials()
    import google.auth
    import google.auth.exceptions

    try:
        creds, _ = google.auth.default(scopes=["https://www.googleapis.com/auth/cloud-platform"])
    except google.auth.exceptions.DefaultCredentialsError as e:
        raise EndpointError(
            "no Google credentials: run `gcloud auth application-default login` or set "
            f"GOOGLE_APPLICATION_CREDENTIALS (under bazel run, pass it through). ({e})"
        ) from None
    return creds
