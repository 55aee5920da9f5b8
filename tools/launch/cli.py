"""`bazel run //tools:launch -- [flags]`: plan, preflight, push by digest, submit.

Subcommands `status ID`, `cancel ID` and `recent` take a job name or a launch
id. Heavy cloud SDKs are imported only on the paths that use them, so
`--help` and `--dry-run` without quota stay fast. stdout carries only the
machine-readable result (one JSON object); logs go to stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys
import uuid

from tools.launch import config as CFG

SUBCOMMANDS = ("status", "cancel", "recent")


def log(msg: str) -> None:
    print(f"launch: {msg}", file=sys.stderr, flush=True)


def _endpoint_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--project", help="Google Cloud project ID")
    p.add_argument("--vertex-endpoint", metavar="URL",
                   help="Vertex AI API endpoint (default: REGION-aiplatform.googleapis.com)")
    p.add_argument("--state-file", type=pathlib.Path,
                   help="recent launches (default: $ARR_LAUNCH_STATE or ~/.local/state/arr-coc/launches.json)")


def launch_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="launch",
        description="Plan, push (by digest) and submit the ARR-COC training job to Vertex AI. "
        "Subcommands: status ID | cancel ID | recent.",
    )
    _endpoint_flags(p)
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
    p.add_argument("--dry-run", action="store_true", help="print the plan as JSON; push and submit nothing")
    p.add_argument("--local", action="store_true",
                   help="run the training entry point here with its embedded smoke config "
                   "(no image needed; --dry-run shows what would run)")
    p.add_argument("--run-name", help="run name (relaunching the same name resumes its checkpoints)")
    p.add_argument("--force", action="store_true", help="submit even if a job of this run name is active")
    p.add_argument("--wait", action="store_true", help="follow the job to its end")
    p.add_argument("--poll-s", type=float, default=30.0, help=argparse.SUPPRESS)
    p.add_argument("--launch-id", help="reuse a launch id (retry of an unclear launch)")
    p.add_argument("--no-quota", action="store_true", help="skip the live quota check")
    p.add_argument("--skip-preflight", action="store_true")
    p.add_argument("--jobs", type=int, default=4, help="parallel blob uploads")
    # Config fields as flags: every field of launch.toml can be overridden.
    p.add_argument("--gpu-preference", metavar="GPU,GPU", help="e.g. L4,T4")
    p.add_argument("--gpu", help="a single GPU (same as --gpu-preference GPU)")
    p.add_argument("--count", help="GPUs per machine")
    p.add_argument("--region", "--regions", dest="regions", metavar="R,R", help="allowed regions")
    p.add_argument("--scheduling", choices=["SPOT", "STANDARD", "FLEX_START"])
    p.add_argument("--timeout-s")
    p.add_argument("--max-wait-s")
    p.add_argument("--repository")
    p.add_argument("--image-name")
    p.add_argument("--bucket")
    p.add_argument("--service-account")
    p.add_argument("--env", action="append", metavar="K=V,K=V", help="hyperparameters")
    return p


def sub_parser(command: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=f"launch {command}")
    _endpoint_flags(p)
    if command != "recent":
        p.add_argument("id", help="job name (projects/P/locations/R/customJobs/ID) or launch id")
    return p


def overrides(args: argparse.Namespace) -> dict:
    """Flag values as config overrides (None: not given, the file's value stays)."""
    out = {}
    for field in CFG.FIELDS:
        value = getattr(args, field, None)
        if field == "env" and value:
            merged = {}
            for item in value:
                merged.update(CFG.parse_value("env", item))
            out["env"] = merged
        elif isinstance(value, str) and CFG.FIELDS[field] is not str:
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


def _quotas(args, cfg: dict):
    """Live quota, unless no quota endpoint was given in a private setup.

    With other endpoints overridden, calling the real Cloud Quotas API would
    be a Google call without its own override: skip it with a note instead.
    """
    if args.no_quota:
        log("quota not checked (--no-quota)")
        return None
    private = bool(args.registry or args.vertex_endpoint)
    if not args.quota_endpoint and private:
        log("quota not checked: endpoints are overridden but --quota-endpoint is not")
        return None
    if not cfg["project"]:
        return None
    from tools.launch import quota

    return quota.fetch(cfg["project"], args.quota_endpoint)


def image_paths(args) -> tuple[str, str]:
    """The layout and digest given as flags (tests, private setups), else Bazel's build of the image."""
    if bool(args.image_layout) != bool(args.image_digest):
        raise CFG.ConfigError("--image-layout and --image-digest go together")
    if args.image_layout:
        return args.image_layout, args.image_digest
    from tools.launch import bazel_image

    log(f"building {bazel_image.IMAGE} with Bazel (a no-op when nothing changed)")
    return bazel_image.build()


def cmd_launch(args) -> int:
    from tools.launch import plan as P

    if args.local:
        return run_local(args)
    cfg = CFG.load(user_path(args.config), overrides(args))
    layout, digest = image_paths(args)
    plan = P.make(cfg, layout, digest, _quotas(args, cfg))
    if args.dry_run:
        print(json.dumps(plan, indent=1, sort_keys=True))
        return 0
    log(f"plan: {plan['gpu']} x{plan['accelerator_count']} {plan['machine_type']} in "
        f"{plan['region']} ({plan['scheduling']}, {plan['price_per_hour']} {plan['currency']}/h)")
    from tools.launch import vertex

    vertex.client_for(plan["region"], args.vertex_endpoint)  # credentials fail here, before a push
    auth = registry_auth(plan)
    if not args.skip_preflight:
        from tools.launch import preflight

        for line in preflight.report(plan, preflight.run(plan, args, auth)):
            log(line)
    pushed = push(plan, args, auth)
    log(f"pushed {pushed.reference} (tag {pushed.tag}): {pushed.blobs_uploaded} blob(s), "
        f"{pushed.bytes_uploaded} bytes uploaded, {pushed.blobs_skipped} already there")
    return submit_and_record(plan, args)


def registry_auth(plan: dict):
    """Push credentials: ARR_REGISTRY_USER/PASSWORD, else ADC for Artifact Registry, else none."""
    from tools.launch import endpoints, registry

    auth = registry.auth_from_env()
    if auth is None and plan["registry"].endswith("-docker.pkg.dev"):
        auth = registry.artifact_registry_auth(endpoints.google_credentials(None))
    return auth


def push(plan: dict, args, auth):
    from tools.launch import registry

    repo_name = plan["repository"]
    return registry.push_layout(plan["registry"], repo_name, plan["layout_dir"], plan["digest"],
                                auth=auth, jobs=args.jobs)


def submit_and_record(plan: dict, args) -> int:
    from tools.launch import state, vertex

    launch_id = args.launch_id or uuid.uuid4().hex
    path = _state_path(args)
    record = {"launch_id": launch_id, "run_name": plan["run_name"], "project": plan["project"],
              "image": plan["image"], "state": "submitting", "vertex_endpoint": args.vertex_endpoint}
    state.upsert(path, record)
    clients = {}

    def client_factory(region):
        if region not in clients:
            clients[region] = vertex.client_for(region, args.vertex_endpoint)
        return clients[region]

    job, attempts = vertex.submit(plan, launch_id, client_factory, force=args.force, log=log)
    region = vertex.region_of(job.name)
    record.update(job_name=job.name, region=region, state=vertex.state_name(job))
    state.upsert(path, record)
    log(f"submitted {job.name} (launch id {launch_id})")
    log(vertex.logs_hint(job.name))
    if args.wait:
        job = vertex.wait(client_factory(region), job.name, poll_s=args.poll_s, log=log)
        record["state"] = vertex.state_name(job)
        state.upsert(path, record)
    print(json.dumps({"job": job.name, "launch_id": launch_id, "region": region,
                      "state": vertex.state_name(job),
                      "attempts": [a.__dict__ for a in attempts]}, sort_keys=True))
    return 0 if record["state"] not in ("JOB_STATE_FAILED", "JOB_STATE_CANCELLED") else 1


def _resolve(args) -> tuple[str, dict | None]:
    """A job name from a job name or a remembered launch id / run name."""
    from tools.launch import state, vertex

    if args.id.startswith("projects/"):
        return args.id, state.find(_state_path(args), args.id)
    record = state.find(_state_path(args), args.id)
    if not record or not record.get("job_name"):
        raise vertex.SubmitError(f"{args.id!r} is not a job name and no recent launch has that id; "
                                 "see `launch recent`")
    return record["job_name"], record


def cmd_status(args) -> int:
    from tools.launch import vertex

    name, record = _resolve(args)
    endpoint = args.vertex_endpoint or (record or {}).get("vertex_endpoint")
    client = vertex.client_for(vertex.region_of(name), endpoint)
    job = vertex.reachable(lambda: client.get_custom_job(name=name), f"reading {name}")
    print(json.dumps({"job": job.name, "state": vertex.state_name(job),
                      "display_name": job.display_name, "labels": dict(job.labels)}, sort_keys=True))
    log(vertex.logs_hint(job.name))
    return 0


def cmd_cancel(args) -> int:
    from tools.launch import vertex

    name, record = _resolve(args)
    endpoint = args.vertex_endpoint or (record or {}).get("vertex_endpoint")
    client = vertex.client_for(vertex.region_of(name), endpoint)
    vertex.reachable(lambda: vertex.cancel(client, name), f"cancelling {name}")
    log(f"cancel requested for {name}")
    print(json.dumps({"job": name, "cancel": "requested"}))
    return 0


def cmd_recent(args) -> int:
    from tools.launch import state

    print(json.dumps(state.load(_state_path(args)), indent=1))
    return 0


LOCAL_ENTRY = "ARR_COC.Training.entrypoint"  # the image's entry point: main(argv) -> exit code
LOCAL_RUNS = "arr_coc_runs"  # the trainer resolves it against BUILD_WORKING_DIRECTORY


def local_invocation(args) -> tuple[list[str], dict]:
    """The trainer's argv and the environment variables --local adds (pure).

    No --config: the trainer's embedded smoke config (tiny backbone, synthetic
    data, CPU) is the point of --local. launch.toml's [env] is the Vertex job's
    hyperparameters (Qwen3-VL 2B, batch 4, ...) and would turn the smoke run
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
    return argv, env


def load_local_entry(module: str = LOCAL_ENTRY):
    """The trainer's main, or an error naming the target that carries it."""
    import importlib

    try:
        return importlib.import_module(module).main
    except ModuleNotFoundError as e:
        raise CFG.ConfigError(
            f"--local needs the trainer ({module}; missing: {e.name}): run "
            "`tools/bazel run //tools:launch -- --local`, which carries the trainer and the "
            "tiny backbone") from None


def run_local(args) -> int:
    """--local: the image's entry point in this process, smoke config, nothing pushed or submitted."""
    argv, env = local_invocation(args)
    if args.dry_run:
        print(json.dumps({"local": {"entry": LOCAL_ENTRY, "argv": argv, "env": env}}, sort_keys=True))
        return 0
    entry = load_local_entry()
    os.environ.update(env)
    log(f"--local: {LOCAL_ENTRY}.main({argv}) with the embedded smoke config"
        + (f", env {sorted(env)}" if env else ""))
    return entry(argv)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    from tools.launch.errors import USER_ERRORS

    try:
        if argv and argv[0] in SUBCOMMANDS:
            args = sub_parser(argv[0]).parse_args(argv[1:])
            return {"status": cmd_status, "cancel": cmd_cancel, "recent": cmd_recent}[argv[0]](args)
        return cmd_launch(launch_parser().parse_args(argv))
    except USER_ERRORS() as e:
        log(f"error: {e}")
        return 2


if __name__ == "__main__":
    sys.exit(main())
