"""`launch smoke` and `launch --require-smoke` end to end: the CLI with the real aiplatform and
storage clients against the stateful Vertex fake and the loopback GCS fake, a real docker-registry.

The fake's job does not run the image: the test puts the smoke.json that the trainer
(ARR_COC/Training/smoke_report.py) would write where the job would write it,
gs://BUCKET/RUN/smoke.json, and the launcher reads it back through the storage client.
"""

import json

import pytest

from tests.support import fake_gcs, fake_google
from tests.support.fake_google import failed
from tools.launch import cli, state

pytestmark = pytest.mark.usefixtures("state_file")  # a state file of its own per test

SPOT = "custom_model_training_preemptible_nvidia_{}_gpus"
FIRST, SECOND, THIRD = "us-west1", "us-central1", "europe-west4"  # the L4 spot order in prices.toml
BUCKET = "proj-arr-coc"
FIGURES = {"event": "smoke", "samples_per_s": 12.5, "peak_gpu_memory_bytes": 9_876_543_210, "steps": 8,
           "device": "NVIDIA L4"}
SMOKE_ARGS = ["--config", "ARR_COC/Training/configs/smoke_gpu.toml"]


@pytest.fixture
def google():
    fake = fake_google.FakeGoogle()
    fake.add_quota(SPOT.format("l4"), {"": 4})
    fake.add_quota(SPOT.format("t4"), {"": 4})
    with fake_google.running(fake) as url:
        fake.url = url
        yield fake


@pytest.fixture
def gcs():
    fake = fake_gcs.FakeGCS(buckets={BUCKET})
    with fake_gcs.running(fake) as url:
        fake.url = url
        yield fake


def run(capsys, google, gcs, image, registry, *extra, gpus="L4,T4"):
    layout, _ = image
    code = cli.main([*extra, "--project", "proj", "--registry", registry.url + "/team",
                     "--vertex-endpoint", google.url, "--quota-endpoint", google.url,
                     "--storage-endpoint", gcs.url, "--skip-preflight",
                     "--image-layout", layout, "--image-digest", layout + ".digest",
                     "--region", f"{FIRST},{SECOND},{THIRD}", "--gpu-preference", gpus, "--poll-s", "0.02"])
    out, err = capsys.readouterr()
    result = json.loads(out.strip().splitlines()[-1]) if out.strip() else None
    return code, result, err


@pytest.fixture
def report(image, registry):
    """What the trainer writes: its figures and the image it ran (ARR_IMAGE, by digest)."""
    return {**FIGURES, "image": f"{registry.host}/team/arr-trainer@{image[1]}"}


def container(body) -> dict:
    return body["jobSpec"]["workerPoolSpecs"][0]["containerSpec"]


def catalog(registry) -> list:
    import requests

    return requests.get(registry.url + "/v2/_catalog", timeout=10).json()["repositories"]


def test_smoke_runs_the_smoke_config_and_reports_its_figures(capsys, google, gcs, image, registry, state_file,
                                                             report):
    gcs.store(BUCKET, "sm1/smoke.json", json.dumps(report).encode())
    code, result, err = run(capsys, google, gcs, image, registry, "smoke", "--run-name", "sm1")
    assert code == 0, err
    (region, body), = google.creates
    assert region == FIRST and container(body)["args"] == SMOKE_ARGS
    assert "command" not in container(body)  # the image's entry point, start-up check included, stays
    assert container(body)["imageUri"].endswith("@" + image[1])  # the same image, by digest
    assert body["jobSpec"]["scheduling"]["timeout"] == "1800s"
    assert result["state"] == "JOB_STATE_SUCCEEDED" and result["passed"] is True
    assert result["smoke"] == report and result["samples_per_s"] == 12.5
    assert result["peak_gpu_memory_bytes"] == 9_876_543_210 and result["gpu"] == "L4"
    assert "12.5 samples/s" in err and "9.20 GiB" in err
    recorded = state.passing_smoke(state_file, image[1], "L4")
    assert recorded["result"] == report and recorded["job"] == result["job"]
    assert state.passing_smoke(state_file, image[1], "T4") is None


def test_smoke_failing_the_start_up_check_blocks_that_gpu_and_smokes_the_next(capsys, google, gcs, image,
                                                                              registry, state_file, report):
    for region in (FIRST, SECOND, THIRD):
        google.scenarios[(region, "g2-standard-4")] = ["JOB_STATE_PENDING", failed(3, (
            "The replica workerpool0-0 exited with a non-zero status of 82. To find out more ..."))]
    gcs.store(BUCKET, "sm2/smoke.json", json.dumps({**report, "device": "Tesla T4"}).encode())
    code, result, err = run(capsys, google, gcs, image, registry, "smoke", "--run-name", "sm2")
    assert code == 0, err
    assert [container(body)["args"] for _, body in google.creates] == [SMOKE_ARGS, SMOKE_ARGS]
    assert google.creates[1][1]["jobSpec"]["workerPoolSpecs"][0]["machineSpec"]["machineType"].startswith("n1-")
    assert "start-up check: gpu unsupported (exit 82)" in err and "blocked: L4 in every region" in err
    assert result["gpu"] == "T4" and result["passed"] is True
    assert state.passing_smoke(state_file, image[1], "T4") is not None
    assert state.passing_smoke(state_file, image[1], "L4") is None


def test_a_smoke_job_without_smoke_json_fails(capsys, google, gcs, image, registry, state_file):
    code, result, err = run(capsys, google, gcs, image, registry, "smoke", "--run-name", "sm3")
    assert code == 1 and result["passed"] is False and result["smoke"] is None
    assert "wrote no gs://proj-arr-coc/sm3/smoke.json" in err
    assert state.passing_smoke(state_file, image[1], "L4") is None
    assert state.load(state_file)[-1]["smoke"]["passed"] is False


def test_require_smoke_refuses_then_accepts_after_a_passing_smoke(capsys, google, gcs, image, registry, report):
    code, result, err = run(capsys, google, gcs, image, registry, "--require-smoke", "--run-name", "big", gpus="L4")
    assert code == 2 and result is None
    assert "no passing smoke run on L4" in err and "//tools:launch -- smoke --gpu L4" in err
    assert google.creates == [] and catalog(registry) == []  # nothing pushed or submitted
    gcs.store(BUCKET, "sm4/smoke.json", json.dumps(report).encode())
    code, _, err = run(capsys, google, gcs, image, registry, "smoke", "--run-name", "sm4", gpus="L4")
    assert code == 0, err
    code, result, err = run(capsys, google, gcs, image, registry, "--require-smoke", "--run-name", "big", gpus="L4")
    assert code == 0, err
    assert len(google.creates) == 2 and "args" not in container(google.creates[1][1])  # the real training config
    assert result["state"] == "JOB_STATE_RUNNING"


def test_require_smoke_leaves_out_the_gpus_without_one(capsys, google, gcs, image, registry, state_file, report):
    gcs.store(BUCKET, "sm5/smoke.json", json.dumps(report).encode())
    code, _, err = run(capsys, google, gcs, image, registry, "smoke", "--run-name", "sm5", gpus="T4")
    assert code == 0, err
    code, result, err = run(capsys, google, gcs, image, registry, "--require-smoke", "--run-name", "big5")
    assert code == 0, err
    assert "L4 has no passing smoke" in err and result["accelerator_type"] == "NVIDIA_TESLA_T4"


def test_a_smoke_json_of_another_image_is_refused(capsys, google, gcs, image, registry, state_file, report):
    gcs.store(BUCKET, "sm6/smoke.json", json.dumps({**report, "image": "h/team/arr-trainer@sha256:" + "0" * 64}).encode())
    code, result, err = run(capsys, google, gcs, image, registry, "smoke", "--run-name", "sm6")
    assert code == 1 and result["passed"] is False and "an older run of this run name?" in err
    assert state.passing_smoke(state_file, image[1], "L4") is None


def test_the_newest_smoke_of_each_pair_outlives_older_launches(state_file):
    smoke = {"digest": "sha256:" + "a" * 64, "gpu": "L4", "passed": True}
    records = [{"launch_id": "s", "smoke": smoke}] + [{"launch_id": str(i)} for i in range(state.KEEP + 10)]
    state.save(state_file, records)
    kept = state.load(state_file)
    assert len(kept) == state.KEEP + 1 and state.passing_smoke(state_file, smoke["digest"], "L4") == smoke
