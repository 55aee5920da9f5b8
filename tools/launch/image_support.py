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

import functools

from ARR_COC.Training.startup_check import SUPPORT_FILE, Support, capability, load_support
from tools.launch.errors import TableError

ImageSupport = Support


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
    """gpu_support.toml, read once per process."""
    return load(SUPPORT_FILE)


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
