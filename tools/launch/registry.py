"""Push a prebuilt OCI layout to a registry by digest (OCI distribution spec).

Why our own client: the digest Bazel computed is the image's identity, so the
bytes must land unchanged (PyPI's `oras` re-serialises manifests; skopeo is not
on every user's machine and needs flags to keep digests). The protocol facts
it relies on:

- HEAD a blob first and skip it when present (re-push uploads nothing);
- POST starts an upload; its Location may be absolute (with `?_state=`) or
  relative, and each PATCH returns the next Location to follow;
- large blobs go in chunked PATCHes with `Content-Range: START-END`;
- a blob is read once, by the kernel as it sends: bodies are views into a
  read-only memory map (no copy in Python), and the layout's digest is trusted
  (the registry hashes what it receives and refuses a mismatch);
- a re-sent request takes a fresh body (a consumed stream cannot be resent);
- the manifest PUT needs the exact mediaType as Content-Type, after all blobs;
- token registries (Artifact Registry too) hand out pull-only tokens for HEAD
  and challenge again for POST: ask for `pull,push`.

What each error response leads to is the table "Registry error policy" in
docs/launch.md: only 429/502/503/504 and lost connections are re-sent
(honouring Retry-After), a 404 on an upload session starts the blob again, a
416 resumes at the registry's offset, a 401 renews the token once.
"""

from __future__ import annotations

import base64
import concurrent.futures
import dataclasses
import datetime
import email.utils
import json
import mmap
import os
import re
import sys
import threading
import time
import urllib.parse

import requests

from tools.launch import built_image, endpoints
from tools.launch.errors import RegistryError

DEFAULT_CHUNK = 512 << 20  # bigger blobs go in PATCHes of this size (measured: docs/launch.md)
DEFAULT_JOBS = 4
SEND_STEP = 8 << 20  # bytes handed to the socket at once; the next step is read ahead meanwhile
RETRIES = 4  # re-sends of one request after a transient failure
RESTARTS = 3  # new upload sessions for one blob after the registry lost one (404)
RESUMES = 8  # 416 resumptions within one upload session
TIMEOUT = (10, 300)  # connect, read
RETRY_STATUSES = frozenset({429, 502, 503, 504})  # transient by HTTP semantics; 500 is not
MAX_WAIT = 60.0  # seconds: cap on one wait, a registry's Retry-After included


@dataclasses.dataclass(frozen=True)
class BasicAuth:
    username: str
    password: str = dataclasses.field(repr=False)

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
    blobs_restarted: int = 0  # new upload sessions after a 404 on the old one
    chunk_resumes: int = 0  # 416s answered by resuming at the registry's offset
    bytes_uploaded: int = 0
    bytes_total: int = 0
    retries: int = 0  # requests re-sent after 429/502/503/504 or a dropped connection
    retry_wait_s: float = 0.0  # time slept before those re-sends
    token_requests: int = 0
    seconds: float = 0.0


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to wait before re-sending a request that failed transiently."""

    retries: int = RETRIES
    backoff: float = 0.2  # seconds before the first re-send, doubling after
    max_wait: float = MAX_WAIT

    def wait(self, retry: int, retry_after: float | None) -> float:
        """The registry's Retry-After when it gave one, else exponential backoff; capped."""
        wanted = retry_after if retry_after is not None else self.backoff * (2**retry)
        return min(wanted, self.max_wait)


class _Transient(Exception):
    """The request may succeed if sent again: no answer, or 429/502/503/504."""

    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class _SessionLost(Exception):
    """The registry no longer knows the upload session (404): start the blob again."""


_CHALLENGE_RE = re.compile(r'(\w+)="([^"]*)"')


def parse_challenge(header: str) -> tuple[str, dict]:
    """('bearer', {realm, service, scope}) from a WWW-Authenticate header."""
    scheme, _, rest = header.strip().partition(" ")
    return scheme.lower(), dict(_CHALLENGE_RE.findall(rest))


def push_scope(repository: str) -> str:
    return f"repository:{repository}:pull,push"


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a Retry-After header (delay-seconds or HTTP-date, RFC 9110 10.2.3).

    None when absent or unreadable (the caller's backoff applies); a date in the
    past means no wait. NOW is the current Unix time.
    """
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # RFC 9110 dates are GMT
        when = when.replace(tzinfo=datetime.timezone.utc)
    return max(0.0, when.timestamp() - now)


_RANGE_RE = re.compile(r"^(?:bytes=)?0-(\d+)$")


def parse_upload_range(value: str | None) -> int | None:
    """How many bytes an upload session holds, from its `Range: 0-<last byte>` header.

    None when absent or unreadable. `0-0` is ambiguous (distribution 2.8 says it
    for an empty session, the spec for one byte held): it is None too, so the
    caller starts a new session rather than guess.
    """
    m = _RANGE_RE.match((value or "").strip())
    if not m or m.group(1) == "0":
        return None
    return int(m.group(1)) + 1


def may_carry_credentials(url: str, registry_base: str) -> bool:
    """Registry credentials go to the registry's own origin only (an upload Location may not)."""
    mine, theirs = urllib.parse.urlsplit(registry_base), urllib.parse.urlsplit(url)
    return (mine.scheme, mine.netloc.lower()) == (theirs.scheme, theirs.netloc.lower())


def check_realm(realm: str | None, registry_base: str) -> str:
    """The token realm of a Bearer challenge, if credentials may go there.

    The same rule as for the registry itself: https, or plain HTTP to
    loopback only, so a challenge cannot send credentials in clear text.
    """
    if not realm:
        raise RegistryError(f"registry {registry_base}: Bearer challenge without realm")
    parts = urllib.parse.urlsplit(realm)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise RegistryError(f"registry {registry_base} names token realm {realm!r}: not an http(s) URL")
    if parts.scheme == "http" and not endpoints.is_loopback_host(parts.hostname):
        raise RegistryError(
            f"registry {registry_base} names token realm {realm}: plain HTTP is only allowed to "
            "loopback, and credentials would travel in clear text; nothing was sent. Serve the "
            "token realm over https:// (the registry's auth.token.realm setting)"
        )
    return realm


class Session:
    """HTTP to one registry repository with Basic/Bearer auth, shared across threads.

    Auth is lazy and challenge-driven: the first 401 says which scheme the
    registry wants. Pushes always ask for a `pull,push` token because registries
    hand pull-only tokens to HEAD requests. Credentials go only to the registry's
    own origin (an upload Location elsewhere gets none) and to the token realm it
    names. Transient failures are re-sent under RETRY (docs/launch.md, "Registry
    error policy").
    """

    def __init__(self, base: str, repository: str, auth: BasicAuth | None = None,
                 retry: RetryPolicy = RetryPolicy()):
        self.base = base.rstrip("/")
        self.repository = repository
        self.auth = auth
        self.retry = retry
        self._local = threading.local()
        self._auth_lock = threading.Lock()  # one token request at a time
        self._count_lock = threading.Lock()
        self._authorization: str | None = None  # header value once known
        self._realm: str | None = None  # the token realm once a Bearer challenge named one
        self.requests = 0
        self.retries = 0
        self.retry_wait_s = 0.0
        self.token_requests = 0

    def _http(self) -> requests.Session:
        s = getattr(self._local, "session", None)
        if s is None:
            s = self._local.session = requests.Session()
        return s

    def url(self, path: str) -> str:
        return f"{self.base}/v2/{self.repository}/{path}"

    def request(self, method: str, url: str, *, body_factory=None, headers=None,
                allow=(200, 201, 202, 204)) -> requests.Response:
        """One request under the error policy; a status outside ALLOW is a RegistryError.

        `body_factory` makes a fresh body per attempt: a streamed body is consumed
        by a failed send and must be rewound (re-opened) before the next one.
        A 401 gets one new authorization (a fresh token), then is final.
        """
        reauthorized = False
        retry = 0
        while True:
            sent_auth = self._authorization
            try:
                resp = self._send(method, url, body_factory, headers, sent_auth)
                if resp.status_code == 401 and not reauthorized:
                    reauthorized = True
                    self._reauthorize(resp, sent_auth)
                    continue
                return self._judge(method, url, resp, allow, reauthorized)
            except _Transient as e:
                if retry >= self.retry.retries:
                    raise RegistryError(
                        f"registry {self.base} unreachable or failing after {retry + 1} tries: {e}"
                    ) from None
                wait = self.retry.wait(retry, e.retry_after)
                with self._count_lock:
                    self.retries += 1
                    self.retry_wait_s += wait
                time.sleep(wait)
                retry += 1

    def _send(self, method, url, body_factory, headers, authorization) -> requests.Response:
        refusal = _plain_http_refusal(url)
        if refusal:
            raise RegistryError(f"{method} {url}: {refusal}")
        hdrs = dict(headers or {})
        if authorization and may_carry_credentials(url, self.base):
            hdrs["Authorization"] = authorization
        body = body_factory() if body_factory else None
        try:
            with self._count_lock:
                self.requests += 1
            return self._http().request(method, url, data=body, headers=hdrs,
                                        timeout=TIMEOUT, allow_redirects=False)
        except requests.exceptions.SSLError as e:  # a certificate problem does not pass by itself
            raise RegistryError(f"{method} {url}: TLS failed: {e}") from None
        except requests.ConnectionError as e:
            raise _Transient(f"{method} {url}: connection failed: {e}") from e
        except requests.Timeout as e:
            raise _Transient(f"{method} {url}: timed out") from e
        finally:
            if hasattr(body, "close"):
                body.close()

    def _judge(self, method, url, resp, allow, reauthorized) -> requests.Response:
        status = resp.status_code
        if status in (401, 403):
            raise RegistryError(self._refusal(method, resp, reauthorized))
        if status in RETRY_STATUSES:
            raise _Transient(f"{method} {url}: HTTP {status}: {_error_text(resp)}",
                             parse_retry_after(resp.headers.get("Retry-After"), time.time()))
        if status not in allow:
            raise RegistryError(f"{method} {url}: unexpected HTTP {status}: {_error_text(resp)}")
        return resp

    def _refusal(self, method: str, resp: requests.Response, reauthorized: bool) -> str:
        """What was refused and which credentials to fix (never their values)."""
        if self.auth is None:
            fix = "set ARR_REGISTRY_USER and ARR_REGISTRY_PASSWORD"
        elif self.auth.username == "oauth2accesstoken":
            fix = ("fix the Google credentials (gcloud auth application-default login); the "
                   "account needs Artifact Registry Writer on the repository")
        else:
            fix = (f"fix ARR_REGISTRY_USER ({self.auth.username}) / ARR_REGISTRY_PASSWORD, or "
                   "that user's push access to the repository")
        fresh = f" even with a fresh token from {self._realm}" if reauthorized and self._realm else ""
        return (f"registry {self.base} refused credentials for {self.repository}{fresh} "
                f"({method} -> HTTP {resp.status_code}: {_error_text(resp)}): {fix}")

    def _reauthorize(self, resp: requests.Response, sent_auth: str | None) -> None:
        """New credentials after a 401, unless another thread already renewed them."""
        with self._auth_lock:
            if self._authorization != sent_auth:
                return
            self._authorization = self._authorization_for(resp)

    def _authorization_for(self, resp: requests.Response) -> str:
        header = resp.headers.get("WWW-Authenticate", "")
        scheme, params = parse_challenge(header)
        if scheme == "basic":
            if not self.auth:
                raise RegistryError(
                    f"registry {self.base} wants credentials (Basic) for {self.repository}; "
                    "set ARR_REGISTRY_USER and ARR_REGISTRY_PASSWORD"
                )
            return self.auth.header()
        if scheme == "bearer":
            return "Bearer " + self._fetch_token(params)
        raise RegistryError(f"registry {self.base}: unsupported auth challenge {header!r}")

    def _fetch_token(self, params: dict) -> str:
        """Asks the token realm named by the challenge for a pull,push token."""
        realm = self._realm = check_realm(params.get("realm"), self.base)
        query = [("scope", push_scope(self.repository))]
        if params.get("service"):
            query.insert(0, ("service", params["service"]))
        headers = {"Authorization": self.auth.header()} if self.auth else {}
        self.token_requests += 1
        try:  # no redirects: the credentials go to the named realm only
            resp = self._http().get(realm, params=query, headers=headers, timeout=TIMEOUT,
                                    allow_redirects=False)
        except requests.RequestException as e:
            raise RegistryError(f"token server {realm} unreachable: {e}") from None
        if resp.status_code in (401, 403):
            raise RegistryError(
                f"token server {realm} refused credentials (HTTP {resp.status_code}): "
                f"{_error_text(resp)}"
            )
        if resp.is_redirect:
            raise RegistryError(f"token server {realm} redirects to {resp.headers.get('Location')}: "
                                "credentials go only to the realm the registry names")
        if resp.status_code != 200:
            raise RegistryError(f"token server {realm}: HTTP {resp.status_code}: {_error_text(resp)}")
        data = resp.json()
        token = data.get("token") or data.get("access_token")
        if not token:
            raise RegistryError(f"token server {realm} answered without a token")
        return token


def _plain_http_refusal(url: str) -> str | None:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "http" and not endpoints.is_loopback_host(parts.hostname or ""):
        return "plain HTTP is only allowed to loopback"
    return None


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


class _BlobMap:
    """A read-only memory map of one blob file; request bodies are views into it.

    Why: the kernel copies the pages straight from the page cache into the
    socket (no read into a Python buffer), a re-sent request takes a fresh view
    instead of re-opening the file, and a 416 resume starts at any offset.
    """

    def __init__(self, path: str, size: int):
        self._map = None
        with open(path, "rb") as f:
            held = os.fstat(f.fileno()).st_size
            if held != size:
                raise RegistryError(f"blob {path} holds {held} bytes, its descriptor says "
                                    f"{size}: rebuild the layout")
            if size:
                self._map = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
                self._map.madvise(mmap.MADV_SEQUENTIAL)

    def body(self, start: int, end: int):
        """A fresh body for bytes [START, END): a reader for requests, or b'' when empty."""
        return _RangeReader(self._map, start, end) if end > start else b""

    def close(self) -> None:
        if self._map is not None:
            try:
                self._map.close()
            except BufferError:  # a failed send still holds a view: it is freed with that view
                pass
            self._map = None

    def __enter__(self) -> "_BlobMap":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class _RangeReader:
    """File-like over [start, end) of a map: each read hands out a SEND_STEP view and
    asks the kernel to read the following step ahead, so a cold disk read overlaps the send."""

    def __init__(self, blob_map: mmap.mmap, start: int, end: int):
        self._map, self._pos, self._end = blob_map, start, end
        self._prefetch(start, min(end, start + SEND_STEP))

    def __len__(self) -> int:  # requests takes the body's length from here
        return self._end - self._pos

    def _prefetch(self, start: int, end: int) -> None:
        if end > start:
            aligned = start - start % mmap.PAGESIZE
            self._map.madvise(mmap.MADV_WILLNEED, aligned, end - aligned)

    def read(self, _size: int = -1) -> memoryview | bytes:
        if self._pos >= self._end:
            return b""
        stop = min(self._end, self._pos + SEND_STEP)
        self._prefetch(stop, min(self._end, stop + SEND_STEP))
        view = memoryview(self._map)[self._pos:stop]
        self._pos = stop
        return view


class Pusher:
    """Pushes the blobs and manifest of one layout to one repository."""

    def __init__(self, session: Session, layout_dir: str, *, chunk_size: int = DEFAULT_CHUNK,
                 jobs: int = DEFAULT_JOBS,
                 progress: bool | None = None, restarts: int = RESTARTS, resumes: int = RESUMES):
        self.s = session
        self.layout = layout_dir
        self.chunk_size = chunk_size
        self.jobs = jobs
        self.restarts = restarts
        self.resumes = resumes
        self.progress_enabled = show_progress(progress, sys.stderr)
        self._lock = threading.Lock()
        self._failed = threading.Event()
        self.report: PushReport | None = None

    # -- blobs ---------------------------------------------------------------

    def _count(self, field: str, n: int = 1) -> None:
        with self._lock:
            setattr(self.report, field, getattr(self.report, field) + n)

    def blob_exists(self, digest: str) -> bool:
        resp = self.s.request("HEAD", self.s.url(f"blobs/{digest}"), allow=(200, 404))
        return resp.status_code == 200

    def _push_blob_unless_failed(self, digest: str, size: int, progress: _Progress) -> None:
        """One blob, unless another already failed for good (the push is lost: stop early)."""
        if self._failed.is_set():
            return
        try:
            self.push_blob(digest, size, progress)
        except BaseException:
            self._failed.set()
            raise

    def push_blob(self, digest: str, size: int, progress: _Progress) -> None:
        """HEAD, then upload; a lost upload session (404) starts the blob again."""
        for restart in range(self.restarts + 1):
            try:
                if self.blob_exists(digest):  # also catches a closing PUT whose answer was lost
                    self._count("blobs_skipped")
                    progress.add(size)
                    return
                self._upload(digest, size, progress)
                return
            except _SessionLost as e:
                if restart == self.restarts:
                    raise RegistryError(
                        f"registry {self.s.base} lost the upload session of blob {digest} "
                        f"{restart + 1} times in a row: {e}"
                    ) from None
                self._count("blobs_restarted")

    def _upload(self, digest: str, size: int, progress: _Progress) -> None:
        resp = self.s.request("POST", self.s.url("blobs/uploads/"), allow=(202,))
        location = resolve_location(self.s, resp)
        with _BlobMap(built_image.blob_path(self.layout, digest), size) as blob:
            if size <= self.chunk_size:
                resp = self.s.request(
                    "PUT", with_query(location, digest=digest),
                    body_factory=lambda: blob.body(0, size),
                    headers={"Content-Type": "application/octet-stream", "Content-Length": str(size)},
                    allow=(201, 404),
                )
            else:
                location = self._patch_chunks(location, blob, size)
                resp = self.s.request("PUT", with_query(location, digest=digest),
                                      headers={"Content-Length": "0"}, allow=(201, 404))
        _check_session(resp)
        got = resp.headers.get("Docker-Content-Digest")
        if got and got != digest:
            raise RegistryError(f"registry stored {got} for blob {digest}")
        self._count("blobs_uploaded")
        self._count("bytes_uploaded", size)
        progress.add(size)

    def _patch_chunks(self, location: str, blob: _BlobMap, size: int) -> str:
        """Sends the blob in chunk_size pieces; returns the Location for the closing PUT.

        A 416 means the registry holds a different amount than sent so far: go
        on from the offset it reports (the 416's Range, else a GET on the session).
        """
        resumes = 0
        offset = 0
        while offset < size:
            end = min(size, offset + self.chunk_size) - 1
            resp = self.s.request(
                "PATCH", location, body_factory=lambda a=offset, b=end + 1: blob.body(a, b),
                headers={"Content-Type": "application/octet-stream",
                         "Content-Range": f"{offset}-{end}",
                         "Content-Length": str(end + 1 - offset)},
                allow=(202, 404, 416),
            )
            _check_session(resp)
            if resp.status_code == 416:
                resumes += 1
                if resumes > self.resumes:
                    raise _SessionLost(f"{resumes} range mismatches (HTTP 416) in one session")
                location, offset = self._held(location, resp, size)
                self._count("chunk_resumes")
                continue
            location = resolve_location(self.s, resp)
            offset = end + 1
        return location

    def _held(self, location: str, refusal: requests.Response, size: int) -> tuple[str, int]:
        """(Location, bytes held) after a 416: from its headers, else asked with a GET."""
        if refusal.headers.get("Location"):
            location = resolve_location(self.s, refusal)
        held = parse_upload_range(refusal.headers.get("Range"))
        if held is None:
            status = self.s.request("GET", location, allow=(204, 404))
            _check_session(status)
            location = resolve_location(self.s, status)
            held = parse_upload_range(status.headers.get("Range"))
        if held is None or held > size:
            raise _SessionLost(f"HTTP 416 and the session holds an unusable range "
                               f"({refusal.headers.get('Range')!r})")
        return location, held

    # -- manifests -----------------------------------------------------------

    def _read_blob(self, digest: str) -> bytes:
        with open(built_image.blob_path(self.layout, digest), "rb") as f:
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
        image = built_image.check_layout(self.layout, digest)
        body = self._read_blob(digest)
        manifest = json.loads(body)
        media_type = manifest.get("mediaType") or image.descriptor.get("mediaType")
        if not media_type:
            raise RegistryError(f"manifest {digest} has no mediaType")
        if "index" in media_type or "manifest.list" in media_type:
            raise RegistryError("multi-platform indexes are not supported: push one image manifest")
        if tag == "latest":
            raise RegistryError("refusing to tag `latest`: tags are digest-derived")
        blobs = self._blobs_of(manifest)
        self.report = PushReport(digest=digest, reference="", tag=tag or "",
                                 bytes_total=sum(s for _, s in blobs))
        progress = _Progress(self.report.bytes_total, self.progress_enabled)
        try:
            with concurrent.futures.ThreadPoolExecutor(self.jobs) as pool:
                # Largest first: the biggest blob is the critical path, so it starts at once.
                futures = [pool.submit(self._push_blob_unless_failed, d, s, progress)
                           for d, s in sorted(blobs, key=lambda b: -b[1])]
                for f in concurrent.futures.as_completed(futures):
                    f.result()
        finally:
            progress.close()
        self.put_manifest(digest, body, media_type)
        if tag:
            self.put_manifest(tag, body, media_type)
        self.report.retries = self.s.retries
        self.report.retry_wait_s = self.s.retry_wait_s
        self.report.token_requests = self.s.token_requests
        self.report.seconds = time.monotonic() - t0
        return self.report


def _check_session(resp: requests.Response) -> None:
    """A 404 on an upload session (BLOB_UPLOAD_UNKNOWN): the registry dropped or expired it."""
    if resp.status_code == 404:
        raise _SessionLost(f"{resp.request.method} on the upload session: HTTP 404: "
                           f"{_error_text(resp)}")


def push_layout(registry: str, repository_name: str, layout_dir: str, digest: str, *,
                auth: BasicAuth | None = None, tag: str | None = "", retries: int = RETRIES,
                backoff: float = 0.2, max_wait: float = MAX_WAIT, **kwargs) -> PushReport:
    """Pushes LAYOUT_DIR's manifest DIGEST to REGISTRY (URL with optional path prefix).

    `tag=""` means the default short tag (last 7 hex of the digest); None: no tag.
    RETRIES, BACKOFF and MAX_WAIT set the RetryPolicy for transient failures.
    """
    reg = endpoints.parse_registry(registry)
    repository = reg.repository(repository_name)
    session = Session(reg.base, repository, auth, RetryPolicy(retries, backoff, max_wait))
    if tag == "":
        tag = built_image.short_tag(digest)
    try:
        report = Pusher(session, layout_dir, **kwargs).push(digest, tag)
    except requests.RequestException as e:  # anything not classified above
        raise RegistryError(f"registry {reg.base}: {e}") from None
    report.reference = built_image.reference(reg.host, repository, digest)
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
    except requests.RequestException as e:
        raise RegistryError(f"registry {reg.base} unreachable: {e}") from None
    if resp.status_code == 404:
        if "NAME_UNKNOWN" in _error_codes(resp):
            return _error_text(resp)
        raise RegistryError(f"registry {reg.base}: no Docker V2 API for {session.repository} "
                            f"(HTTP 404): {_error_text(resp)}")
    if resp.status_code == 202 and resp.headers.get("Location"):
        try:  # an abandoned upload would expire anyway; cancelling is politeness
            session.request("DELETE", resolve_location(session, resp), allow=(200, 202, 204, 404))
        except (RegistryError, requests.RequestException):
            pass
    return None


def artifact_registry_auth(credentials) -> BasicAuth:
    """Artifact Registry takes an OAuth access token as the Basic password of `oauth2accesstoken`."""
    import google.auth.transport.requests

    if not credentials.valid:
        credentials.refresh(google.auth.transport.requests.Request())
    return BasicAuth("oauth2accesstoken", credentials.token)


def auth_from_env(environ=os.environ) -> BasicAuth | None:
    """Registry credentials for non-Google registries, from the environment (never argv)."""
    user, password = environ.get("ARR_REGISTRY_USER"), environ.get("ARR_REGISTRY_PASSWORD")
    return BasicAuth(user, password) if user and password is not None else None
