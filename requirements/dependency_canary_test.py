"""The locked dependency set imports under Bazel, CUDA stack included.

torch from PyPI is the CUDA build; under Bazel's runfiles its RPATH to the
nvidia-* wheels breaks, and torch's own fallback must still find every library
on sys.path. This canary fails first if a lock or rules_python change breaks that.
"""

import ctypes
import glob
import os
import sys

import pytest


def test_torch_is_the_cuda_build_and_computes_on_cpu():
    import torch

    assert torch.version.cuda, "the lock must carry PyPI's CUDA build of torch, the one the image ships"
    assert (torch.ones(2, 3) @ torch.ones(3, 2)).sum().item() == 12.0


@pytest.mark.parametrize("library", ["libcudart.so.*", "libcublas.so.*", "libcudnn.so.*", "libnccl.so.*"])
def test_cuda_libraries_resolve_from_the_locked_wheels(library):
    import torch  # noqa: F401  (loads the libraries it links first)

    found = [p for d in sys.path for p in glob.glob(os.path.join(d, "nvidia", "**", library), recursive=True)]
    assert found, f"{library} not found in any nvidia-* wheel on sys.path"
    ctypes.CDLL(found[0])


def test_accelerate_and_qwen3_vl_classes_import():
    import accelerate
    from transformers import Qwen3VLConfig, Qwen3VLForConditionalGeneration

    assert accelerate.Accelerator
    assert Qwen3VLConfig().model_type == "qwen3_vl"
    assert Qwen3VLForConditionalGeneration.__name__ == "Qwen3VLForConditionalGeneration"


def test_vertex_ai_client_imports():
    from google.cloud import aiplatform_v1

    assert aiplatform_v1.JobServiceClient
    assert aiplatform_v1.AcceleratorType.NVIDIA_L4 == 11
