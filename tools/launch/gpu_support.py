"""The image's start-up check codes, read from ARR_COC/Training/gpu_support.toml.

That file is the one home of what the training image's torch can run and of
the exit code the start-up check gives each failure, with what a relaunch
elsewhere can fix (`blocks`). The launcher carries the file as Bazel data
(//ARR_COC/Training:gpu_support), not the trainer's code, so it stays free of
torch. This module only adds the launcher's wording: the class name as a
user reads it, and what to do about it.
"""

from __future__ import annotations

import dataclasses
import functools
import pathlib
import re
import tomllib

# Beside the launcher in the source tree and in its runfiles alike (no resolve():
# the runfiles tree is what Bazel declared).
DEFAULT_PATH = pathlib.Path(__file__).parent.parent.parent / "ARR_COC" / "Training" / "gpu_support.toml"
BLOCKS = ("gpu", "candidate", "nothing")
# Vertex's wording for a container's exit (gpu_support.toml quotes it).
EXIT_STATUS = re.compile(r"exited with a non-zero status of (\d+)")

# What the user can do about each class; {min_driver}, {cuda} and {arch_list} come from the file.
FIXES = {
    "no_driver": "the host has no usable NVIDIA driver; another candidate's host is tried",
    "driver_too_old": "the host's NVIDIA driver is older than {min_driver} (CUDA {cuda}); "
                      "another candidate's host is tried",
    "gpu_unsupported": "the image's torch has kernels for {arch_list} only; this GPU type is ruled out "
                       "in every region (a GPU of another compute capability, or an image built for it)",
    "too_few_gpus": "the machine showed fewer GPUs than the job asked for; another candidate is tried",
    "shm_too_small": "/dev/shm is too small for the data loader workers; relaunching cannot help: "
                     "lower num_workers in the training config or give the container more shared memory",
    "preempted": "the Spot VM was reclaimed after a complete checkpoint; a relaunch resumes from it",
}


@dataclasses.dataclass(frozen=True)
class ExitCode:
    """One start-up check failure: its name, exit code, what it rules out and the fix."""

    name: str
    code: int
    blocks: str
    fix: str

    @property
    def title(self) -> str:
        return self.name.replace("_", " ")

    def describe(self) -> str:
        """What the user reads: the class, the code and what to do."""
        return f"start-up check: {self.title} (exit {self.code}): {self.fix}"


@dataclasses.dataclass(frozen=True)
class GpuSupport:
    cuda: str
    min_driver: str
    arch_list: tuple[str, ...]
    exit_codes: dict  # exit code -> ExitCode

    def failure(self, message: str) -> ExitCode | None:
        """The start-up check's failure a Vertex job error names, or None (not one of its codes)."""
        found = EXIT_STATUS.search(message)
        return self.exit_codes.get(int(found.group(1))) if found else None


def parse(data: dict) -> GpuSupport:
    """The typed view of the file; a code without a fix, or a bad `blocks`, is an error here."""
    facts = {"cuda": data["cuda"], "min_driver": data["min_driver"], "arch_list": ", ".join(data["arch_list"])}
    codes = {}
    for name, entry in data["exit_codes"].items():
        if entry["blocks"] not in BLOCKS:
            raise ValueError(f"gpu_support.toml: exit_codes.{name}.blocks = {entry['blocks']!r}; want one of {BLOCKS}")
        if name not in FIXES:
            raise ValueError(f"gpu_support.toml: exit_codes.{name} has no fix in tools/launch/gpu_support.py FIXES")
        if entry["code"] in codes:
            raise ValueError(f"gpu_support.toml: exit code {entry['code']} is used twice")
        codes[entry["code"]] = ExitCode(name, int(entry["code"]), entry["blocks"], FIXES[name].format(**facts))
    return GpuSupport(data["cuda"], data["min_driver"], tuple(data["arch_list"]), codes)


@functools.cache
def load(path: pathlib.Path = DEFAULT_PATH) -> GpuSupport:
    with open(path, "rb") as f:
        return parse(tomllib.load(f))
