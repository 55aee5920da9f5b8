"""Two nodes on CPU (gloo), each started through the image's entry point with a loopback CLUSTER_SPEC.

Each node gets its own output folder, as machines without a shared disk
would: rank 0 alone reads and writes checkpoints, the export and metrics, so
the worker's folder must never appear. The chief also resolves a secret
reference from a loopback Secret Manager, as the image does on Vertex.
"""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest
import torch

from ARR_COC.Training import checkpoint
from ARR_COC.Training.fake_secret_manager import FakeSecretManager, serving

SMALL_RUN = ["--set", "synthetic_train_size=64", "--set", "synthetic_eval_size=8", "--set", "batch_size=4",
             "--set", "gradient_accumulation_steps=2", "--set", "log_every_n_steps=1",
             "--set", "eval_every_n_steps=0", "--set", "save_every_n_steps=3"]
NOT_INHERITED = ("CLUSTER_SPEC", "TRAINING_GPU", "AIP_CHECKPOINT_DIR", "AIP_MODEL_DIR", "AIP_TENSORBOARD_LOG_DIR",
                 "RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "ARR_SECRET_REFS")
VALUE = "wandb-value-0123456789abcdef"  # stands for a real key: must never be printed
NODES = (("workerpool0", "chief"), ("workerpool1", "worker"))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def cluster_spec(port: int, pool: str) -> str:
    """What Vertex sets on each replica: every pool's hosts, and which one this replica is."""
    return json.dumps({"cluster": {"workerpool0": [f"127.0.0.1:{port}"], "workerpool1": [f"127.0.0.1:{port + 1}"]},
                       "task": {"type": pool, "index": 0}, "environment": "cloud"})


def train_two_nodes(root, max_steps: int, environ: dict | None = None) -> dict:
    """Start the chief and the worker node as Vertex would; returns each node's output by name."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in NOT_INHERITED}
    env.update(PYTHONPATH=os.pathsep.join(p for p in sys.path if p), OMP_NUM_THREADS="1", ARR_COC_THREADS="1",
               CUDA_VISIBLE_DEVICES="", **(environ or {}))
    started = {}
    for pool, node in NODES:
        log = root / f"{node}-{max_steps}-steps.log"
        with open(log, "w") as output:
            started[node] = (log, subprocess.Popen(
                [sys.executable, "-m", "ARR_COC.Training.entrypoint", "--max-steps", str(max_steps),
                 "--output-dir", str(root / node), *SMALL_RUN],
                env={**env, "CLUSTER_SPEC": cluster_spec(port, pool)}, stdout=output, stderr=subprocess.STDOUT))
    try:
        for _, process in started.values():
            process.wait(timeout=1200)  # a hang guard, not a measurement
    finally:
        for _, process in started.values():
            if process.poll() is None:
                process.kill()
    logs = {node: log.read_text() for node, (log, _) in started.items()}
    for node, (_, process) in started.items():
        assert process.returncode == 0, f"{node} failed:\n{logs[node][-4000:]}"
    return logs


def events(log: str) -> list[dict]:
    return [json.loads(line) for line in log.splitlines() if line.startswith("{")]


def state_at(root, step: int) -> dict:
    path = root / "chief" / "checkpoints" / checkpoint.folder_name(step) / checkpoint.STATE
    return torch.load(path, weights_only=False)


def assert_identical(a, b, where: str = "state") -> None:
    """Bit-identical nested states: tensors, numpy arrays, dicts, lists and plain values."""
    assert type(a) is type(b), where
    if isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and torch.equal(a, b), where
    elif isinstance(a, np.ndarray):
        assert np.array_equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            assert_identical(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for index, (x, y) in enumerate(zip(a, b)):
            assert_identical(x, y, f"{where}[{index}]")
    else:
        assert a == b, where


@pytest.fixture(scope="module")
def straight(tmp_path_factory, pretrained_backbone_path):
    """4 steps straight, saving at 3 and 4; a secret reference resolved from a loopback Secret Manager."""
    root = tmp_path_factory.mktemp("straight")
    fake = FakeSecretManager(secrets={"projects/p/secrets/wandb": [VALUE.encode()]})
    with serving(fake) as url:
        logs = train_two_nodes(root, 4, {"ARR_SECRET_REFS": "WANDB_API_KEY=projects/p/secrets/wandb",
                                         "ARR_SECRETMANAGER_ENDPOINT": url})
    return root, logs, fake


def test_both_ranks_hold_identical_weights_after_3_steps(straight):
    root, _, _ = straight
    at_3, at_4 = state_at(root, 3), state_at(root, 4)
    ranks = at_3["processes"]
    assert len(ranks) == 2
    assert [rank["selector_sha256"] for rank in ranks] == [checkpoint.weights_digest(at_3["selector"])] * 2
    assert checkpoint.weights_digest(at_4["selector"]) != checkpoint.weights_digest(at_3["selector"])
    assert not torch.equal(ranks[0]["sampling"], ranks[1]["sampling"]), "each rank draws its own samples"


def test_only_the_chief_writes_one_complete_checkpoint_per_save(straight):
    root, logs, _ = straight
    checkpoints = root / "chief" / "checkpoints"
    assert sorted(p.name for p in checkpoints.iterdir()) == ["step-00000003", "step-00000004"]
    for folder in checkpoints.iterdir():
        assert sorted(p.name for p in folder.iterdir()) == [checkpoint.MARKER, checkpoint.STATE]
    saves = [e for e in events(logs["chief"]) if e.get("event") == "checkpoint"]
    assert [(e["step"], e["processes"]) for e in saves] == [(3, 2), (4, 2)]
    assert (root / "chief" / "model" / "selector.safetensors").exists()
    assert [e["step"] for e in events(logs["chief"]) if "loss" in e] == [1, 2, 3, 4]
    assert not (root / "worker").exists(), "the worker wrote outputs"
    assert not [e for e in events(logs["worker"]) if "step" in e], "the worker logged metrics"


def test_secret_reference_resolved_by_every_process_value_never_printed(straight):
    _, logs, fake = straight
    assert fake.requests == ["/v1/projects/p/secrets/wandb/versions/latest:access"] * 2
    assert {"event": "secrets", "set": ["WANDB_API_KEY"]} in events(logs["chief"])
    assert VALUE not in logs["chief"] and VALUE not in logs["worker"]


def test_two_steps_resume_two_steps_equals_four_straight(straight, tmp_path):
    straight_root, _, _ = straight
    train_two_nodes(tmp_path, 2)
    assert checkpoint.complete_steps(str(tmp_path / "chief" / "checkpoints")) == [2]
    logs = train_two_nodes(tmp_path, 4)
    assert any(e.get("event") == "resumed" and e["step"] == 2 for e in events(logs["chief"]))
    assert checkpoint.complete_steps(str(tmp_path / "chief" / "checkpoints")) == [2, 3, 4]
    assert_identical(state_at(tmp_path, 4), state_at(straight_root, 4))
    assert not (tmp_path / "worker").exists()
