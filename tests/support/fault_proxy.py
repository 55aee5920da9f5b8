"""A loopback HTTP proxy in front of a registry that fails or drops chosen requests.

Rules match by method and path regex; a rule lets its first `skip` matches
through, then fires `times` times. Actions:

- an HTTP status like "503": answered without forwarding, with the rule's
  body and headers (e.g. `Retry-After`; a callable value is evaluated when it
  fires, for an HTTP date relative to that moment);
- "drop": reads half of the request body and closes the connection without
  an answer (a connection lost mid-upload);
- "lose-session": cancels the upload session on the registry (DELETE), then
  forwards the request, so the registry itself answers 404 BLOB_UPLOAD_UNKNOWN
  (an upload the registry expired or garbage-collected);
- "416-partial": forwards only the first half of a PATCH's chunk, then answers
  416 with the Range and Location the registry gave for that half (a chunk
  that landed partly: the client must go on from the middle of it).

`token_uses=N` expires every Bearer token after its Nth use: from then on the
request is forwarded without its Authorization, so the registry answers with
its own 401 challenge, as for a token past its expiry.

Everything else is forwarded unchanged, with the client's Host header, so the
registry's absolute Locations point back at the proxy.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import http.client
import http.server
import re
import threading
import time
import urllib.parse

from tests.support import loopback


@dataclasses.dataclass
class Rule:
    method: str
    path: str  # regex searched in the request path
    action: str  # an HTTP status like "500", "drop", "lose-session" or "416-partial"
    times: int = 1
    skip: int = 0  # matching requests let through before the rule fires
    body: bytes = b"injected fault"
    content_type: str = "text/plain"
    headers: dict = dataclasses.field(default_factory=dict)  # name -> str or callable() -> str
    fired: int = 0
    seen: int = 0

    def take(self, method: str, path: str) -> bool:
        """Whether this request is one the rule fires on (counts it; call under the lock)."""
        if method != self.method or not re.search(self.path, path) or self.fired >= self.times:
            return False
        self.seen += 1
        if self.seen <= self.skip:
            return False
        self.fired += 1
        return True


@dataclasses.dataclass(frozen=True)
class Seen:
    """One request as the proxy saw it, with what the client got back."""

    method: str
    path: str
    status: object  # int, or "drop"
    content_range: str | None
    at: float  # time.monotonic() when the answer went out


@dataclasses.dataclass
class Proxy:
    url: str
    rules: list
    log: list  # (method, path, status or "drop")
    seen: list  # Seen, in order
    expired: int = 0  # 401s caused by token_uses


def relative(location: str) -> str:
    """An absolute Location made relative, as some registries send it."""
    parts = urllib.parse.urlsplit(location)
    return urllib.parse.urlunsplit(("", "", parts.path, parts.query, parts.fragment))


HOP_HEADERS = {"connection", "transfer-encoding", "content-length", "keep-alive"}


@contextlib.contextmanager
def fault_proxy(upstream: str, rules: list[Rule], relative_locations: bool = False,
                token_uses: int | None = None):
    target = urllib.parse.urlsplit(upstream)
    lock = threading.Lock()
    proxy = Proxy("", rules, [], [])
    token_counts: collections.Counter = collections.Counter()

    def forward(method, path, headers, body):
        """(status, headers, data) from the registry."""
        conn = http.client.HTTPConnection(target.hostname, target.port, timeout=60)
        try:
            conn.request(method, path, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            return resp.status, resp.getheaders(), data
        finally:
            conn.close()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def _record(self, status):
            with lock:
                proxy.log.append((self.command, self.path, status))
                proxy.seen.append(Seen(self.command, self.path, status,
                                       self.headers.get("Content-Range"), time.monotonic()))

        def _handle(self):
            length = int(self.headers.get("Content-Length") or 0)
            with lock:
                rule = next((r for r in rules if r.take(self.command, self.path)), None)
            if rule and rule.action == "drop":
                self.rfile.read(length // 2)
                self._record("drop")
                self.close_connection = True
                self.connection.shutdown(2)
                return
            body = self.rfile.read(length) if length else None
            headers = {k: v for k, v in self.headers.items() if k.lower() != "connection"}
            if self._expired(headers):
                headers.pop("Authorization")
            elif rule and rule.action == "lose-session":
                forward("DELETE", self.path, {**headers, "Content-Length": "0"}, None)
            elif rule and rule.action == "416-partial":
                return self._partial(headers, body or b"")
            elif rule:
                extra = {k: v() if callable(v) else v for k, v in rule.headers.items()}
                self._record(int(rule.action))
                return self._answer(int(rule.action), {"Content-Type": rule.content_type, **extra},
                                    rule.body, head=self.command == "HEAD")
            status, resp_headers, data = forward(self.command, self.path, headers, body)
            self._relay(status, resp_headers, data)

        def _expired(self, headers) -> bool:
            auth = headers.get("Authorization", "")
            if token_uses is None or not auth.startswith("Bearer "):
                return False
            with lock:
                token_counts[auth] += 1
                if token_counts[auth] <= token_uses:
                    return False
                proxy.expired += 1
                return True

        def _partial(self, headers, body):
            """Forwards the first half of the chunk, answers 416 with what the registry holds."""
            half = body[: len(body) // 2]
            start = int(self.headers["Content-Range"].split("-")[0])
            headers = {**headers, "Content-Length": str(len(half)),
                       "Content-Range": f"{start}-{start + len(half) - 1}"}
            status, resp_headers, _ = forward(self.command, self.path, headers, half)
            assert status == 202, f"the registry refused the partial chunk: HTTP {status}"
            kept = {k: v for k, v in resp_headers if k.lower() in ("location", "range")}
            self._record(416)
            self._answer(416, self._locations(kept), b"")

        def _locations(self, headers: dict) -> dict:
            if relative_locations and "Location" in headers:
                return {**headers, "Location": relative(headers["Location"])}
            return headers

        def _relay(self, status, resp_headers, data):
            out = {k: v for k, v in resp_headers if k.lower() not in HOP_HEADERS}
            length = dict((k.lower(), v) for k, v in resp_headers).get("content-length")
            self._record(status)
            self._answer(status, self._locations(out), data, head=self.command == "HEAD",
                         length=length)

        def _answer(self, status, headers, data, head=False, length=None):
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", length if head and length else str(len(data)))
            self.end_headers()
            if not head:
                self.wfile.write(data)

        do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

    with loopback.serving(Handler) as url:
        proxy.url = url
        yield proxy
