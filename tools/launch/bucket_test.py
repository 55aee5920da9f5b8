"""Table-driven tests of the output bucket's region rule and its effect on candidates."""

import pytest

from tools.launch import bucket as B
from tools.launch import candidates as C
from tools.launch import tables as T

TABLES = T.default_tables()
REGIONS = ["us-central1", "us-east1", "europe-west4"]


@pytest.mark.parametrize(
    "location,location_type,regions,why",
    [
        ("US-CENTRAL1", "region", {"us-central1"}, "output bucket is single-region us-central1"),
        ("EUROPE-WEST4", "region", {"europe-west4"}, "single-region europe-west4"),
        ("US", "multi-region", None, "output bucket is multi-region US: any region"),
        ("EU", "multi-region", None, "multi-region EU"),
        ("NAM4", "dual-region", None, "output bucket is dual-region NAM4: any region"),
        ("US", "dual-region", None, "dual-region US"),  # a configurable dual-region
        (None, None, None, "bucket location unknown: any region"),
        ("US-CENTRAL1", None, None, "bucket location unknown"),  # no type: not assumed regional
        ("MARS-NORTH1", "planetary", None, "bucket location type 'planetary' not known here"),
    ],
)
def test_allowed_regions(location, location_type, regions, why):
    rule = B.allowed_regions(location, location_type)
    assert rule.regions == (frozenset(regions) if regions is not None else None)
    assert why in rule.why


@pytest.mark.parametrize(
    "location,location_type,kept_regions",
    [
        ("US-CENTRAL1", "region", {"us-central1"}),
        ("EUROPE-WEST4", "region", {"europe-west4"}),
        ("ASIA-EAST1", "region", set()),  # the GPUs are not wanted there: nothing left
        ("US", "multi-region", set(REGIONS)),
        (None, None, set(REGIONS)),
    ],
)
def test_restrict_drops_candidates_outside_a_single_region_bucket(location, location_type, kept_regions):
    cands = C.build_candidates(TABLES, ["L4", "T4"], 1, "SPOT", REGIONS, None)
    rule = B.allowed_regions(location, location_type)
    cands = B.restrict(cands, rule)
    assert {c.region for c in cands if c.kept} == kept_regions
    for c in cands:
        if not c.kept:
            assert c.why == rule.why


def test_restrict_keeps_the_reason_a_candidate_was_already_dropped():
    quota = {"aiplatform.googleapis.com/custom_model_training_preemptible_nvidia_l4_gpus": {"": 0}}
    cands = C.build_candidates(TABLES, ["L4"], 1, "SPOT", REGIONS, quota)
    cands = B.restrict(cands, B.allowed_regions("US-CENTRAL1", "region"))
    assert {c.why for c in cands} == {"quota 0 < 1 GPU(s)"}


def test_rule_as_json_is_what_the_plan_shows():
    assert B.allowed_regions("US-EAST1", "region").as_json() == {
        "location": "US-EAST1", "location_type": "region", "regions": ["us-east1"],
        "why": "output bucket is single-region us-east1: the job runs only there"}
    assert B.allowed_regions(None, None).as_json()["regions"] is None
