"""Ranking, quota judgement and failover blocklists, table-driven."""

import json

import pytest

from tools.launch import candidates as C
from tools.launch import tables as T

TABLES = T.default_tables()
PREF = ["L4", "T4", "A100"]
SPOT_L4 = "aiplatform.googleapis.com/custom_model_training_preemptible_nvidia_l4_gpus"
SPOT_T4 = "aiplatform.googleapis.com/custom_model_training_preemptible_nvidia_t4_gpus"


def ranked(quotas, regions=("us-central1", "us-east1", "europe-west4"), pref=PREF, count=1):
    cands = C.build_candidates(TABLES, pref, count, "SPOT", list(regions), quotas)
    return C.rank(cands, pref, TABLES)


def names(cands):
    return [(c.gpu, c.region) for c in cands if c.kept]


def test_rank_by_gpu_preference_then_price():
    quotas = {m: {"": 4} for m in (SPOT_L4, SPOT_T4)}
    quotas["aiplatform.googleapis.com/custom_model_training_preemptible_nvidia_a100_gpus"] = {"": 4}
    got = names(ranked(quotas))
    # us-east1 has the cheapest L4 spot price in the table, europe-west4 the dearest.
    assert got[:3] == [("L4", "us-east1"), ("L4", "us-central1"), ("L4", "europe-west4")]
    assert [g for g, _ in got] == ["L4"] * 3 + ["T4"] * 3 + ["A100"] * 3


@pytest.mark.parametrize(
    "quotas,first,dropped",
    [
        # zero quota for L4 spot in us-east1 drops it
        ({SPOT_L4: {"us-east1": 0, "": 8}, SPOT_T4: {"": 8}}, ("L4", "us-central1"), {("L4", "us-east1")}),
        # no L4 quota anywhere: T4 first
        ({SPOT_L4: {"": 0}, SPOT_T4: {"": 8}}, ("T4", "us-east1"),
         {("L4", "us-east1"), ("L4", "us-central1"), ("L4", "europe-west4")}),
    ],
)
def test_quota_drops_candidates(quotas, first, dropped):
    cands = ranked(quotas)
    assert names(cands)[0] == first
    assert {(c.gpu, c.region) for c in cands if not c.kept} >= dropped
    for c in cands:
        if not c.kept:
            assert c.why.startswith("quota 0 < 1")


def test_unknown_quota_is_kept_flagged_and_ranked_after_known():
    # Only T4 is listed: L4 (preferred) is unknown, so it is kept but ranked after T4.
    cands = ranked({SPOT_T4: {"": 2}})
    kept = [c for c in cands if c.kept]
    assert [c.gpu for c in kept[:3]] == ["T4"] * 3
    assert [c.gpu for c in kept[3:6]] == ["L4"] * 3
    assert all("quota unknown" in c.why for c in kept[3:])
    assert all(c.quota is None for c in kept[3:])


def test_quota_below_count():
    cands = C.build_candidates(TABLES, ["L4"], 4, "SPOT", ["us-central1"], {SPOT_L4: {"": 2}})
    assert not cands[0].kept and cands[0].why == "quota 2 < 4 GPU(s)"


def test_quota_not_checked_when_no_quota_api():
    cands = ranked(None)
    assert all(c.kept and c.why.startswith("quota not checked") for c in cands)


def test_bad_count_for_every_gpu_says_what_is_valid():
    with pytest.raises(T.TableError, match=r"L4: no machine shape has 3 GPU\(s\); valid counts: 1, 2, 4, 8"):
        C.build_candidates(TABLES, ["L4", "T4"], 3, "SPOT")


def test_bad_count_for_one_gpu_skips_only_it():
    cands = C.build_candidates(TABLES, ["H200", "L4"], 1, "SPOT", ["us-central1"])
    assert [c.gpu for c in cands] == ["L4"]


@pytest.mark.parametrize("gpu", ["V100", "P100", "P4", "tesla v100", "NVIDIA_TESLA_P4"])
def test_a_gpu_the_image_cannot_run_is_refused_with_its_capability_and_the_arch_list(gpu):
    with pytest.raises(T.TableError) as e:
        C.build_candidates(TABLES, [gpu], 1, "SPOT")
    name = T.resolve_gpu(TABLES, gpu).name
    assert f"the training image cannot run {name}: compute capability " \
           f"{TABLES.gpus[name].compute_capability}" in str(e.value)
    assert "sm_75 sm_80 sm_86 sm_90 sm_100 sm_120 (no PTX)" in str(e.value)
    assert "GPUs it runs: L4, T4, A100, A100-80GB, H100, H100-MEGA, H200, B200" in str(e.value)


@pytest.mark.parametrize("pref", [["V100", "L4"], ["L4", "P100", "T4"], ["P4", "A100"]])
def test_in_a_preference_list_such_a_gpu_is_dropped_and_the_others_planned(pref):
    cands = ranked(None, pref=pref)
    refused = {T.resolve_gpu(TABLES, g).name for g in pref} & {"V100", "P100", "P4"}
    assert {c.gpu for c in cands if c.kept} == {T.resolve_gpu(TABLES, g).name for g in pref} - refused
    dropped = [c for c in cands if c.gpu in refused]
    assert dropped and all(not c.kept and c.why.startswith("the image cannot run it: compute capability 6.")
                           or c.why.startswith("the image cannot run it: compute capability 7.0")
                           for c in dropped)
    assert cands[-len(dropped):] == dropped  # ranked after every kept candidate


def test_a_refused_gpu_and_a_bad_count_for_the_rest_say_both():
    with pytest.raises(T.TableError, match=r"H200: no machine shape has 1 GPU\(s\).*cannot run V100"):
        C.build_candidates(TABLES, ["V100", "H200"], 1, "SPOT")


def test_region_without_the_gpu():
    with pytest.raises(T.TableError, match="regions that do: H200: us-central1"):
        C.build_candidates(TABLES, ["H200"], 8, "SPOT", ["europe-west4"])


@pytest.mark.parametrize(
    "code,message,scope",
    [
        ("RESOURCE_EXHAUSTED", "The following quota metrics exceed quota limits: "
         "aiplatform.googleapis.com/custom_model_training_preemptible_nvidia_l4_gpus", C.Scope.QUOTA_REGION),
        ("RESOURCE_EXHAUSTED", "Quota exceeded for quota metric GPUS_ALL_REGIONS", C.Scope.QUOTA_GLOBAL),
        ("RESOURCE_EXHAUSTED", "global quota exceeded", C.Scope.QUOTA_GLOBAL),
        ("RESOURCE_EXHAUSTED", "The zone does not have enough resources available", C.Scope.CAPACITY),
        ("UNAVAILABLE", "resources are insufficient in region", C.Scope.CAPACITY),
        ("UNAVAILABLE", "backend went away", C.Scope.UNCLEAR),
        ("INTERNAL", "internal error", C.Scope.UNCLEAR),
        ("TRANSPORT", "connection reset", C.Scope.UNCLEAR),
        ("INVALID_ARGUMENT", "machine type g2-standard-4 does not support NVIDIA_TESLA_T4", C.Scope.FATAL),
        ("PERMISSION_DENIED", "quota project not set", C.Scope.FATAL),
    ],
)
def test_classify_error(code, message, scope):
    assert C.classify_error(code, message) is scope


def _cand(gpu, region, machine="m", scheduling="SPOT", metric=None):
    return C.Candidate(gpu, "X", 1, machine, region, scheduling, metric or gpu, 1.0)


@pytest.mark.parametrize(
    "failed,scope,blocked,free",
    [
        # quota error: that region for that metric, not other regions or GPUs
        (_cand("L4", "r1"), C.Scope.QUOTA_REGION,
         [_cand("L4", "r1", machine="other")], [_cand("L4", "r2"), _cand("T4", "r1")]),
        # global quota: everything
        (_cand("L4", "r1"), C.Scope.QUOTA_GLOBAL, [_cand("L4", "r2"), _cand("T4", "r9")], []),
        # capacity: only that candidate
        (_cand("L4", "r1"), C.Scope.CAPACITY,
         [_cand("L4", "r1")], [_cand("L4", "r2"), _cand("L4", "r1", machine="bigger")]),
        # fatal and unclear errors block nothing (stop, or look up and retry)
        (_cand("L4", "r1"), C.Scope.FATAL, [], [_cand("L4", "r1")]),
        (_cand("L4", "r1"), C.Scope.UNCLEAR, [], [_cand("L4", "r1")]),
    ],
)
def test_blocklist_by_scope(failed, scope, blocked, free):
    b = C.Blocklist()
    b.record(failed, scope)
    assert all(b.blocks(c) for c in blocked)
    assert not any(b.blocks(c) for c in free)


@pytest.mark.parametrize(
    "code,message,scope",
    [
        # Vertex checks machine/accelerator pairs: a refusal naming this pair moves on
        ("INVALID_ARGUMENT", 'Accelerator "NVIDIA_L4" is not supported for machine type "n1-standard-4"',
         C.Scope.CAPACITY),
        ("INVALID_ARGUMENT", "machine type g2-standard-4 is not available here", C.Scope.CAPACITY),
        # ... but one about the job itself stops
        ("INVALID_ARGUMENT", "Invalid image URI", C.Scope.FATAL),
    ],
)
def test_invalid_argument_naming_the_pair_blocks_only_that_candidate(code, message, scope):
    cand = C.Candidate("L4", "NVIDIA_L4", 1, "g2-standard-4", "us-west1", "SPOT", "m", 1.0)
    assert C.classify_error(code, message, cand) is scope


@pytest.mark.parametrize(
    "code,message,scope",
    [
        ("RESOURCE_EXHAUSTED", "Resources are insufficient in region: us-west1. Please try a different region.",
         C.Scope.CAPACITY),
        ("UNAVAILABLE", "The zone 'us-west1-b' does not have enough resources available to fulfill the request",
         C.Scope.CAPACITY),
        ("UNAVAILABLE", "The job was preempted", C.Scope.CAPACITY),
        ("ABORTED", "Spot VM preemption of workerpool0-0", C.Scope.CAPACITY),
        ("RESOURCE_EXHAUSTED", "The following quota metrics exceed quota limits: "
         "aiplatform.googleapis.com/custom_model_training_preemptible_nvidia_l4_gpus", C.Scope.QUOTA_REGION),
        ("RESOURCE_EXHAUSTED", "Quota exceeded for quota metric GPUS_ALL_REGIONS", C.Scope.QUOTA_GLOBAL),
        # the trainer's own failures and bad arguments never relaunch
        ("INVALID_ARGUMENT", "The replica workerpool0-0 exited with a non-zero status of 1.", C.Scope.FATAL),
        ("FAILED_PRECONDITION", "The replica workerpool0-0 exited with a non-zero status of 2.", C.Scope.FATAL),
        ("INTERNAL", "Internal error occurred", C.Scope.FATAL),
        # a trainer that merely logs the word quota is still the trainer's failure
        ("INVALID_ARGUMENT", "exited with a non-zero status of 1: quota file missing", C.Scope.FATAL),
    ],
)
def test_classify_job_failure(code, message, scope):
    assert C.classify_job_failure(code, message) is scope


def test_blocklist_round_trips_through_json():
    b = C.Blocklist()
    b.record(_cand("L4", "r1"), C.Scope.QUOTA_REGION)
    b.record(_cand("T4", "r2", machine="n1"), C.Scope.CAPACITY)
    again = C.Blocklist.from_json(json.loads(json.dumps(b.as_json())))
    assert again == b and again.blocks(_cand("L4", "r1")) and not again.blocks(_cand("L4", "r2"))


def _startup(status: int) -> str:
    return f"The replica workerpool0-0 exited with a non-zero status of {status}. To find out more ..."


@pytest.mark.parametrize(
    "status,scope,name",
    [
        (80, C.Scope.CAPACITY, "no_driver"),
        (81, C.Scope.CAPACITY, "driver_too_old"),
        (82, C.Scope.GPU, "gpu_unsupported"),
        (83, C.Scope.CAPACITY, "too_few_gpus"),
        (84, C.Scope.FATAL, "shm_too_small"),
        (85, C.Scope.CAPACITY, "preempted"),
        (1, C.Scope.FATAL, None),  # the trainer's own failure: not a start-up check code
        (820, C.Scope.FATAL, None),
    ],
)
def test_start_up_check_failures_block_what_gpu_support_says(status, scope, name):
    assert C.classify_job_failure("INVALID_ARGUMENT", _startup(status)) is scope
    found = C.startup_failure(_startup(status))
    assert (found.name if found else None) == name


@pytest.mark.parametrize(
    "status,says",
    [
        (81, "start-up check: driver too old (exit 81): the host's NVIDIA driver is older than 580.65.06 (CUDA 13.0)"),
        (82, "start-up check: gpu unsupported (exit 82): the image's torch has kernels for sm_75, sm_80"),
        (84, "start-up check: shm too small (exit 84): /dev/shm is too small"),
    ],
)
def test_the_message_names_the_class_and_the_fix(status, says):
    assert C.startup_failure(_startup(status)).describe().startswith(says)


def test_every_exit_code_of_the_file_is_classified():
    from tools.launch import image_support as IS

    failures = IS.startup_failures(IS.default_support())
    assert sorted(failures) == [80, 81, 82, 83, 84, 85]
    assert {e.blocks for e in failures.values()} == {"gpu", "candidate", "nothing"}


TOML_HEAD = 'torch = "x"\ncuda = "13.0"\nmin_driver = "580"\nmin_driver_cuda = 13000\narch_list = ["sm_90"]\n'


@pytest.mark.parametrize(
    "entry,error",
    [
        ('code = 90\nblocks = "region"', "blocks = 'region'"),
        ('code = 80\nblocks = "gpu"', "used twice"),
    ],
)
def test_bad_exit_code_tables_are_refused(tmp_path, entry, error):
    from tools.launch import image_support as IS

    path = tmp_path / "gpu_support.toml"
    path.write_text(TOML_HEAD + '[exit_codes.no_driver]\ncode = 80\nblocks = "candidate"\n'
                    f"[exit_codes.too_few_gpus]\n{entry}\n")
    with pytest.raises(T.TableError, match=error):
        IS.load(path)


def test_an_exit_code_without_a_fix_is_refused(tmp_path):
    from tools.launch import image_support as IS

    path = tmp_path / "gpu_support.toml"
    path.write_text(TOML_HEAD + '[exit_codes.new_failure]\ncode = 86\nblocks = "nothing"\n')
    with pytest.raises(T.TableError, match="new_failure has no fix"):
        IS.startup_failures(IS.load(path))


N1 = "n1-standard-8"


@pytest.mark.parametrize(
    "failed,scope,blocked,free",
    [
        # a GPU the image cannot run: that GPU everywhere, other GPUs on the same machine free
        (_cand("T4", "r1", machine=N1), C.Scope.GPU,
         [_cand("T4", "r2", machine=N1), _cand("T4", "r9", machine="other", scheduling="STANDARD")],
         [_cand("V100", "r1", machine=N1), _cand("L4", "r1")]),
        # one host without a driver: that (GPU, region, machine) only, not another GPU on the N1 machine
        (_cand("T4", "r1", machine=N1), C.Scope.CAPACITY,
         [_cand("T4", "r1", machine=N1)],
         [_cand("V100", "r1", machine=N1), _cand("P4", "r1", machine=N1), _cand("T4", "r2", machine=N1)]),
    ],
)
def test_gpu_and_candidate_scopes(failed, scope, blocked, free):
    b = C.Blocklist()
    b.record(failed, scope)
    assert all(b.blocks(c) for c in blocked)
    assert not any(b.blocks(c) for c in free)
    again = C.Blocklist.from_json(json.loads(json.dumps(b.as_json())))
    assert again == b


def test_a_blocklist_of_an_older_launcher_still_blocks_its_machines():
    old = C.Blocklist.from_json({"candidates": [["r1", N1, "SPOT"]]})
    assert old.blocks(_cand("T4", "r1", machine=N1)) and not old.blocks(_cand("T4", "r2", machine=N1))
