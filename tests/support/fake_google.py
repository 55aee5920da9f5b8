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
- `invalid[region] = message`: creates there fail with 400 INVALID_ARGUMENT;
- `unclear_creates = n`: the next n creates are stored but answered with 503,
  like a response lost after the server acted;
- `progress`: the states a job walks through, one step per GET;
- `scenarios[region] = [step, ...]`: the same, for jobs created in REGION; a
  step is a state name or `failed(code, message)`; the last step repeats;
  `scenarios[(region, machine_type)]` does the same for one machine there (two
  GPUs of one region);
- `flaky_gets = n`: the next n job GETs answer 503 (a transient API error);
- `log_entries[job_id] = [text, ...]`: the job's Cloud Logging entries.
Jobs get `startTime` when first RUNNING and `endTime` when they end; a cancel
passes through CANCELLING (one GET) before CANCELLED, as Vertex's does.
- `bucket_locations[name] = (location, locationType)`: the bucket's metadata
  (default US, multi-region).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import itertools
import json
import re
import threading
import urllib.parse

from tests.support import loopback


def failed(code: int, message: str) -> dict:
    """A scenario step: the job FAILS with google.rpc.Status CODE (e.g. 8 RESOURCE_EXHAUSTED)."""
    return {"state": "JOB_STATE_FAILED", "error": {"code": code, "message": message}}


@dataclasses.dataclass
class FakeGoogle:
    quota_infos: list = dataclasses.field(default_factory=list)  # QuotaInfo JSON dicts
    jobs: dict = dataclasses.field(default_factory=dict)  # name -> CustomJob JSON
    creates: list = dataclasses.field(default_factory=list)  # (region, body) per create request
    exhausted: dict = dataclasses.field(default_factory=dict)  # region -> message
    invalid: dict = dataclasses.field(default_factory=dict)  # region -> message
    unclear_creates: int = 0
    scenarios: dict = dataclasses.field(default_factory=dict)  # region -> [step]
    flaky_gets: int = 0
    log_entries: dict = dataclasses.field(default_factory=dict)  # job id -> [text]
    cancels: list = dataclasses.field(default_factory=list)  # job names
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
            if region in self.invalid:
                return 400, _error(400, "INVALID_ARGUMENT", self.invalid[region])
            name = f"projects/{project}/locations/{region}/customJobs/{next(self._ids)}"
            machine = body["jobSpec"]["workerPoolSpecs"][0]["machineSpec"]["machineType"]
            steps = self.scenarios.get((region, machine), self.scenarios.get(region, self.progress))
            job = dict(body, name=name, createTime=_now())
            self.jobs[name] = job
            self._steps[name] = (steps, 0)
            _apply(job, steps[0])
            if self.unclear_creates > 0:
                self.unclear_creates -= 1
                return 503, _error(503, "UNAVAILABLE", "backend went away (fake)")
            return 200, job

    def get_job(self, name: str) -> tuple[int, dict]:
        with self.lock:
            if self.flaky_gets > 0:
                self.flaky_gets -= 1
                return 503, _error(503, "UNAVAILABLE", "try again (fake)")
            job = self.jobs.get(name)
            if job is None:
                return 404, _error(404, "NOT_FOUND", f"{name} not found")
            if job["state"] == "JOB_STATE_CANCELLING":
                _apply(job, "JOB_STATE_CANCELLED")
            elif job["state"] not in _TERMINAL and name in self._steps:
                steps, i = self._steps[name]
                i = min(i + 1, len(steps) - 1)
                self._steps[name] = (steps, i)
                _apply(job, steps[i])
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
            self.cancels.append(name)
            if job["state"] not in _TERMINAL:
                job["state"] = "JOB_STATE_CANCELLING"
            return 200, {}

    def set_state(self, name: str, state: str) -> None:
        with self.lock:
            self._steps.pop(name, None)
            _apply(self.jobs[name], state)

    def list_log_entries(self, body: dict) -> tuple[int, dict]:
        """Cloud Logging `entries:list` over `log_entries`, honouring the job id, timestamp and order."""
        filt = body.get("filter", "")
        m = re.search(r'resource\.labels\.job_id="([^"]+)"', filt)
        after = re.search(r'timestamp>"([^"]+)"', filt)
        if 'resource.type="ml_job"' not in filt or not m:
            return 400, _error(400, "INVALID_ARGUMENT", f"unexpected filter {filt!r}")
        entries = [
            {"logName": f"projects/p/logs/workerpool0-0", "resource": {"type": "ml_job",
                                                                        "labels": {"job_id": m.group(1)}},
             "timestamp": f"2026-01-01T00:00:{i:02d}.000000Z", "severity": "INFO", "textPayload": text,
             "insertId": str(i)}
            for i, text in enumerate(self.log_entries.get(m.group(1), []))
        ]
        if after:
            entries = [e for e in entries if e["timestamp"] > _normal_ts(after.group(1))]
        if "desc" in body.get("orderBy", ""):
            entries.reverse()
        size = int(body.get("pageSize") or 1000)
        return 200, {"entries": entries[:size]}

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


def _apply(job: dict, step) -> None:
    """Moves JOB to a scenario step, stamping startTime/endTime as Vertex does."""
    step = {"state": step} if isinstance(step, str) else step
    job["state"] = step["state"]
    if "error" in step:
        job["error"] = step["error"]
    if step["state"] == "JOB_STATE_RUNNING" and "startTime" not in job:
        job["startTime"] = _now()
    if step["state"] in _TERMINAL and "endTime" not in job:
        job["endTime"] = _now()


def _normal_ts(ts: str) -> str:
    """An RFC 3339 timestamp in the fake's own fixed format, for string comparison."""
    when = datetime.datetime.fromisoformat(ts.replace("Z", "+00:00")).astimezone(datetime.timezone.utc)
    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


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
_LOG_ENTRIES = "/v2/entries:list"


@contextlib.contextmanager
def running(fake: FakeGoogle):
    """Serves FAKE on a free loopback port; yields its http:// endpoint."""

    class Handler(loopback.JsonHandler):

        def do_GET(self):
            url = urllib.parse.urlsplit(self.path)
            query = dict(urllib.parse.parse_qsl(url.query))
            fake.requests.append(("GET", url.path))
            if m := _QUOTAS.match(url.path):
                return self.send_json(200, {"quotaInfos": fake.quota_infos})
            if m := _SKUS.match(url.path):
                return self.send_json(*fake.list_skus(m.group(1), query))
            if m := _BUCKET.match(url.path):
                return self.send_json(*fake.get_bucket(urllib.parse.unquote(m.group(1))))
            if m := _ACCOUNT.match(url.path):
                return self.send_json(*fake.get_service_account(urllib.parse.unquote(m.group(1))))
            if m := _JOBS.match(url.path):
                return self.send_json(200, fake.list_jobs(m.group(1), m.group(2), query.get("filter", "")))
            if (m := _JOB.match(url.path)) and not m.group(2):
                return self.send_json(*fake.get_job(m.group(1)))
            self.send_json(404, _error(404, "NOT_FOUND", f"no route {url.path}"))

        def do_POST(self):
            url = urllib.parse.urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}")
            fake.requests.append(("POST", url.path))
            if url.path == _LOG_ENTRIES:
                return self.send_json(*fake.list_log_entries(body))
            if m := _JOBS.match(url.path):
                return self.send_json(*fake.create_job(m.group(1), m.group(2), body))
            if (m := _JOB.match(url.path)) and m.group(2):
                return self.send_json(*fake.cancel_job(m.group(1)))
            self.send_json(404, _error(404, "NOT_FOUND", f"no route {url.path}"))

    with loopback.serving(Handler) as url:
        yield url
