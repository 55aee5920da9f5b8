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
