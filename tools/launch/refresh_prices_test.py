"""Table-driven tests of the price refresh's pure parts, over the recorded catalog response."""

import json
import pathlib
import tomllib

import pytest

from tools.launch import refresh_prices as R
from tools.launch import tables as T

RECORDED = pathlib.Path(__file__).resolve().parent / "testdata" / "compute_skus.json"
SKUS = json.loads(RECORDED.read_text())["skus"]
RULES = R.load_rules()
TABLES = T.default_tables()


def _sku(desc, usage="OnDemand", price=(0, 500_000_000), unit="h", regions=("us-central1",)):
    return {"description": desc, "category": {"usageType": usage}, "serviceRegions": list(regions),
            "pricingInfo": [{"pricingExpression": {"usageUnit": unit, "tieredRates": [
                {"startUsageAmount": 0, "unitPrice": {"currencyCode": "USD", "units": str(price[0]),
                                                      "nanos": price[1]}}]}}]}


@pytest.mark.parametrize(
    "desc,usage,expected",
    [
        ("G2 Instance Core running in Americas", "OnDemand", ("core", "g2-", "on_demand")),
        ("Spot Preemptible G2 Instance Ram running in Americas", "Preemptible", ("ram", "g2-", "spot")),
        ("Nvidia L4 GPU running in Americas", "OnDemand", ("gpu", "L4", "on_demand")),
        ("Nvidia L4 GPU attached to Spot Preemptible VMs running in Americas", "Preemptible",
         ("gpu", "L4", "spot")),
        ("DWS Defined Duration Nvidia L4 GPU running in Americas", "OnDemand", ("gpu", "L4", "flex_start")),
        ("Nvidia Tesla A100 GPU running in Americas", "OnDemand", ("gpu", "A100", "on_demand")),
        ("Nvidia A100 80GB GPU running in Americas", "OnDemand", ("gpu", "A100-80GB", "on_demand")),
        ("Nvidia H100 80GB GPU running in Americas", "OnDemand", ("gpu", "H100", "on_demand")),
        ("Nvidia H100 80GB Mega GPU running in Americas", "OnDemand", ("gpu", "H100-MEGA", "on_demand")),
        ("A3 Ultra Instance Core running in Americas", "OnDemand", ("core", "a3-ultragpu", "on_demand")),
        ("A3 Instance Core running in Americas", "OnDemand", ("core", "a3-highgpu", "on_demand")),
        ("A4 Instance Core running in Americas", "OnDemand", ("core", "a4-highgpu", "on_demand")),
        ("Spot Preemptible A4 Instance Ram running in Americas", "Preemptible", ("ram", "a4-highgpu", "spot")),
        ("Nvidia B200 GPU running in Americas", "OnDemand", ("gpu", "B200", "on_demand")),
        ("A4 Nvidia B200 (1 gpu slice) running in Americas", "OnDemand", ("gpu", "B200", "on_demand")),
        ("Nvidia GB200 GPU running in Americas", "OnDemand", None),  # A4X, not in the tables
        ("Nvidia Tesla V100 GPU running in Americas", "OnDemand", ("gpu", "V100", "on_demand")),
        ("Nvidia Tesla P100 GPU attached to Spot Preemptible VMs running in Americas", "Preemptible",
         ("gpu", "P100", "spot")),
        ("Nvidia Tesla P4 GPU running in Americas", "OnDemand", ("gpu", "P4", "on_demand")),
        ("Nvidia Tesla P4 Virtual Workstation GPU running in Americas", "OnDemand", None),
        # not a training machine's price
        ("Commitment v1: Nvidia L4 GPU in Americas for 1 Year", "Commit1Yr", None),
        ("Nvidia L4 GPU Sole Tenancy running in Americas", "OnDemand", None),
        ("Custom Instance Core running in Americas", "OnDemand", None),
        ("Storage PD Capacity in Iowa", "OnDemand", None),
    ],
)
def test_classify(desc, usage, expected):
    hit = R.classify(_sku(desc, usage), RULES)
    got = None if hit is None else (hit[0].resource, hit[0].key, hit[1])
    assert got == expected


def test_no_recorded_description_matches_two_parts():
    """First match wins only because the rules never overlap; keep it that way."""
    for sku in SKUS:
        hits = [p for p in RULES.parts if p.match.search(sku["description"])]
        assert len(hits) <= 1, (sku["description"], [p.match.pattern for p in hits])


def test_money_and_unit_price():
    assert R.money({"units": "2", "nanos": 933908000}) == pytest.approx(2.933908)
    assert R.unit_price(_sku("x", price=(0, 560_000_000)), "USD") == (pytest.approx(0.56), "h")
    assert R.unit_price(_sku("x"), "EUR") is None  # another currency is not mixed in
    assert R.unit_price({"pricingInfo": []}, "USD") is None


def test_wrong_unit_is_skipped_with_a_warning():
    warnings = []
    rates = R.part_rates([_sku("G2 Instance Ram running in Americas", unit="GiBy.mo")], RULES,
                         warn=warnings.append)
    assert rates == {} and "GiBy.mo" in warnings[0]


RATES = R.part_rates(SKUS, RULES)
PRICES = R.machine_prices(TABLES, RATES)


def _gpu_of(machine):
    """The one GPU the recording prices MACHINE for (it has N1 SKUs only for T4)."""
    gpus = [g for g, machines in PRICES.items() if machine in machines]
    assert len(gpus) <= 1, (machine, gpus)
    return gpus[0] if gpus else None


@pytest.mark.parametrize(
    "machine,region,column,expected",
    [
        # L4: G2 cores + memory + the GPU, on-demand vs spot vs flex-start (DWS SKUs)
        ("g2-standard-4", "us-central1", "on_demand", 4 * 0.024988 + 16 * 0.002927 + 0.56),
        ("g2-standard-4", "us-central1", "spot", 4 * 0.009995 + 16 * 0.001171 + 0.224),
        ("g2-standard-4", "us-east1", "flex_start", 4 * 0.014993 + 16 * 0.001756 + 0.336),
        ("g2-standard-48", "europe-west4", "spot", 48 * 0.010995 + 192 * 0.001288 + 4 * 0.2464),
        # T4 on N1, Singapore's own SKUs
        ("n1-standard-8", "asia-southeast1", "on_demand", 8 * 0.038882 + 30 * 0.005212 + 0.4305),
        ("n1-standard-32", "us-central1", "spot", 32 * 0.00664 + 120 * 0.000892 + 4 * 0.14),
        # A100 40 GB and 80 GB share A2 cores, not GPUs
        ("a2-highgpu-1g", "us-central1", "spot", 12 * 0.012644 + 85 * 0.001695 + 1.173563),
        ("a2-ultragpu-8g", "us-central1", "on_demand", 96 * 0.031611 + 1360 * 0.004237 + 8 * 3.92808),
        # H100 on A3 High, H200 on A3 Ultra (longest machine prefix wins)
        ("a3-highgpu-8g", "us-central1", "on_demand", 208 * 0.029456 + 1872 * 0.002534 + 8 * 9.79608),
        ("a3-ultragpu-8g", "us-central1", "spot", 224 * 0.012139 + 2952 * 0.001055 + 8 * 3.72),
    ],
)
def test_machine_prices_from_recording(machine, region, column, expected):
    assert PRICES[_gpu_of(machine)][machine][region][column] == pytest.approx(expected, abs=1e-4)


# Parts for the families the recording has no SKUs for, built here (not recorded):
# each new GPU on its machine is priced as cores + memory + GPUs like the others.
NEW_PARTS = [
    _sku("N1 Predefined Instance Core running in Americas", price=(0, 31_611_000)),
    _sku("N1 Predefined Instance Ram running in Americas", price=(0, 4_237_000), unit="GiBy.h"),
    _sku("Nvidia Tesla V100 GPU running in Americas", price=(2, 480_000_000)),
    _sku("Nvidia Tesla P100 GPU running in Americas", price=(1, 460_000_000)),
    _sku("Nvidia Tesla P4 GPU running in Americas", price=(0, 600_000_000)),
    _sku("A4 Instance Core running in Americas", price=(0, 40_000_000)),
    _sku("A4 Instance Ram running in Americas", price=(0, 5_000_000), unit="GiBy.h"),
    _sku("Nvidia B200 GPU running in Americas", price=(10, 0)),
    _sku("DWS Defined Duration Nvidia Tesla V100 GPU running in Americas", price=(1, 0)),
]
NEW_PRICES = R.machine_prices(TABLES, R.part_rates(NEW_PARTS, RULES))


@pytest.mark.parametrize(
    "gpu,machine,expected",
    [
        ("V100", "n1-standard-8", 8 * 0.031611 + 30 * 0.004237 + 2.48),
        ("V100", "n1-standard-64", 64 * 0.031611 + 240 * 0.004237 + 8 * 2.48),
        ("P100", "n1-standard-16", 16 * 0.031611 + 60 * 0.004237 + 2 * 1.46),
        ("P4", "n1-standard-32", 32 * 0.031611 + 120 * 0.004237 + 4 * 0.6),
        ("B200", "a4-highgpu-8g", 224 * 0.04 + 3968 * 0.005 + 8 * 10),
    ],
)
def test_new_families_are_priced_from_their_parts(gpu, machine, expected):
    assert NEW_PRICES[gpu][machine]["us-central1"]["on_demand"] == pytest.approx(expected, abs=1e-4)


def test_one_n1_machine_gets_one_price_per_gpu_and_no_flex_start_where_not_offered():
    rows = {g: NEW_PRICES[g]["n1-standard-8"]["us-central1"] for g in ("V100", "P100", "P4")}
    assert len({r["on_demand"] for r in rows.values()}) == 3
    # a flex-start V100 SKU would not make V100 a FLEX_START GPU (data/scheduling.toml)
    assert all("flex_start" not in r for r in rows.values())


@pytest.mark.parametrize(
    "machine,region,column",
    [
        ("a2-ultragpu-1g", "europe-west4", None),  # no A100 80GB SKU there
        ("a2-highgpu-1g", "asia-southeast1", None),  # no A2 SKUs there
        ("a2-highgpu-1g", "us-central1", "flex_start"),  # no DWS SKUs for A2
        ("g2-standard-4", "europe-west4", "flex_start"),
        ("g2-standard-4", "us-west1", None),  # offered (regions.toml) but not in the recording
    ],
)
def test_unpriced_parts_leave_cells_out(machine, region, column):
    row = PRICES.get(_gpu_of(machine), {}).get(machine, {}).get(region)
    assert row is None if column is None else column not in row


def test_sole_tenancy_and_commitments_do_not_leak_in():
    """The recording's L4 sole-tenancy (0.616) and 1-year commitment (0.3528) SKUs price nothing."""
    others = [s for s in SKUS if "Sole Tenancy" in s["description"] or s["description"].startswith("Commitment")]
    assert len(others) == 2 and R.part_rates(others, RULES) == {}
    assert RATES[("gpu", "L4", "on_demand", "us-central1")] == pytest.approx(0.56)


def test_missing_lists_shapes_without_any_price():
    # the recording holds no SKUs for A3 Mega, A4 or the N1 GPUs other than T4
    assert R.missing(TABLES, PRICES) == [
        "H100-MEGA a3-megagpu-8g", "B200 a4-highgpu-8g",
        *[f"{g} {m}" for g in ("V100", "P100", "P4")
          for m in ("n1-standard-8", "n1-standard-16", "n1-standard-32", "n1-standard-64")
          if m != "n1-standard-64" or g == "V100"],
    ]


def test_render_round_trips_through_load_tables(tmp_path):
    text = R.render(TABLES, PRICES, "2026-03-02", "USD", "recorded")
    for name in ("machines.toml", "regions.toml", "scheduling.toml"):
        (tmp_path / name).write_text((T.DATA_DIR / name).read_text())
    (tmp_path / "prices.toml").write_text(text)
    tables = T.load_tables(tmp_path)
    assert tables.price_date == "2026-03-02" and tomllib.loads(text)["source"] == "recorded"
    column = {"spot": "SPOT", "on_demand": "STANDARD", "flex_start": "FLEX_START"}
    cells = [(g, m, r, c) for g, machines in PRICES.items() for m, rows in machines.items()
             for r, row in rows.items() for c in row]
    assert len(cells) > 100  # the whole recording, not a sample
    for g, m, r, c in cells:
        assert T.price(tables, g, m, r, column[c]) == PRICES[g][m][r][c], (g, m, r, c)
    assert T.price(tables, "A100", "a2-highgpu-1g", "us-central1", "FLEX_START") is None
    assert '[gpu.L4."g2-standard-4"]  # x1' in text


def test_default_out_is_the_source_tree_under_bazel_run(monkeypatch, tmp_path):
    monkeypatch.setenv("BUILD_WORKSPACE_DIRECTORY", str(tmp_path))
    assert R.default_out() == tmp_path / "tools/launch/data/prices.toml"
    monkeypatch.delenv("BUILD_WORKSPACE_DIRECTORY")
    assert R.default_out() == T.DATA_DIR / "prices.toml"
