"""Two nodes on CPU (gloo), each started through the image's entry point with a loopback CLUSTER_SPEC.

Each node gets its own output folder, as machines without a shared disk
would: rank 0 alone reads and writes checkpoints, the export and metrics, so
the worker's folder must never appear. The chief also resolves a secret
reference from a loopback Secret Manager, as the image does on Vertex.
"""

import pytest
import torch

from ARR_COC.Training import checkpoint, train
from ARR_COC.Training.fake_secret_manager import FakeSecretManager, serving
from ARR_COC.Training.training_runs import assert_identical, events, exported_selector, two_nodes

VALUE = "wandb-value-0123456789abcdef"  # stands for a real key: must never be printed


def train_two_nodes(root, max_steps: int, environ: dict | None = None) -> dict:
    """Both nodes to the end; returns each node's output by name."""
    finished = two_nodes(root, max_steps, environ)
    for node, (run, code) in finished.items():
        assert code == 0, f"{node} failed:\n{run.log[-4000:]}"
    return {node: run.log for node, (run, _) in finished.items()}


def state_at(root, step: int) -> dict:
    path = root / "chief" / "checkpoints" / checkpoint.folder_name(step) / checkpoint.STATE
    return torch.load(path, weights_only=False)


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


def test_sigterm_to_the_chief_mid_run_saves_on_both_nodes_and_a_rerun_equals_four_straight(straight, tmp_path):
    """A Spot preemption of the chief's VM: SIGTERM reaches the chief's entry point alone; both
    nodes agree on the step to stop at, write one checkpoint together and exit with the
    `preempted` code; the same command again finishes the run as if nothing had happened."""
    straight_root, _, _ = straight
    interrupted = two_nodes(tmp_path, 4, signal_chief_after=1)
    chief, worker = interrupted["chief"][0], interrupted["worker"][0]
    print(f"two nodes: SIGTERM to the chief's exit {chief.signal_to_exit_s:.2f} s")
    for node, (run, code) in interrupted.items():
        assert code == train.exit_code("preempted"), f"{node} exited {code}:\n{run.log[-4000:]}"
    assert chief.signal_to_exit_s < 30
    stopped = [e["step"] for e in events(chief.log) if e.get("event") == "preempted"]
    assert len(stopped) == 1 and 1 <= stopped[0] < 4, chief.log[-2000:]
    assert checkpoint.complete_steps(str(tmp_path / "chief" / "checkpoints"))[-1] == stopped[0]
    assert not (tmp_path / "chief" / "model").exists(), "a preempted run exported"
    logs = train_two_nodes(tmp_path, 4)
    assert any(e.get("event") == "resumed" and e["step"] == stopped[0] for e in events(logs["chief"]))
    assert_identical(state_at(tmp_path, 4), state_at(straight_root, 4))
    assert_identical(exported_selector(tmp_path / "chief" / "model"),
                     exported_selector(straight_root / "chief" / "model"))
    assert not (tmp_path / "worker").exists()
