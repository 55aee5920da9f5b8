"""The price refresh end to end: the real CloudCatalogClient against the fake catalog.

The fake serves the recorded response (tools/launch/testdata/compute_skus.json)
in small pages, so the client must follow nextPageToken; the written
prices.toml is read back with the launcher's own table loader.
"""

import json
import pathlib
import shutil

import pytest

from tests.support import fake_google, registry_server as rs
from tools.launch import refresh_prices as R
from tools.launch import tables as T

RECORDED = pathlib.Path(R.__file__).resolve().parent / "testdata" / "compute_skus.json"
COMPUTE = "6F81-5844-456A"


@pytest.fixture
def catalog():
    fake = fake_google.FakeGoogle()
    fake.skus[COMPUTE] = json.loads(RECORDED.read_text())["skus"]
    with fake_google.running(fake) as url:
        fake.url = url
        yield fake


@pytest.fixture
def data_dir(tmp_path):
    """A copy of the data tables, so the refresh writes somewhere the loader reads."""
    out = tmp_path / "data"
    shutil.copytree(T.DATA_DIR, out)
    return out


def test_refresh_writes_dated_prices_read_back_by_the_planner(catalog, data_dir, capsys):
    out = data_dir / "prices.toml"
    code = R.main(["--endpoint", catalog.url, "--out", str(out), "--date", "2026-03-02"])
    assert code == 0, capsys.readouterr().err
    pages = [p for m, p in catalog.requests if p == f"/v1/services/{COMPUTE}/skus"]
    assert len(pages) == -(-len(catalog.skus[COMPUTE]) // catalog.sku_page_size)  # every page read
    tables = T.load_tables(data_dir)
    assert tables.price_date == "2026-03-02" and tables.currency == "USD"
    price = lambda g, m, r, s: T.price(tables, g, m, r, s)  # noqa: E731
    assert price("L4", "g2-standard-4", "us-central1", "STANDARD") == pytest.approx(0.7068)
    assert price("L4", "g2-standard-4", "us-central1", "SPOT") == pytest.approx(0.2827)
    assert price("L4", "g2-standard-4", "us-east1", "FLEX_START") == pytest.approx(0.4241)
    assert price("T4", "n1-standard-8", "asia-southeast1", "STANDARD") == pytest.approx(0.8979)
    assert price("A100", "a2-highgpu-1g", "us-central1", "SPOT") == pytest.approx(1.4694)
    assert price("H100", "a3-highgpu-8g", "us-central1", "STANDARD") == pytest.approx(89.2391)
    assert price("H200", "a3-ultragpu-8g", "us-central1", "SPOT") == pytest.approx(35.5935)
    assert price("H100-MEGA", "a3-megagpu-8g", "us-central1", "SPOT") is None  # no SKU: unknown, not guessed
    err = capsys.readouterr().err
    assert "no price for H100-MEGA a3-megagpu-8g" in err and "wrote" in err


def test_stdout_mode_leaves_the_file_alone(catalog, data_dir, capsys):
    before = (data_dir / "prices.toml").read_text()
    assert R.main(["--endpoint", catalog.url, "--out", "-", "--date", "2026-03-02"]) == 0
    assert 'date = "2026-03-02"' in capsys.readouterr().out
    assert (data_dir / "prices.toml").read_text() == before


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--service", "0000-0000-0000"], "has no service 0000-0000-0000: pass --service"),
        (["--currency", "EUR"], "none priced a machine: check the rules in tools/launch/data/skus.toml"),
    ],
)
def test_nothing_usable_is_an_error_and_writes_nothing(catalog, tmp_path, capsys, argv, message):
    out = tmp_path / "prices.toml"
    assert R.main(["--endpoint", catalog.url, "--out", str(out), *argv]) == 2
    assert message in capsys.readouterr().err and not out.exists()


def test_catalog_unreachable(tmp_path, capsys):
    out = tmp_path / "prices.toml"
    assert R.main(["--endpoint", f"http://127.0.0.1:{rs.free_port()}", "--out", str(out)]) == 2
    assert "unreachable" in capsys.readouterr().err and not out.exists()


def test_plain_http_only_to_loopback(tmp_path, capsys):
    assert R.main(["--endpoint", "http://10.1.2.3:8080", "--out", str(tmp_path / "p.toml")]) == 2
    assert "plain HTTP is only allowed to loopback" in capsys.readouterr().err
