"""Tests' side of real training processes: the image's entry point started as Vertex would start it
(one node, or one node per replica with a loopback CLUSTER_SPEC), interrupted with SIGTERM on cue,
and bit-for-bit comparison of what the runs left behind."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

import numpy as np
import torch

ENTRY_POINT = [sys.executable, "-m", "ARR_COC.Training.entrypoint"]
SMALL_RUN = ["--set", "synthetic_train_size=64", "--set", "synthetic_eval_size=8", "--set", "batch_size=4",
             "--set", "gradient_accumulation_steps=2", "--set", "log_every_n_steps=1",
             "--set", "eval_every_n_steps=0", "--set", "save_every_n_steps=3"]
NOT_INHERITED = ("CLUSTER_SPEC", "TRAINING_GPU", "AIP_CHECKPOINT_DIR", "AIP_MODEL_DIR", "AIP_TENSORBOARD_LOG_DIR",
                 "RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT",
                 "ARR_SECRET_REFS")
NODES = (("workerpool0", "chief"), ("workerpool1", "worker"))
HANG_GUARD_S = 1200  # not a measurement: a run that hangs fails instead of blocking the suite


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def cluster_spec(port: int, pool: str) -> str:
    """What Vertex sets on each replica: every pool's hosts, and which one this replica is."""
    return json.dumps({"cluster": {"workerpool0": [f"127.0.0.1:{port}"], "workerpool1": [f"127.0.0.1:{port + 1}"]},
                       "task": {"type": pool, "index": 0}, "environment": "cloud"})


def cpu_environment(environ: dict | None = None) -> dict:
    """This test's environment without Vertex's or torchrun's variables, one thread, no GPU."""
    env = {k: v for k, v in os.environ.items() if k not in NOT_INHERITED}
    env.update(PYTHONPATH=os.pathsep.join(p for p in sys.path if p), OMP_NUM_THREADS="1", ARR_COC_THREADS="1",
               CUDA_VISIBLE_DEVICES="", **(environ or {}))
    return env


def events(log: str) -> list[dict]:
    return [json.loads(line) for line in log.splitlines() if line.startswith("{")]


def step_records(log: str) -> list[int]:
    return [e["step"] for e in events(log) if "loss" in e]


@dataclass
class Run:
    """A started entry point whose output is read as it comes; SIGTERM once it has logged `signal_after` steps."""
    command: list[str]
    env: dict
    log_path: str
    signal_after: int | None = None
    signalled_at: float | None = None
    exited_at: float | None = None
    lines: list[str] = field(default_factory=list)

    def start(self) -> "Run":
        self.process = subprocess.Popen(self.command, env=self.env, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True)
        self.reader = threading.Thread(target=self.read, daemon=True)
        self.reader.start()
        return self

    def read(self) -> None:
        with open(self.log_path, "w") as log:
            for line in self.process.stdout:
                self.lines.append(line)
                log.write(line)
                log.flush()
                due = self.signal_after and max(step_records(line), default=0) >= self.signal_after
                if due and self.signalled_at is None:
                    self.signalled_at = time.monotonic()
                    self.process.send_signal(signal.SIGTERM)

    def wait(self) -> int:
        try:
            code = self.process.wait(timeout=HANG_GUARD_S)
        finally:
            if self.process.poll() is None:
                self.process.kill()
        self.exited_at = time.monotonic()
        self.reader.join(timeout=60)  # loader workers may hold the pipe a moment longer
        return code

    @property
    def log(self) -> str:
        return "".join(self.lines)

    @property
    def signal_to_exit_s(self) -> float:
        return self.exited_at - self.signalled_at


def one_node(root, max_steps: int, signal_after: int | None = None, extra: list[str] = ()) -> tuple[Run, int]:
    """The entry point on this machine alone (one process, trained in the entry point's own process)."""
    run = Run([*ENTRY_POINT, "--max-steps", str(max_steps), "--output-dir", str(root), *SMALL_RUN, *extra],
              cpu_environment(), str(root) + f"-{max_steps}-steps.log", signal_after).start()
    return run, run.wait()


def two_nodes(root, max_steps: int, environ: dict | None = None, signal_chief_after: int | None = None,
              extra: list[str] = ()) -> dict[str, tuple[Run, int]]:
    """The chief and the worker node as Vertex starts them (each with its own output folder, as
    machines without a shared disk); SIGTERM, when asked, reaches the chief alone, as a Spot
    preemption of its VM would. Returns each node's run and exit code by name."""
    port = free_port()
    env = cpu_environment(environ)
    runs = {}
    for pool, node in NODES:
        runs[node] = Run([*ENTRY_POINT, "--max-steps", str(max_steps), "--output-dir", str(root / node),
                          *SMALL_RUN, *extra], {**env, "CLUSTER_SPEC": cluster_spec(port, pool)},
                         str(root / f"{node}-{max_steps}-steps.log"),
                         signal_chief_after if node == "chief" else None).start()
    try:
        return {node: (run, run.wait()) for node, run in runs.items()}
    finally:
        for run in runs.values():
            if run.process.poll() is None:
                run.process.kill()


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


def exported_selector(model_dir) -> dict:
    from safetensors.torch import load_file

    return load_file(os.path.join(model_dir, "selector.safetensors"))
