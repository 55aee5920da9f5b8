"""The launcher end to end: real Google clients against local fakes, a real registry.

The CLI runs in-process (`cli.main`), with `--registry`, `--vertex-endpoint`
and `--quota-endpoint` on loopback, so the real `aiplatform_v1` and
`cloudquotas_v1` REST clients do the talking and the fake records the wire
request. No Google client is mocked.
"""

import json
import os
import re
import subprocess
import sys

import pytest

from tests.support import fake_google, registry_server as rs
from tools.launch import cli

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SPOT = "custom_model_training_preemptible_nvidia_{}_gpus"



@pytest.fixture
def google():
    fake = fake_google.FakeGoogle()
    # L4 spot: none in us-east1 (the cheapest), 4 elsewhere; T4 spot 8 everywhere.
    fake.add_quota(SPOT.format("l4"), {"us-east1": 0, "": 4})
    fake.add_quota(SPOT.format("t4"), {"": 8})
    with fake_google.running(fake) as url:
        fake.url = url
        yield fake


def run(capsys, google, image, registry_url, *extra):
    layout, _ = image
    argv = [
        "--project", "proj", "--registry", registry_url + "/team",
        "--vertex-endpoint", google.url, "--quota-endpoint", google.url,
        "--image-layout", layout, "--image-digest", layout + ".digest",
        "--region", "us-central1,us-east1,us-west1,europe-west4",
        "--gpu-preference", "L4,T4", "--poll-s", "0.01", *extra,
    ]
    code = cli.main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_dry_run_prints_exactly_one_json_plan_and_touches_nothing(capsys, google, image, state_file):
    layout, digest = image
    code, out, err = run(capsys, google, image, f"http://127.0.0.1:{rs.free_port()}",
                         "--dry-run", "--run-name", "try-1")
    assert code == 0, err
    plan = json.loads(out)  # exactly one JSON object on stdout
    port = out.split("127.0.0.1:")[1].split("/")[0]
    assert plan["image"] == f"127.0.0.1:{port}/team/arr-trainer@{digest}"
    # us-east1 is the cheapest L4 spot region but has no quota: dropped, with why;
    # us-west1 is the next cheapest in prices.toml.
    assert (plan["region"], plan["machine_type"]) == ("us-west1", "g2-standard-4")
    assert plan["accelerator_type"] == "NVIDIA_L4" and plan["accelerator_count"] == 1
    assert plan["scheduling"] == "SPOT" and plan["price_per_hour"] > 0
    assert plan["run_name"] == "try-1" and plan["base_output_dir"] == "gs://proj-arr-coc/try-1"
    # under bazel test the sandbox has no git checkout: "unknown" is the honest answer
    assert re.fullmatch(r"[0-9a-f]{40}|unknown", plan["git_commit"]) and isinstance(plan["git_dirty"], bool)
    east = [c for c in plan["candidates"] if c["gpu"] == "L4" and c["region"] == "us-east1"][0]
    assert not east["kept"] and east["why"] == "quota 0 < 1 GPU(s)"
    assert {c["gpu"] for c in plan["candidates"] if c["kept"]} == {"L4", "T4"}
    assert google.creates == [] and not state_file.exists()


def test_launch_submits_exactly_the_planned_spec(capsys, google, image, registry, state_file):
    layout, digest = image
    code, out, err = run(capsys, google, image, registry.url, "--run-name", "r1",
                         "--env", "LEARNING_RATE=3e-4", "--service-account", "sa@proj.iam.gserviceaccount.com")
    assert code == 0, err
    result = json.loads(out)
    assert len(google.creates) == 1
    region, body = google.creates[0]
    assert region == "us-west1" and result["region"] == "us-west1"
    pool = body["jobSpec"]["workerPoolSpecs"][0]
    assert pool["machineSpec"] == {"machineType": "g2-standard-4", "acceleratorType": 11,
                                   "acceleratorCount": 1}
    assert pool["replicaCount"] == "1"
    assert pool["containerSpec"]["imageUri"] == f"{registry.host}/team/arr-trainer@{digest}"
    env = {e["name"]: e["value"] for e in pool["containerSpec"]["env"]}
    assert env["CUDA_VISIBLE_DEVICES"] == "0" and env["LEARNING_RATE"] == "3e-4"
    assert env["ARR_HUB_CACHE"] == "gs://proj-arr-coc/cache/hf"  # hub weights and data, once per revision
    assert "BATCH_SIZE" not in env and "NUM_VISUAL_TOKENS" not in env  # the image's configs/vertex.toml has them
    spec = body["jobSpec"]
    assert spec["baseOutputDirectory"] == {"outputUriPrefix": "gs://proj-arr-coc/r1"}
    assert spec["serviceAccount"] == "sa@proj.iam.gserviceaccount.com"
    assert spec["scheduling"]["restartJobOnWorkerRestart"] is True
    assert spec["scheduling"]["timeout"] == "604800s"
    assert spec["scheduling"]["strategy"] in ("SPOT", 4)
    labels = body["labels"]
    assert labels["image_sha256"] == digest.split(":")[1][:63]
    assert labels["launch_id"] == result["launch_id"] and labels["run_name"] == "r1"
    assert body["displayName"] == "r1"
    # the image really landed, by digest, under the short tag
    raw = rs.skopeo_inspect_raw(f"{registry.host}/team/arr-trainer:{digest[-7:]}")
    import hashlib
    assert "sha256:" + hashlib.sha256(raw).hexdigest() == digest
    # remembered locally; status by launch id reads the job back through the real client
    assert json.loads(state_file.read_text())[-1]["job_name"] == result["job"]
    assert cli.main(["status", result["launch_id"]]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["job"] == result["job"] and status["state"].startswith("JOB_STATE_")


def test_failover_on_resource_exhausted(capsys, google, image, registry, state_file):
    google.exhausted["us-west1"] = (
        "The following quota metrics exceed quota limits: "
        "aiplatform.googleapis.com/custom_model_training_preemptible_nvidia_l4_gpus")
    google.exhausted["us-central1"] = "The zone does not have enough resources available"
    code, out, err = run(capsys, google, image, registry.url)
    assert code == 0, err
    # ranked order: us-west1, us-central1, europe-west4 (L4), then T4
    assert [r for r, _ in google.creates] == ["us-west1", "us-central1", "europe-west4"]
    assert json.loads(out)["region"] == "europe-west4"
    assert "trying the next candidate" in err


def test_global_quota_stops_failover(capsys, google, image, registry, state_file):
    for region in ("us-central1", "us-west1", "europe-west4", "us-east1"):
        google.exhausted[region] = "Quota exceeded for quota metric GPUS_ALL_REGIONS (global)"
    code, out, err = run(capsys, google, image, registry.url)
    assert code == 1 and out == ""  # candidates ran out: exit 1, and no job to report
    assert len(google.creates) == 1  # blocked everything after the first
    assert "no candidate accepted the job" in err


def test_unclear_failure_is_looked_up_not_resubmitted(capsys, google, image, registry, state_file):
    google.unclear_creates = 1  # stored, but the client sees 503
    code, out, err = run(capsys, google, image, registry.url)
    assert code == 0, err
    assert len(google.jobs) == 1 and len(google.creates) == 1
    assert json.loads(out)["job"] == next(iter(google.jobs))
    assert "submitted after all" in err


def test_relaunch_of_active_run_refused_unless_force(capsys, google, image, registry, state_file):
    assert run(capsys, google, image, registry.url, "--run-name", "same")[0] == 0
    code, out, err = run(capsys, google, image, registry.url, "--run-name", "same")
    assert code == 2 and "already active" in err and len(google.jobs) == 1
    code, out, err = run(capsys, google, image, registry.url, "--run-name", "same", "--force")
    assert code == 0 and len(google.jobs) == 2


def test_wait_follows_to_the_end_and_cancel_works(capsys, google, image, registry, state_file):
    code, out, err = run(capsys, google, image, registry.url, "--wait")
    assert code == 0, err
    assert json.loads(out)["state"] == "JOB_STATE_SUCCEEDED"
    assert "JOB_STATE_RUNNING" in err and "stream-logs" in err
    google.progress = ["JOB_STATE_PENDING", "JOB_STATE_RUNNING"]
    code, out, err = run(capsys, google, image, registry.url, "--run-name", "to-cancel")
    launch_id = json.loads(out)["launch_id"]
    assert cli.main(["cancel", launch_id]) == 0
    name = json.loads(capsys.readouterr().out)["job"]
    assert google.jobs[name]["state"] == "JOB_STATE_CANCELLING"  # Vertex's next read says CANCELLED
    assert cli.main(["status", launch_id]) == 0
    assert json.loads(capsys.readouterr().out)["state"] == "JOB_STATE_CANCELLED"


@pytest.mark.parametrize(
    "extra,message",
    [
        (["--gpu", "K80"], "unknown GPU 'K80'"),
        (["--gpu", "L4", "--count", "3"], "valid counts: 1, 2, 4, 8"),
        (["--gpu", "H200", "--count", "8", "--region", "europe-west4"], "regions that do: H200: us-central1"),
        (["--gpu", "L4", "--region", "us-east1"], "no quota anywhere for 1 x L4 (SPOT); considered: L4 us-east1: quota 0"),
        (["--scheduling", "STANDARD", "--gpu", "H100"], "offered only with SPOT or FLEX_START"),
    ],
)
def test_bad_input_says_what_to_fix(capsys, google, image, extra, message):
    code, out, err = run(capsys, google, image, "http://127.0.0.1:1", "--dry-run", *extra)
    assert code == 2 and out == ""
    assert message in err


def test_registry_unreachable(capsys, google, image, state_file):
    code, out, err = run(capsys, google, image, f"http://127.0.0.1:{rs.free_port()}")
    assert code == 2 and "unreachable" in err and google.creates == []


def test_vertex_unreachable(capsys, google, image, registry, state_file):
    layout, _ = image
    port = rs.free_port()
    code = cli.main(["--project", "proj", "--registry", registry.url, "--no-quota",
                     "--vertex-endpoint", f"http://127.0.0.1:{port}", "--gpu", "L4",
                     "--image-layout", layout, "--image-digest", layout + ".digest"])
    err = capsys.readouterr().err
    assert code == 2 and "Vertex API unreachable" in err


def test_quota_api_unreachable(capsys, image):
    layout, _ = image
    code = cli.main(["--project", "proj", "--quota-endpoint", f"http://127.0.0.1:{rs.free_port()}",
                     "--registry", "http://127.0.0.1:1", "--dry-run",
                     "--image-layout", layout, "--image-digest", layout + ".digest"])
    assert code == 2 and "quota API" in capsys.readouterr().err


def test_plain_http_registry_only_to_loopback(capsys, google, image):
    code, out, err = run(capsys, google, image, "http://10.1.2.3:5000", "--dry-run")
    assert code == 2 and "plain HTTP is only allowed to loopback" in err


def test_no_credentials_for_a_real_endpoint(tmp_path, image, registry):
    """A non-loopback Vertex endpoint needs ADC; without it the error says how to log in.

    Runs in a subprocess with an empty HOME and NO_GCE_CHECK so google-auth
    looks nowhere (no metadata server probe): nothing leaves the machine.
    """
    layout, _ = image
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "NO_GCE_CHECK": "true",
           "CLOUDSDK_CONFIG": str(tmp_path / "gcloud"),
           # under Bazel the SDKs come from sys.path entries, not site-packages
           "PYTHONPATH": os.pathsep.join([ROOT, *sys.path]),
           "ARR_LAUNCH_STATE": str(tmp_path / "s.json")}
    proc = subprocess.run(
        [sys.executable, "-m", "tools.launch.cli", "--project", "proj", "--registry", registry.url,
         "--vertex-endpoint", "https://vertex.example.invalid", "--no-quota", "--gpu", "L4",
         "--image-layout", layout, "--image-digest", layout + ".digest"],
        env=env, capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 2, proc.stderr
    assert "no Google credentials" in proc.stderr and "application-default login" in proc.stderr
    assert "pushed" not in proc.stderr  # credentials are checked before anything is pushed
