"""The smoke run's result: training throughput and peak memory, as one JSON line and smoke.json.

`launch smoke` runs configs/smoke_gpu.toml on the GPU it would train on and
reads smoke.json back from the job's output folder, so the figures travel
as a file, not as a log line to scrape. The first step is left out of the
throughput when there are more (CUDA context, allocator warm-up and kernel
selection all land there).
"""

from __future__ import annotations

import json
import resource
import sys
import time

from ARR_COC import storage
from ARR_COC.Training import startup_check

FILE = "smoke.json"


class StepTimer:
    """Wall time and samples of each optimizer step, from the moment it is started."""

    def __init__(self, clock=time.perf_counter):
        self.clock, self.last, self.steps = clock, clock(), []

    def step(self, samples: int) -> None:
        now = self.clock()
        self.steps.append((now - self.last, samples))
        self.last = now

    def samples_per_s(self) -> float:
        timed = self.steps[1:] or self.steps
        seconds = sum(s for s, _ in timed)
        return sum(n for _, n in timed) / seconds if seconds > 0 else 0.0


def peak_memory_bytes(cuda: bool) -> int:
    """torch.cuda.max_memory_allocated on a GPU, else the process's peak resident set (Linux: KiB)."""
    if cuda:
        import torch

        return int(torch.cuda.max_memory_allocated())
    scale = 1 if sys.platform == "darwin" else 1024
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale)


def device_name(cuda: bool) -> str:
    if cuda:
        import torch

        return torch.cuda.get_device_name(0)
    return "cpu"


def report(timer: StepTimer, cuda: bool, environ) -> dict:
    """The figures, the image the job ran (ARR_IMAGE, set by the launcher: `launch smoke` refuses
    a smoke.json of another image, a reused run name's older file) and the start-up check's report."""
    return {"event": "smoke", "samples_per_s": round(timer.samples_per_s(), 4),
            "peak_gpu_memory_bytes": peak_memory_bytes(cuda), "steps": len(timer.steps),
            "device": device_name(cuda), "image": environ.get("ARR_IMAGE", ""),
            "startup_check": startup_check.passed_report(environ)}


def output_folder(output_dir: str, environ) -> str:
    """The run's output folder: AIP_MODEL_DIR's parent on Vertex (the job's base output directory)."""
    model_dir = environ.get("AIP_MODEL_DIR")
    if model_dir:
        return model_dir.rstrip("/").rsplit("/", 1)[0]
    return output_dir


def write(folder: str, result: dict) -> str:
    """smoke.json under FOLDER (local, gs://, memory://); returns its location."""
    storage.write_files(folder, {FILE: (json.dumps(result, sort_keys=True) + "\n").encode()})
    return storage.join(folder, FILE)
