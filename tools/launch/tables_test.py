"""Table-driven tests of machine shapes, region availability, quota metrics and prices."""

import pytest

from tools.launch import tables as T

TABLES = T.default_tables()


@pytest.mark.parametrize(
    "gpu,count,scheduling,expected",
    [
        ("L4", 1, "SPOT", "g2-standard-4"),
        ("L4", 2, "SPOT", "g2-standard-24"),
        ("L4", 4, "STANDARD", "g2-standard-48"),
        ("L4", 8, "SPOT", "g2-standard-96"),
        ("nvidia_l4", 1, "SPOT", "g2-standard-4"),
        ("T4", 1, "SPOT", "n1-standard-8"),
        ("T4", 4, "STANDARD", "n1-standard-32"),
        ("A100", 1, "SPOT", "a2-highgpu-1g"),
        ("A100", 16, "SPOT", "a2-megagpu-16g"),
        ("A100 80 GB", 1, "SPOT", "a2-ultragpu-1g"),
        ("NVIDIA_A100_80GB", 8, "STANDARD", "a2-ultragpu-8g"),
        ("H100", 1, "SPOT", "a3-highgpu-1g"),
        ("H100", 1, "FLEX_START", "a3-highgpu-1g"),
        ("H100", 8, "STANDARD", "a3-highgpu-8g"),
        ("H200", 8, "SPOT", "a3-ultragpu-8g"),
        ("B200", 8, "FLEX_START", "a4-highgpu-8g"),
        ("nvidia_b200", 8, "STANDARD", "a4-highgpu-8g"),
        ("V100", 1, "SPOT", "n1-standard-8"),
        ("Tesla V100", 8, "STANDARD", "n1-standard-64"),
        ("P100", 4, "SPOT", "n1-standard-32"),
        ("NVIDIA_TESLA_P4", 2, "SPOT", "n1-standard-16"),
        ("A100", 1, "FLEX_START", "a2-highgpu-1g"),
        ("L4", 8, "FLEX_START", "g2-standard-96"),
    ],
)
def test_machine_type(gpu, count, scheduling, expected):
    assert T.machine_type(TABLES, gpu, count, scheduling) == expected


@pytest.mark.parametrize(
    "gpu,count,scheduling,message",
    [
        ("K80", 1, "SPOT", "unknown GPU 'K80'; known GPUs: L4, T4, A100"),
        ("L4", 3, "SPOT", "L4: no machine shape has 3 GPU(s); valid counts: 1, 2, 4, 8"),
        ("T4", 8, "SPOT", "valid counts: 1, 2, 4"),
        ("H200", 1, "SPOT", "H200: no machine shape has 1 GPU(s); valid counts: 8"),
        ("A100", 32, "SPOT", "valid counts: 1, 2, 4, 8, 16"),
        ("H100", 1, "STANDARD", "offered only with SPOT or FLEX_START"),
        ("L4", 1, "PREEMPTIBLE", "unknown scheduling 'PREEMPTIBLE'"),
        ("V100", 16, "SPOT", "V100: no machine shape has 16 GPU(s); valid counts: 1, 2, 4, 8"),
        ("P4", 8, "SPOT", "valid counts: 1, 2, 4"),
        ("B200", 1, "SPOT", "B200: no machine shape has 1 GPU(s); valid counts: 8"),
        # Dynamic Workload Scheduler runs only L4, A100, H100, H200 and B200
        ("T4", 1, "FLEX_START", "T4 is not offered with FLEX_START scheduling (only L4, A100, "
         "A100-80GB, H100, H100-MEGA, H200, B200): use --scheduling SPOT or STANDARD for T4"),
        ("V100", 1, "FLEX_START", "V100 is not offered with FLEX_START"),
        ("P100", 1, "FLEX_START", "P100 is not offered with FLEX_START"),
        ("P4", 1, "FLEX_START", "P4 is not offered with FLEX_START"),
    ],
)
def test_machine_type_errors(gpu, count, scheduling, message):
    with pytest.raises(T.TableError) as e:
        T.machine_type(TABLES, gpu, count, scheduling)
    assert message in str(e.value)


def test_preferred_machine_type_must_fit():
    assert T.machine_type(TABLES, "L4", 1, "SPOT", preferred="g2-standard-16") == "g2-standard-16"
    with pytest.raises(T.TableError, match="use one of: g2-standard-24"):
        T.machine_type(TABLES, "L4", 2, "SPOT", preferred="g2-standard-4")


@pytest.mark.parametrize(
    "gpu,region,offered",
    [
        ("L4", "us-central1", True),
        ("L4", "europe-west4", True),
        ("L4", "southamerica-east1", False),
        ("T4", "southamerica-east1", True),
        ("A100 80 GB", "us-central1", True),
        ("A100 80 GB", "us-west1", False),
        ("H200", "us-central1", True),
        ("H200", "europe-west4", False),
        ("B200", "us-central1", True),
        ("V100", "europe-west4", True),
        ("V100", "us-east4", False),
        ("P4", "northamerica-northeast1", True),
        ("P100", "europe-west1", True),
    ],
)
def test_region_availability(gpu, region, offered):
    assert (region in T.regions_for(TABLES, gpu)) is offered


@pytest.mark.parametrize(
    "gpu,scheduling,metric",
    [
        ("L4", "SPOT", "custom_model_training_preemptible_nvidia_l4_gpus"),
        ("L4", "STANDARD", "custom_model_training_nvidia_l4_gpus"),
        # flex-start draws on the preemptible quota, like SPOT
        ("L4", "FLEX_START", "custom_model_training_preemptible_nvidia_l4_gpus"),
        ("H100", "FLEX_START", "custom_model_training_preemptible_nvidia_h100_gpus"),
        ("B200", "FLEX_START", "custom_model_training_preemptible_nvidia_b200_gpus"),
        ("B200", "STANDARD", "custom_model_training_nvidia_b200_gpus"),
        ("V100", "SPOT", "custom_model_training_preemptible_nvidia_v100_gpus"),
        ("P100", "STANDARD", "custom_model_training_nvidia_p100_gpus"),
        ("P4", "SPOT", "custom_model_training_preemptible_nvidia_p4_gpus"),
        ("T4", "SPOT", "custom_model_training_preemptible_nvidia_t4_gpus"),
        ("A100 80 GB", "STANDARD", "custom_model_training_nvidia_a100_80gb_gpus"),
        ("H100", "SPOT", "custom_model_training_preemptible_nvidia_h100_gpus"),
        ("H200", "STANDARD", "custom_model_training_nvidia_h200_gpus"),
    ],
)
def test_quota_metric(gpu, scheduling, metric):
    assert T.quota_metric(TABLES, gpu, scheduling) == "aiplatform.googleapis.com/" + metric


@pytest.mark.parametrize(
    "gpu,machine,region,scheduling,known",
    [
        ("L4", "g2-standard-4", "us-central1", "SPOT", True),
        ("L4", "g2-standard-4", "us-central1", "STANDARD", True),
        ("L4", "g2-standard-8", "us-central1", "SPOT", False),  # non-default shape: not priced
        ("L4", "g2-standard-4", "southamerica-east1", "SPOT", False),  # no L4 there
        ("T4", "n1-standard-8", "us-central1", "FLEX_START", False),  # T4 has no flex-start
        ("B200", "a4-highgpu-8g", "us-central1", "SPOT", False),  # no source for its price yet
    ],
)
def test_price_known_or_none(gpu, machine, region, scheduling, known):
    assert (T.price(TABLES, gpu, machine, region, scheduling) is not None) is known


@pytest.mark.parametrize("gpu", ["T4", "V100", "P100", "P4"])
def test_one_n1_machine_is_priced_per_gpu(gpu):
    """n1-standard-8 carries any of four GPUs: the price is the machine's plus the GPU's."""
    prices = {g: T.price(TABLES, g, "n1-standard-8", "us-central1", "STANDARD")
              for g in ("T4", "V100", "P100", "P4")}
    assert len(set(prices.values())) == 4 and prices[gpu] is not None
    assert sorted(prices, key=prices.get) == ["T4", "P4", "P100", "V100"]


def test_spot_cheaper_than_on_demand_everywhere():
    for gpu, machines in TABLES.prices.items():
        for machine, per_region in machines.items():
            for region, row in per_region.items():
                assert row["spot"] < row["on_demand"], (gpu, machine, region)


# GPUs whose Vertex price no readable source gave (prices.toml says so); the refresh prices them.
UNPRICED = {"B200"}


def test_every_default_shape_is_priced_in_every_offering_region():
    """Keeps prices.toml complete when a region or shape is added to the tables."""
    for gpu in TABLES.gpus.values():
        for count in T.valid_counts(gpu):
            machine = T.machine_type(TABLES, gpu.name, count, "SPOT")
            for region in gpu.regions:
                known = T.price(TABLES, gpu.name, machine, region, "SPOT") is not None
                assert known is (gpu.name not in UNPRICED), (gpu.name, machine, region)


def test_flex_start_prices_only_where_flex_start_is_offered():
    offered = TABLES.schedulings["FLEX_START"].gpus
    for gpu, machines in TABLES.prices.items():
        has_flex = any("flex_start" in row for rows in machines.values() for row in rows.values())
        assert has_flex is (gpu in offered), gpu


@pytest.mark.parametrize(
    "scheduling,timeout_s,max_wait_s,message",
    [
        ("SPOT", 3600, 0, None),  # max wait is a FLEX_START setting only
        ("STANDARD", 30 * 86400, 0, None),  # no 7-day cap outside FLEX_START
        ("FLEX_START", 604800, 86400, None),  # exactly 7 days is allowed
        ("FLEX_START", 604801, 86400, "FLEX_START jobs may run at most 604800 s (7 days), got "
         "timeout_s 604801: lower --timeout-s"),
        ("FLEX_START", 3600, 0, "FLEX_START max_wait_s must be between 1 and 604800 s"),
        ("FLEX_START", 3600, 604801, "got 604801: fix --max-wait-s"),
        ("SPOT", 0, 0, "timeout_s must be at least 1 second, got 0"),
        ("LOW_COST", 3600, 0, "unknown scheduling 'LOW_COST'"),
    ],
)
def test_job_limits(scheduling, timeout_s, max_wait_s, message):
    if message is None:
        T.check_job_limits(TABLES, scheduling, timeout_s, max_wait_s)
    else:
        with pytest.raises(T.TableError) as e:
            T.check_job_limits(TABLES, scheduling, timeout_s, max_wait_s)
        assert message in str(e.value)


def test_every_scheduling_is_a_vertex_strategy():
    """Which quota each draws on: test_quota_metric; a bad quota kind: test_bad_scheduling_table_says_what_to_fix."""
    from google.cloud.aiplatform_v1 import Scheduling

    assert tuple(TABLES.schedulings) == T.SCHEDULINGS
    for name in TABLES.schedulings:
        assert Scheduling.Strategy[name].name == name  # KeyError when Vertex has no such strategy


@pytest.mark.parametrize(
    "scheduling_toml,message",
    [
        ('[strategy.SPOT]\nquota = "cheap"\n', "SPOT.quota must be preemptible or on_demand, not 'cheap'"),
        ('[strategy.FLEX_START]\nquota = "preemptible"\ngpus = ["L4", "X9"]\n',
         "FLEX_START.gpus names X9, not in machines.toml"),
    ],
)
def test_bad_scheduling_table_says_what_to_fix(tmp_path, scheduling_toml, message):
    for name in ("machines.toml", "regions.toml", "prices.toml"):
        (tmp_path / name).write_text((T.DATA_DIR / name).read_text())
    (tmp_path / "scheduling.toml").write_text(scheduling_toml)
    with pytest.raises(T.TableError, match=message):
        T.load_tables(tmp_path)


def test_every_accelerator_is_a_vertex_enum():
    from google.cloud.aiplatform_v1 import AcceleratorType

    for gpu in TABLES.gpus.values():
        assert AcceleratorType[gpu.accelerator]


@pytest.mark.parametrize(
    "gpu,capability,tflops,dtype",
    [
        ("L4", "8.9", 121, "bf16"),
        ("T4", "7.5", 65, "fp16"),  # Turing: no bf16 tensor cores
        ("A100", "8.0", 312, "bf16"),
        ("A100-80GB", "8.0", 312, "bf16"),
        ("H100", "9.0", 989, "bf16"),
        ("H100-MEGA", "9.0", 989, "bf16"),
        ("H200", "9.0", 989, "bf16"),
        ("B200", "10.0", 2250, "bf16"),
        ("V100", "7.0", 125, "fp16"),
        ("P100", "6.0", 18.7, "fp16"),
        ("P4", "6.1", 5.5, "fp32"),
    ],
)
def test_compute_capability_and_throughput(gpu, capability, tflops, dtype):
    g = T.resolve_gpu(TABLES, gpu)
    assert (g.compute_capability, g.dense_tflops, g.tflops_dtype) == (capability, tflops, dtype)


def _machines_without(tmp_path, gpu, key):
    """The data files with KEY removed from [gpu.GPU] in machines.toml."""
    for name in ("regions.toml", "prices.toml", "scheduling.toml"):
        (tmp_path / name).write_text((T.DATA_DIR / name).read_text())
    text = (T.DATA_DIR / "machines.toml").read_text()
    head, sep, rest = text.partition(f"[gpu.{gpu}]\n")
    body, nxt, tail = rest.partition("\n[gpu.")
    body = "\n".join(line for line in body.splitlines() if not line.startswith(key + " "))
    (tmp_path / "machines.toml").write_text(head + sep + body + nxt + tail)


@pytest.mark.parametrize("gpu,key", [("V100", "compute_capability"), ("L4", "dense_tflops"), ("T4", "tflops_dtype")])
def test_a_gpu_without_its_capability_or_throughput_is_a_table_error_naming_it(tmp_path, gpu, key):
    _machines_without(tmp_path, gpu, key)
    with pytest.raises(T.TableError, match=rf"\[gpu\.{gpu}\] lacks {key}"):
        T.load_tables(tmp_path)


@pytest.mark.parametrize(
    "gpu,machine,region,scheduling,expected",
    [
        # price / (GPUs x dense TFLOPS x 3600 s) x 10^6: USD per 10^18 FLOP at peak
        ("L4", "g2-standard-4", "us-central1", "SPOT", 0.324 / (1 * 121 * 3600) * 1e6),
        ("T4", "n1-standard-8", "us-central1", "SPOT", 0.294 / (1 * 65 * 3600) * 1e6),
        ("H100", "a3-highgpu-8g", "us-central1", "STANDARD", 101.1 / (8 * 989 * 3600) * 1e6),
        ("B200", "a4-highgpu-8g", "us-central1", "SPOT", None),  # unpriced
    ],
)
def test_cost_per_eflop(gpu, machine, region, scheduling, expected):
    got = T.cost_per_eflop(TABLES, gpu, machine, region, scheduling)
    assert got == (pytest.approx(expected) if expected is not None else None)
