"""The cached backbone file: equal weights must be equal bytes, whichever process writes them."""

import hashlib
import subprocess
import sys

WRITE = """
import sys, torch
from ARR_COC.Training.pretrain_tiny import save_weights
torch.manual_seed(0)
save_weights({"a": torch.randn(3, 4), "b": torch.arange(5)}, sys.argv[1],
             {"steps": 600, "seed": 1234, "all_token_accuracy": 0.84})
"""


def test_two_processes_write_the_same_bytes(tmp_path):
    """Several metadata keys came out in per-process hash order (two sha256 for one backbone)."""
    digests = set()
    for run in range(4):
        path = tmp_path / f"weights_{run}.safetensors"
        subprocess.run([sys.executable, "-c", WRITE, str(path)], check=True, env={"PYTHONPATH": ":".join(sys.path)})
        digests.add(hashlib.sha256(path.read_bytes()).hexdigest())
    assert len(digests) == 1


def test_the_short_forward_gives_the_stock_logits():
    """Pretraining trains through language_logits; the selector and the benchmark use the stock forward."""
    import torch

    from ARR_COC.backbone import load_backbone
    from ARR_COC.Training.pretrain_tiny import IMAGE_SIZE, batch_inputs, language_logits
    from ARR_COC.Training.synthetic import SyntheticVQA

    backbone = load_backbone("tiny", IMAGE_SIZE, seed=3)
    samples = SyntheticVQA(4, 0, IMAGE_SIZE, backbone.cell_pixels)
    inputs = batch_inputs(backbone, [samples[i] for i in range(4)])
    with torch.no_grad():
        stock = backbone.model(**inputs, use_cache=False).logits
    short = language_logits(backbone.model, inputs)
    assert stock.abs().max() > 0.1
    torch.testing.assert_close(short, stock, rtol=1e-5, atol=1e-5)
