"""Endpoint parsing, the loopback rule and credentials: one place for each.

Every external endpoint can be overridden (docs/architecture.md, decision 7). A
loopback endpoint is a local test or private server: Google clients then use
anonymous credentials, and plain HTTP is allowed only there.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import urllib.parse


class EndpointError(ValueError):
    """An endpoint or credential problem, with what to do about it."""


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
