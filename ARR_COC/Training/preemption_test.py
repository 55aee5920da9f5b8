"""SIGTERM to the image's entry point mid-run (one process; two nodes: multinode_test): it finishes
the optimizer step, writes a checkpoint, exits with gpu_support.toml's `preempted` code well
inside a Spot VM's 30 s notice, and the same command again ends bit-identical to a run never
interrupted. Also: time-based checkpoints, the container's exit codes, the process group's
timeout and the loader's worker count (the launcher's rendezvous flags: entrypoint_test)."""

import datetime

import pytest

from ARR_COC.Training import checkpoint, entrypoint, train
from ARR_COC.Training.config import load_config, loader_workers
from ARR_COC.Training.training_runs import assert_identical, events, exported_selector, one_node

STEPS = 6  # one process: 8 samples a step, an epoch of 64 samples is 8 steps


def final_state(root) -> dict:
    return checkpoint.load_latest(str(root / "checkpoints"))


def test_sigterm_mid_run_saves_exits_preempted_and_a_rerun_equals_the_straight_run(tmp_path, pretrained_backbone_path):
    straight, code = one_node(tmp_path / "straight", STEPS)
    assert code == 0, straight.log[-4000:]
    interrupted, code = one_node(tmp_path / "interrupted", STEPS, signal_after=2)
    print(f"one process: SIGTERM to exit {interrupted.signal_to_exit_s:.2f} s")
    assert code == train.exit_code("preempted"), f"exited {code}:\n{interrupted.log[-4000:]}"
    assert interrupted.signal_to_exit_s < 30
    stopped = [e for e in events(interrupted.log) if e.get("event") == "preempted"]
    assert len(stopped) == 1 and 2 <= stopped[0]["step"] < STEPS, interrupted.log[-2000:]
    assert checkpoint.complete_steps(str(tmp_path / "interrupted" / "checkpoints"))[-1] == stopped[0]["step"]
    assert not (tmp_path / "interrupted" / "model").exists(), "a preempted run exported"
    resumed, code = one_node(tmp_path / "interrupted", STEPS)
    assert code == 0, resumed.log[-4000:]
    assert any(e.get("event") == "resumed" and e["step"] == stopped[0]["step"] for e in events(resumed.log))
    assert final_state(tmp_path / "interrupted")["position"]["step"] == STEPS
    assert_identical(final_state(tmp_path / "interrupted"), final_state(tmp_path / "straight"))
    assert_identical(exported_selector(tmp_path / "interrupted" / "model"),
                     exported_selector(tmp_path / "straight" / "model"))


def test_checkpoints_every_few_minutes_as_well(tmp_path, pretrained_backbone_path):
    """save_every_minutes alone (no step interval): a few milliseconds pass in every step, so each saves."""
    run, code = one_node(tmp_path / "timed", 3, extra=["--set", "save_every_n_steps=0",
                                                       "--set", "save_every_minutes=0.0001"])
    assert code == 0, run.log[-4000:]
    assert checkpoint.complete_steps(str(tmp_path / "timed" / "checkpoints")) == [1, 2, 3]


PREEMPTED = "preempted"  # stands for train.exit_code("preempted") in the table below


@pytest.mark.parametrize("launcher_code, marker, expected", [
    (0, False, 0),
    (1, True, PREEMPTED),  # the launcher's own failure code after a child exited with `preempted`
    (1, False, 1),
    (2, False, 2),
    (-9, False, 137),      # killed by SIGKILL, as a shell reports it
    (-15, True, PREEMPTED),
])
def test_container_exit_code(launcher_code, marker, expected):
    code = train.exit_code("preempted")
    assert entrypoint.container_exit_code(launcher_code, marker, code) == (code if expected == PREEMPTED else expected)


def test_preempted_code_is_gpu_support_tomls():
    import os
    import tomllib

    with open(os.path.join(os.path.dirname(train.__file__), "gpu_support.toml"), "rb") as handle:
        assert train.exit_code("preempted") == tomllib.load(handle)["exit_codes"]["preempted"]["code"]


@pytest.mark.parametrize("environ, minutes", [({}, 30), ({"RENDEZVOUS_TIMEOUT_MINUTES": "90"}, 90)])
def test_process_group_waits_as_long(environ, minutes):
    config = load_config(None, environ=environ)
    assert config.rendezvous_timeout_minutes == minutes
    assert train.process_group_kwargs(config).to_kwargs() == {"timeout": datetime.timedelta(minutes=minutes)}


@pytest.mark.parametrize("setting, cpus, per_node, workers", [
    ("auto", 2, 1, 1),     # this machine: one worker, one CPU left to the step
    ("auto", 2, 2, 0),     # two processes on two CPUs: each loads its own batches
    ("auto", 8, 1, 7),     # g2-standard-8, one L4
    ("auto", 12, 1, 8),    # a2-highgpu-1g: capped
    ("auto", 96, 8, 8),    # a2-highgpu-8g: 12 CPUs a GPU, capped
    ("auto", 1, 1, 0),
    ("0", 96, 8, 0),       # set: taken as it is
    ("3", 2, 1, 3),
])
def test_loader_workers(setting, cpus, per_node, workers):
    assert loader_workers(setting, cpus, per_node) == workers
