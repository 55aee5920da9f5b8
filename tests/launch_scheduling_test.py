"""Scheduling rules and the output bucket's region, through the real clients and the fakes.

FLEX_START goes through the CLI (`cli.main([... '--dry-run'])`) with the real
Cloud Quotas client reading the fake's quota. The bucket's location is read
by the real `storage.Client` from the fake's GET storage/v1/b/BUCKET and
given to the planner, which keeps a single-region bucket's job in its region.
"""

import json

import pytest

from tests.support import fake_google
from tools.launch import cli
from tools.launch import config as CFG
from tools.launch import endpoints as E
from tools.launch import plan as P
from tools.launch import preflight as PF

PREEMPTIBLE = "custom_model_training_preemptible_nvidia_{}_gpus"
ON_DEMAND = "custom_model_training_nvidia_{}_gpus"
REGIONS = ["us-central1", "us-east1", "us-west1", "europe-west4"]



@pytest.fixture
def google(monkeypatch, tmp_path):
    monkeypatch.setenv("ARR_LAUNCH_STATE", str(tmp_path / "launches.json"))
    fake = fake_google.FakeGoogle()
    # Preemptible L4 quota is 0 in us-east1; on-demand L4 quota is plenty everywhere,
    # so a plan that dropped us-east1 read the preemptible metric.
    fake.add_quota(PREEMPTIBLE.format("l4"), {"us-east1": 0, "": 4})
    fake.add_quota(ON_DEMAND.format("l4"), {"": 8})
    fake.add_quota(PREEMPTIBLE.format("t4"), {"": 8})
    fake.buckets.add("proj-arr-coc")
    with fake_google.running(fake) as url:
        fake.url = url
        yield fake


def dry_run(capsys, google, image, *extra):
    layout, _ = image
    code = cli.main([
        "--project", "proj", "--registry", "http://127.0.0.1:1/team",
        "--vertex-endpoint", google.url, "--quota-endpoint", google.url,
        "--image-layout", layout, "--image-digest", layout + ".digest",
        "--region", ",".join(REGIONS), "--dry-run", *extra,
    ])
    out, err = capsys.readouterr()
    return code, out, err


def test_flex_start_plans_only_offered_gpus_against_the_preemptible_metric(capsys, google, image):
    code, out, err = dry_run(capsys, google, image, "--gpu-preference", "L4,T4",
                             "--scheduling", "FLEX_START", "--max-wait-s", "3600")
    assert code == 0, err
    plan = json.loads(out)
    assert plan["scheduling"] == "FLEX_START" and plan["gpu"] == "L4"
    assert {c["gpu"] for c in plan["candidates"]} == {"L4"}  # T4: no flex-start
    assert {c["quota_metric"] for c in plan["candidates"]} == {
        "aiplatform.googleapis.com/" + PREEMPTIBLE.format("l4")}
    east = [c for c in plan["candidates"] if c["region"] == "us-east1"][0]
    assert not east["kept"] and east["why"] == "quota 0 < 1 GPU(s)"
    assert plan["region"] != "us-east1" and plan["max_wait_s"] == 3600
    assert google.creates == []


@pytest.mark.parametrize(
    "extra,message",
    [
        (["--gpu", "T4"], "T4 is not offered with FLEX_START scheduling (only L4, A100, A100-80GB, "
                          "H100, H100-MEGA, H200, B200): use --scheduling SPOT or STANDARD for T4"),
        # no scheduling would help a GPU the image cannot run: that refusal comes first
        (["--gpu", "V100"], "the training image cannot run V100: compute capability 7.0"),
        (["--gpu", "L4", "--timeout-s", "604801"],
         "FLEX_START jobs may run at most 604800 s (7 days), got timeout_s 604801"),
        (["--gpu", "L4", "--max-wait-s", "0"], "FLEX_START max_wait_s must be between 1 and 604800 s"),
    ],
)
def test_flex_start_refusals_say_what_to_change(capsys, google, image, extra, message):
    code, out, err = dry_run(capsys, google, image, "--scheduling", "FLEX_START", *extra)
    assert code == 2 and out == ""
    assert message in err
    assert google.creates == []


@pytest.mark.parametrize("gpu,capability", [("V100", "7.0"), ("P100", "6.0"), ("Tesla P4", "6.1")])
def test_a_gpu_the_image_cannot_run_is_refused_before_the_image_is_built(capsys, google, gpu, capability):
    """No --image-layout: were the refusal not first, the launcher would build //Stack:arr_trainer."""
    code = cli.main(["--project", "proj", "--registry", "http://127.0.0.1:1/team", "--vertex-endpoint", google.url,
                     "--quota-endpoint", google.url, "--gpu", gpu, "--dry-run"])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert f"cannot run {gpu.split()[-1]}: compute capability {capability}" in err
    assert "sm_75 sm_80 sm_86 sm_90 sm_100 sm_120 (no PTX)" in err and "GPUs it runs: L4, T4, A100" in err
    assert "building" not in err and google.creates == []


def test_dry_run_shows_the_image_cuda_and_a_refused_gpu_as_dropped(capsys, google, image):
    code, out, err = dry_run(capsys, google, image, "--gpu-preference", "V100,L4")
    assert code == 0, err
    plan = json.loads(out)
    assert plan["gpu"] == "L4"
    assert plan["image_cuda"]["arch_list"] == ["sm_75", "sm_80", "sm_86", "sm_90", "sm_100", "sm_120"]
    assert plan["image_cuda"]["cuda"] == "13.0" and plan["image_cuda"]["min_driver"].startswith("580.")
    v100 = [c for c in plan["candidates"] if c["gpu"] == "V100"]
    assert v100 and all(not c["kept"] and "compute capability 7.0" in c["why"] for c in v100)


def _endpoints(google, storage=True):
    return E.Endpoints(registry="http://127.0.0.1:1/team", vertex=google.url,
                       storage=google.url if storage else None)


def _plan(image, location):
    layout, _ = image
    cfg = CFG.load(overrides={"project": "proj", "gpu_preference": ["L4", "T4"], "regions": REGIONS})
    return P.make(cfg, layout, layout + ".digest", None, git=("0" * 40, False),
                  bucket_location=location).to_json()


@pytest.mark.parametrize(
    "metadata,kept_regions",
    [
        (("US-WEST1", "region"), {"us-west1"}),
        (("EUROPE-WEST4", "region"), {"europe-west4"}),
        (("US", "multi-region"), set(REGIONS)),
        (("NAM4", "dual-region"), set(REGIONS)),
    ],
)
def test_bucket_location_from_storage_restricts_the_plan(google, image, metadata, kept_regions):
    google.bucket_locations["proj-arr-coc"] = metadata
    location = PF.bucket_location("proj", P.bucket_name({"bucket": "", "project": "proj"}), _endpoints(google))
    assert location == metadata and ("GET", "/storage/v1/b/proj-arr-coc") in google.requests
    plan = _plan(image, location)
    assert {c["region"] for c in plan["candidates"] if c["kept"]} == kept_regions
    assert plan["region"] in kept_regions
    assert plan["bucket_location"]["location"] == metadata[0]
    for c in plan["candidates"]:
        if not c["kept"]:
            assert c["why"] == f"output bucket is single-region {metadata[0].lower()}: the job runs only there"


@pytest.mark.parametrize(
    "storage,bucket_exists",
    [
        (False, True),  # private setup without --storage-endpoint: not read at all
        (True, False),  # not created yet: preflight will say how; no region rule yet
    ],
)
def test_unknown_bucket_location_allows_every_region(google, image, storage, bucket_exists):
    if not bucket_exists:
        google.buckets.clear()
    location = PF.bucket_location("proj", "proj-arr-coc", _endpoints(google, storage))
    assert location == (None, None)
    assert (("GET", "/storage/v1/b/proj-arr-coc") in google.requests) is storage
    plan = _plan(image, location)
    assert {c["region"] for c in plan["candidates"] if c["kept"]} == set(REGIONS)
    assert plan["bucket_location"]["why"] == "bucket location unknown: any region may write to it"


def test_single_region_bucket_where_no_gpu_is_offered_says_what_to_change(image):
    with pytest.raises(P.PlanError) as e:
        _plan(image, ("ASIA-EAST1", "region"))
    message = str(e.value)
    assert message.startswith("no candidate left for 1 x L4/T4 (SPOT)")
    assert "gs://proj-arr-coc is single-region asia-east1: use a --bucket in a region offering" in message


@pytest.mark.parametrize(
    "metadata,kept",
    [
        (("US-WEST1", "region"), {"us-west1"}),  # single-region: failover stays there
        (("US", "multi-region"), {"us-central1", "us-west1", "europe-west4"}),  # us-east1: quota 0
    ],
)
def test_cli_plans_within_a_single_region_bucket(capsys, google, image, metadata, kept):
    google.bucket_locations["proj-arr-coc"] = metadata
    code, out, err = dry_run(capsys, google, image, "--gpu", "L4", "--storage-endpoint", google.url)
    assert code == 0, err
    plan = json.loads(out)
    assert {c["region"] for c in plan["candidates"] if c["kept"]} == kept
    assert ("GET", "/storage/v1/b/proj-arr-coc") in google.requests
