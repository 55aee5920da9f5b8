"""`bazel run //tools:launch -- [flags]`: plan, preflight, push by digest, submit, supervise.

By default the launcher stays with the job until it is RUNNING (`--wait`: until
it ends; `--detach`: not at all), relaunching on the next candidate when it is
queued too long or fails for capacity (tools/launch/supervise.py). Subcommands
`status`, `cancel`, `watch` and `logs` take a run name, a launch id or a job
name; `recent` lists launches; `smoke` plans, pushes and runs the short smoke
job (tools/launch/smoke.py) that `--require-smoke` asks for. Heavy cloud SDKs
are imported only on the paths that use them, so `--help` and `--dry-run`
without quota stay fast. stdout carries only the machine-readable result (one
JSON object, the last line); logs go to stderr.

Exit codes: 0 ok; 1 the job failed, or attempts or cost ran out; 2 bad input,
nothing submitted; 130 detached (Ctrl-C or a closed terminal; the job goes on).
Every error the launcher raises is an errors.LaunchError that carries its code.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import re
import signal
import sys
import time
import uuid
from typing import TYPE_CHECKING

from tools.launch import config as CFG
from tools.launch.endpoints import Endpoints
from tools.launch.errors import EXIT_BAD_INPUT, EXIT_FAILED, LaunchError

if TYPE_CHECKING:  # plan.py imports the tables: loaded only by the commands that plan
    from tools.launch.plan import Plan

SUBCOMMANDS = ("status", "cancel", "recent", "watch", "logs", "smoke")
EXIT_OK, EXIT_DETACHED = 0, 130  # 1 and 2 live in errors.py with the errors that carry them
SECRET_NAME = re.compile(r"(_KEY|_TOKEN|_SECRET)$|PASSWORD|^WANDB_API_KEY$|^HF_TOKEN$", re.I)
SECRET_REF = re.compile(r"^projects/[^/\s]+/secrets/[A-Za-z0-9_-]+(/versions/([0-9]+|latest))?$")


def log(msg: str) -> None:
    print(f"launch: {msg}", file=sys.stderr, flush=True)


def _number(kind, minimum, *, inclusive=True):
    """An argparse type: KIND at least (or above) MINIMUM, with a message naming what is allowed."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {'an integer' if kind is int else 'a number'}")
        if value < minimum or (not inclusive and value == minimum):
            raise argparse.ArgumentTypeError(f"{text} is too small: want {'at least' if inclusive else 'above'} "
                                             f"{minimum}")
        return value
    return parse


def _launch_id(text: str) -> str:
    if not re.fullmatch(r"[a-z0-9_-]{1,63}", text):
        raise argparse.ArgumentTypeError(f"{text!r}: use 1-63 lowercase letters, digits, '_' or '-' "
                                         "(it becomes a Vertex label value)")
    return text


def _secret(text: str) -> tuple[str, str]:
    name, sep, ref = text.partition("=")
    if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name) or not SECRET_REF.match(ref):
        raise argparse.ArgumentTypeError(
            "want ENV=projects/PROJECT/secrets/NAME[/versions/V] (a Secret Manager reference, never a value)")
    return name, ref


def _parser(prog: str, description: str) -> argparse.ArgumentParser:
    return argparse.ArgumentParser(prog=prog, description=description)


def _endpoint_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--project", help="Google Cloud project ID")
    p.add_argument("--vertex-endpoint", metavar="URL",
                   help="Vertex AI API endpoint (default: REGION-aiplatform.googleapis.com)")
    p.add_argument("--logging-endpoint", metavar="URL",
                   help="Cloud Logging API endpoint (private setups; without it there, logs are skipped)")
    p.add_argument("--state-file", type=pathlib.Path,
                   help="recent launches (default: $ARR_LAUNCH_STATE or ~/.local/state/arr-coc/launches.json)")


def _watch_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--poll-s", type=_number(float, 0, inclusive=False), default=30.0,
                   help="seconds between job polls (default 30)")


def launch_parser(smoke: bool = False) -> argparse.ArgumentParser:
    """The launch's flags; SMOKE: those of `launch smoke` (no --local, --detach, --wait, --require-smoke)."""
    if smoke:
        p = _parser("launch smoke", "Plan and push as `launch` does, then run the short smoke job "
                    "(configs/smoke_gpu.toml: the full-size model, random weights, a few steps) on the "
                    "planned GPU until it ends; print its samples/s and peak GPU memory and remember them "
                    "for --require-smoke.")
    else:
        p = _parser("launch", "Plan, push (by digest), submit and supervise the ARR-COC training job on "
                    "Vertex AI. Subcommands: status | cancel | watch | logs ID, recent, smoke.")
    _endpoint_flags(p)
    _watch_flags(p)
    p.add_argument("--config", type=pathlib.Path, default=CFG.DEFAULT_CONFIG, help="launch TOML")
    p.add_argument("--registry", metavar="URL",
                   help="registry base, e.g. http://127.0.0.1:5000/team (default: the chosen "
                   "region's Artifact Registry repository)")
    p.add_argument("--quota-endpoint", metavar="URL", help="Cloud Quotas API endpoint")
    p.add_argument("--storage-endpoint", metavar="URL",
                   help="Cloud Storage JSON API endpoint for the bucket preflight check")
    p.add_argument("--iam-endpoint", metavar="URL",
                   help="IAM API endpoint; the service account is checked only when given")
    p.add_argument("--image-layout", help="OCI layout dir (default: //Stack:arr_trainer, built by Bazel)")
    p.add_argument("--image-digest", help="its digest file (default: //Stack:arr_trainer.digest)")
    p.add_argument("--dry-run", action="store_true",
                   help="print the plan and supervision policy as JSON; push and submit nothing")
    if not smoke:
        p.add_argument("--local", action="store_true",
                       help="run //ARR_COC/Training:train here through Bazel with its embedded smoke config "
                       "(no image needed; --dry-run shows what would run)")
        p.add_argument("--require-smoke", action="store_true",
                       help="refuse to submit to a GPU without a passing `launch smoke` of this image digest "
                       "(checked before anything is pushed)")
    p.add_argument("--run-name", help="run name (relaunching the same name resumes its checkpoints)")
    p.add_argument("--force", action="store_true", help="submit even if a job of this run name is active")
    if not smoke:
        until = p.add_mutually_exclusive_group()
        until.add_argument("--detach", action="store_true", help="return right after the job is created")
        until.add_argument("--wait", action="store_true",
                           help="watch until the job ends (exit 0 only on SUCCEEDED), relaunching on preemption")
    p.add_argument("--launch-id", type=_launch_id,
                   help="reuse a launch id: a rerun adopts its job instead of creating another")
    p.add_argument("--no-quota", action="store_true", help="skip the live quota check")
    p.add_argument("--skip-preflight", action="store_true")
    p.add_argument("--jobs", type=_number(int, 1), default=4, help="parallel blob uploads")
    p.add_argument("--secret", action="append", type=_secret, metavar="ENV=projects/P/secrets/NAME[/versions/V]",
                   help="a secret the trainer reads from Secret Manager into ENV at start (only the "
                   "reference is in the job spec)")
    # Config fields as flags: every field of launch.toml can be overridden.
    p.add_argument("--gpu-preference", metavar="GPU,GPU", help="e.g. L4,T4")
    p.add_argument("--gpu", help="a single GPU (same as --gpu-preference GPU)")
    p.add_argument("--count", help="GPUs per machine")
    p.add_argument("--nodes", help="machines: 1 chief + N-1 workers (default 1)")
    p.add_argument("--region", "--regions", dest="regions", metavar="R,R", help="allowed regions")
    p.add_argument("--scheduling", choices=["SPOT", "STANDARD", "FLEX_START"])
    p.add_argument("--timeout-s", help="job timeout in seconds (at most 7 days; `smoke`: default 1800)")
    p.add_argument("--max-wait-s", help="FLEX_START: seconds to wait for capacity")
    p.add_argument("--max-queue-s", help="seconds a job may stay QUEUED/PENDING before it is moved on")
    p.add_argument("--max-attempts", help="jobs to try in all (default 5)")
    p.add_argument("--max-cost", help="stop relaunching once the estimated cost would pass this")
    p.add_argument("--repository")
    p.add_argument("--image-name")
    p.add_argument("--bucket")
    p.add_argument("--service-account")
    p.add_argument("--env", action="append", metavar="K=V,K=V", help="hyperparameters (never secrets: --secret)")
    return p


def sub_parser(command: str) -> argparse.ArgumentParser:
    if command == "smoke":
        return launch_parser(smoke=True)
    p = _parser(f"launch {command}", {
        "status": "Show a launch's job, its state and the cost so far.",
        "cancel": "Cancel a launch's current job and stop its supervision.",
        "recent": "List recent launches.",
        "watch": "Re-attach to a launch and carry on supervising it with its own policy.",
        "logs": "Print a launch's job log entries from Cloud Logging.",
    }[command])
    _endpoint_flags(p)
    if command != "recent":
        p.add_argument("id", help="run name, launch id, or job name (projects/P/locations/R/customJobs/ID)")
    if command == "watch":
        _watch_flags(p)
        p.set_defaults(poll_s=None)
    if command == "logs":
        p.add_argument("--follow", action="store_true", help="keep printing new entries until the job ends")
        _watch_flags(p)
    return p


def refuse_secret_env(env: dict) -> None:
    """--env must not carry secrets: bazel run echoes its command line and job specs are readable."""
    for name in env:
        if SECRET_NAME.search(name):
            raise CFG.ConfigError(
                f"--env {name}=...: {name} looks like a secret; pass it as --secret "
                f"{name}=projects/P/secrets/NAME instead (the job then carries only the reference). "
                "Its value may already be in your terminal or CI log, since bazel run echoes its "
                "command line: rotate it if so")


def overrides(args: argparse.Namespace) -> dict:
    """Flag values as config overrides (None: not given, the file's value stays)."""
    out = {}
    for field in CFG.FIELDS:
        value = getattr(args, field, None)
        if field == "env" and value:
            merged = {}
            for item in value:
                merged.update(CFG.parse_value("env", item))
            refuse_secret_env(merged)
            out["env"] = merged
        elif isinstance(value, str) and CFG.FIELDS[field][0] is not str:
            out[field] = CFG.parse_value(field, value)
        else:
            out[field] = value
    if args.gpu:
        out["gpu_preference"] = [args.gpu]
    out["project"] = args.project or os.environ.get("GOOGLE_CLOUD_PROJECT") or None
    return out


def user_path(path, environ=os.environ) -> pathlib.Path | None:
    """A path the user typed, relative to where they typed it.

    `bazel run` starts binaries in their runfiles tree; BUILD_WORKING_DIRECTORY
    is the caller's directory. Paths Bazel itself passes (--image-layout,
    --image-digest) are runfiles paths and must not go through this.
    """
    if path is None:
        return None
    path = pathlib.Path(path)
    base = environ.get("BUILD_WORKING_DIRECTORY")
    return path if path.is_absolute() or not base else pathlib.Path(base) / path


def _state_path(args) -> pathlib.Path:
    from tools.launch import state

    return user_path(args.state_file) or state.default_path()


def _quotas(args, cfg: dict, eps: Endpoints):
    """Live quota, unless --no-quota or Endpoints says the quota API may not be called here."""
    if args.no_quota:
        log("quota not checked (--no-quota)")
        return None
    if not eps.may_call("quota"):
        log(f"quota not checked: {eps.why_not('quota')}")
        return None
    if not cfg["project"]:
        return None
    from tools.launch import quota

    return quota.fetch(cfg["project"], eps.quota)


def _bucket_location(args, cfg: dict, eps: Endpoints) -> tuple[str | None, str | None]:
    """The output bucket's (location, locationType): a single-region bucket keeps failover there.

    Unknown (every region allowed) with --skip-preflight, without a project, or
    where the storage API may not be called (Endpoints.may_call).
    """
    if args.skip_preflight or not cfg["project"]:
        return None, None
    from tools.launch import plan as P
    from tools.launch import preflight

    return preflight.bucket_location(cfg["project"], P.bucket_name(cfg), eps)


def image_paths(args) -> tuple[str, str]:
    """The layout and digest given as flags (tests, private setups), else Bazel's build of the image."""
    if bool(args.image_layout) != bool(args.image_digest):
        raise CFG.ConfigError("--image-layout and --image-digest go together")
    if args.image_layout:
        return args.image_layout, args.image_digest
    from tools.launch import workspace_bazel

    log(f"building {workspace_bazel.IMAGE} with Bazel (a no-op when nothing changed)")
    return workspace_bazel.build_image()


def policy_from(args, cfg: dict):
    from tools.launch import supervise

    until = "submitted" if args.detach else "end" if args.wait else "running"
    return supervise.Policy(until=until, poll_s=args.poll_s, max_queue_s=cfg["max_queue_s"],
                            max_attempts=cfg["max_attempts"], max_cost=cfg["max_cost"])


def cmd_launch(args, eps: Endpoints) -> int:
    if args.local:
        return run_local(args)
    cfg = CFG.load(user_path(args.config), overrides(args))
    policy = policy_from(args, cfg)
    plan = planned(args, cfg, eps)
    blocked = smoke_gate(plan, _state_path(args)) if args.require_smoke else None
    if args.dry_run:
        print(json.dumps({**plan.to_json(), "supervision": policy.describe(plan)}, indent=1, sort_keys=True))
        return EXIT_OK
    check_and_push(plan, args, eps)
    return submit_and_supervise(plan, policy, args, eps, blocked=blocked)


def planned(args, cfg: dict, eps: Endpoints) -> Plan:
    """The plan for the built (or given) image: quota, bucket location and secrets read here."""
    from tools.launch import plan as P

    P.check_request(cfg)  # a GPU the image cannot run, a bad count or region: before the image build
    layout, digest = image_paths(args)
    return P.make(cfg, layout, digest, _quotas(args, cfg, eps), secrets=dict(args.secret or ()),
                  bucket_location=_bucket_location(args, cfg, eps))


def check_and_push(plan: Plan, args, eps: Endpoints) -> None:
    """Credentials, preflight, then the push by digest: what every submission needs first."""
    log(f"plan: {plan.gpu} x{plan.accelerator_count} x{plan.nodes} node(s) {plan.machine_type} in "
        f"{plan.region} ({plan.scheduling}, {plan.price_per_hour} {plan.currency}/h per node)")
    from tools.launch import vertex

    vertex.client_for(plan.region, eps.vertex)  # credentials fail here, before a push
    auth = registry_auth(plan)
    if not args.skip_preflight:
        from tools.launch import preflight

        for line in preflight.report(plan, preflight.run(plan, eps, auth)):
            log(line)
    pushed = push(plan, args, auth)
    log(f"pushed {pushed.reference} (tag {pushed.tag}): {pushed.blobs_uploaded} blob(s), "
        f"{pushed.bytes_uploaded} bytes uploaded, {pushed.blobs_skipped} already there")


def smoke_gate(plan: Plan, path: pathlib.Path):
    """--require-smoke: the GPUs of the plan without a passing smoke of its digest are blocked;
    none left with one is a refusal (exit 2, before anything is pushed)."""
    from tools.launch import candidates as C
    from tools.launch import smoke, state

    gpus = [c.gpu for c in plan.kept]
    missing = smoke.unsmoked(gpus, plan.digest, lambda digest, gpu: state.passing_smoke(path, digest, gpu))
    if len(missing) == len(set(gpus)):
        raise smoke.refusal(plan.digest, missing)
    for gpu in missing:
        log(f"--require-smoke: {gpu} has no passing smoke of {plan.digest}: not tried")
    return C.Blocklist(gpus=set(missing))


def cmd_smoke(args, eps: Endpoints) -> int:
    """Plans and pushes as `launch` does, then runs the smoke job until it ends and reads its smoke.json."""
    from tools.launch import smoke, state, supervise

    given = overrides(args)
    given["timeout_s"] = given.get("timeout_s") or smoke.TIMEOUT_S
    given["run_name"] = given.get("run_name") or time.strftime("smoke-%Y%m%d-%H%M%S", time.gmtime())
    cfg = CFG.load(user_path(args.config), given)
    policy = supervise.Policy(until="end", poll_s=args.poll_s, max_queue_s=cfg["max_queue_s"],
                              max_attempts=cfg["max_attempts"], max_cost=cfg["max_cost"])
    plan = planned(args, cfg, eps)
    if args.dry_run:
        print(json.dumps({**plan.to_json(), "supervision": policy.describe(plan),
                          "container_args": list(smoke.CONTAINER_ARGS)}, indent=1, sort_keys=True))
        return EXIT_OK
    check_and_push(plan, args, eps)
    path = _state_path(args)

    def finish(result):
        """The smoke's verdict from its smoke.json, remembered by (digest, GPU) in the state file."""
        gpu = result.summary["attempts"][-1]["gpu"]
        report, problem = None, f"the smoke job ended as {result.summary['state']}"
        if result.code == EXIT_OK:
            try:
                report = smoke.read_result(plan.project, plan.base_output_dir, eps)
                problem = smoke.problem(report, plan.digest)
            except smoke.SmokeFailed as e:
                problem = str(e)
        entry = {"digest": plan.digest, "gpu": gpu, "passed": problem is None, "result": report,
                 "job": result.job.name, "finished": supervise.now_iso(), **({"problem": problem} if problem else {})}
        state.update(path, result.summary["launch_id"], smoke=entry)
        if problem:
            log(f"smoke of {plan.digest} on {gpu} failed: {problem}")
        else:
            log(f"smoke of {plan.digest} on {gpu} passed: {report['samples_per_s']} samples/s, peak GPU memory "
                f"{report['peak_gpu_memory_bytes'] / 2**30:.2f} GiB ({report.get('device')})")
        summary = {**result.summary, "smoke": report, "passed": problem is None, "gpu": gpu, "digest": plan.digest,
                   "samples_per_s": (report or {}).get("samples_per_s"),
                   "peak_gpu_memory_bytes": (report or {}).get("peak_gpu_memory_bytes")}
        return (EXIT_OK if problem is None else EXIT_FAILED), summary

    return submit_and_supervise(plan, policy, args, eps, container_args=smoke.CONTAINER_ARGS, finish=finish)


def registry_auth(plan: Plan):
    """Push credentials: ARR_REGISTRY_USER/PASSWORD, else ADC for Artifact Registry, else none."""
    from tools.launch import endpoints, registry

    auth = registry.auth_from_env()
    if auth is None and plan.registry.endswith("-docker.pkg.dev"):
        auth = registry.artifact_registry_auth(endpoints.google_credentials(None))
    return auth


def push(plan: Plan, args, auth):
    from tools.launch import registry

    return registry.push_layout(plan.registry, plan.repository, plan.layout_dir, plan.digest,
                                auth=auth, jobs=args.jobs)


class _Store:
    """The supervisor's view of its launch record in the state file."""

    def __init__(self, path: pathlib.Path, launch_id: str):
        self.path, self.launch_id = path, launch_id

    def update(self, **fields) -> dict:
        from tools.launch import state

        return state.update(self.path, self.launch_id, **fields)

    def read(self) -> dict:
        from tools.launch import state

        return next((r for r in state.load(self.path) if r.get("launch_id") == self.launch_id), {})


def _clients(endpoint: str | None):
    from tools.launch import vertex

    cache = {}

    def client_factory(region):
        if region not in cache:
            cache[region] = vertex.client_for(region, endpoint)
        return cache[region]

    return client_factory


def _hangup_detaches() -> None:
    """A closed terminal (SIGHUP) detaches like Ctrl-C: the job is never cancelled by it."""
    def handler(signum, frame):
        raise KeyboardInterrupt

    import threading

    if hasattr(signal, "SIGHUP") and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGHUP, handler)


def _supervisor(plan: Plan, policy, launch_id: str, path: pathlib.Path, record: dict, eps: Endpoints):
    from tools.launch import candidates as C
    from tools.launch import cloud_logs, supervise

    logs = cloud_logs.for_endpoints(plan.project, eps, log) if policy.until != "submitted" else None
    return supervise.Supervisor(plan, policy, launch_id, _clients(eps.vertex), _Store(path, launch_id),
                                logs=logs, log=log, attempts=record.get("attempts"),
                                blocked=C.Blocklist.from_json(record.get("blocked")),
                                container_args=record.get("container_args") or ())


def _supervise(run, launch_id: str, store: _Store, finish=None) -> int:
    """Runs RUN (submit and/or watch) under the watch lock; maps its outcome to an exit code.

    FINISH(result) -> (exit code, result line) judges a supervised job that ended (`launch smoke`).
    """
    from tools.launch import state, supervise

    _hangup_detaches()
    try:
        with state.watch_lock(store.path, launch_id):
            result = run()
    except KeyboardInterrupt:
        store.update(supervision="detached")
        log(f"detached; the job goes on. Re-attach: launch watch {launch_id}   cancel: launch cancel {launch_id}")
        return EXIT_DETACHED
    except supervise.Stopped as e:
        record = store.update(supervision="stopped", stopped_because=str(e))
        log(f"supervision stopped: {e}")
        if record.get("job_name"):  # something was submitted: say where it ended
            print(json.dumps({"job": record["job_name"], **{k: record.get(k) for k in (
                "launch_id", "region", "state", "attempts", "cost_so_far")}}, sort_keys=True))
        return EXIT_FAILED
    code, summary = finish(result) if finish else (result.code, result.summary)
    print(json.dumps(summary, sort_keys=True))
    return code


def submit_and_supervise(plan: Plan, policy, args, eps: Endpoints, *, blocked=None, container_args=(),
                         finish=None) -> int:
    """Creates the job (or adopts this launch id's), then watches it as POLICY says.

    BLOCKED rules candidates out from the start (--require-smoke); CONTAINER_ARGS replace the
    image's CMD and are kept with the launch, so `watch` relaunches with them too.
    """
    from tools.launch import state, supervise, vertex

    launch_id = args.launch_id or uuid.uuid4().hex
    path = _state_path(args)
    record = {"launch_id": launch_id, "run_name": plan.run_name, "project": plan.project,
              "image": plan.image, "state": "submitting", "endpoints": eps.as_json(),
              "plan": plan.to_json(), "policy": policy.as_json(), "supervision": "watching",
              "started": supervise.now_iso(), "container_args": list(container_args)}
    if blocked is not None:
        record["blocked"] = blocked.as_json()
    previous = state.find(path, launch_id)
    if previous and previous.get("launch_id") == launch_id:
        record = {**previous, **{k: record[k] for k in ("policy", "supervision")}}
    else:
        state.upsert(path, record)
    store = _Store(path, launch_id)
    sup = _supervisor(plan, policy, launch_id, path, record, eps)

    def run():
        try:
            job = sup.start(force=args.force)
        except vertex.CandidatesExhausted as e:
            raise supervise.Stopped(str(e)) from None
        if policy.until == "submitted":
            return supervise.Result(EXIT_OK, job, sup.summary(job))
        return sup.watch(job)

    return _supervise(run, launch_id, store, finish)


def _resolve(args) -> tuple[str, dict | None]:
    """A job name from a job name or a remembered launch id / run name."""
    from tools.launch import state, vertex

    if args.id.startswith("projects/"):
        vertex.region_of(args.id)
        return args.id, state.find(_state_path(args), args.id)
    record = state.find(_state_path(args), args.id)
    if not record or not record.get("job_name"):
        raise vertex.SubmitError(f"{args.id!r} is not a job name and no recent launch has that run name or "
                                 "launch id; see `launch recent`")
    return record["job_name"], record


def cmd_status(args, eps: Endpoints) -> int:
    from tools.launch import supervise, vertex

    name, record = _resolve(args)
    eps = eps.over(Endpoints.from_record(record))
    client = vertex.client_for(vertex.region_of(name), eps.vertex)
    job = vertex.reachable(lambda: vertex.get_job(client, name), f"reading {name}")
    attempts = list((record or {}).get("attempts") or [])
    if attempts and attempts[-1].get("job") == name:
        attempts[-1] = {**attempts[-1], "running_s": supervise.running_seconds(job, time.time())}
    out = {"job": job.name, "state": vertex.state_name(job), "display_name": job.display_name,
           "labels": dict(job.labels), "attempts": attempts,
           "cost_so_far": round(sum(supervise.attempt_cost(a) for a in attempts), 4),
           "supervision": (record or {}).get("supervision")}
    if out["state"] == "JOB_STATE_FAILED":
        out["error"] = dict(zip(("code", "message"), vertex.job_error(job)))
    print(json.dumps(out, sort_keys=True))
    log(vertex.logs_hint(job.name))
    return EXIT_OK


def cmd_cancel(args, eps: Endpoints) -> int:
    from tools.launch import state, vertex

    name, record = _resolve(args)
    eps = eps.over(Endpoints.from_record(record))
    client = vertex.client_for(vertex.region_of(name), eps.vertex)
    if record and record.get("launch_id"):
        state.update(_state_path(args), record["launch_id"], cancel_requested=True)  # stops its watcher
    vertex.reachable(lambda: vertex.cancel(client, name), f"cancelling {name}")
    log(f"cancel requested for {name}; its supervision stops")
    print(json.dumps({"job": name, "cancel": "requested"}))
    return EXIT_OK


def cmd_watch(args, eps: Endpoints) -> int:
    """Re-attaches to a launch from its record and carries on with the same policy."""
    from tools.launch import plan as P
    from tools.launch import supervise, vertex

    name, record = _resolve(args)
    if not record or not record.get("plan"):
        raise vertex.SubmitError(f"{args.id!r}: no launch record with a plan to carry on from; "
                                 "`launch status` still reads any job")
    plan = P.Plan.from_json(record["plan"])
    policy = supervise.Policy.from_json(record.get("policy") or {})
    if args.poll_s is not None:
        policy = supervise.Policy.from_json({**policy.as_json(), "poll_s": args.poll_s})
    if policy.until == "submitted":
        policy = supervise.Policy.from_json({**policy.as_json(), "until": "running"})
    eps = eps.over(Endpoints.from_record(record))
    launch_id = record["launch_id"]
    store = _Store(_state_path(args), launch_id)
    store.update(supervision="watching", cancel_requested=False)
    sup = _supervisor(plan, policy, launch_id, store.path, record, eps)
    client = sup.clients(vertex.region_of(name))
    job = vertex.reachable(lambda: vertex.get_job(client, name), f"reading {name}")
    log(f"re-attached to {name} ({vertex.state_name(job)}), waiting until "
        f"{'it ends' if policy.until == 'end' else 'it runs'}")
    return _supervise(lambda: sup.watch(job), launch_id, store)


def cmd_logs(args, eps: Endpoints) -> int:
    """Prints the job's log entries (oldest first); --follow keeps going until the job ends."""
    from tools.launch import cloud_logs, vertex

    name, record = _resolve(args)
    eps = eps.over(Endpoints.from_record(record))
    reader = cloud_logs.for_endpoints(name.split("/")[1], eps, log)
    if reader is None:
        return EXIT_OK
    client = vertex.client_for(vertex.region_of(name), eps.vertex) if args.follow else None
    while True:
        try:
            for line in reader.new_lines(name):
                print(line, flush=True)
        except Exception as e:  # noqa: BLE001 - report, do not trace back
            log(f"reading logs failed: {type(e).__name__}: {e}")
            return EXIT_FAILED
        if not args.follow:
            return EXIT_OK
        job = vertex.reachable(lambda: vertex.get_job(client, name), f"reading {name}")
        if vertex.state_name(job) in vertex.TERMINAL_STATES:
            for line in reader.new_lines(name):
                print(line, flush=True)
            return EXIT_OK
        time.sleep(args.poll_s)


def cmd_recent(args, eps: Endpoints) -> int:
    from tools.launch import state

    keep = ("launch_id", "run_name", "job_name", "region", "state", "supervision", "cost_so_far", "started")
    print(json.dumps([{k: r.get(k) for k in keep if k in r} for r in state.load(_state_path(args))], indent=1))
    return EXIT_OK


LOCAL_RUNS = "arr_coc_runs"  # the trainer resolves it against BUILD_WORKING_DIRECTORY


def local_invocation(args) -> tuple[list[str], dict]:
    """The trainer's argv and the environment variables --local adds (pure).

    No --config: the trainer's embedded smoke config (tiny backbone, synthetic
    data, CPU) is the point of --local. The Vertex job's hyperparameters
    (configs/vertex.toml: Qwen3-VL 2B, batch 4, ...) would turn the smoke run
    into the real one, so only --env given on this command line is passed.
    --run-name picks the output folder, so re-running a name resumes, as on Vertex.
    """
    from tools.launch import plan as P

    argv = []
    if args.run_name:
        argv += ["--output-dir", f"{LOCAL_RUNS}/{P.check_run_name(args.run_name)}"]
    env = {}
    for item in args.env or ():
        env.update(CFG.parse_value("env", item))
    refuse_secret_env(env)
    return argv, env


def run_local(args) -> int:
    """--local: the image's entry point through Bazel (//ARR_COC/Training:train), nothing pushed or submitted.

    Bazel builds the trainer and the tiny backbone only here, so the other
    commands never build torch.
    """
    from tools.launch import workspace_bazel

    argv, env = local_invocation(args)
    if args.dry_run:
        print(json.dumps({"local": {"target": workspace_bazel.TRAINER, "argv": argv, "env": env}}, sort_keys=True))
        return EXIT_OK
    log(f"--local: tools/bazel run {workspace_bazel.TRAINER} -- {' '.join(argv)} (embedded smoke config"
        + (f", env {sorted(env)})" if env else ")"))
    return workspace_bazel.run_trainer(argv, env)


COMMANDS = {"status": cmd_status, "cancel": cmd_cancel, "recent": cmd_recent, "watch": cmd_watch,
            "logs": cmd_logs, "smoke": cmd_smoke}


def _google_api_error(e: BaseException) -> bool:
    """A Google API error (only when that SDK was loaded: --help and --dry-run never load it)."""
    api = sys.modules.get("google.api_core.exceptions")
    return api is not None and isinstance(e, api.GoogleAPICallError)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv and argv[0] in SUBCOMMANDS:
            args = sub_parser(argv[0]).parse_args(argv[1:])
            return COMMANDS[argv[0]](args, Endpoints.from_flags(args))
        args = launch_parser().parse_args(argv)
        return cmd_launch(args, Endpoints.from_flags(args))
    except LaunchError as e:
        log(f"error: {e}")
        return e.exit_code
    except KeyboardInterrupt:
        log("interrupted")
        return EXIT_DETACHED
    except Exception as e:
        if not _google_api_error(e):
            raise
        log(f"error: {e}")
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
