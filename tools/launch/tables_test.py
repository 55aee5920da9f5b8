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
    ],
)
def test_machine_type(gpu, count, scheduling, expected):
    assert T.machine_type(TABLES, gpu, count, scheduling) == expected


@pytest.mark.parametrize(
    "gpu,count,scheduling,message",
    [
        ("V100", 1, "SPOT", "unknown GPU 'V100'; known GPUs: L4, T4, A100"),
        ("L4", 3, "SPOT", "L4: no machine shape has 3 GPU(s); valid counts: 1, 2, 4, 8"),
        ("T4", 8, "SPOT", "valid counts: 1, 2, 4"),
        ("H200", 1, "SPOT", "H200: no machine shape has 1 GPU(s); valid counts: 8"),
        ("A100", 32, "SPOT", "valid counts: 1, 2, 4, 8, 16"),
        ("H100", 1, "STANDARD", "offered only with SPOT or FLEX_START"),
        ("L4", 1, "PREEMPTIBLE", "unknown scheduling 'PREEMPTIBLE'"),
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
    ],
)
def test_region_availability(gpu, region, offered):
    assert (region in T.regions_for(TABLES, gpu)) is offered
    if offered:
        T.check_region(TABLES, gpu, region)
    else:
        with pytest.raises(T.TableError, match="regions that do: "):
            T.check_region(TABLES, gpu, region)


@pytest.mark.parametrize(
    "gpu,scheduling,metric",
    [
        ("L4", "SPOT", "custom_model_training_preemptible_nvidia_l4_gpus"),
        ("L4", "STANDARD", "custom_model_training_nvidia_l4_gpus"),
        ("L4", "FLEX_START", "custom_model_training_nvidia_l4_gpus"),
        ("T4", "SPOT", "custom_model_training_preemptible_nvidia_t4_gpus"),
        ("A100 80 GB", "STANDARD", "custom_model_training_nvidia_a100_80gb_gpus"),
        ("H100", "SPOT", "custom_model_training_preemptible_nvidia_h100_gpus"),
        ("H200", "STANDARD", "custom_model_training_nvidia_h200_gpus"),
    ],
)
def test_quota_metric(gpu, scheduling, metric):
    assert T.quota_metric(TABLES, gpu, scheduling) == "aiplatform.googleapis.com/" + metric


@pytest.mark.parametrize(
    "machine,region,scheduling,known",
    [
        ("g2-standard-4", "us-central1", "SPOT", True),
        ("g2-standard-4", "us-central1", "STANDARD", True),
        ("g2-standard-8", "us-central1", "SPOT", False),  # non-default shape: not priced
        ("g2-standard-4", "southamerica-east1", "SPOT", False),  # no L4 there
    ],
)
def test_price_known_or_none(machine, region, scheduling, known):
    assert (T.price(TABLES, machine, region, scheduling) is not None) is known


def test_spot_cheaper_than_on_demand_everywhere():
    for machine, per_region in TABLES.prices.items():
        for region, row in per_region.items():
            assert row["spot"] < row["on_demand"], (machine, region)


def test_every_default_shape_is_priced_in_every_offering_region():
    """Keeps prices.toml complete when a region or shape is added to the tables."""
    for gpu in TABLES.gpus.values():
        for count in T.valid_counts(gpu):
            machine = T.machine_type(TABLES, gpu.name, count, "SPOT")
            for region in gpu.regions:
                assert T.price(TABLES, machine, region, "SPOT") is not None, (machine, region)


def test_every_accelerator_is_a_vertex_enum():
    from google.cloud.aiplatform_v1 import AcceleratorType

    for gpu in TABLES.gpus.values():
        assert AcceleratorType[gpu.accelerator]
