"""Runfiles -> paths in the image: the placement table, shebang rewriting,
host litter, .pyc. Which file goes to which layer is the rule's (layer_groups)."""

import json
import tarfile

import pytest

from tools.oci import layout, py_layers
from tools.oci.py_layers import Placement

DP = py_layers.DIST_PACKAGES


@pytest.mark.parametrize("rpath,expected", [
    ("rules_python~~pip~pypi_linux_amd64_torch/site-packages/torch/__init__.py",
     Placement(f"{DP}/torch/__init__.py")),
    ("pypi_nvidia_cublas_cu13/site-packages/nvidia/cublas/lib/libcublas.so.13",
     Placement(f"{DP}/nvidia/cublas/lib/libcublas.so.13")),
    ("pypi_accelerate/bin/accelerate", Placement("usr/local/bin/accelerate", script=True)),
    ("_main/ARR_COC/knowing.py", Placement("app/ARR_COC/knowing.py")),
    ("_main/ARR_COC/Training/configs/vertex.toml", Placement("app/ARR_COC/Training/configs/vertex.toml")),
    ("pypi_numpy/BUILD.bazel", None),
    ("pypi_numpy/numpy-2.0.whl", None),
    ("pypi_numpy/site-packages/__init__.py", None),
    ("pypi_numpy/bin/nested/f2py", None),
    ("_main", None),
])
def test_place(rpath, expected):
    assert py_layers.place(rpath) == expected


@pytest.mark.parametrize("data,expected", [
    (b"#!/build/host/venv/bin/python3\nimport x\n", b"#!/usr/bin/python3.11\nimport x\n"),
    (b"#!/bin/sh\necho\n", b"#!/bin/sh\necho\n"),
    (b"import x\n", b"import x\n"),
])
def test_rewrite_shebang(data, expected):
    assert py_layers.rewrite_shebang(data) == expected


def _runfiles(tmp_path):
    files = {
        "pypi_torch/site-packages/torch/__init__.py": b"T = 1\n",
        "pypi_torch/site-packages/torch/__pycache__/__init__.cpython-311.pyc": b"host cache",
        "pypi_numpy/site-packages/numpy/__init__.py": b"N = 1\n",
        "pypi_numpy/bin/f2py": b"#!/host/python\nimport numpy\n",
        "_main/ARR_COC/__init__.py": b"",
        "_main/ARR_COC/model.py": b"M = 1\n",
        "_main/ARR_COC/.git/config": b"secret-ish",
        "_main/ARR_COC/Training/train.py": b"print('train')\n",
    }
    pairs = []
    for rpath, data in files.items():
        real = tmp_path / "src" / rpath
        real.parent.mkdir(parents=True, exist_ok=True)
        real.write_bytes(data)
        pairs.append((rpath, str(real)))
    pairs.append(("_main/ARR_COC/Training/__init__.py", ""))
    return pairs


def test_layer_places_files_and_drops_host_litter(tmp_path):
    entries, dropped = py_layers.layer_entries(_runfiles(tmp_path))
    assert sorted(e.path for e in entries) == [
        "app/ARR_COC/Training/__init__.py", "app/ARR_COC/Training/train.py", "app/ARR_COC/__init__.py",
        "app/ARR_COC/model.py", f"{DP}/numpy/__init__.py", f"{DP}/torch/__init__.py", "usr/local/bin/f2py"]
    dropped_paths = [p for p, _ in dropped]
    assert any("__pycache__" in p for p in dropped_paths)
    assert "app/ARR_COC/.git/config" in dropped_paths


def test_script_is_rewritten_and_executable(tmp_path):
    entries, _ = py_layers.layer_entries(_runfiles(tmp_path))
    script = next(e for e in entries if e.path.endswith("f2py"))
    assert script.data.startswith(b"#!/usr/bin/python3.11\n") and script.mode == 0o755


def _app(pairs, prefix="_main/"):
    return [(r, p) for r, p in pairs if r.startswith(prefix)]


def test_pyc_added_and_layer_has_no_top_level_system_dirs(tmp_path):
    entries, _ = py_layers.layer_entries(_app(_runfiles(tmp_path)))
    entries = py_layers.with_pyc(entries)
    assert "app/ARR_COC/__pycache__/model.cpython-311.pyc" in {e.path for e in entries}
    layout.write_layer(entries, tmp_path / "l.tar.gz")
    with tarfile.open(tmp_path / "l.tar.gz") as tar:
        tops = {m.name.split("/")[0] for m in tar.getmembers()}
    assert tops == {"app"}


def test_listing_shows_dirs_and_files_sorted(tmp_path):
    entries, _ = py_layers.layer_entries(_app(_runfiles(tmp_path), "_main/ARR_COC/Training"))
    assert py_layers.listing(entries) == (
        "app/\napp/ARR_COC/\napp/ARR_COC/Training/\n"
        "app/ARR_COC/Training/__init__.py\napp/ARR_COC/Training/train.py\n")


def test_identical_namespace_inits_are_merged_different_ones_refused(tmp_path):
    a, b, c = (tmp_path / n for n in "abc")
    a.write_bytes(b"__path__ = __import__('pkgutil').extend_path(__path__, __name__)\n")
    b.write_bytes(a.read_bytes())
    c.write_bytes(b"other\n")
    pairs = [("pypi_cuda_bindings/site-packages/cuda/__init__.py", str(a)),
             ("pypi_cuda_pathfinder/site-packages/cuda/__init__.py", str(b))]
    entries, _ = py_layers.layer_entries(pairs)
    assert [e.path for e in entries] == [f"{DP}/cuda/__init__.py"]
    with pytest.raises(layout.LayerError, match="different content"):
        py_layers.layer_entries(pairs + [("pypi_cuda_x/site-packages/cuda/__init__.py", str(c))])


def test_level_trades_bytes_for_time_and_keeps_the_tar(tmp_path):
    """--level changes the gzip blob only: the tar (diff_id) is the same."""
    text = tmp_path / "text.py"
    text.write_bytes(b"".join(b"value_%d = %d * %d\n" % (i, i % 97, i % 13) for i in range(40000)))
    manifest = tmp_path / "m"
    manifest.write_text(f"_main/text.py\t{text}\n")
    infos = {}
    for level in (1, 9):
        out = tmp_path / f"l{level}.tar.gz"
        assert py_layers.main(["--manifest", str(manifest), "--out", str(out), "--level", str(level)]) == 0
        infos[level] = json.loads((tmp_path / f"l{level}.tar.gz.json").read_text())
    assert infos[1]["diff_id"] == infos[9]["diff_id"]
    assert infos[1]["digest"] != infos[9]["digest"] and infos[1]["size"] > infos[9]["size"]
    with pytest.raises(SystemExit):
        py_layers.main(["--manifest", str(manifest), "--out", str(tmp_path / "x"), "--level", "0"])
