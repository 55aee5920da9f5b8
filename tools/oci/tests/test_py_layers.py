"""Runfiles -> layer groups: the placement table, shebang rewriting, and
that each file lands in exactly one group."""

import tarfile

import pytest

from tools.oci import layout, py_layers
from tools.oci.py_layers import Placement

DP = py_layers.DIST_PACKAGES


@pytest.mark.parametrize("rpath,expected", [
    ("rules_python~0.22.1~pip~pypi_torch/site-packages/torch/__init__.py",
     Placement(2, f"{DP}/torch/__init__.py")),
    ("pypi_nvidia_cublas_cu13/site-packages/nvidia/cublas/lib/libcublas.so.13",
     Placement(2, f"{DP}/nvidia/cublas/lib/libcublas.so.13")),
    ("pypi_triton/site-packages/triton/__init__.py", Placement(2, f"{DP}/triton/__init__.py")),
    ("pypi_cuda_bindings/site-packages/cuda/bindings/x.py", Placement(2, f"{DP}/cuda/bindings/x.py")),
    ("pypi_numpy/site-packages/numpy/__init__.py", Placement(3, f"{DP}/numpy/__init__.py")),
    ("pypi_torchvision_extra/site-packages/a.py", Placement(3, f"{DP}/a.py")),
    ("pypi_accelerate/bin/accelerate", Placement(3, "usr/local/bin/accelerate", script=True)),
    ("_main/ARR_COC/knowing.py", Placement(4, "app/ARR_COC/knowing.py")),
    ("_main/ARR_COC/Training/train.py", Placement(5, "app/ARR_COC/Training/train.py")),
    ("_main/ARR_COC/Training/configs/vertex.toml", Placement(5, "app/ARR_COC/Training/configs/vertex.toml")),
    ("_main/tools/oci/layout.py", Placement(4, "app/tools/oci/layout.py")),
    ("pypi_numpy/BUILD.bazel", None),
    ("pypi_numpy/site-packages/__init__.py", None),
    ("python311/bin/python3", None),
    ("rules_python~0.22.1/python/runfiles/runfiles.py", None),
    ("_main", None),
])
def test_place(rpath, expected):
    assert py_layers.place(rpath) == expected


@pytest.mark.parametrize("repo,hub,name", [
    ("rules_python~0.22.1~pip~pypi_torch", "pypi", "torch"),
    ("pypi_nvidia_nccl_cu13", "pypi", "nvidia_nccl_cu13"),
    ("deps_torch", "deps", "torch"),
])
def test_wheel_name(repo, hub, name):
    assert py_layers.wheel_name(repo, hub) == name


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


@pytest.mark.parametrize("group,paths", [
    (2, [f"{DP}/torch/__init__.py"]),
    (3, [f"{DP}/numpy/__init__.py", "usr/local/bin/f2py"]),
    (4, ["app/ARR_COC/__init__.py", "app/ARR_COC/model.py"]),
    (5, ["app/ARR_COC/Training/__init__.py", "app/ARR_COC/Training/train.py"]),
])
def test_groups_split_and_drop_host_litter(tmp_path, group, paths):
    entries, dropped = py_layers.group_entries(_runfiles(tmp_path), group)
    assert sorted(e.path for e in entries) == paths
    dropped_paths = [p for p, _ in dropped]
    if group == 2:
        assert any("__pycache__" in p for p in dropped_paths)
    if group == 4:
        assert "app/ARR_COC/.git/config" in dropped_paths


def test_every_shipped_file_is_in_one_group(tmp_path):
    pairs = _runfiles(tmp_path)
    seen = []
    for group in (2, 3, 4, 5):
        seen += [e.path for e in py_layers.group_entries(pairs, group)[0]]
    assert len(seen) == len(set(seen)) == 7


def test_script_is_rewritten_and_executable(tmp_path):
    entries, _ = py_layers.group_entries(_runfiles(tmp_path), 3)
    script = next(e for e in entries if e.path.endswith("f2py"))
    assert script.data.startswith(b"#!/usr/bin/python3.11\n") and script.mode == 0o755


def test_pyc_added_and_layer_has_no_top_level_system_dirs(tmp_path):
    entries, _ = py_layers.group_entries(_runfiles(tmp_path), 4)
    entries = py_layers.with_pyc(entries)
    assert "app/ARR_COC/__pycache__/model.cpython-311.pyc" in {e.path for e in entries}
    layout.write_layer(entries, tmp_path / "l.tar.gz")
    with tarfile.open(tmp_path / "l.tar.gz") as tar:
        tops = {m.name.split("/")[0] for m in tar.getmembers()}
    assert tops == {"app"}


def test_listing_shows_dirs_and_files_sorted(tmp_path):
    entries, _ = py_layers.group_entries(_runfiles(tmp_path), 5)
    assert py_layers.listing(entries) == (
        "app/\napp/ARR_COC/\napp/ARR_COC/Training/\n"
        "app/ARR_COC/Training/__init__.py\napp/ARR_COC/Training/train.py\n")


def test_editing_app_code_changes_only_its_layer(tmp_path):
    pairs = _runfiles(tmp_path)
    before = {g: layout.write_layer(py_layers.group_entries(pairs, g)[0], tmp_path / f"a{g}.tar.gz").diff_id
              for g in (2, 3, 4, 5)}
    (tmp_path / "src/_main/ARR_COC/model.py").write_bytes(b"M = 2\n")
    after = {g: layout.write_layer(py_layers.group_entries(pairs, g)[0], tmp_path / f"b{g}.tar.gz").diff_id
             for g in (2, 3, 4, 5)}
    assert [g for g in before if before[g] != after[g]] == [4]


def test_identical_namespace_inits_are_merged_different_ones_refused(tmp_path):
    a, b, c = (tmp_path / n for n in "abc")
    a.write_bytes(b"__path__ = __import__('pkgutil').extend_path(__path__, __name__)\n")
    b.write_bytes(a.read_bytes())
    c.write_bytes(b"other\n")
    pairs = [("pypi_cuda_bindings/site-packages/cuda/__init__.py", str(a)),
             ("pypi_cuda_pathfinder/site-packages/cuda/__init__.py", str(b))]
    entries, _ = py_layers.group_entries(pairs, 2)
    assert [e.path for e in entries] == [f"{DP}/cuda/__init__.py"]
    with pytest.raises(layout.LayerError, match="different content"):
        py_layers.group_entries(pairs + [("pypi_cuda_x/site-packages/cuda/__init__.py", str(c))], 2)


def test_exclusive_refuses_files_of_another_group(tmp_path):
    pairs = _runfiles(tmp_path)
    for group in (2, 3, 4, 5):
        mine = [(r, p) for r, p in pairs if (py_layers.place(r) or py_layers.Placement(group, "")).group == group]
        assert py_layers.group_entries(mine, group, exclusive=True)[0] == py_layers.group_entries(pairs, group)[0]
    with pytest.raises(layout.LayerError, match="belongs to group"):
        py_layers.group_entries(pairs, 2, exclusive=True)
