"""One loopback HTTP server lifecycle for the test servers (fake Google APIs, token server, fault proxy)."""

from __future__ import annotations

import contextlib
import http.server
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
