"""Which compute capabilities the image's compiled kernels load on, table-driven."""

import dataclasses

import pytest

from tools.launch import image_support as IS
from tools.launch import tables as T
from tools.launch.errors import TableError

TABLES = T.default_tables()
SUPPORT = IS.default_support()
IMAGE = ("sm_75", "sm_80", "sm_86", "sm_90", "sm_100", "sm_120")


def test_gpu_support_toml_is_read_into_typed_fields():
    assert SUPPORT.arch_list == IMAGE
    assert SUPPORT.cuda == "13.0" and SUPPORT.torch.endswith("+cu130")
    assert SUPPORT.min_driver_cuda == 13000 and SUPPORT.min_driver.startswith("580.")


@pytest.mark.parametrize(
    "gpu,runs",
    [("L4", True), ("T4", True), ("A100", True), ("A100-80GB", True), ("H100", True), ("H100-MEGA", True),
     ("H200", True), ("B200", True), ("V100", False), ("P100", False), ("P4", False)],
)
def test_runs_every_table_gpu(gpu, runs):
    ok, why = IS.runs(TABLES.gpus[gpu], SUPPORT)
    assert ok is runs
    assert f"compute capability {TABLES.gpus[gpu].compute_capability}" in why
    if not runs:
        assert "has kernels only for sm_75 sm_80 sm_86 sm_90 sm_100 sm_120 (no PTX)" in why


def test_a_torch_without_sm_75_refuses_t4():
    """What a torch bump that drops an architecture does to the launcher: the GPU is refused."""
    newer = dataclasses.replace(SUPPORT, arch_list=("sm_80", "sm_86", "sm_90", "sm_100", "sm_120"))
    assert IS.runs(TABLES.gpus["T4"], newer)[0] is False
    assert "T4" not in IS.runnable(TABLES, newer) and "L4" in IS.runnable(TABLES, newer)


@pytest.mark.parametrize(
    "toml,message",
    [
        ('torch = "x"\ncuda = "13.0"\n', "lacks min_driver, min_driver_cuda, arch_list, exit_codes"),
        ('torch = "x"\ncuda = "13.0"\nmin_driver = "580"\nmin_driver_cuda = 13000\narch_list = ["sm75"]\n[exit_codes]\n',
         "arch_list entry 'sm75' is not sm_NN or compute_NN"),
    ],
)
def test_a_bad_gpu_support_file_says_what_is_wrong(tmp_path, toml, message):
    (tmp_path / "gpu_support.toml").write_text(toml)
    with pytest.raises(TableError, match=message):
        IS.load(tmp_path / "gpu_support.toml")


def test_a_missing_gpu_support_file_names_the_dependency(tmp_path):
    with pytest.raises(TableError, match="//ARR_COC/Training:gpu_support"):
        IS.load(tmp_path / "gpu_support.toml")
