"""What the training image's torch can run, for the launcher's plan.

ARR_COC/Training/gpu_support.toml is the one home of the image's CUDA facts
(torch and CUDA version, the oldest driver, the compiled architectures), and
ARR_COC/Training/startup_check.py (stdlib only) holds the one reader and the
one compatibility rule: the trainer applies them to the GPUs it finds inside
the image, the launcher to the GPU it is asked for, before anything is
pushed. The launcher depends on that small library, never on torch
(launch_deps_test checks).
"""

from __future__ import annotations

import dataclasses
import functools
import re

from ARR_COC.Training.startup_check import SUPPORT_FILE, Support, capability, load_support
from tools.launch.errors import TableError

ImageSupport = Support
# Vertex's wording for a container's exit (gpu_support.toml quotes it).
EXIT_STATUS = re.compile(r"exited with a non-zero status of (\d+)")
# What the user can do about each start-up check failure; {min_driver}, {cuda}
# and {arch_list} come from the file. A code without one fails `load`.
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
class StartupFailure:
    """One start-up check failure as the launcher reports it: name, exit code, what it rules out, the fix."""

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


def startup_failures(support: Support) -> dict[int, StartupFailure]:
    """Exit code -> StartupFailure for every code of the file; a code without a fix text is a TableError."""
    facts = {"cuda": support.cuda, "min_driver": support.min_driver, "arch_list": ", ".join(support.arch_list)}
    unknown = [name for name in support.exit_codes if name not in FIXES]
    if unknown:
        raise TableError(f"gpu_support.toml: exit_codes.{', '.join(unknown)} has no fix in "
                         "tools/launch/image_support.py FIXES")
    return {e.code: StartupFailure(name, e.code, e.blocks, FIXES[name].format(**facts))
            for name, e in support.exit_codes.items()}


def startup_failure(message: str, support: Support | None = None) -> StartupFailure | None:
    """The start-up check failure a Vertex job error names by its exit code, or None (not one of its codes)."""
    found = EXIT_STATUS.search(message)
    return startup_failures(support or default_support()).get(int(found.group(1))) if found else None


def load(path=SUPPORT_FILE) -> Support:
    """gpu_support.toml, or a TableError that says what is wrong with it."""
    try:
        return load_support(path)
    except FileNotFoundError:
        raise TableError(f"{path}: not found; the launcher needs //ARR_COC/Training:gpu_support "
                         "as a dependency") from None
    except ValueError as e:
        raise TableError(str(e)) from None


@functools.lru_cache(maxsize=1)
def default_support() -> Support:
    """gpu_support.toml, read once per process; every exit code must have its fix."""
    support = load(SUPPORT_FILE)
    startup_failures(support)
    return support


def runs_capability(cap: str, support: Support) -> bool:
    """Whether the image's kernels load on a GPU of compute capability CAP ("8.9")."""
    return support.runs(capability(cap))


def runs(gpu, support: Support) -> tuple[bool, str]:
    """(whether the image runs GPU, why), for a tables.Gpu: the reason names its capability and the arch list."""
    cap = gpu.compute_capability
    if runs_capability(cap, support):
        return True, f"compute capability {cap}; the image's torch {support.torch} has {support.describe_archs()}"
    return False, (f"compute capability {cap}: the image's torch {support.torch} has kernels only for "
                   f"{support.describe_archs()} (ARR_COC/Training/gpu_support.toml)")


def runnable(tables, support: Support) -> list[str]:
    """The GPU names of TABLES the image runs, in table order (for error messages)."""
    return [g.name for g in tables.gpus.values() if runs_capability(g.compute_capability, support)]
