"""One loopback HTTP server lifecycle for the test servers (fake Google APIs, token server, fault proxy)."""

from __future__ import annotations

import contextlib
import http.server
import json
import threading


@contextlib.contextmanager
def serving(handler: type[http.server.BaseHTTPRequestHandler]):
    """Serve `handler` on a free 127.0.0.1 port in a thread; yields the base URL, stops on exit."""
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


class JsonHandler(http.server.BaseHTTPRequestHandler):
    """What every fake API server's handler shares: HTTP/1.1, no access log, and
    replies with an exact Content-Length (clients keep the connection open)."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def send_bytes(self, code: int, body: bytes = b"", headers: dict | None = None,
                   content_type: str = "application/json") -> None:
        self.send_response(code)
        for key, value in {"Content-Type": content_type, **(headers or {})}.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def send_json(self, code: int, obj, headers: dict | None = None) -> None:
        self.send_bytes(code, json.dumps(obj).encode(), headers)

    def read_body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))
