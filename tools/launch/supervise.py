"""Supervision: stay with a launch until its job really runs (or ends), relaunching elsewhere.

Vertex accepts a job and only then finds out whether it can run it: a region
short of quota keeps it QUEUED, a stockout or a preemption makes it FAIL. So
after the create call the launcher polls the job and acts on what it sees
(docs/launch.md has the same table):

    seen                              action
    QUEUED/PENDING, under the limit   poll again
    QUEUED/PENDING, over the limit    cancel, confirm CANCELLED by polling, block the
                                      candidate, relaunch the next one
    RUNNING                           until=running: done (exit 0); until=end: poll again
    SUCCEEDED                         done (exit 0)
    FAILED, capacity or quota         block by scope, relaunch the next candidate
    FAILED, start-up check exit code  block what gpu_support.toml says (the GPU type, the
                                      candidate) and relaunch, or stop with its fix
    FAILED, anything else             show job.error and the last log lines, stop (exit 1)
    CANCELLED/CANCELLING, not ours    stop (exit 1): someone cancelled it
    EXPIRED, PARTIALLY_SUCCEEDED      stop (exit 1)

A relaunch keeps the run name, so the output folder and the resume point stay
the same, and gets the next attempt number as a label. Relaunches stop after
`max_attempts` jobs, or when the estimated cost (running hours x price x nodes
over all attempts, plus one hour of the next candidate) would pass `max_cost`.
Like SkyPilot's EAGER_NEXT_REGION recovery, without a controller VM: the
watcher is this process, and `launch watch` re-attaches from the state file.
"""

from __future__ import annotations

import dataclasses
import datetime
import sys
import time

from tools.launch import candidates as C
from tools.launch import plan as P
from tools.launch import vertex
from tools.launch.errors import Stopped

QUEUED = {"JOB_STATE_QUEUED", "JOB_STATE_PENDING"}
MAX_BACKOFF_S = 300.0
CANCEL_CONFIRM_POLLS = 40


@dataclasses.dataclass(frozen=True)
class Policy:
    """What the watcher waits for and how far it may go; stored with the launch for `watch`."""

    until: str = "running"
    poll_s: float = 30.0
    max_queue_s: float = 900.0
    max_attempts: int = 5
    max_cost: float | None = None

    def queue_limit(self, plan: P.Plan, scheduling: str) -> float:
        """FLEX_START waits for capacity by design: its limit is its own max_wait_s."""
        return float(plan.max_wait_s) if scheduling == "FLEX_START" else self.max_queue_s

    def as_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> Policy:
        return cls(**{f.name: data[f.name] for f in dataclasses.fields(cls) if f.name in data})

    def describe(self, plan: P.Plan) -> dict:
        """The policy as --dry-run shows it, with the queue limit of the plan's scheduling."""
        return {**self.as_json(), "queue_limit_s": self.queue_limit(plan, plan.scheduling),
                "what_counts_as_capacity": C.capacity_policy()}


def _seconds(ts) -> float | None:
    """A proto Timestamp field as epoch seconds, None when unset."""
    if ts is None:
        return None
    value = ts.timestamp()
    return value if value > 0 else None


def running_seconds(job, now: float) -> float:
    """How long the job has held its machines: start to end (or now)."""
    start = _seconds(job.start_time)
    if start is None:
        return 0.0
    end = _seconds(job.end_time) or now
    return max(0.0, end - start)


def attempt_cost(attempt: dict) -> float:
    return attempt.get("running_s", 0.0) / 3600.0 * (attempt.get("price_per_hour") or 0.0) * attempt.get("nodes", 1)


@dataclasses.dataclass
class Result:
    code: int
    job: object | None
    summary: dict


class Supervisor:
    """Submits and watches one launch; every decision is persisted through STORE."""

    def __init__(self, plan: P.Plan, policy: Policy, launch_id: str, client_factory, store, *,
                 logs=None, log=lambda msg: print(msg, file=sys.stderr, flush=True),
                 now=time.time, sleep=time.sleep, attempts=None, blocked=None, container_args=()):
        self.plan, self.policy, self.launch_id = plan, policy, launch_id
        self.container_args = tuple(container_args)
        self.clients, self.store, self.logs, self.log = client_factory, store, logs, log
        self.now, self.sleep = now, sleep
        self.attempts: list[dict] = list(attempts or [])
        self.blocked = blocked or C.Blocklist()
        self.cands = plan.kept

    # -- submission ----------------------------------------------------------

    def start(self, force: bool = False):
        """The launch's job: an existing one with this launch id (a rerun), else a new one."""
        existing = vertex.reachable(
            lambda: vertex.find_launch(self.clients, self.plan.project, [c.region for c in self.cands],
                                       self.launch_id),
            f"looking up launch id {self.launch_id}")
        if existing is not None:
            self.log(f"launch {self.launch_id} already has job {existing.name}: watching it, not creating another")
            if not self.attempts:
                self._record_attempt(existing, self._candidate_of(existing), "adopted")
            return existing
        return self._submit(check_active=not force)

    def _submit(self, check_active: bool = True):
        number = len(self.attempts) + 1
        job, cand, tries = vertex.submit(self.plan, self.launch_id, self.clients, blocked=self.blocked,
                                         attempt=number, check_active=check_active, log=self.log,
                                         container_args=self.container_args)
        for t in tries[:-1]:
            self.log(f"attempt {number}: {t.region} {t.machine_type}: {t.outcome}")
        self._record_attempt(job, cand, "submitted")
        self.log(f"submitted {job.name} (attempt {number}, {cand.gpu} x{cand.accelerator_count} "
                 f"{cand.machine_type} in {cand.region}, {cand.scheduling})")
        self.log(vertex.logs_hint(job.name))
        return job

    def _candidate_of(self, job) -> C.Candidate:
        region = vertex.region_of(job.name)
        machine = job.job_spec.worker_pool_specs[0].machine_spec.machine_type
        for c in self.cands:
            if (c.region, c.machine_type) == (region, machine):
                return c
        return self.cands[0]

    def _record_attempt(self, job, cand: C.Candidate, outcome: str) -> None:
        self.attempts.append({
            "attempt": len(self.attempts) + 1, "job": job.name, "region": cand.region,
            "gpu": cand.gpu, "machine_type": cand.machine_type, "accelerator_type": cand.accelerator_type,
            "accelerator_count": cand.accelerator_count, "scheduling": cand.scheduling,
            "price_per_hour": cand.price_per_hour, "nodes": self.plan.nodes,
            "outcome": outcome, "running_s": 0.0,
        })
        self._persist(job)

    def _persist(self, job, **extra) -> None:
        self.store.update(job_name=job.name, region=vertex.region_of(job.name),
                          state=vertex.state_name(job), attempts=self.attempts,
                          blocked=self.blocked.as_json(), cost_so_far=round(self.cost_so_far(), 4), **extra)

    # -- limits --------------------------------------------------------------

    def cost_so_far(self) -> float:
        return sum(attempt_cost(a) for a in self.attempts)

    def _next_candidate(self) -> C.Candidate | None:
        return next((c for c in self.cands if not self.blocked.blocks(c)), None)

    def _check_limits(self) -> None:
        """Raises Stopped when another relaunch would pass max_attempts or max_cost."""
        if len(self.attempts) >= self.policy.max_attempts:
            raise Stopped(f"{len(self.attempts)} attempt(s) made, --max-attempts is {self.policy.max_attempts}")
        nxt = self._next_candidate()
        if nxt is None:
            raise Stopped("no candidate left in the plan: every one failed or is blocked")
        if self.policy.max_cost is not None:
            estimate = self.cost_so_far() + (nxt.price_per_hour or 0.0) * self.plan.nodes
            if estimate > self.policy.max_cost:
                raise Stopped(f"estimated cost {estimate:.2f} (spent {self.cost_so_far():.2f} + one hour of "
                              f"{nxt.machine_type} in {nxt.region}) would pass --max-cost {self.policy.max_cost:g}")

    def _relaunch(self, job, cand: C.Candidate, scope: C.Scope, why: str):
        self.attempts[-1]["outcome"] = why
        self.blocked.record(cand, scope)
        self._persist(job)
        self._check_limits()
        self.log(f"{why}: relaunching run {self.plan.run_name!r} on the next candidate")
        try:
            return self._submit(check_active=True)
        except vertex.CandidatesExhausted as e:
            raise Stopped(str(e)) from None
        except vertex.SubmitError as e:
            raise Stopped(f"relaunch failed: {e}") from None

    # -- watching ------------------------------------------------------------

    def _poll(self, name: str):
        """The job, surviving transient API errors with capped exponential backoff."""
        from google.api_core import exceptions as gexc

        client = self.clients(vertex.region_of(name))
        delay = self.policy.poll_s
        while True:
            try:
                return vertex.get_job(client, name)
            except (gexc.ServiceUnavailable, gexc.InternalServerError, gexc.DeadlineExceeded,
                    gexc.TooManyRequests, gexc.BadGateway, gexc.GatewayTimeout) as e:
                why = f"{type(e).__name__}: {e.message}"
            except gexc.GoogleAPICallError:
                raise
            except Exception as e:  # transport: refused, reset, timed out
                why = f"{type(e).__name__}: {e}"
            self.log(f"reading {name} failed ({why}); retrying in {delay:.0f} s")
            self.sleep(delay)
            delay = min(delay * 2, MAX_BACKOFF_S)

    def _cancel_confirmed(self, job):
        """Cancels JOB and polls until Vertex says it has ended: never two jobs for one run."""
        client = self.clients(vertex.region_of(job.name))
        vertex.reachable(lambda: vertex.cancel(client, job.name), f"cancelling {job.name}")
        for _ in range(CANCEL_CONFIRM_POLLS):
            job = self._poll(job.name)
            if vertex.state_name(job) in vertex.TERMINAL_STATES:
                return job
            self.sleep(self.policy.poll_s)
        raise Stopped(f"cancelled {job.name} but it is still {vertex.state_name(job)}; not relaunching "
                      "while it may still start (check it with `launch status`)")

    def _queued_s(self, job) -> float:
        created = _seconds(job.create_time)
        return 0.0 if created is None else self.now() - created

    def _stream_logs(self, job) -> None:
        if self.logs is not None:
            self.logs.stream(job.name)

    def watch(self, job) -> Result:
        """Follows JOB (and its relaunches) until the policy is met or supervision stops."""
        last = None
        while True:
            job = self._poll(job.name)
            state = vertex.state_name(job)
            cand = self._candidate_of(job)
            self.attempts[-1]["running_s"] = running_seconds(job, self.now())
            if state != last:
                self.log(f"{job.name}: {state}")
                last = state
            self._persist(job)
            self._stream_logs(job)
            if self.store.read().get("cancel_requested"):
                raise Stopped(f"{job.name} was cancelled with `launch cancel`; supervision stops")
            if state == "JOB_STATE_RUNNING" and self.policy.until == "running":
                return self._done(job, 0)
            if state == "JOB_STATE_SUCCEEDED":
                return self._done(job, 0)
            if state in QUEUED and self._queued_s(job) >= self.policy.queue_limit(self.plan, cand.scheduling):
                waited = self._queued_s(job)
                self.log(f"{job.name} still {state} after {waited:.0f} s: cancelling it")
                job = self._cancel_confirmed(job)
                job = self._relaunch(job, cand, C.Scope.CAPACITY, f"queued {waited:.0f} s in {cand.region}")
                last = None
                continue
            if state == "JOB_STATE_FAILED":
                code, message = vertex.job_error(job)
                scope = C.classify_job_failure(code, message)
                startup = C.startup_failure(message)
                if scope is C.Scope.FATAL:
                    self.attempts[-1]["outcome"] = (startup.describe() if startup
                                                    else f"failed: {code}: {message}")
                    self._persist(job)
                    self._show_failure(job, code, message, startup)
                    return self._done(job, 1)
                if startup is not None:
                    why = f"{startup.describe()}; blocked: {blocked_by(cand, scope)}"
                    self.log(f"{job.name} failed: {why}")
                else:
                    why = f"{scope.value} in {cand.region}: {message}"
                    self.log(f"{job.name} failed for capacity ({code}: {message}; {scope.value})")
                job = self._relaunch(job, cand, scope, why)
                last = None
                continue
            if state in vertex.TERMINAL_STATES or state == "JOB_STATE_CANCELLING":
                self.log(f"{job.name} ended as {state}, which supervision does not relaunch")
                return self._done(job, 1)
            self.sleep(self.policy.poll_s)

    def _show_failure(self, job, code: str, message: str, startup=None) -> None:
        self.log(f"{job.name} FAILED: {code}: {message}")
        if startup is not None:
            self.log(startup.describe())
        if self.logs is None:
            self.log(vertex.logs_hint(job.name))
            return
        lines = self.logs.tail(job.name)
        if lines:
            self.log("last log lines:")
            for line in lines:
                self.log("  " + line)

    def _done(self, job, code: int) -> Result:
        self.attempts[-1]["outcome"] = self.attempts[-1]["outcome"] if code else vertex.state_name(job)
        self._persist(job, supervision="done")
        return Result(code, job, self.summary(job))

    def summary(self, job) -> dict:
        """The result line: the job, where it runs, its state and every attempt."""
        last = self.attempts[-1]
        out = {
            "job": job.name, "launch_id": self.launch_id, "run_name": self.plan.run_name,
            "region": last["region"], "machine_type": last["machine_type"],
            "accelerator_type": last["accelerator_type"], "accelerator_count": last["accelerator_count"],
            "nodes": last["nodes"], "state": vertex.state_name(job), "attempts": self.attempts,
            "cost_so_far": round(self.cost_so_far(), 4), "currency": self.plan.currency,
        }
        if out["state"] == "JOB_STATE_SUCCEEDED":
            out["model_dir"] = f"{self.plan.base_output_dir}/model"
        return out


def blocked_by(cand: C.Candidate, scope: C.Scope) -> str:
    """What a failure of CAND with SCOPE rules out, as the log says it."""
    if scope is C.Scope.GPU:
        return f"{cand.gpu} in every region"
    if scope is C.Scope.CAPACITY:
        return f"{cand.gpu} {cand.machine_type} in {cand.region} ({cand.scheduling})"
    return scope.value


def now_iso() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
