"""A small Cloud Storage JSON API server on loopback, for gcsfs (and google-cloud-storage).

It keeps objects in memory and answers the calls that gs:// reads and writes
through fsspec make: object metadata, listing with prefix/delimiter and pages,
media download (with Range), multipart and resumable uploads (chunks, 308 +
Range), and object delete. Anything else is answered 501 and recorded in
`unhandled`, so a test sees at once which call the fake lacks.

Why not fake-gcs-server or gcp-storage-emulator: both would be a new locked
package for what these ~150 lines answer; the wire format follows
https://cloud.google.com/storage/docs/json_api/v1 (objects: get, list,
insert, delete; resumable uploads).

gcsfs 2026.10 first asks the Storage Control gRPC API for the bucket type,
which a JSON-only server cannot answer (about 60 s lost per call). Setting
GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT=false before gcsfs is imported selects its
plain JSON-API filesystem (`gcsfs.core.GCSFileSystem`), which is what the
extended one delegates to for standard buckets; the test targets set it.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import datetime
import hashlib
import itertools
import json
import re
import threading
import urllib.parse

from tests.support import loopback

PAGE_SIZE = 3  # small, so that clients must follow nextPageToken

_OBJECT = re.compile(r"^/storage/v1/b/([^/]+)/o/(.+)$")
_OBJECTS = re.compile(r"^/storage/v1/b/([^/]+)/o$")
_BUCKET = re.compile(r"^/storage/v1/b/([^/]+)$")
_DOWNLOAD = re.compile(r"^/download/storage/v1/b/([^/]+)/o/(.+)$")
_UPLOAD = re.compile(r"^/upload/storage/v1/b/([^/]+)/o$")
_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)|bytes \*/(\d+)")


@dataclasses.dataclass
class FakeGCS:
    buckets: set = dataclasses.field(default_factory=set)
    objects: dict = dataclasses.field(default_factory=dict)  # (bucket, name) -> (bytes, generation)
    uploads: dict = dataclasses.field(default_factory=dict)  # upload id -> (bucket, name, bytearray)
    unhandled: list = dataclasses.field(default_factory=list)  # (method, path)
    writes: list = dataclasses.field(default_factory=list)  # object names in the order they were completed
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)
    _generations: itertools.count = dataclasses.field(default_factory=lambda: itertools.count(1))

    def resource(self, bucket: str, name: str) -> dict:
        data, generation = self.objects[(bucket, name)]
        now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        return {"kind": "storage#object", "bucket": bucket, "name": name, "size": str(len(data)),
                "generation": str(generation), "metageneration": "1", "contentType": "application/octet-stream",
                "md5Hash": base64.b64encode(hashlib.md5(data).digest()).decode(), "updated": now,
                "timeCreated": now, "storageClass": "STANDARD"}

    def store(self, bucket: str, name: str, data: bytes) -> dict:
        with self.lock:
            self.objects[(bucket, name)] = (bytes(data), next(self._generations))
            self.writes.append(f"{bucket}/{name}")
            return self.resource(bucket, name)

    def listing(self, bucket: str, query: dict) -> dict:
        """objects.list: items under `prefix`, folded at `delimiter` into prefixes, paged."""
        prefix, delimiter = query.get("prefix", ""), query.get("delimiter", "")
        items, prefixes = [], set()
        for (owner, name) in sorted(self.objects):
            if owner != bucket or not name.startswith(prefix):
                continue
            rest = name[len(prefix):]
            if delimiter and delimiter in rest:
                prefixes.add(prefix + rest.split(delimiter, 1)[0] + delimiter)
            else:
                items.append(name)
        entries = [("item", n) for n in items] + [("prefix", p) for p in sorted(prefixes)]
        start = int(query.get("pageToken") or 0)
        size = min(int(query.get("maxResults") or PAGE_SIZE), PAGE_SIZE)
        page = entries[start:start + size]
        body = {"kind": "storage#objects",
                "items": [self.resource(bucket, n) for kind, n in page if kind == "item"],
                "prefixes": [p for kind, p in page if kind == "prefix"]}
        if start + size < len(entries):
            body["nextPageToken"] = str(start + size)
        return body


def _error(code: int, message: str) -> dict:
    return {"error": {"code": code, "message": message, "errors": [{"message": message}]}}


def _multipart_payload(body: bytes, content_type: str) -> tuple[dict, bytes]:
    """(metadata JSON, media bytes) of a multipart/related upload body."""
    boundary = re.search(r'boundary="?([^";]+)"?', content_type).group(1).encode()
    parts = body.split(b"--" + boundary)
    metadata_part, media_part = parts[1], parts[2]
    metadata = json.loads(re.split(rb"\r?\n\r?\n", metadata_part, maxsplit=1)[1].strip())
    media = re.split(rb"\r?\n\r?\n", media_part, maxsplit=1)[1]
    return metadata, re.sub(rb"\r?\n$", b"", media)


@contextlib.contextmanager
def running(fake: FakeGCS):
    """Serves FAKE on a free loopback port; yields its http:// endpoint."""

    class Handler(loopback.JsonHandler):

        def _unhandled(self):
            fake.unhandled.append((self.command, self.path))
            self.send_json(501, _error(501, f"fake GCS does not implement {self.command} {self.path}"))

        def _missing(self, bucket: str, name: str):
            self.send_json(404, _error(404, f"No such object: {bucket}/{name}"))

        def do_GET(self):
            url = urllib.parse.urlsplit(self.path)
            query = dict(urllib.parse.parse_qsl(url.query))
            path = url.path
            if m := _DOWNLOAD.match(path):
                bucket, name = m.group(1), urllib.parse.unquote(m.group(2))
                if (bucket, name) not in fake.objects:
                    return self._missing(bucket, name)
                data = fake.objects[(bucket, name)][0]
                if wanted := re.match(r"bytes=(\d+)-(\d*)", self.headers.get("Range", "")):
                    start = int(wanted.group(1))
                    end = int(wanted.group(2)) if wanted.group(2) else len(data) - 1
                    return self.send_bytes(206, data[start:end + 1], content_type="application/octet-stream")
                return self.send_bytes(200, data, content_type="application/octet-stream")
            if m := _OBJECT.match(path):
                bucket, name = m.group(1), urllib.parse.unquote(m.group(2))
                if (bucket, name) not in fake.objects:
                    return self._missing(bucket, name)
                return self.send_json(200, fake.resource(bucket, name))
            if m := _OBJECTS.match(path):
                if m.group(1) not in fake.buckets:
                    return self.send_json(404, _error(404, "The specified bucket does not exist."))
                return self.send_json(200, fake.listing(m.group(1), query))
            if m := _BUCKET.match(path):
                if m.group(1) not in fake.buckets:
                    return self.send_json(404, _error(404, "The specified bucket does not exist."))
                return self.send_json(200, {"kind": "storage#bucket", "name": m.group(1), "id": m.group(1)})
            self._unhandled()

        def do_POST(self):
            url = urllib.parse.urlsplit(self.path)
            query = dict(urllib.parse.parse_qsl(url.query))
            body = self.read_body()
            m = _UPLOAD.match(url.path)
            if not m or m.group(1) not in fake.buckets:
                return self._unhandled()
            bucket = m.group(1)
            if query.get("uploadType") == "multipart":
                metadata, media = _multipart_payload(body, self.headers["Content-Type"])
                return self.send_json(200, fake.store(bucket, metadata["name"], media))
            if query.get("uploadType") == "resumable" and "upload_id" not in query:
                name = query.get("name") or json.loads(body or b"{}")["name"]
                upload_id = str(len(fake.uploads) + 1)
                fake.uploads[upload_id] = (bucket, name, bytearray())
                location = f"http://{self.headers['Host']}{url.path}?uploadType=resumable&upload_id={upload_id}"
                return self.send_json(200, {}, {"Location": location})
            if query.get("upload_id") in fake.uploads:
                return self._chunk(query["upload_id"], body)
            self._unhandled()

        do_PUT = do_POST  # resumable chunks may come as PUT (google-cloud-storage) or POST (gcsfs)

        def _chunk(self, upload_id: str, body: bytes):
            bucket, name, received = fake.uploads[upload_id]
            span = _RANGE.match(self.headers.get("Content-Range", ""))
            if not span:
                return self.send_json(400, _error(400, "resumable chunk without Content-Range"))
            if span.group(1) is not None:
                received[int(span.group(1)):] = body
                total = span.group(3)
            else:
                total = span.group(4)
            if total == "*" or len(received) < int(total):
                return self.send_bytes(308, b"", {"Range": f"bytes=0-{len(received) - 1}"})
            del fake.uploads[upload_id]
            self.send_json(200, fake.store(bucket, name, bytes(received)))

        def do_DELETE(self):
            m = _OBJECT.match(urllib.parse.urlsplit(self.path).path)
            if not m:
                return self._unhandled()
            bucket, name = m.group(1), urllib.parse.unquote(m.group(2))
            with fake.lock:
                if fake.objects.pop((bucket, name), None) is None:
                    return self._missing(bucket, name)
            self.send_bytes(204)

    with loopback.serving(Handler) as url:
        yield url


def point_gcsfs_at(endpoint: str) -> None:
    """fsspec's `gs` protocol (gcsfs) talks to ENDPOINT anonymously; also for a test's child processes."""
    import fsspec

    fsspec.config.conf["gs"] = {"endpoint_url": endpoint, "token": "anon"}


@contextlib.contextmanager
def gcsfs_served(*buckets: str):
    """A fake holding BUCKETS on loopback with gcsfs pointed at it; yields (fake, endpoint).
    The caller's process must have GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT=false (module docstring)."""
    import fsspec

    fake = FakeGCS(buckets=set(buckets))
    saved = fsspec.config.conf.get("gs")
    with running(fake) as endpoint:
        point_gcsfs_at(endpoint)
        try:
            yield fake, endpoint
        finally:
            fsspec.get_filesystem_class("gs").clear_instance_cache()
            if saved is None:
                fsspec.config.conf.pop("gs", None)
            else:
                fsspec.config.conf["gs"] = saved
