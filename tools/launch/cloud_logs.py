"""A job's log entries from Cloud Logging, with the real google-cloud-logging client.

Vertex writes a CustomJob's output under the monitored resource `ml_job`
with the job id as the `job_id` label. The client speaks the JSON API
(`POST /v2/entries:list`), at `--logging-endpoint` in private setups; with
other endpoints overridden and no logging endpoint, logs are skipped with a
note rather than sent to Google. Log errors never change supervision.
"""

from __future__ import annotations

import sys

from tools.launch import endpoints, vertex

TAIL_LINES = 20
PAGE_SIZE = 200


def job_filter(job_id: str, after: str | None = None) -> str:
    """The Logging filter for one job's entries, newer than the RFC 3339 timestamp AFTER."""
    filt = f'resource.type="ml_job" AND resource.labels.job_id="{job_id}"'
    return filt + (f' AND timestamp>"{after}"' if after else "")


def entry_text(entry) -> str:
    """One line for an entry: its text, or the message of a JSON payload."""
    payload = entry.payload
    if isinstance(payload, dict):
        payload = payload.get("message", payload)
    return str(payload).rstrip("\n")


def entry_line(entry) -> str:
    when = entry.timestamp.isoformat(timespec="seconds") if entry.timestamp else "-"
    return f"{when} {entry.severity or 'DEFAULT'} {entry_text(entry)}"


def _iso(entry) -> str | None:
    return entry.timestamp.isoformat() if entry.timestamp else None


class JobLogs:
    """Reads one project's job logs; remembers what it printed so streaming shows each entry once."""

    def __init__(self, project: str, endpoint: str | None, *,
                 log=lambda msg: print(msg, file=sys.stderr, flush=True)):
        from google.cloud import logging as cloud_logging  # heavy: only when logs are read

        options = {"api_endpoint": endpoints.api_endpoint(endpoint)} if endpoint else None
        self.client = cloud_logging.Client(project=project, credentials=endpoints.google_credentials(endpoint),
                                           client_options=options, _use_grpc=False)
        self.project, self.log = project, log
        self.seen: dict[str, str] = {}  # job id -> timestamp of the newest entry shown
        self.broken = False

    def entries(self, job_name: str, after: str | None = None, newest_first: bool = False,
                limit: int | None = None) -> list:
        found = self.client.list_entries(
            resource_names=[f"projects/{self.project}"],
            filter_=job_filter(vertex.job_id(job_name), after),
            order_by="timestamp desc" if newest_first else "timestamp asc",
            page_size=min(limit or PAGE_SIZE, PAGE_SIZE), max_results=limit)
        return list(found)

    def tail(self, job_name: str, lines: int = TAIL_LINES) -> list[str]:
        """The last LINES entries, oldest first; [] (with a note) when Logging cannot be read."""
        try:
            newest = self.entries(job_name, newest_first=True, limit=lines)
        except Exception as e:  # noqa: BLE001 - a log error must never change supervision
            self.log(f"logs not read ({type(e).__name__}: {e})")
            return []
        return [entry_line(e) for e in reversed(newest)]

    def new_lines(self, job_name: str) -> list[str]:
        """Entries newer than the last call's, oldest first."""
        key = vertex.job_id(job_name)
        fresh = self.entries(job_name, after=self.seen.get(key))
        if fresh:
            self.seen[key] = _iso(fresh[-1]) or self.seen.get(key)
        return [entry_line(e) for e in fresh]

    def stream(self, job_name: str) -> None:
        """Prints new entries to stderr while watching; after one failure, says so once and stops."""
        if self.broken:
            return
        try:
            for line in self.new_lines(job_name):
                self.log(f"[job] {line}")
        except Exception as e:  # noqa: BLE001 - a log error must never change supervision
            self.broken = True
            self.log(f"job logs not streamed any more ({type(e).__name__}: {e})")


def for_endpoints(project: str, eps: endpoints.Endpoints, log) -> JobLogs | None:
    """A log reader, or None (with a note) where Logging may not be called."""
    if not eps.may_call("logging"):
        log(f"job logs skipped: {eps.why_not('logging')}")
        return None
    try:
        return JobLogs(project, eps.logging, log=log)
    except endpoints.EndpointError as e:
        log(f"job logs skipped: {e}")
        return None
