"""A loopback fake of Secret Manager's `versions/V:access` REST call, for the real client.

Answers `GET /v1/projects/P/secrets/S/versions/V:access` with the JSON the API
sends (base64 payload and its CRC32C); "latest" is the highest version.
Unknown secrets or versions get 404 NOT_FOUND, names in `denied` 403.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import http.server
import re

import google_crc32c

from tests.support import loopback

ACCESS = re.compile(r"^/v1/(projects/[^/]+/secrets/[^/]+)/versions/([^/:]+):access$")


@dataclasses.dataclass
class FakeSecretManager:
    secrets: dict = dataclasses.field(default_factory=dict)    # "projects/P/secrets/S" -> [v1 bytes, v2 bytes, ...]
    denied: set = dataclasses.field(default_factory=set)       # secret names answered with 403
    corrupt: set = dataclasses.field(default_factory=set)      # secret names whose CRC32C is wrong
    requests: list = dataclasses.field(default_factory=list)   # paths asked for

    def access(self, path: str) -> tuple[int, dict]:
        match = ACCESS.match(path)
        if not match:
            return 404, error(404, "NOT_FOUND", f"no route {path}")
        secret, version = match.groups()
        if secret in self.denied:
            return 403, error(403, "PERMISSION_DENIED", f"Permission denied on resource {secret}")
        versions = self.secrets.get(secret, [])
        number = len(versions) if version == "latest" else int(version) if version.isdigit() else 0
        if not 1 <= number <= len(versions):
            return 404, error(404, "NOT_FOUND", f"Secret Version [{secret}/versions/{version}] not found")
        data = versions[number - 1]
        checksum = google_crc32c.value(data) + (1 if secret in self.corrupt else 0)
        return 200, {"name": f"{secret}/versions/{number}",
                     "payload": {"data": base64.b64encode(data).decode(), "dataCrc32c": str(checksum)}}

    def handler(self) -> type[http.server.BaseHTTPRequestHandler]:
        fake = self

        class Handler(loopback.JsonHandler):
            def do_GET(self):
                fake.requests.append(self.path.split("?")[0])
                self.send_json(*fake.access(self.path.split("?")[0]))

        return Handler


def error(code: int, status: str, message: str) -> dict:
    return {"error": {"code": code, "status": status, "message": message}}


@contextlib.contextmanager
def serving(fake: FakeSecretManager):
    """Yields the fake's base URL (http://127.0.0.1:PORT), for ARR_SECRETMANAGER_ENDPOINT."""
    with loopback.serving(fake.handler()) as url:
        yield url
