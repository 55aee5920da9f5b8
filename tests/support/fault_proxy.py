"""A loopback HTTP proxy in front of a registry that fails or drops chosen requests.

Rules match by method and path regex and fire a given number of times:
`status` answers with that HTTP status (and the rule's body, e.g. a
distribution-spec error JSON) without forwarding; `drop` reads half of
the request body and closes the connection without an answer (a connection
lost mid-upload). Everything else is forwarded unchanged, with the client's
Host header, so the registry's absolute Locations point back at the proxy.
"""

from __future__ import annotations

import contextlib
import dataclasses
import http.client
import http.server
import re
import threading
import urllib.parse

from tests.support import loopback


@dataclasses.dataclass
class Rule:
    method: str
    path: str  # regex searched in the request path
    action: str  # "drop" or an HTTP status like "500"
    times: int = 1
    fired: int = 0
    body: bytes = b"injected fault"
    content_type: str = "text/plain"

    def matches(self, method: str, path: str) -> bool:
        return self.fired < self.times and method == self.method and re.search(self.path, path)


@dataclasses.dataclass
class Proxy:
    url: str
    rules: list
    log: list  # (method, path, status or "drop")


def relative(location: str) -> str:
    """An absolute Location made relative, as some registries send it."""
    parts = urllib.parse.urlsplit(location)
    return urllib.parse.urlunsplit(("", "", parts.path, parts.query, parts.fragment))


@contextlib.contextmanager
def fault_proxy(upstream: str, rules: list[Rule], relative_locations: bool = False):
    target = urllib.parse.urlsplit(upstream)
    lock = threading.Lock()
    log: list = []

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def _handle(self):
            length = int(self.headers.get("Content-Length") or 0)
            with lock:
                rule = next((r for r in rules if r.matches(self.command, self.path)), None)
                if rule:
                    rule.fired += 1
            if rule and rule.action == "drop":
                self.rfile.read(length // 2)
                log.append((self.command, self.path, "drop"))
                self.close_connection = True
                self.connection.shutdown(2)
                return
            body = self.rfile.read(length) if length else None
            if rule:
                log.append((self.command, self.path, int(rule.action)))
                self._answer(int(rule.action), {"Content-Type": rule.content_type}, rule.body)
                return
            conn = http.client.HTTPConnection(target.hostname, target.port, timeout=60)
            headers = {k: v for k, v in self.headers.items() if k.lower() != "connection"}
            conn.request(self.command, self.path, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            log.append((self.command, self.path, resp.status))
            hop = {"connection", "transfer-encoding", "content-length", "keep-alive"}
            out = {k: v for k, v in resp.getheaders() if k.lower() not in hop}
            if relative_locations and "Location" in out:
                out["Location"] = relative(out["Location"])
            self._answer(resp.status, out,
                         data, head=self.command == "HEAD", length=resp.getheader("Content-Length"))
            conn.close()

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
        yield Proxy(url, rules, log)
