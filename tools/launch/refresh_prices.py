"""`bazel run //tools/launch:refresh_prices`: rewrite data/prices.toml from the Cloud Billing Catalog.

Prices stay data (prices.toml, dated); this only regenerates that file. The
catalog lists prices of parts (a vCPU hour of a machine family, a GiB hour of
its memory, a GPU hour), not of machine types, so each shape of machines.toml
is priced as cpus x core + memory_gb x ram + gpus x GPU, per region of
regions.toml and per column (on_demand, spot, flex_start). Which SKU is which
part is the small table data/skus.toml. A column with any part missing is
left out: the ranking treats it as unknown rather than wrong.

The SKUs are read with the real `billing_v1.CloudCatalogClient` (REST);
`--endpoint` points it at a private or test server (anonymous credentials on
loopback), and pure functions below work on the catalog's REST JSON shape so
a recorded response can be parsed without the client.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import pathlib
import re
import sys
import tomllib

from tools.launch import endpoints
from tools.launch import tables as T
from tools.launch.errors import RefreshError

DEFAULT_ENDPOINT = "cloudbilling.googleapis.com"
COLUMNS = ("on_demand", "spot", "flex_start")


@dataclasses.dataclass(frozen=True)
class Part:
    match: re.Pattern
    resource: str  # core, ram or gpu
    key: str  # machine type prefix (core/ram) or GPU name (gpu)


@dataclasses.dataclass(frozen=True)
class Rules:
    service: str
    usage: dict  # usageType -> column
    flex_start: re.Pattern
    exclude: re.Pattern
    units: dict  # resource -> usageUnit
    parts: tuple[Part, ...]


def load_rules(path: pathlib.Path | str = T.DATA_DIR / "skus.toml") -> Rules:
    with open(path, "rb") as f:
        raw = tomllib.load(f)
    parts = tuple(
        Part(re.compile(p["match"]), "gpu", p["gpu"]) if "gpu" in p
        else Part(re.compile(p["match"]), p["resource"], p["machines"])
        for p in raw["part"]
    )
    return Rules(raw["service"], dict(raw["usage"]), re.compile(raw["flex_start_match"]),
                 re.compile(raw["exclude"]), dict(raw["units"]), parts)


def classify(sku: dict, rules: Rules) -> tuple[Part, str] | None:
    """(part, column) of one SKU in REST JSON shape, or None if it prices no training part.

    The first matching part wins; data/skus.toml is ordered so that no
    description matches two parts (a test checks the recording for that).
    """
    desc = sku.get("description", "")
    if rules.exclude.search(desc):
        return None
    usage = sku.get("category", {}).get("usageType", "")
    column = "flex_start" if rules.flex_start.search(desc) else rules.usage.get(usage)
    if column is None:
        return None
    for part in rules.parts:
        if part.match.search(desc):
            return part, column
    return None


def money(m: dict) -> float:
    """google.type.Money as a float (units is an int64 string in REST JSON)."""
    return int(m.get("units") or 0) + int(m.get("nanos") or 0) / 1e9


def unit_price(sku: dict, currency: str) -> tuple[float, str] | None:
    """(price of the first tier, usageUnit) of the latest pricing info, or None."""
    infos = sorted(sku.get("pricingInfo", []), key=lambda p: p.get("effectiveTime", ""))
    if not infos:
        return None
    expr = infos[-1].get("pricingExpression", {})
    tiers = [t for t in expr.get("tieredRates", []) if float(t.get("startUsageAmount") or 0) == 0]
    if not tiers:
        return None
    price = tiers[0].get("unitPrice", {})
    if price.get("currencyCode", currency) != currency:
        return None
    return money(price), expr.get("usageUnit", "")


def part_rates(skus, rules: Rules, currency: str = "USD", warn=lambda msg: None) -> dict:
    """{(resource, key, column, region): price per unit} from SKUs in REST JSON shape."""
    out = {}
    for sku in skus:
        hit = classify(sku, rules)
        if hit is None:
            continue
        part, column = hit
        priced = unit_price(sku, currency)
        if priced is None:
            continue
        price, unit = priced
        if unit != rules.units[part.resource]:
            warn(f"skipping {sku.get('description')!r}: priced per {unit!r}, "
                 f"want {rules.units[part.resource]!r}")
            continue
        for region in sku.get("serviceRegions", []):
            out[(part.resource, part.key, column, region)] = price
    return out


def _family_rate(rates: dict, resource: str, machine: str, column: str, region: str):
    """The core/ram rate of the longest machine-type prefix that has one."""
    keys = [k for (res, k, col, reg) in rates if res == resource and col == column
            and reg == region and machine.startswith(k)]
    return rates[(resource, max(keys, key=len), column, region)] if keys else None


def machine_price(shape: T.Shape, gpu: str, rates: dict, column: str, region: str) -> float | None:
    """Hourly price of the whole machine with its GPUs, or None if any part is unpriced."""
    core = _family_rate(rates, "core", shape.machine_type, column, region)
    ram = _family_rate(rates, "ram", shape.machine_type, column, region)
    gpu_rate = rates.get(("gpu", gpu, column, region))
    if core is None or ram is None or gpu_rate is None or not shape.cpus:
        return None
    return round(shape.cpus * core + shape.memory_gb * ram + shape.gpus * gpu_rate, 4)


def _columns(tables: T.Tables, gpu: str) -> tuple[str, ...]:
    """Price columns that can apply to GPU: no flex_start where FLEX_START does not offer it."""
    flex = tables.schedulings.get("FLEX_START")
    offered = flex is None or flex.gpus is None or gpu in flex.gpus
    return tuple(c for c in COLUMNS if c != "flex_start" or offered)


def machine_prices(tables: T.Tables, rates: dict) -> dict:
    """{gpu: {machine_type: {region: {column: price}}}} for every shape, in table order.

    Keyed by GPU first: one N1 machine type carries T4, V100, P100 or P4.
    """
    out: dict = {}
    for gpu in tables.gpus.values():
        columns = _columns(tables, gpu.name)
        for shape in gpu.shapes:
            rows = {}
            for region in gpu.regions:
                row = {c: p for c in columns
                       if (p := machine_price(shape, gpu.name, rates, c, region)) is not None}
                if row:
                    rows[region] = row
            if rows:
                out.setdefault(gpu.name, {})[shape.machine_type] = rows
    return out


def missing(tables: T.Tables, prices: dict) -> list[str]:
    """Shapes the refresh could not price at all (their SKU rules need a look)."""
    return [f"{g.name} {s.machine_type}" for g in tables.gpus.values() for s in g.shapes
            if s.machine_type not in prices.get(g.name, {})]


def _gpu_count(tables: T.Tables, gpu: str, machine: str) -> int:
    return next(s.gpus for s in tables.gpus[gpu].shapes if s.machine_type == machine)


def render(tables: T.Tables, prices: dict, date: str, currency: str, source: str) -> str:
    """prices.toml text in the layout tables.load_tables reads (and people diff)."""
    lines = [
        "# Hourly prices of the whole Vertex AI training machine with its GPUs.",
        "# The single place for prices. Generated by `bazel run //tools/launch:refresh_prices`",
        "# from the Cloud Billing Catalog: cpus x core + memory_gb x ram + gpus x GPU",
        "# (machines.toml shapes, data/skus.toml rules). Do not edit by hand; refresh.",
        "# Keyed by GPU, then machine type (an N1 machine takes several GPUs).",
        "# A GPU, machine type, region or column missing here has an unknown price: ranked after priced ones.",
        "",
        f'date = "{date}"',
        f'currency = "{currency}"',
        f"source = {json.dumps(source)}",
    ]
    for gpu, machines in prices.items():
        for machine, rows in machines.items():
            lines += ["", f'[gpu.{gpu}."{machine}"]  # x{_gpu_count(tables, gpu, machine)}']
            for region, row in rows.items():
                cells = ", ".join(f"{c} = {row[c]}" for c in COLUMNS if c in row)
                lines.append(f"{region} = {{ {cells} }}")
    return "\n".join(lines) + "\n"


# -- the client ---------------------------------------------------------------


def fetch_skus(service: str, endpoint: str | None, currency: str = "USD") -> list[dict]:
    """All SKUs of SERVICE in REST JSON shape, through the real CloudCatalogClient."""
    from google.api_core import exceptions as gexc
    from google.cloud import billing_v1

    where = endpoint or DEFAULT_ENDPOINT
    try:
        client = billing_v1.CloudCatalogClient(
            transport="rest",
            client_options={"api_endpoint": endpoints.api_endpoint(where)},
            credentials=endpoints.google_credentials(endpoint),
        )
        pages = client.list_skus(request={"parent": f"services/{service}",
                                          "currency_code": currency, "page_size": 5000})
        return [json.loads(billing_v1.Sku.to_json(s)) for s in pages]
    except gexc.NotFound:
        raise RefreshError(f"billing catalog {where} has no service {service}: pass --service with "
                           "a Cloud Billing service id (Compute Engine: 6F81-5844-456A)") from None
    except gexc.GoogleAPICallError as e:
        raise RefreshError(f"billing catalog {where}: {e.message or e}") from None
    except endpoints.EndpointError:
        raise
    except Exception as e:  # transport: connection refused, DNS, TLS
        raise RefreshError(f"billing catalog {where} unreachable: {type(e).__name__}: {e}") from None


def default_out() -> pathlib.Path:
    """Under `bazel run`, the source tree's file (not the runfiles copy)."""
    workspace = os.environ.get("BUILD_WORKSPACE_DIRECTORY")
    if workspace:
        return pathlib.Path(workspace) / "tools/launch/data/prices.toml"
    return T.DATA_DIR / "prices.toml"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="refresh_prices", description=__doc__.split("\n")[0])
    p.add_argument("--endpoint", metavar="URL", help=f"Cloud Billing API endpoint (default {DEFAULT_ENDPOINT})")
    p.add_argument("--service", help="catalog service id (default: data/skus.toml's, Compute Engine)")
    p.add_argument("--currency", default="USD")
    p.add_argument("--out", help="file to write, '-' for stdout (default: tools/launch/data/prices.toml)")
    p.add_argument("--date", help="date recorded in the file (default: today, UTC)")
    return p


def log(msg: str) -> None:
    print(f"refresh_prices: {msg}", file=sys.stderr, flush=True)


def refresh(args, tables: T.Tables | None = None, rules: Rules | None = None) -> str:
    """The new prices.toml text (raises RefreshError rather than writing an empty table)."""
    tables = tables or T.load_tables()
    rules = rules or load_rules()
    service = args.service or rules.service
    skus = fetch_skus(service, args.endpoint, args.currency)
    rates = part_rates(skus, rules, args.currency, warn=log)
    prices = machine_prices(tables, rates)
    if not prices:
        raise RefreshError(f"{len(skus)} SKU(s) of services/{service}, none priced a machine: "
                           "check the rules in tools/launch/data/skus.toml")
    for name in missing(tables, prices):
        log(f"no price for {name} (a part has no SKU): left out, ranked as unknown")
    date = args.date or datetime.datetime.now(datetime.timezone.utc).date().isoformat()
    source = f"Cloud Billing Catalog services/{service} ({args.endpoint or DEFAULT_ENDPOINT})"
    return render(tables, prices, date, args.currency, source)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        text = refresh(args)
    except (RefreshError, endpoints.EndpointError) as e:
        log(f"error: {e}")
        return 2
    if args.out == "-":
        sys.stdout.write(text)
        return 0
    out = pathlib.Path(args.out) if args.out else default_out()
    out.write_text(text)
    log(f"wrote {out} ({text.count(' = {')} region rows)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
