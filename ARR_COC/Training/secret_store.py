"""Secrets by reference: ARR_SECRET_REFS names Secret Manager versions, the trainer resolves them.

The job spec carries only references (the launcher's `--secret`):

    ARR_SECRET_REFS="WANDB_API_KEY=projects/P/secrets/wandb,HF_TOKEN=projects/P/secrets/hf/versions/3"

At start each process reads every referenced version (no /versions/V means
latest) and sets the variable in its own environment, so values never appear
in the job spec, the launcher's plan or state file. Only variable names are
ever logged; errors name the variable and the reference, never a value.
ARR_SECRETMANAGER_ENDPOINT overrides the API endpoint (private setups,
tests); a loopback one is called over REST with anonymous credentials.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
import urllib.parse

REFS_VARIABLE = "ARR_SECRET_REFS"
ENDPOINT_VARIABLE = "ARR_SECRETMANAGER_ENDPOINT"
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
REFERENCE = re.compile(r"^projects/[^/\s]+/secrets/[^/\s]+(/versions/[^/\s]+)?$")
REFERENCE_FORM = "projects/PROJECT/secrets/NAME[/versions/VERSION]"


class SecretError(RuntimeError):
    """A secret reference that cannot be resolved; names the variable, never a value."""


@dataclasses.dataclass(frozen=True)
class SecretRef:
    variable: str  # environment variable to set
    version: str   # full version name: projects/P/secrets/S/versions/V

    @property
    def secret(self) -> str:
        return self.version.rsplit("/versions/", 1)[0]


def parse_refs(text: str) -> list[SecretRef]:
    """`ENV=projects/P/secrets/S[/versions/V],...` as SecretRefs (latest when no version is given).

    A malformed entry is reported by its variable name only: a value pasted
    where a reference belongs must not reach the logs.
    """
    refs: list[SecretRef] = []
    for position, entry in enumerate((e.strip() for e in text.split(",")), start=1):
        if not entry:
            continue
        variable, separator, reference = (part.strip() for part in entry.partition("="))
        if not separator or not ENV_NAME.match(variable):
            raise SecretError(f"{REFS_VARIABLE} entry {position} is not ENV={REFERENCE_FORM} "
                              "(ENV: letters, digits and _, not starting with a digit)")
        if not REFERENCE.match(reference):
            raise SecretError(f"{REFS_VARIABLE}: {variable} must reference a secret as {REFERENCE_FORM}; "
                              "its reference does not have that form (not shown, in case it is a value)")
        if any(ref.variable == variable for ref in refs):
            raise SecretError(f"{REFS_VARIABLE}: {variable} is given more than once; keep one reference")
        version = reference if "/versions/" in reference else f"{reference}/versions/latest"
        refs.append(SecretRef(variable, version))
    return refs


def is_loopback(url: str) -> bool:
    host = urllib.parse.urlsplit(url if "://" in url else f"https://{url}").hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def make_client(endpoint: str | None):
    """The real Secret Manager client: default endpoint and ADC, or the override.

    A loopback override (a test or local server) gets REST, anonymous
    credentials and may be plain http; any other override must be https.
    """
    from google.cloud import secretmanager

    if not endpoint:
        return secretmanager.SecretManagerServiceClient()
    loopback = is_loopback(endpoint)
    if endpoint.startswith("http://") and not loopback:
        raise SecretError(f"{ENDPOINT_VARIABLE}={endpoint}: plain http is only allowed to loopback; use https://")
    if not loopback:
        host = urllib.parse.urlsplit(endpoint if "://" in endpoint else f"https://{endpoint}").netloc
        return secretmanager.SecretManagerServiceClient(client_options={"api_endpoint": host})
    from google.auth.credentials import AnonymousCredentials

    return secretmanager.SecretManagerServiceClient(
        transport="rest", credentials=AnonymousCredentials(),
        client_options={"api_endpoint": endpoint if "://" in endpoint else f"http://{endpoint}"})


def access(client, ref: SecretRef) -> str:
    """The secret's text; API errors are rewritten to name the variable and what to check."""
    from google.api_core import exceptions

    try:
        response = client.access_secret_version(name=ref.version)
    except exceptions.NotFound:
        raise SecretError(f"{ref.variable}: {ref.version} does not exist (check the project, the secret "
                          "name and that the version is enabled)") from None
    except exceptions.Forbidden:  # REST 403; gRPC PERMISSION_DENIED is a subclass
        raise SecretError(f"{ref.variable}: no access to {ref.secret}; grant the job's service account "
                          "roles/secretmanager.secretAccessor on it") from None
    except exceptions.GoogleAPICallError as error:
        raise SecretError(f"{ref.variable}: reading {ref.version} failed: {type(error).__name__} "
                          f"{error.code}") from None
    check_crc32c(ref, response.payload)
    try:
        return response.payload.data.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise SecretError(f"{ref.variable}: {ref.version} is not UTF-8 text; an environment "
                          "variable can only carry text") from None


def check_crc32c(ref: SecretRef, payload) -> None:
    """Secret Manager sends a CRC32C of the payload; a mismatch means corruption in transit."""
    if not payload.data_crc32c:
        return
    import google_crc32c

    if google_crc32c.value(payload.data) != payload.data_crc32c:
        raise SecretError(f"{ref.variable}: the payload of {ref.version} failed its CRC32C check; retry")


def load_secrets(environ=os.environ, client=None) -> list[str]:
    """Resolve ARR_SECRET_REFS into `environ`; returns the variable names set (the only thing to log)."""
    refs = parse_refs(environ.get(REFS_VARIABLE, ""))
    if not refs:
        return []
    client = client or make_client(environ.get(ENDPOINT_VARIABLE) or None)
    values = {ref.variable: access(client, ref) for ref in refs}  # all resolved before any is set
    environ.update(values)
    return list(values)
