"""Which mixed precision a config value gives on each GPU, and what the frozen backbone is loaded in."""

import pytest
import torch

from ARR_COC.Training.config import ConfigError
from ARR_COC.Training.train import BACKBONE_DTYPES, mixed_precision

T4, A100, L4, H100, CPU = (7, 5), (8, 0), (8, 9), (9, 0), None


@pytest.mark.parametrize("value, capability, expected", [
    ("auto", T4, "fp16"), ("auto", A100, "bf16"), ("auto", L4, "bf16"),
    ("auto", H100, "bf16"), ("auto", CPU, "no"),
    ("bf16", A100, "bf16"), ("bf16", L4, "bf16"), ("bf16", H100, "bf16"), ("bf16", CPU, "no"),
    ("fp16", T4, "fp16"), ("fp16", H100, "fp16"), ("fp16", CPU, "no"),
    ("no", T4, "no"), ("no", H100, "no"), ("no", CPU, "no"),
])
def test_precision_for_value_and_gpu(value, capability, expected):
    assert mixed_precision(value, capability) == expected


def test_bf16_without_native_bf16_is_refused_with_the_fix():
    with pytest.raises(ConfigError) as error:
        mixed_precision("bf16", T4)
    message = str(error.value)
    assert "this GPU is 7.5" in message and ">= 8.0" in message
    assert "set mixed_precision to auto (fp16 here), fp16 or no" in message


@pytest.mark.parametrize("precision, dtype", [("bf16", torch.bfloat16), ("fp16", torch.float32), ("no", torch.float32)])
def test_backbone_dtype_follows_the_precision(precision, dtype):
    """fp16 keeps fp32 weights (autocast runs the matmuls in fp16, the residual stream stays fp32)."""
    assert BACKBONE_DTYPES[precision] == dtype


def test_every_precision_has_a_backbone_dtype():
    reachable = {mixed_precision(v, c) for v in ("auto", "bf16", "fp16", "no") for c in (A100, CPU)} | {
        mixed_precision(v, T4) for v in ("auto", "fp16", "no")}
    assert reachable == set(BACKBONE_DTYPES)
