"""Accelerate topology from visible GPUs and Vertex's CLUSTER_SPEC; the GPU check."""

import json

import pytest

from ARR_COC.Training.entrypoint import AccelerateArgs, accelerate_args, check_gpu

TWO_NODES = {"cluster": {"workerpool0": ["chief-0:2222"], "workerpool1": ["worker-0:2222"]},
             "task": {"type": "workerpool1", "index": 0}, "environment": "cloud"}


@pytest.mark.parametrize("gpus, spec, expected", [
    (0, None, AccelerateArgs(1, 1, 0, None, None)),
    (1, None, AccelerateArgs(1, 1, 0, None, None)),
    (8, None, AccelerateArgs(8, 1, 0, None, None)),
    (8, {"cluster": {"workerpool0": ["chief-0:2222"]}, "task": {"type": "workerpool0", "index": 0}},
     AccelerateArgs(8, 1, 0, None, None)),
    (4, TWO_NODES, AccelerateArgs(8, 2, 1, "chief-0", 2222)),
    (4, {**TWO_NODES, "task": {"type": "workerpool0", "index": 0}}, AccelerateArgs(8, 2, 0, "chief-0", 2222)),
])
def test_accelerate_args(gpus, spec, expected):
    assert accelerate_args(gpus, json.dumps(spec) if spec else None) == expected


def test_multi_gpu_flags():
    flags = AccelerateArgs(8, 2, 1, "chief-0", 2222).as_flags()
    assert flags[:6] == ["--num_processes", "8", "--num_machines", "2", "--machine_rank", "1"]
    assert "--multi_gpu" in flags and flags[-4:] == ["--main_process_ip", "chief-0", "--main_process_port", "2222"]


def test_gpu_requested_without_cuda_refuses():
    with pytest.raises(SystemExit, match="TRAINING_GPU=NVIDIA_L4 is set but no CUDA device"):
        check_gpu({"TRAINING_GPU": "NVIDIA_L4"}, cuda_available=False)
    check_gpu({"TRAINING_GPU": "NVIDIA_L4"}, cuda_available=True)
    check_gpu({}, cuda_available=False)


@pytest.mark.parametrize("minutes, conf", [(30, "timeout=1800,join_timeout=1800"), (5, "timeout=300,join_timeout=300")])
def test_rendezvous_waits_for_late_nodes(minutes, conf):
    flags = AccelerateArgs(2, 2, 1, "chief-0", 2222).as_flags(minutes)
    assert flags[flags.index("--rdzv_conf") + 1] == conf
    assert "--rdzv_conf" not in AccelerateArgs(1, 1, 0, None, None).as_flags(minutes)
