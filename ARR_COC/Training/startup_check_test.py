"""The start-up check: its judgement of a host (pure), and the real check against a stub driver."""

import dataclasses
import io
import json
import os
import shutil
import subprocess
import sys
import time

import pytest

from ARR_COC.Training import startup_check as check

SUPPORT = check.load_support()
STUB = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                    "Stack", "libcuda_stub.so")
GPU = {"TRAINING_GPU": "L4", "CUDA_VISIBLE_DEVICES": "0"}


def host(driver_cuda=13000, *capabilities, **extra) -> dict:
    return {"driver": "/usr/local/nvidia/lib64/libcuda.so.1", "driver_cuda": driver_cuda, "driver_release": None,
            "gpus": [{"name": f"GPU {c}", "capability": c} for c in capabilities], **extra}


@pytest.mark.parametrize("found, wanted, shm, failure", [
    (host(13000, "8.9"), 1, None, None),
    (host(13020, "9.0", "9.0"), 2, None, None),
    (host(13000, "10.0"), 1, None, None),
    (host(13000, "7.5"), 1, None, None),               # T4: sm_75 is in the wheel
    ({"driver": None}, 0, None, None),                 # CPU on purpose: no GPU asked for
    ({"driver": None}, 1, None, "no_driver"),
    (host(12080, "8.9"), 1, None, "driver_too_old"),   # a 570-branch driver: CUDA 12.8
    (host(12080, "8.9"), 0, None, "driver_too_old"),   # GPUs there but unusable: never train on CPU silently
    (host(13000, "7.0"), 1, None, "gpu_unsupported"),  # V100
    (host(13000, "6.0"), 1, None, "gpu_unsupported"),  # P100
    (host(13000, "8.0"), 2, None, "too_few_gpus"),
    (host(13000, cu_init_error=100), 1, None, "no_driver"),
    (host(13000, "8.9"), 1, 64 * 2**20, "shm_too_small"),
])
def test_judge(found, wanted, shm, failure):
    need = check.shm_needed(512, 4, 4, 1)
    try:
        check.judge(found, SUPPORT, wanted, shm, need, GPU)
    except check.CheckFailed as failed:
        assert failed.name == failure, str(failed)
    else:
        assert failure is None


IMAGE_ARCHS = ("sm_75", "sm_80", "sm_86", "sm_90", "sm_100", "sm_120")


@pytest.mark.parametrize(
    "capability,arch_list,runs",
    [
        ("8.9", IMAGE_ARCHS, True),  # L4: sm_86 SASS runs on 8.6 and later 8.x
        ("7.5", IMAGE_ARCHS, True),  # T4
        ("8.0", IMAGE_ARCHS, True),  # A100
        ("9.0", IMAGE_ARCHS, True),  # H100, H200
        ("10.0", IMAGE_ARCHS, True),  # B200
        ("12.0", IMAGE_ARCHS, True),
        ("7.0", IMAGE_ARCHS, False),  # V100: no sm_70 and no PTX to JIT from
        ("6.0", IMAGE_ARCHS, False),  # P100
        ("6.1", IMAGE_ARCHS, False),  # P4
        ("10.3", IMAGE_ARCHS, True),  # sm_100 SASS, same major, higher minor
        ("11.0", IMAGE_ARCHS, False),  # no sm_11x: a major with no SASS and no PTX
        ("8.0", ("sm_86",), False),  # SASS never runs on a lower minor
        ("9.0", ("sm_80",), False),  # ... nor on another major
        ("9.0", ("sm_80", "compute_80"), True),  # PTX JIT-compiles upwards
        ("7.5", ("compute_80",), False),  # ... never downwards
        ("9.0", ("sm_90a",), True),  # arch-specific: exactly 9.0
        ("9.1", ("sm_90a",), False),
    ],
)
def test_binary_compatibility(capability, arch_list, runs):
    support = dataclasses.replace(SUPPORT, arch_list=arch_list)
    assert support.runs(check.capability(capability)) is runs


def test_messages_name_the_fix():
    with pytest.raises(check.CheckFailed, match=r"580\.65\.06.*CUDA 12\.8.*too old|too old.*580\.65\.06"):
        check.judge(host(12080, "8.9"), SUPPORT, 1, None, 0, GPU)
    with pytest.raises(check.CheckFailed, match=r"/usr/local/nvidia/lib64.*LD_LIBRARY_PATH"):
        check.judge({"driver": None}, SUPPORT, 1, None, 0, {**GPU, "LD_LIBRARY_PATH": "/opt/x"})
    with pytest.raises(check.CheckFailed, match=r"capability 7\.0.*sm_75 sm_80"):
        check.judge(host(13000, "7.0"), SUPPORT, 1, None, 0, GPU)
    with pytest.raises(check.CheckFailed, match=r"num_workers"):
        check.judge(host(13000, "8.9"), SUPPORT, 1, 2**20, 2**30, GPU)


@pytest.mark.parametrize("environ, wanted", [
    ({}, 0),
    ({"CUDA_VISIBLE_DEVICES": "0,1"}, 0),
    ({"TRAINING_GPU": "L4", "CUDA_VISIBLE_DEVICES": "0"}, 1),
    ({"TRAINING_GPU": "A100", "CUDA_VISIBLE_DEVICES": "0,1,2,3"}, 4),
    ({"TRAINING_GPU": "A100"}, 1),
])
def test_wanted_gpus(environ, wanted):
    assert check.wanted_gpus(environ) == wanted


def test_shm_estimate_counts_workers_prefetch_and_processes():
    one = check.shm_needed(512, 4, 1, 1)
    assert one == 512 * 512 * 27 * 4 * 2 * 2  # 57 MB: above Docker's 64 MB default once there are two workers
    assert check.shm_needed(512, 4, 4, 8) == 32 * one and check.shm_needed(512, 4, 0, 8) == 0


def test_exit_codes_are_distinct_and_clear_of_python_and_signals():
    codes = [c.code for c in SUPPORT.exit_codes.values()]
    assert len(set(codes)) == len(codes) and all(2 < c < 126 for c in codes)
    assert {c.blocks for c in SUPPORT.exit_codes.values()} <= {"gpu", "candidate", "nothing"}


def run_check(environ: dict) -> tuple[subprocess.CompletedProcess, float]:
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "ARR_COC.Training.startup_check"], capture_output=True,
                            text=True, timeout=60, env={"PATH": os.environ.get("PATH", ""),
                                                        "PYTHONPATH": os.pathsep.join(sys.path), **environ})
    return result, time.monotonic() - started


def test_without_a_driver_a_gpu_job_stops_naming_where_it_looked(tmp_path):
    result, seconds = run_check({**GPU, "LD_LIBRARY_PATH": str(tmp_path)})
    assert result.returncode == SUPPORT.exit_codes["no_driver"].code, result.stderr
    assert str(tmp_path) in result.stderr and seconds < 10
    assert json.loads(result.stdout)["ok"] is False


@pytest.mark.parametrize("stub, code", [
    ({"STUB_DRIVER_CUDA": "13000", "STUB_CAPABILITY": "89"}, 0),
    ({"STUB_DRIVER_CUDA": "12040", "STUB_CAPABILITY": "89"}, SUPPORT.exit_codes["driver_too_old"].code),
    ({"STUB_DRIVER_CUDA": "13000", "STUB_CAPABILITY": "61"}, SUPPORT.exit_codes["gpu_unsupported"].code),
    ({"STUB_DRIVER_CUDA": "13000", "STUB_CAPABILITY": "89", "STUB_GPUS": "0"}, SUPPORT.exit_codes["no_driver"].code),
])
def test_the_driver_on_the_loader_path_is_the_one_asked(tmp_path, stub, code):
    """A stub libcuda.so.1 in an LD_LIBRARY_PATH folder, as Vertex mounts the real one."""
    shutil.copyfile(STUB, tmp_path / "libcuda.so.1")
    result, _ = run_check({**GPU, "LD_LIBRARY_PATH": str(tmp_path), "STUB_GPUS": "1", **stub})
    assert result.returncode == code, result.stderr
    report = json.loads(result.stdout)
    assert report["driver"] == str(tmp_path / "libcuda.so.1")
    assert report["driver_cuda"] == f"{int(stub['STUB_DRIVER_CUDA']) // 1000}.{int(stub['STUB_DRIVER_CUDA']) % 1000 // 10}"


def test_a_passing_check_hands_its_report_to_what_it_starts():
    environ, out = {}, io.StringIO()
    assert check.run(environ=environ, stream=out) == 0  # no GPU asked for: a CPU run passes
    printed = json.loads(out.getvalue())
    assert check.passed_report(environ) == printed and printed["ok"] is True
    assert check.passed_report({}) is None
