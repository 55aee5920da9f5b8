"""Push a prebuilt OCI layout to a registry by digest (OCI distribution spec).

Why our own client: the digest Bazel computed is the image's identity, so the
bytes must land unchanged (PyPI's `oras` re-serialises manifests; skopeo is not
on every user's machine and needs flags to keep digests). The protocol facts
it relies on are in ENVIRONMENT.md ("Distribution-spec push facts"):

- HEAD a blob first and skip it when present (re-push uploads nothing);
- POST starts an upload; its Location may be absolute (with `?_state=`) or
  relative, and each PATCH returns the next Location to follow;
- large blobs go in chunked PATCHes with `Content-Range: START-END`;
- a retried upload re-opens its source (a consumed stream cannot be resent);
- the manifest PUT needs the exact mediaType as Content-Type, after all blobs;
- token registries (Artifact Registry too) hand out pull-only tokens for HEAD
  and challenge again for POST: ask for `pull,push`.
"""

from __future__ import annotations

import base64
import concurrent.futures
import dataclasses
import json
import os
import re
import sys
import threading
import time
import urllib.parse

import requests

from tools.launch import endpoints, image

DEFAULT_CHUNK = 32 << 20  # blobs above this go in chunked PATCHes
DEFAULT_JOBS = 4
RETRIES = 4
TIMEOUT = (10, 300)  # connect, read


class RegistryError(RuntimeError):
    """A push failed for a reason the user can act on (unreachable, auth, protocol)."""


@dataclasses.dataclass(frozen=True)
class BasicAuth:
    username: str
    password: str

    def header(self) -> str:
        raw = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(raw).decode()


@dataclasses.dataclass
class PushReport:
    digest: str
    reference: str
    tag: str
    blobs_uploaded: int = 0
    blobs_skipped: int = 0
    blobs_mounted: int = 0
    bytes_uploaded: int = 0
    bytes_total: int = 0
    retries: int = 0
    seconds: float = 0.0


class _Retryable(Exception):
    """A transient failure (connection dropped, 5xx, 429): redo the whole blob."""


_CHALLENGE_RE = re.compile(r'(\w+)="([^"]*)"')


def parse_challenge(header: str) -> tuple[str, dict]:
    """('bearer', {realm, service, scope}) from a WWW-Authenticate header."""
    scheme, _, rest = header.strip().partition(" ")
    return scheme.lower(), dict(_CHALLENGE_RE.findall(rest))


def push_scope(repository: str) -> str:
    return f"repository:{repository}:pull,push"


class Session:
    """HTTP to one registry repository with Basic/Bearer auth, shared across threads.

    Auth is lazy and challenge-driven: the first 401 says which scheme the
    registry wants. Bearer tokens are cached per scope; pushes always ask for
    `pull,push` because registries hand pull-only tokens to HEAD requests.
    """

    def __init__(self, base: str, repository: str, auth: BasicAuth | None = None):
        self.base = base.rstrip("/")
        self.repository = repository
        self.auth = auth
        self._local = threading.local()
        self._lock = threading.Lock()
        self._authorization: str | None = None  # header value once known
        self.requests = 0

    def _http(self) -> requests.Session:
        s = getattr(self._local, "session", None)
        if s is None:
            s = self._local.session = requests.Session()
        return s

    def url(self, path: str) -> str:
        return f"{self.base}/v2/{self.repository}/{path}"

    def request(self, method: str, url: str, *, body_factory=None, headers=None,
                allow=(200, 201, 202, 204)) -> requests.Response:
        """One request, re-sent once with credentials after a 401 challenge.

        `body_factory` makes a fresh body per attempt (a file read once is gone).
        """
        for attempt in range(2):
            hdrs = dict(headers or {})
            if self._authorization:
                hdrs["Authorization"] = self._authorization
            body = body_factory() if body_factory else None
            try:
                self.requests += 1
                resp = self._http().request(method, url, data=body, headers=hdrs,
                                            timeout=TIMEOUT, allow_redirects=False)
            except requests.ConnectionError as e:
                raise _Retryable(f"{method} {url}: connection failed: {e}") from e
            except requests.Timeout as e:
                raise _Retryable(f"{method} {url}: timed out") from e
            finally:
                if hasattr(body, "close"):
                    body.close()
            if resp.status_code == 401 and attempt == 0:
                self._authorize(resp, method)
                continue
            if resp.status_code in (401, 403):
                raise RegistryError(
                    f"registry {self.base} refused credentials for {self.repository} "
                    f"({method} -> HTTP {resp.status_code}): {_error_text(resp)}"
                )
            if resp.status_code == 429 or resp.status_code >= 500:
                raise _Retryable(f"{method} {url}: HTTP {resp.status_code}: {_error_text(resp)}")
            if resp.status_code not in allow:
                raise RegistryError(
                    f"{method} {url}: unexpected HTTP {resp.status_code}: {_error_text(resp)}"
                )
            return resp
        raise AssertionError("unreachable")

    def _authorize(self, resp: requests.Response, method: str) -> None:
        header = resp.headers.get("WWW-Authenticate", "")
        scheme, params = parse_challenge(header)
        if scheme == "basic":
            if not self.auth:
                raise RegistryError(
                    f"registry {self.base} wants credentials (Basic) for {self.repository}; "
                    "set ARR_REGISTRY_USER and ARR_REGISTRY_PASSWORD"
                )
            with self._lock:
                self._authorization = self.auth.header()
        elif scheme == "bearer":
            token = self._fetch_token(params)
            with self._lock:
                self._authorization = "Bearer " + token
        else:
            raise RegistryError(f"registry {self.base}: unsupported auth challenge {header!r}")

    def _fetch_token(self, params: dict) -> str:
        """Asks the token server named by the challenge for a pull,push token."""
        realm = params.get("realm")
        if not realm:
            raise RegistryError(f"registry {self.base}: Bearer challenge without realm")
        scopes = {push_scope(self.repository)}
        if params.get("scope") and not params["scope"].startswith(f"repository:{self.repository}:"):
            scopes.add(params["scope"])  # e.g. the source repository of a mount
        query = [("scope", s) for s in sorted(scopes)]
        if params.get("service"):
            query.insert(0, ("service", params["service"]))
        headers = {"Authorization": self.auth.header()} if self.auth else {}
        try:
            resp = self._http().get(realm, params=query, headers=headers, timeout=TIMEOUT)
        except requests.RequestException as e:
            raise RegistryError(f"token server {realm} unreachable: {e}") from None
        if resp.status_code in (401, 403):
            raise RegistryError(
                f"token server {realm} refused credentials (HTTP {resp.status_code}): "
                f"{_error_text(resp)}"
            )
        if resp.status_code != 200:
            raise RegistryError(f"token server {realm}: HTTP {resp.status_code}: {_error_text(resp)}")
        data = resp.json()
        token = data.get("token") or data.get("access_token")
        if not token:
            raise RegistryError(f"token server {realm} answered without a token")
        return token


def _error_text(resp: requests.Response) -> str:
    try:
        errors = resp.json().get("errors") or []
        return "; ".join(f"{e.get('code')}: {e.get('message')}" for e in errors) or resp.text[:200]
    except ValueError:
        return resp.text[:200]


def resolve_location(session: Session, resp: requests.Response) -> str:
    """The upload URL to use next: Location may be absolute or relative."""
    loc = resp.headers.get("Location")
    if not loc:
        raise RegistryError(f"{resp.request.method} {resp.url}: no Location in upload response")
    return urllib.parse.urljoin(session.base + "/", loc)


def with_query(url: str, **params: str) -> str:
    """Adds query parameters to a URL that may already carry `?_state=...`."""
    parts = urllib.parse.urlsplit(url)
    query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True) + list(params.items())
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))


def show_progress(requested: bool | None, stream, environ=os.environ) -> bool:
    """Whether to draw a progress bar: an explicit choice wins, else only on a terminal.

    A bar's carriage returns turn CI logs and captured stderr into noise, so
    anything that is not a TTY (a pipe, a file, a closed or odd stream) and a
    terminal that says it cannot redraw (TERM=dumb) get none.
    """
    if requested is not None:
        return requested
    try:
        tty = bool(stream.isatty())
    except (AttributeError, ValueError, OSError):  # no isatty, or a closed stream
        return False
    return tty and environ.get("TERM") != "dumb"


class _Progress:
    """A tqdm bar on STREAM when enabled, nothing otherwise."""

    def __init__(self, total: int, enabled: bool, stream=None):
        self.bar = None
        if enabled:
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit="B", unit_scale=True, file=stream or sys.stderr,
                            desc="push")
        self._lock = threading.Lock()

    def add(self, n: int) -> None:
        if self.bar:
            with self._lock:
                self.bar.update(n)

    def close(self) -> None:
        if self.bar:
            self.bar.close()


class Pusher:
    """Pushes the blobs and manifest of one layout to one repository."""

    def __init__(self, session: Session, layout_dir: str, *, chunk_size: int = DEFAULT_CHUNK,
                 jobs: int = DEFAULT_JOBS, mount_from: str | None = None,
                 progress: bool | None = None, retries: int = RETRIES, backoff: float = 0.2):
        self.s = session
        self.layout = layout_dir
        self.chunk_size = chunk_size
        self.jobs = jobs
        self.mount_from = mount_from
        self.retries = retries
        self.backoff = backoff
        self.progress_enabled = show_progress(progress, sys.stderr)
        self._lock = threading.Lock()
        self.report: PushReport | None = None

    # -- blobs ---------------------------------------------------------------

    def _count(self, field: str, n: int = 1) -> None:
        with self._lock:
            setattr(self.report, field, getattr(self.report, field) + n)

    def blob_exists(self, digest: str) -> bool:
        resp = self.s.request("HEAD", self.s.url(f"blobs/{digest}"), allow=(200, 404))
        return resp.status_code == 200

    def push_blob(self, digest: str, size: int, progress: _Progress) -> None:
        """HEAD, then mount or upload; a transient failure restarts the blob from byte 0."""
        for attempt in range(self.retries + 1):
            try:
                if self.blob_exists(digest):
                    self._count("blobs_skipped")
                    progress.add(size)
                    return
                self._upload(digest, size, progress)
                return
            except _Retryable as e:
                if attempt == self.retries:
                    raise RegistryError(
                        f"registry {self.s.base} unreachable or failing after "
                        f"{self.retries + 1} tries: {e}"
                    ) from None
                self._count("retries")
                time.sleep(self.backoff * (2**attempt))

    def _upload(self, digest: str, size: int, progress: _Progress) -> None:
        start_url = self.s.url("blobs/uploads/")
        if self.mount_from:
            start_url = with_query(start_url, mount=digest, **{"from": self.mount_from})
        resp = self.s.request("POST", start_url, allow=(201, 202))
        if resp.status_code == 201:  # mounted from the other repository
            self._count("blobs_mounted")
            progress.add(size)
            return
        location = resolve_location(self.s, resp)
        path = image.blob_path(self.layout, digest)
        if size <= self.chunk_size:
            resp = self.s.request(
                "PUT", with_query(location, digest=digest),
                body_factory=lambda: open(path, "rb"),
                headers={"Content-Type": "application/octet-stream", "Content-Length": str(size)},
                allow=(201,),
            )
        else:
            location = self._patch_chunks(location, path, size)
            resp = self.s.request("PUT", with_query(location, digest=digest),
                                  headers={"Content-Length": "0"}, allow=(201,))
        got = resp.headers.get("Docker-Content-Digest")
        if got and got != digest:
            raise RegistryError(f"registry stored {got} for blob {digest}")
        self._count("blobs_uploaded")
        self._count("bytes_uploaded", size)
        progress.add(size)

    def _patch_chunks(self, location: str, path: str, size: int) -> str:
        """Sends the blob in chunk_size pieces; returns the Location for the closing PUT."""
        with open(path, "rb") as f:
            offset = 0
            while offset < size:
                chunk = f.read(self.chunk_size)
                end = offset + len(chunk) - 1
                resp = self.s.request(
                    "PATCH", location, body_factory=lambda c=chunk: c,
                    headers={"Content-Type": "application/octet-stream",
                             "Content-Range": f"{offset}-{end}",
                             "Content-Length": str(len(chunk))},
                    allow=(202,),
                )
                location = resolve_location(self.s, resp)
                offset = end + 1
        return location

    # -- manifests -----------------------------------------------------------

    def _read_blob(self, digest: str) -> bytes:
        with open(image.blob_path(self.layout, digest), "rb") as f:
            return f.read()

    def put_manifest(self, ref: str, body: bytes, media_type: str) -> None:
        resp = self.s.request("PUT", self.s.url(f"manifests/{ref}"),
                              body_factory=lambda: body,
                              headers={"Content-Type": media_type}, allow=(201,))
        got = resp.headers.get("Docker-Content-Digest")
        if ref.startswith("sha256:") and got and got != ref:
            raise RegistryError(f"registry stored manifest as {got}, expected {ref}")

    def _blobs_of(self, manifest: dict) -> list[tuple[str, int]]:
        return [(d["digest"], int(d["size"])) for d in [manifest["config"], *manifest["layers"]]]

    def push(self, digest: str, tag: str | None) -> PushReport:
        """Blobs in parallel, then the manifest by digest, then the short tag."""
        t0 = time.monotonic()
        desc = image.check_layout(self.layout, digest)
        body = self._read_blob(digest)
        manifest = json.loads(body)
        media_type = manifest.get("mediaType") or desc.get("mediaType")
        if not media_type:
            raise RegistryError(f"manifest {digest} has no mediaType")
        if "index" in media_type or "manifest.list" in media_type:
            raise RegistryError("multi-platform indexes are not supported: push one image manifest")
        blobs = self._blobs_of(manifest)
        self.report = PushReport(digest=digest, reference="", tag=tag or "",
                                 bytes_total=sum(s for _, s in blobs))
        progress = _Progress(self.report.bytes_total, self.progress_enabled)
        try:
            with concurrent.futures.ThreadPoolExecutor(self.jobs) as pool:
                futures = [pool.submit(self.push_blob, d, s, progress) for d, s in blobs]
                for f in concurrent.futures.as_completed(futures):
                    f.result()
        finally:
            progress.close()
        self._with_retries(lambda: self.put_manifest(digest, body, media_type))
        if tag:
            if tag == "latest":
                raise RegistryError("refusing to tag `latest`: tags are digest-derived")
            self._with_retries(lambda: self.put_manifest(tag, body, media_type))
        self.report.seconds = time.monotonic() - t0
        return self.report

    def _with_retries(self, fn) -> None:
        for attempt in range(self.retries + 1):
            try:
                return fn()
            except _Retryable as e:
                if attempt == self.retries:
                    raise RegistryError(f"registry {self.s.base}: {e}") from None
                self._count("retries")
                time.sleep(self.backoff * (2**attempt))


def push_layout(registry: str, repository_name: str, layout_dir: str, digest: str, *,
                auth: BasicAuth | None = None, tag: str | None = "", **kwargs) -> PushReport:
    """Pushes LAYOUT_DIR's manifest DIGEST to REGISTRY (URL with optional path prefix).

    `tag=""` means the default short tag (last 7 hex of the digest); None: no tag.
    """
    reg = endpoints.parse_registry(registry)
    repository = reg.repository(repository_name)
    session = Session(reg.base, repository, auth)
    if tag == "":
        tag = image.short_tag(digest)
    try:
        report = Pusher(session, layout_dir, **kwargs).push(digest, tag)
    except requests.RequestException as e:  # anything not classified above
        raise RegistryError(f"registry {reg.base}: {e}") from None
    report.reference = image.reference(reg.host, repository, digest)
    return report


def _error_codes(resp: requests.Response) -> set[str]:
    try:
        return {e.get("code") for e in resp.json().get("errors") or []}
    except ValueError:
        return set()


def missing_repository(registry: str, repository_name: str, *,
                       auth: BasicAuth | None = None) -> str | None:
    """None when a push to the repository can start, else the registry's NAME_UNKNOWN text.

    Starts (and then cancels) a blob upload, the first write a push makes: it
    proves the repository exists and the credentials may push, with the same
    session and auth as the push. Artifact Registry answers a missing
    repository with 404 NAME_UNKNOWN; registries that create repositories on
    push (docker-registry) always answer 202.
    """
    reg = endpoints.parse_registry(registry)
    session = Session(reg.base, reg.repository(repository_name), auth)
    try:
        resp = session.request("POST", session.url("blobs/uploads/"), allow=(201, 202, 404))
    except (_Retryable, requests.RequestException) as e:
        raise RegistryError(f"registry {reg.base} unreachable: {e}") from None
    if resp.status_code == 404:
        if "NAME_UNKNOWN" in _error_codes(resp):
            return _error_text(resp)
        raise RegistryError(f"registry {reg.base}: no Docker V2 API for {session.repository} "
                            f"(HTTP 404): {_error_text(resp)}")
    if resp.status_code == 202 and resp.headers.get("Location"):
        try:  # an abandoned upload would expire anyway; cancelling is politeness
            session.request("DELETE", resolve_location(session, resp), allow=(200, 202, 204, 404))
        except (_Retryable, RegistryError, requests.RequestException):
            pass
    return None


def artifact_registry_auth(credentials) -> BasicAuth:
    """Artifact Registry takes an OAuth access token as the Basic password of `oauth2accesstoken`."""
    import google.auth.transport.requests

    if not credentials.valid:
        credentials.refresh(google.auth.transport.requests.Request())
    return BasicAuth("oauth2accesstoken", credentials.token)


def auth_from_env(env=os.environ) -> BasicAuth | None:
    """Registry credentials for non-Google registries, from the environment (never argv)."""
    user, password = env.get("ARR_REGISTRY_USER"), env.get("ARR_REGISTRY_PASSWORD")
    return BasicAuth(user, password) if user and password is not None else None
