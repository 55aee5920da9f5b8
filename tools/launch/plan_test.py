"""The plan as a frozen value: typed candidates, one JSON mapping for --dry-run and the state file."""

import dataclasses
import datetime
import hashlib
import json

import pytest

from tools.launch import candidates as C
from tools.launch import config as CFG
from tools.launch import plan as P
from tools.launch.errors import TableError

NOW = datetime.datetime(2026, 11, 30, 12, 0, tzinfo=datetime.timezone.utc)
QUOTA = {"aiplatform.googleapis.com/custom_model_training_preemptible_nvidia_l4_gpus": {"us-east1": 0, "": 8}}


@pytest.fixture
def layout(tmp_path):
    """A one-manifest OCI layout and its digest file, as Bazel writes them."""
    manifest = b'{"schemaVersion": 2}'
    digest = "sha256:" + hashlib.sha256(manifest).hexdigest()
    (tmp_path / "blobs" / "sha256").mkdir(parents=True)
    (tmp_path / "blobs" / "sha256" / digest[7:]).write_bytes(manifest)
    (tmp_path / "index.json").write_text(json.dumps({"manifests": [{"digest": digest}]}))
    (tmp_path / "digest").write_text(digest + "\n")
    return str(tmp_path), str(tmp_path / "digest")


def make(layout, **overrides):
    cfg = CFG.load(overrides={"project": "proj", "gpu_preference": ["L4", "T4"],
                              "regions": ["us-east1", "us-west1"], "run_name": "r1", **overrides})
    return P.make(cfg, *layout, QUOTA, now=NOW, git=("a" * 40, True), secrets={"HF_TOKEN": "projects/p/secrets/hf"})


def test_json_round_trip_gives_the_same_plan(layout):
    plan = make(layout)
    stored = json.loads(json.dumps(plan.to_json()))  # what the state file keeps
    assert P.Plan.from_json(stored) == plan
    assert all(isinstance(c, C.Candidate) for c in P.Plan.from_json(stored).candidates)


def test_kept_candidates_come_in_failover_order_and_dropped_ones_say_why(layout):
    plan = make(layout)
    # known quota before unknown (T4 is not listed: kept, flagged), then preference, then price
    assert [(c.gpu, c.region) for c in plan.kept] == [("L4", "us-west1"), ("T4", "us-east1"), ("T4", "us-west1")]
    assert plan.region == "us-west1"
    dropped = [c for c in plan.candidates if not c.kept]
    assert {(c.gpu, c.region, c.why) for c in dropped} == {("L4", "us-east1", "quota 0 < 1 GPU(s)")}
    assert [c["kept"] for c in plan.to_json()["candidates"]] == [True, True, True, False]  # as --dry-run shows


def test_the_plan_cannot_change_after_it_is_made(layout):
    plan = make(layout)
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.region = "elsewhere"
    with pytest.raises(TypeError):
        plan.env["LEARNING_RATE"] = "1"
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.candidates[0].kept = False


def test_a_stored_plan_missing_fields_is_refused_by_name(layout):
    stored = make(layout).to_json()
    del stored["bucket_location"], stored["nodes"]
    with pytest.raises(P.PlanError, match="stored plan lacks nodes, bucket_location"):
        P.Plan.from_json(stored)


def test_the_plan_shows_the_image_cuda_facts(layout):
    shown = json.loads(json.dumps(make(layout).to_json()))["image_cuda"]
    assert shown == {"torch": "2.13.0+cu130", "cuda": "13.0", "min_driver": "580.65.06", "min_driver_cuda": 13000,
                     "arch_list": ["sm_75", "sm_80", "sm_86", "sm_90", "sm_100", "sm_120"]}


@pytest.mark.parametrize("pref,message", [
    (["V100"], "the training image cannot run V100: compute capability 7.0"),
    (["P4", "P100"], "the training image cannot run P4: compute capability 6.1"),
])
def test_a_gpu_the_image_cannot_run_is_refused_before_the_image_is_read(pref, message):
    cfg = CFG.load(overrides={"project": "proj", "gpu_preference": pref})
    with pytest.raises(TableError, match=message) as e:
        P.check_request(cfg)
    assert e.value.exit_code == 2


def test_a_refused_gpu_in_the_list_is_a_dropped_candidate_of_the_plan(layout):
    plan = make(layout, gpu_preference=["V100", "L4"])
    assert plan.gpu == "L4"
    v100 = [c for c in plan.candidates if c.gpu == "V100"]
    assert v100 and not any(c.kept for c in v100)
    assert all("compute capability 7.0" in c.why for c in v100)
