"""What the training image's torch can run, read from ARR_COC/Training/gpu_support.toml.

That file is the one home of the image's CUDA facts (its torch and CUDA
version, the oldest driver, the compiled architectures); the trainer's start-up
check reads it inside the image, the launcher reads it here to refuse a GPU
before anything is pushed. The launcher carries the file as a data dependency
(//ARR_COC/Training:gpu_support), never torch: it is found beside the
launcher's own package in the source tree and in Bazel's runfiles alike.
"""

from __future__ import annotations

import dataclasses
import functools
import pathlib
import re
import tomllib

from tools.launch.errors import TableError

# Not resolved: under Bazel the runfiles hold the file because the launcher
# depends on it, so a missing dependency fails here instead of reading the source tree.
GPU_SUPPORT = pathlib.Path(__file__).parent.parent.parent / "ARR_COC" / "Training" / "gpu_support.toml"
_ARCH = re.compile(r"^(sm|compute)_(\d+)(\d)([af]?)$")


@dataclasses.dataclass(frozen=True)
class ImageSupport:
    torch: str
    cuda: str
    min_driver: str
    min_driver_cuda: int
    arch_list: tuple[str, ...]

    def as_json(self) -> dict:
        """The plan's `image_cuda` field."""
        return {"torch": self.torch, "cuda": self.cuda, "min_driver": self.min_driver,
                "min_driver_cuda": self.min_driver_cuda, "arch_list": list(self.arch_list)}


def parse_arch(arch: str) -> tuple[str, int, int, str]:
    """"sm_86" -> ("sm", 8, 6, ""); "compute_90" -> ("compute", 9, 0, ""); "sm_90a" -> (.., "a")."""
    m = _ARCH.match(arch)
    if not m:
        raise TableError(f"gpu_support.toml: arch_list entry {arch!r} is not sm_NN or compute_NN")
    return m.group(1), int(m.group(2)), int(m.group(3)), m.group(4)


def load_support(path: pathlib.Path | str = GPU_SUPPORT) -> ImageSupport:
    try:
        with open(path, "rb") as f:
            raw = tomllib.load(f)
    except FileNotFoundError:
        raise TableError(f"{path}: not found; the launcher needs //ARR_COC/Training:gpu_support "
                         "as a data dependency") from None
    missing = [k for k in ("torch", "cuda", "min_driver", "min_driver_cuda", "arch_list") if k not in raw]
    if missing:
        raise TableError(f"{path}: lacks {', '.join(missing)}")
    arch_list = tuple(raw["arch_list"])
    for arch in arch_list:
        parse_arch(arch)
    return ImageSupport(torch=str(raw["torch"]), cuda=str(raw["cuda"]), min_driver=str(raw["min_driver"]),
                        min_driver_cuda=int(raw["min_driver_cuda"]), arch_list=arch_list)


@functools.lru_cache(maxsize=1)
def default_support() -> ImageSupport:
    """gpu_support.toml, read once per process."""
    return load_support(GPU_SUPPORT)


def capability(text: str) -> tuple[int, int]:
    """ "8.9" -> (8, 9)."""
    major, _, minor = text.partition(".")
    return int(major), int(minor)


def runs_capability(cap: str, arch_list) -> bool:
    """Whether kernels compiled for ARCH_LIST load on a GPU of compute capability CAP.

    NVIDIA's binary compatibility rule (CUDA C++ Programming Guide, "Binary
    Compatibility"): SASS for sm_XY runs on X.Z for Z >= Y, same major only; an
    arch-specific sm_XYa only on X.Y itself. PTX (compute_XY) is JIT-compiled by
    the driver for any capability >= X.Y. So sm_86 covers the L4's 8.9.
    """
    major, minor = capability(cap)
    for arch in arch_list:
        kind, a_major, a_minor, suffix = parse_arch(arch)
        if kind == "compute" and (major, minor) >= (a_major, a_minor):
            return True
        if kind == "sm" and a_major == major and (a_minor == minor if suffix == "a" else a_minor <= minor):
            return True
    return False


def runs(gpu, support: ImageSupport) -> tuple[bool, str]:
    """(whether the image runs GPU, why), for a tables.Gpu: the reason names its capability and the arch list."""
    ptx = any(a.startswith("compute_") for a in support.arch_list)
    archs = " ".join(support.arch_list) + ("" if ptx else " (no PTX)")
    cap = gpu.compute_capability
    if runs_capability(cap, support.arch_list):
        return True, f"compute capability {cap}; the image's torch {support.torch} has {archs}"
    return False, (f"compute capability {cap}: the image's torch {support.torch} has kernels only for "
                   f"{archs} (ARR_COC/Training/gpu_support.toml)")


def runnable(tables, support: ImageSupport) -> list[str]:
    """The GPU names of TABLES the image runs, in table order (for error messages)."""
    return [g.name for g in tables.gpus.values() if runs_capability(g.compute_capability, support.arch_list)]
