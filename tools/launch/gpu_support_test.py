"""ARR_COC/Training/gpu_support.toml against the torch wheel the image ships.

The wheel is the image platform's (`@pypi_linux_amd64`, Stack/platform.bzl),
not the host's, and torch is never imported: the version and CUDA come from
the wheel's torch/version.py, the arch list from the literal that
torch.cuda.get_arch_list() returns, compiled into libtorch_python.so
(torch/csrc/cuda/Module.cpp, `_cuda_getArchFlags`: the CUDA_ARCH_FLAGS string)
as one NUL-terminated run of `sm_NN` / `compute_NN` tokens. A torch bump that
changes any of them, or that drops an architecture a default GPU needs, fails
here instead of on Vertex ("no kernel image is available").
"""

import ast
import dataclasses
import os
import pathlib
import re
import tomllib
import zipfile

import pytest

from tools.launch import image_support as IS
from tools.launch import tables as T

WHEEL = os.environ.get("ARR_TORCH_WHEEL", "")
pytestmark = pytest.mark.skipif(not WHEEL, reason="reads the image's torch wheel: run it with tools/bazel test")
LAUNCH_TOML = T.DATA_DIR.parent / "launch.toml"
ARCH_RUN = re.compile(rb"\x00((?:sm|compute)_\d+[af]?(?: (?:sm|compute)_\d+[af]?)*)\x00")


def version_py(wheel: zipfile.ZipFile) -> dict:
    """The constants torch/version.py assigns (`__version__ = ...`, `cuda: Optional[str] = ...`)."""
    out = {}
    for node in ast.parse(wheel.read("torch/version.py")).body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant):
            out.update({t.id: node.value.value for t in node.targets if isinstance(t, ast.Name)})
        elif isinstance(node, ast.AnnAssign) and isinstance(node.value, ast.Constant):
            out[node.target.id] = node.value.value
    return out


def arch_runs(library: bytes) -> set[bytes]:
    return set(ARCH_RUN.findall(library))


@pytest.fixture(scope="module")
def wheel():
    path = pathlib.Path(WHEEL)
    assert path.name.startswith("torch-") and path.name.endswith(".whl"), path.name
    with zipfile.ZipFile(path) as z:
        yield z


@pytest.fixture(scope="module")
def wheel_arch_list(wheel) -> tuple[str, ...]:
    runs = arch_runs(wheel.read("torch/lib/libtorch_python.so"))
    assert len(runs) == 1, f"expected one arch-flags literal in libtorch_python.so, found {sorted(runs)}"
    return tuple(runs.pop().decode().split())


def test_the_scan_finds_only_a_nul_bounded_run():
    assert arch_runs(b"\x00sm_75 sm_80 compute_90\x00 sm_86 in a message\x00") == {b"sm_75 sm_80 compute_90"}


def test_torch_version_and_cuda_match_the_wheel(wheel):
    facts, support = version_py(wheel), IS.default_support()
    assert (support.torch, support.cuda) == (facts["__version__"], facts["cuda"]), (
        "gpu_support.toml's torch/cuda differ from the locked wheel's torch/version.py: update it")


def test_arch_list_matches_the_compiled_library(wheel_arch_list):
    assert wheel_arch_list == ("sm_75", "sm_80", "sm_86", "sm_90", "sm_100", "sm_120")  # the method finds all six
    assert IS.default_support().arch_list == wheel_arch_list, (
        f"gpu_support.toml's arch_list differs from the wheel's {' '.join(wheel_arch_list)}: update it")


@pytest.mark.parametrize("gpu", tomllib.loads(LAUNCH_TOML.read_text())["gpu_preference"])
def test_every_default_gpu_runs_the_wheel(gpu, wheel_arch_list):
    g = T.resolve_gpu(T.default_tables(), gpu)
    wheel = dataclasses.replace(IS.default_support(), arch_list=wheel_arch_list)
    assert IS.runs_capability(g.compute_capability, wheel), (
        f"launch.toml's gpu_preference has {g.name} (compute capability {g.compute_capability}), which the "
        f"image's torch ({' '.join(wheel_arch_list)}) cannot run: take it out or lock a torch that has it")
