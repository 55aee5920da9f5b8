"""The cost-per-sample table: every GPU once, cheapest per FLOP first, ratios to the cheapest the image runs."""

import pytest

from tools.launch import gpu_costs as G
from tools.launch import image_support as IS
from tools.launch import tables as T

TABLES = T.default_tables()


@pytest.mark.parametrize("scheduling", ["SPOT", "STANDARD"])
def test_rows_are_sorted_by_cost_with_unpriced_last(scheduling):
    rows = G.rows(TABLES, IS.default_support(), scheduling)
    assert {r["gpu"] for r in rows} == set(TABLES.gpus)
    priced = [r["usd_per_eflop"] for r in rows if r["usd_per_eflop"] is not None]
    assert priced == sorted(priced) and rows[-1]["gpu"] == "B200"  # unpriced
    assert rows[0]["vs_cheapest"] == 1.0 and rows[0]["image_runs_it"]
    assert {r["gpu"] for r in rows if not r["image_runs_it"]} == {"V100", "P100", "P4"}


def test_flex_start_lists_only_the_gpus_it_offers():
    assert {r["gpu"] for r in G.rows(TABLES, IS.default_support(), "FLEX_START")} == set(
        TABLES.schedulings["FLEX_START"].gpus)


def test_the_l4_spot_row(capsys):
    l4 = next(r for r in G.rows(TABLES, IS.default_support(), "SPOT") if r["gpu"] == "L4")
    price = T.price(TABLES, "L4", "g2-standard-4", l4["region"], "SPOT")
    assert l4["usd_per_eflop"] == pytest.approx(price / (121 * 3600) * 1e6, abs=1e-4)
    assert G.main(["--scheduling", "SPOT"]) == 0
    assert "| L4 | 8.9 | yes | 121 bf16 | g2-standard-4 (x1) |" in capsys.readouterr().out
