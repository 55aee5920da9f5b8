"""Local fakes of the Google REST APIs the launcher calls, for the real clients.

The real `aiplatform_v1.JobServiceClient`, `cloudquotas_v1.CloudQuotasClient`,
`billing_v1.CloudCatalogClient` (transport="rest") and `storage.Client`, all
with anonymous credentials, talk to this server on loopback; the fake stores
what they send as JSON so tests assert on the exact wire request. Routes:
Vertex customJobs, Cloud Quotas quotaInfos, Billing Catalog
`services/S/skus` (paged), GCS `storage/v1/b/BUCKET` and IAM
`projects/P/serviceAccounts/EMAIL` (exists or 404).

Behaviours tests switch on:
- `exhausted[region] = message`: creates there fail with 429 RESOURCE_EXHAUSTED;
- `unclear_creates = n`: the next n creates are stored but answered with 503,
  like a response lost after the server acted;
- `progress`: the states a job walks through, one step per GET;
- `bucket_locations[name] = (location, locationType)`: the bucket's metadata
  (default US, multi-region).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import http.server
import itertools
import json
import re
import threading
import urllib.parse

from tests.support import loopback

ACTIVE = "JOB_STATE_PENDING"


@dataclasses.dataclass
class FakeGoogle:
    quota_infos: list = dataclasses.field(default_factory=list)  # QuotaInfo JSON dicts
    jobs: dict = dataclasses.field(default_factory=dict)  # name -> CustomJob JSON
    creates: list = dataclasses.field(default_factory=list)  # (region, body) per create request
    exhausted: dict = dataclasses.field(default_factory=dict)  # region -> message
    unclear_creates: int = 0
    progress: list = dataclasses.field(
        default_factory=lambda: ["JOB_STATE_PENDING", "JOB_STATE_RUNNING", "JOB_STATE_SUCCEEDED"]
    )
    requests: list = dataclasses.field(default_factory=list)  # (method, path)
    skus: dict = dataclasses.field(default_factory=dict)  # service id -> [Sku JSON]
    sku_page_size: int = 7  # small, so the client must follow nextPageToken
    buckets: set = dataclasses.field(default_factory=set)
    # name -> (location, locationType) as Cloud Storage reports them; a bucket not
    # listed here is where Storage puts one created without --location: US, multi-region.
    bucket_locations: dict = dataclasses.field(default_factory=dict)
    service_accounts: set = dataclasses.field(default_factory=set)  # emails
    _ids: itertools.count = dataclasses.field(default_factory=lambda: itertools.count(1000))
    _steps: dict = dataclasses.field(default_factory=dict)
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)

    # -- quota ---------------------------------------------------------------

    def add_quota(self, metric: str, per_region: dict) -> None:
        """per_region: {region or "" (all regions): limit}."""
        infos = [
            {"dimensions": {"region": r} if r else {}, "details": {"value": str(v)}}
            for r, v in per_region.items()
        ]
        self.quota_infos.append({
            "name": f"projects/p/locations/global/services/aiplatform.googleapis.com/quotaInfos/{metric}",
            "metric": f"aiplatform.googleapis.com/{metric}",
            "service": "aiplatform.googleapis.com",
            "dimensions": ["region"],
            "dimensionsInfos": infos,
        })

    # -- jobs ----------------------------------------------------------------

    def create_job(self, project: str, region: str, body: dict) -> tuple[int, dict]:
        with self.lock:
            self.creates.append((region, body))
            if region in self.exhausted:
                return 429, _error(429, "RESOURCE_EXHAUSTED", self.exhausted[region])
            name = f"projects/{project}/locations/{region}/customJobs/{next(self._ids)}"
            job = dict(body, name=name, state=self.progress[0], createTime=_now())
            self.jobs[name] = job
            self._steps[name] = 0
            if self.unclear_creates > 0:
                self.unclear_creates -= 1
                return 503, _error(503, "UNAVAILABLE", "backend went away (fake)")
            return 200, job

    def get_job(self, name: str) -> tuple[int, dict]:
        with self.lock:
            job = self.jobs.get(name)
            if job is None:
                return 404, _error(404, "NOT_FOUND", f"{name} not found")
            if job["state"] in self.progress and job["state"] not in _TERMINAL:
                self._steps[name] = min(self._steps[name] + 1, len(self.progress) - 1)
                job["state"] = self.progress[self._steps[name]]
            return 200, job

    def list_jobs(self, project: str, region: str, filt: str) -> dict:
        prefix = f"projects/{project}/locations/{region}/customJobs/"
        terms = _parse_filter(filt)
        with self.lock:
            found = [j for n, j in self.jobs.items() if n.startswith(prefix) and _match(j, terms)]
        return {"customJobs": found}

    def cancel_job(self, name: str) -> tuple[int, dict]:
        with self.lock:
            job = self.jobs.get(name)
            if job is None:
                return 404, _error(404, "NOT_FOUND", f"{name} not found")
            if job["state"] not in _TERMINAL:
                job["state"] = "JOB_STATE_CANCELLED"
            return 200, {}

    def set_state(self, name: str, state: str) -> None:
        with self.lock:
            self.jobs[name]["state"] = state

    # -- billing catalog, storage, IAM ---------------------------------------

    def list_skus(self, service: str, query: dict) -> tuple[int, dict]:
        if service not in self.skus:
            return 404, _error(404, "NOT_FOUND", f"service {service} not found")
        size = min(int(query.get("pageSize") or self.sku_page_size), self.sku_page_size)
        start = int(query.get("pageToken") or 0)
        page = self.skus[service][start:start + size]
        more = start + size < len(self.skus[service])
        return 200, {"skus": page, "nextPageToken": str(start + size) if more else ""}

    def get_bucket(self, name: str) -> tuple[int, dict]:
        if name not in self.buckets:
            return 404, _error(404, "NOT_FOUND", "The specified bucket does not exist.")
        location, location_type = self.bucket_locations.get(name, ("US", "multi-region"))
        return 200, {"kind": "storage#bucket", "id": name, "name": name,
                     "location": location, "locationType": location_type}

    def get_service_account(self, email: str) -> tuple[int, dict]:
        if email not in self.service_accounts:
            return 404, _error(404, "NOT_FOUND", f"Unknown service account {email}")
        return 200, {"email": email, "name": f"projects/-/serviceAccounts/{email}"}


_TERMINAL = {"JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED", "JOB_STATE_CANCELLED", "JOB_STATE_EXPIRED"}


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _error(code: int, status: str, message: str) -> dict:
    return {"error": {"code": code, "status": status, "message": message}}


_TERM_RE = re.compile(r'(labels\.[a-z0-9_-]+|display_name|displayName|state)\s*=\s*"?([^"\s]*)"?')


def _parse_filter(filt: str) -> list[tuple[str, str]]:
    """The subset of AIP-160 the launcher uses: `key="value"` terms joined by AND."""
    if not filt:
        return []
    terms = [t.strip() for t in re.split(r"\s+AND\s+", filt)]
    out = []
    for t in terms:
        m = _TERM_RE.fullmatch(t)
        if not m:
            raise ValueError(f"fake does not understand filter term {t!r}")
        out.append((m.group(1), m.group(2)))
    return out


def _match(job: dict, terms) -> bool:
    for key, value in terms:
        if key.startswith("labels."):
            got = job.get("labels", {}).get(key[len("labels."):])
        elif key in ("display_name", "displayName"):
            got = job.get("displayName")
        else:
            got = job.get("state")
        if got != value:
            return False
    return True


_JOBS = re.compile(r"^/v1/projects/([^/]+)/locations/([^/]+)/customJobs$")
_JOB = re.compile(r"^/v1/(projects/[^/]+/locations/[^/]+/customJobs/[^/:]+)(:cancel)?$")
_QUOTAS = re.compile(r"^/v1/projects/([^/]+)/locations/global/services/([^/]+)/quotaInfos$")
_SKUS = re.compile(r"^/v1/services/([^/]+)/skus$")
_BUCKET = re.compile(r"^/storage/v1/b/([^/]+)$")
_ACCOUNT = re.compile(r"^/v1/projects/[^/]+/serviceAccounts/([^/]+)$")


@contextlib.contextmanager
def running(fake: FakeGoogle):
    """Serves FAKE on a free loopback port; yields its http:// endpoint."""

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def _reply(self, code: int, obj: dict):
            body = json.dumps(obj).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            url = urllib.parse.urlsplit(self.path)
            query = dict(urllib.parse.parse_qsl(url.query))
            fake.requests.append(("GET", url.path))
            if m := _QUOTAS.match(url.path):
                return self._reply(200, {"quotaInfos": fake.quota_infos})
            if m := _SKUS.match(url.path):
                return self._reply(*fake.list_skus(m.group(1), query))
            if m := _BUCKET.match(url.path):
                return self._reply(*fake.get_bucket(urllib.parse.unquote(m.group(1))))
            if m := _ACCOUNT.match(url.path):
                return self._reply(*fake.get_service_account(urllib.parse.unquote(m.group(1))))
            if m := _JOBS.match(url.path):
                return self._reply(200, fake.list_jobs(m.group(1), m.group(2), query.get("filter", "")))
            if (m := _JOB.match(url.path)) and not m.group(2):
                return self._reply(*fake.get_job(m.group(1)))
            self._reply(404, _error(404, "NOT_FOUND", f"no route {url.path}"))

        def do_POST(self):
            url = urllib.parse.urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}")
            fake.requests.append(("POST", url.path))
            if m := _JOBS.match(url.path):
                return self._reply(*fake.create_job(m.group(1), m.group(2), body))
            if (m := _JOB.match(url.path)) and m.group(2):
                return self._reply(*fake.cancel_job(m.group(1)))
            self._reply(404, _error(404, "NOT_FOUND", f"no route {url.path}"))

    with loopback.serving(Handler) as url:
        yield url
