"""Supervision end to end: the CLI with the real aiplatform and logging clients against the
stateful fake (per-region scenarios), a real docker-registry for the push.

Each scenario is what Vertex does after accepting a job: keep it queued, fail it
for capacity, fail it for the trainer's own reasons, preempt it after it ran.
"""

import datetime
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

import pytest

from tests.support import fake_google
from tests.support.fake_google import failed
from tools.launch import cli, state

pytestmark = pytest.mark.usefixtures("state_file")  # a state file of its own per test

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SPOT = "custom_model_training_preemptible_nvidia_{}_gpus"
STOCKOUT = "Resources are insufficient in region: {}. Please try a different region."
TRAINER_ERROR = ("The replica workerpool0-0 exited with a non-zero status of 1. To find out more about why "
                 "your job exited please check the logs")
PREEMPTED = "The job was preempted: its Spot VM was reclaimed"
# ranked L4 spot order in prices.toml for these regions: us-west1, us-central1, europe-west4
FIRST, SECOND, THIRD = "us-west1", "us-central1", "europe-west4"


@pytest.fixture
def layout(image):
    return image[0]


@pytest.fixture
def google():
    fake = fake_google.FakeGoogle()
    fake.add_quota(SPOT.format("l4"), {"": 4})
    with fake_google.running(fake) as url:
        fake.url = url
        yield fake


def argv(google, layout, registry_url, *extra, logging=True, gpu=("--gpu", "L4")):
    return ["--project", "proj", "--registry", registry_url + "/team",
            "--vertex-endpoint", google.url, "--quota-endpoint", google.url,
            *(["--logging-endpoint", google.url] if logging else []), "--skip-preflight",
            "--image-layout", layout, "--image-digest", layout + ".digest",
            "--region", f"{FIRST},{SECOND},{THIRD}", *gpu, "--poll-s", "0.02", *extra]


def launch(capsys, google, layout, registry, *extra, gpu=("--gpu", "L4")):
    code = cli.main(argv(google, layout, registry.url, *extra, gpu=gpu))
    out, err = capsys.readouterr()
    result = json.loads(out.strip().splitlines()[-1]) if out.strip() else None
    return code, result, err


def catalog(registry) -> list:
    """Repositories in the registry: empty when nothing was pushed."""
    import requests

    return requests.get(registry.url + "/v2/_catalog", timeout=10).json()["repositories"]


def created_regions(google):
    return [region for region, _ in google.creates]


def test_default_waits_until_running_and_prints_one_json_line(capsys, google, layout, registry):
    google.scenarios[FIRST] = ["JOB_STATE_QUEUED", "JOB_STATE_QUEUED", "JOB_STATE_PENDING", "JOB_STATE_RUNNING"]
    code = cli.main(argv(google, layout, registry.url, "--run-name", "r1"))
    out, err = capsys.readouterr()
    assert code == 0, err
    assert out.count("\n") == 1, out
    result = json.loads(out)
    assert result["state"] == "JOB_STATE_RUNNING" and result["region"] == FIRST
    assert result["machine_type"] == "g2-standard-4" and result["accelerator_type"] == "NVIDIA_L4"
    assert [a["outcome"] for a in result["attempts"]] == ["JOB_STATE_RUNNING"]
    assert "JOB_STATE_QUEUED" in err and "JOB_STATE_RUNNING" in err


def test_detach_returns_right_after_create(capsys, google, layout, registry):
    google.scenarios[FIRST] = ["JOB_STATE_QUEUED"]
    code, result, err = launch(capsys, google, layout, registry, "--detach")
    assert code == 0, err
    assert result["state"] == "JOB_STATE_QUEUED"
    assert not [r for r in google.requests if r[0] == "GET" and "/customJobs/" in r[1]]


def test_queued_too_long_is_cancelled_then_next_region_runs(capsys, google, layout, registry):
    google.scenarios[FIRST] = ["JOB_STATE_QUEUED"]  # queued forever
    google.scenarios[SECOND] = ["JOB_STATE_PENDING", "JOB_STATE_RUNNING"]
    code, result, err = launch(capsys, google, layout, registry, "--run-name", "q1", "--max-queue-s", "1")
    assert code == 0, err
    first = google.creates[0][1]
    assert created_regions(google) == [FIRST, SECOND]
    first_name = next(n for n in google.jobs if f"/{FIRST}/" in n)
    assert google.cancels == [first_name] and google.jobs[first_name]["state"] == "JOB_STATE_CANCELLED"
    second = google.creates[1][1]
    # same run name: same output folder, so the relaunch resumes; attempt label tells them apart
    assert second["displayName"] == first["displayName"] == "q1"
    assert second["jobSpec"]["baseOutputDirectory"] == first["jobSpec"]["baseOutputDirectory"]
    assert (first["labels"]["attempt"], second["labels"]["attempt"]) == ("1", "2")
    assert second["labels"]["launch_id"] == first["labels"]["launch_id"]
    assert result["region"] == SECOND and len(result["attempts"]) == 2
    assert result["attempts"][0]["outcome"].startswith("queued")


def test_flex_start_waits_its_own_max_wait(capsys, google, layout, registry):
    # five polls 0.4 s apart: still QUEUED at least 1.6 s after the create, past --max-queue-s 1,
    # which would move a SPOT job on; FLEX_START's limit is its max_wait_s (3600 s) instead
    for region in (FIRST, SECOND, THIRD):  # FLEX_START prices rank these regions in another order
        google.scenarios[region] = ["JOB_STATE_QUEUED"] * 5 + ["JOB_STATE_RUNNING"]
    code, result, err = launch(capsys, google, layout, registry, "--scheduling", "FLEX_START",
                               "--max-queue-s", "1", "--max-wait-s", "3600", "--no-quota", "--poll-s", "0.4")
    assert code == 0, err
    assert created_regions(google) == [result["region"]] and google.cancels == []
    assert result["state"] == "JOB_STATE_RUNNING" and len(result["attempts"]) == 1


def test_stockout_failure_moves_to_the_next_region(capsys, google, layout, registry):
    google.scenarios[FIRST] = ["JOB_STATE_PENDING", failed(8, STOCKOUT.format(FIRST))]
    code, result, err = launch(capsys, google, layout, registry)
    assert code == 0, err
    assert created_regions(google) == [FIRST, SECOND] and result["region"] == SECOND
    assert "capacity" in result["attempts"][0]["outcome"]


def test_trainer_error_stops_without_relaunch_and_shows_logs(capsys, google, layout, registry):
    google.scenarios[FIRST] = ["JOB_STATE_PENDING", "JOB_STATE_RUNNING", failed(3, TRAINER_ERROR)]
    google.log_entries = {"1000": ["loading data", "Traceback (most recent call last):", "ValueError: boom"]}
    code, result, err = launch(capsys, google, layout, registry, "--wait")
    assert code == 1
    assert created_regions(google) == [FIRST]  # nothing relaunched
    assert TRAINER_ERROR in err and "ValueError: boom" in err and "last log lines" in err
    assert result["state"] == "JOB_STATE_FAILED"
    assert re.search(r"\[job\] \S+ INFO loading data", err)  # streamed while watching too


def test_preemption_after_running_relaunches_under_the_same_run_name_with_wait(capsys, google, layout, registry):
    google.scenarios[FIRST] = ["JOB_STATE_PENDING", "JOB_STATE_RUNNING", "JOB_STATE_RUNNING",
                               failed(14, PREEMPTED)]
    code, result, err = launch(capsys, google, layout, registry, "--wait", "--run-name", "pre")
    assert code == 0, err
    assert created_regions(google) == [FIRST, SECOND]
    assert {body["displayName"] for _, body in google.creates} == {"pre"}
    assert result["state"] == "JOB_STATE_SUCCEEDED" and result["model_dir"] == "gs://proj-arr-coc/pre/model"
    assert result["attempts"][0]["running_s"] > 0  # the preempted attempt's running time is counted


def startup_exit(status: int) -> str:
    return f"The replica workerpool0-0 exited with a non-zero status of {status}. To find out more ..."


def test_start_up_check_gpu_unsupported_blocks_that_gpu_and_tries_the_next_gpu(capsys, google, layout, registry):
    google.add_quota(SPOT.format("t4"), {"": 4})
    for region in (FIRST, SECOND, THIRD):  # any L4 job would fail the check
        google.scenarios[(region, "g2-standard-4")] = ["JOB_STATE_PENDING", failed(3, startup_exit(82))]
    code, result, err = launch(capsys, google, layout, registry, "--wait", gpu=("--gpu-preference", "L4,T4"))
    assert code == 0, err
    # no second L4 region: the GPU is ruled out everywhere, the first T4 candidate runs
    (first_region, first), (_, second) = google.creates
    assert first_region == FIRST and first["jobSpec"]["workerPoolSpecs"][0]["machineSpec"]["acceleratorType"] == 11
    assert result["accelerator_type"] == "NVIDIA_TESLA_T4" and result["state"] == "JOB_STATE_SUCCEEDED"
    assert "start-up check: gpu unsupported (exit 82)" in err and "blocked: L4 in every region" in err
    assert result["attempts"][0]["outcome"].startswith("start-up check: gpu unsupported (exit 82)")
    assert state.load(state.default_path())[-1]["blocked"]["gpus"] == ["L4"]


def test_start_up_check_driver_too_old_blocks_only_that_candidate(capsys, google, layout, registry):
    google.scenarios[FIRST] = [failed(3, startup_exit(81))]
    code, result, err = launch(capsys, google, layout, registry)
    assert code == 0, err
    assert created_regions(google) == [FIRST, SECOND] and result["region"] == SECOND
    assert "start-up check: driver too old (exit 81)" in err


def test_start_up_check_shm_too_small_stops_with_its_fix(capsys, google, layout, registry):
    google.scenarios[FIRST] = ["JOB_STATE_PENDING", failed(3, startup_exit(84))]
    code, result, err = launch(capsys, google, layout, registry, "--wait")
    assert code == 1 and created_regions(google) == [FIRST]
    assert "start-up check: shm too small (exit 84)" in err and "num_workers" in err
    assert result["state"] == "JOB_STATE_FAILED"
    assert result["attempts"][0]["outcome"].startswith("start-up check: shm too small (exit 84)")


def test_max_attempts_ends_supervision(capsys, google, layout, registry):
    for region in (FIRST, SECOND, THIRD):
        google.scenarios[region] = [failed(8, STOCKOUT.format(region))]
    code, result, err = launch(capsys, google, layout, registry, "--max-attempts", "2")
    assert code == 1
    assert created_regions(google) == [FIRST, SECOND]
    assert "--max-attempts is 2" in err


def test_max_cost_stops_before_an_expensive_relaunch(capsys, google, layout, registry):
    google.scenarios[FIRST] = [failed(8, STOCKOUT.format(FIRST))]
    code, result, err = launch(capsys, google, layout, registry, "--max-cost", "0.01")
    assert code == 1 and created_regions(google) == [FIRST]
    assert "would pass --max-cost 0.01" in err


def test_every_candidate_exhausted_at_create_is_exit_1(capsys, google, layout, registry):
    for region in (FIRST, SECOND, THIRD):
        google.exhausted[region] = "The zone does not have enough resources available"
    code, result, err = launch(capsys, google, layout, registry)
    assert code == 1 and result is None
    assert "no candidate accepted the job" in err


def test_invalid_pair_moves_on_to_the_next_candidate(capsys, google, layout, registry):
    google.invalid[FIRST] = 'Machine type "g2-standard-4" is not supported with accelerator "NVIDIA_L4" here.'
    code, result, err = launch(capsys, google, layout, registry)
    assert code == 0, err
    assert created_regions(google) == [FIRST, SECOND] and result["region"] == SECOND


def test_invalid_argument_about_the_job_stops(capsys, google, layout, registry):
    google.invalid[FIRST] = "Invalid layout URI"
    code, result, err = launch(capsys, google, layout, registry)
    assert code == 2 and created_regions(google) == [FIRST]


def test_transient_api_errors_while_watching_are_retried(capsys, google, layout, registry):
    google.flaky_gets = 2
    code, result, err = launch(capsys, google, layout, registry)
    assert code == 0, err
    assert result["state"] == "JOB_STATE_RUNNING" and err.count("retrying in") == 2


def test_watch_reattaches_with_the_same_policy(capsys, google, layout, registry, state_file):
    google.scenarios[FIRST] = ["JOB_STATE_QUEUED"]
    google.scenarios[SECOND] = ["JOB_STATE_RUNNING"]
    code, result, err = launch(capsys, google, layout, registry, "--detach", "--run-name", "w1",
                               "--max-queue-s", "1")
    assert code == 0 and result["state"] == "JOB_STATE_QUEUED"
    time.sleep(1.1)
    assert cli.main(["watch", "w1", "--poll-s", "0.02"]) == 0
    out, err = capsys.readouterr()
    result = json.loads(out.strip().splitlines()[-1])
    # the stored max_queue_s (1 s) applied: moved on to the next region, which runs
    assert result["region"] == SECOND and result["state"] == "JOB_STATE_RUNNING"
    assert len(result["attempts"]) == 2 and "re-attached" in err


def test_watch_reads_a_record_written_by_an_older_launcher(capsys, google, layout, registry, state_file):
    """Older records kept vertex_endpoint/logging_endpoint/private instead of one endpoints object."""
    google.scenarios[FIRST] = ["JOB_STATE_QUEUED", "JOB_STATE_RUNNING"]
    code, result, err = launch(capsys, google, layout, registry, "--detach", "--run-name", "old1")
    assert code == 0, err
    records = state.load(state_file)
    endpoints = records[-1].pop("endpoints")
    records[-1].update(vertex_endpoint=endpoints["vertex"], logging_endpoint=endpoints["logging"], private=True)
    state.save(state_file, records)
    assert cli.main(["watch", "old1", "--poll-s", "0.02"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out.strip().splitlines()[-1])["state"] == "JOB_STATE_RUNNING", err


def test_one_watcher_per_launch(capsys, google, layout, registry, state_file):
    google.scenarios[FIRST] = ["JOB_STATE_QUEUED"]
    code, result, _ = launch(capsys, google, layout, registry, "--detach", "--run-name", "lk")
    with state.watch_lock(state_file, result["launch_id"]):
        assert cli.main(["watch", "lk"]) == 2
    assert "already being watched" in capsys.readouterr().err


def test_cancel_stops_a_running_watcher(capsys, google, layout, registry, state_file):
    google.scenarios[FIRST] = ["JOB_STATE_QUEUED"]
    code, result, _ = launch(capsys, google, layout, registry, "--detach", "--run-name", "cw")
    codes = []
    watcher = threading.Thread(target=lambda: codes.append(cli.main(["watch", "cw", "--poll-s", "0.05"])))
    watcher.start()
    time.sleep(0.5)
    assert cli.main(["cancel", "cw"]) == 0
    watcher.join(timeout=20)
    assert codes == [1] and len(google.creates) == 1  # stopped, nothing relaunched
    assert google.jobs[result["job"]]["state"] in ("JOB_STATE_CANCELLING", "JOB_STATE_CANCELLED")


def test_rerun_with_the_same_launch_id_never_creates_a_second_job(capsys, google, layout, registry):
    google.scenarios[FIRST] = ["JOB_STATE_QUEUED", "JOB_STATE_RUNNING"]
    code, first, _ = launch(capsys, google, layout, registry, "--detach", "--launch-id", "same-launch")
    code, second, err = launch(capsys, google, layout, registry, "--launch-id", "same-launch")
    assert code == 0, err
    assert len(google.creates) == 1 and second["job"] == first["job"]
    assert "not creating another" in err


def test_lost_create_response_is_found_not_resubmitted(capsys, google, layout, registry):
    google.unclear_creates = 1
    code, result, err = launch(capsys, google, layout, registry)
    assert code == 0, err
    assert len(google.creates) == 1 and len(google.jobs) == 1
    assert "submitted after all" in err


def test_status_shows_cost_so_far(capsys, google, layout, registry):
    code, result, _ = launch(capsys, google, layout, registry, "--run-name", "st")
    # the job has been running for two hours: the cost is two hours of the attempt's machine
    two_hours_ago = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(hours=2)
    google.jobs[result["job"]]["startTime"] = two_hours_ago.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    assert cli.main(["status", "st"]) == 0
    status = json.loads(capsys.readouterr().out)
    price = status["attempts"][0]["price_per_hour"]
    assert status["job"] == result["job"] and price > 0
    assert status["attempts"][0]["running_s"] == pytest.approx(7200, abs=60)
    assert status["cost_so_far"] == pytest.approx(2 * price, rel=0.01)


def test_logs_prints_the_jobs_entries(capsys, google, layout, registry):
    code, result, _ = launch(capsys, google, layout, registry, "--run-name", "lg")
    google.log_entries = {result["job"].rsplit("/", 1)[1]: ["step 1 loss 2.0", "step 2 loss 1.5"]}
    assert cli.main(["logs", "lg", "--logging-endpoint", google.url]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split(" ", 2)[2] for line in out] == ["step 1 loss 2.0", "step 2 loss 1.5"]
    # --follow ends with the job
    google.set_state(result["job"], "JOB_STATE_SUCCEEDED")
    assert cli.main(["logs", "lg", "--follow", "--poll-s", "0.02", "--logging-endpoint", google.url]) == 0


def test_logs_without_an_endpoint_in_a_private_setup_are_skipped(capsys, google, layout, registry):
    assert cli.main(argv(google, layout, registry.url, "--run-name", "nolog", "--wait", logging=False)) == 0
    assert "job logs skipped" in capsys.readouterr().err  # while watching
    assert cli.main(["logs", "nolog"]) == 0
    assert "job logs skipped" in capsys.readouterr().err
    assert not [r for r in google.requests if r[1] == "/v2/entries:list"]


def test_dry_run_shows_the_supervision_policy(capsys, google, layout):
    code = cli.main(argv(google, layout, "http://127.0.0.1:1", "--dry-run", "--wait", "--max-cost", "50"))
    plan = json.loads(capsys.readouterr().out)
    assert code == 0
    policy = plan["supervision"]
    assert policy["until"] == "end" and policy["max_cost"] == 50 and policy["max_attempts"] == 5
    assert policy["queue_limit_s"] == 900 and "preemption" in policy["what_counts_as_capacity"]["relaunch_on"]


def test_nodes_make_two_identical_pools_and_multiply_the_quota(capsys, google, layout, registry):
    code, result, err = launch(capsys, google, layout, registry, "--nodes", "3", "--count", "1")
    assert code == 0, err
    pools = google.creates[0][1]["jobSpec"]["workerPoolSpecs"]
    assert [p["replicaCount"] for p in pools] == ["1", "2"]
    assert pools[0]["machineSpec"] == pools[1]["machineSpec"]
    assert pools[0]["containerSpec"] == pools[1]["containerSpec"]
    # 3 nodes x 1 GPU against a quota of 4 is fine; 5 nodes is not
    code = cli.main(argv(google, layout, registry.url, "--nodes", "5", "--dry-run"))
    assert code == 2 and "quota 4 < 5 GPU(s)" in capsys.readouterr().err


def test_secret_reaches_the_job_as_a_reference_only(capsys, google, layout, registry, state_file):
    ref = "projects/proj/secrets/wandb-key/versions/3"
    code, result, err = launch(capsys, google, layout, registry, "--secret", f"WANDB_API_KEY={ref}")
    assert code == 0, err
    env = {e["name"]: e["value"] for e in google.creates[0][1]["jobSpec"]["workerPoolSpecs"][0]["containerSpec"]["env"]}
    assert env["ARR_SECRET_REFS"] == f"WANDB_API_KEY={ref}" and "WANDB_API_KEY" not in env


def test_secret_looking_env_is_refused_before_anything_is_pushed(capsys, google, layout, registry):
    code = cli.main(argv(google, layout, registry.url, "--env", "WANDB_API_KEY=hunter2-value"))
    err = capsys.readouterr().err
    assert code == 2 and google.creates == []
    assert "--secret" in err and "WANDB_API_KEY" in err and "hunter2-value" not in err
    assert "terminal or CI log" in err
    assert catalog(registry) == []  # nothing pushed


BAD_LAUNCH = [
    (["--region", "mars-central1"], "unknown region(s) mars-central1"),
    (["--config", "/nonexistent/launch.toml"], "no such file"),
    (["--timeout-s", "-5"], "timeout_s (--timeout-s)"),
    (["--scheduling", "FLEX_START", "--timeout-s", "700000"], "7 days"),
    (["--count", "0"], "count (--count)"),
    (["--count", "two"], "--count wants an integer"),
    (["--nodes", "0"], "nodes (--nodes)"),
    (["--max-queue-s", "0"], "max_queue_s (--max-queue-s)"),
    (["--max-attempts", "0"], "max_attempts (--max-attempts)"),
    (["--max-cost", "-1"], "max_cost (--max-cost)"),
    (["--max-cost", "lots"], "--max-cost wants a number"),
    (["--scheduling", "FLEX_START", "--max-wait-s", "0"], "max_wait_s must be between 1 and"),
    (["--poll-s", "0"], "--poll-s"),
    (["--poll-s", "soon"], "--poll-s"),
    (["--jobs", "0"], "--jobs"),
    (["--launch-id", "Has Spaces"], "--launch-id"),
    (["--launch-id", "x" * 64], "--launch-id"),
    (["--scheduling", "CHEAP"], "--scheduling"),
    (["--gpu", "V200"], "unknown GPU 'V200'"),
    (["--env", "not-a-pair"], "KEY=VALUE"),
    (["--env", "HF_TOKEN=abc"], "--secret"),
    (["--secret", "WANDB_API_KEY=plain-value"], "--secret"),
    (["--run-name", "Bad_Name"], "run name 'Bad_Name'"),
    (["--detach", "--wait"], "not allowed with argument"),
]

BAD_SUBCOMMANDS = [
    (["status"], "the following arguments are required: id"),
    (["status", "no-such-run"], "no recent launch has that run name"),
    (["status", "projects/p/locations/r/jobs/1"], "not a job name"),
    (["cancel", "no-such-run"], "no recent launch has that run name"),
    (["watch", "no-such-run"], "no recent launch has that run name"),
    (["watch", "x", "--poll-s", "-1"], "--poll-s"),
    (["logs", "no-such-run"], "no recent launch has that run name"),
    (["logs", "x", "--follow", "--poll-s", "0"], "--poll-s"),
    (["recent", "extra"], "unrecognized arguments"),
]


@pytest.mark.parametrize("extra,message", BAD_LAUNCH, ids=[" ".join(a)[:40] for a, _ in BAD_LAUNCH])
def test_bad_launch_input_exits_2_and_submits_nothing(capsys, google, layout, registry, extra, message):
    code = _exit_code(lambda: cli.main(argv(google, layout, registry.url, *extra)))
    err = capsys.readouterr().err
    assert code == 2 and message in err
    assert google.creates == [] and catalog(registry) == []


@pytest.mark.parametrize("args,message", BAD_SUBCOMMANDS, ids=[" ".join(a)[:40] for a, _ in BAD_SUBCOMMANDS])
def test_bad_subcommand_input_exits_2(capsys, google, args, message):
    code = _exit_code(lambda: cli.main(args))
    assert code == 2 and message in capsys.readouterr().err
    assert google.creates == [] and google.cancels == []


def _exit_code(fn) -> int:
    """argparse reports bad flags by SystemExit(2); everything else returns its code."""
    try:
        return fn()
    except SystemExit as e:
        return e.code


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGHUP])
def test_interrupt_or_hangup_detaches_and_never_cancels(tmp_path, google, layout, registry, sig):
    """A real process: Ctrl-C (SIGINT) or a closed terminal (SIGHUP) exits 130, the job goes on."""
    google.scenarios[FIRST] = ["JOB_STATE_QUEUED"]
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "ARR_LAUNCH_STATE": str(tmp_path / "s.json"),
           "PYTHONPATH": os.pathsep.join([ROOT, *sys.path])}
    proc = subprocess.Popen([sys.executable, "-m", "tools.launch.cli",
                             *argv(google, layout, registry.url, "--poll-s", "0.1")],
                            env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while not google.jobs and time.time() < deadline:
        time.sleep(0.1)
    time.sleep(0.5)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "launch watch" in err and google.cancels == []
    assert all(j["state"] == "JOB_STATE_QUEUED" for j in google.jobs.values())
    record = json.loads((tmp_path / "s.json").read_text())[-1]
    assert record["supervision"] == "detached"
