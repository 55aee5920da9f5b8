"""The image's start-up check: can this host run this image's torch on the GPUs the job paid for?

It runs first in the entry point, before torch is imported and before
anything is downloaded, and takes a second or less. It asks the NVIDIA
driver directly (`libcuda.so.1` through ctypes, found the way torch finds
it: the loader path, which the image points at Vertex's driver mount
/usr/local/nvidia/lib64), prints one JSON line with what it found, and on a
host that cannot run the job exits with a code of its own from
gpu_support.toml, so the launcher's supervision knows from Vertex's "exited
with a non-zero status of N" what failed and what to block. Without it, a
too-old driver makes torch report no GPU and the job downloads the model,
then trains on the CPU or dies late.

    python -m ARR_COC.Training.startup_check     # prints the report; exit 0 or a failure code
"""

from __future__ import annotations

import ctypes
import dataclasses
import json
import os
import pathlib
import re
import sys
import tomllib

SUPPORT_FILE = pathlib.Path(__file__).resolve().parent / "gpu_support.toml"
DRIVER_LIBRARY = "libcuda.so.1"
NVML_LIBRARY = "libnvidia-ml.so.1"
# cuDeviceGetAttribute: CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR / _MINOR.
CAPABILITY_MAJOR, CAPABILITY_MINOR = 75, 76
NATIVE_BF16 = (8, 0)  # Ampere and newer have bf16 tensor cores; older GPUs emulate it
# What a data loader worker puts through /dev/shm per sample at IMAGE px: the
# uint8 image (3 bytes a pixel) and the float32 patches Qwen3-VL's processor
# makes, each pixel twice (temporal patch 2): 3 + 3 x 2 x 4 = 27 bytes a pixel.
SHM_BYTES_PER_PIXEL = 27
PREFETCH_FACTOR = 2  # torch DataLoader's default: batches in flight per worker
SHM_HEADROOM = 2.0
REPORT_ENV = "ARR_STARTUP_CHECK"  # a passing check's JSON line, for the processes it starts


BLOCKS = ("gpu", "candidate", "nothing")


@dataclasses.dataclass(frozen=True)
class ExitCode:
    code: int
    blocks: str  # gpu | candidate | nothing: what the launcher rules out on this failure


@dataclasses.dataclass(frozen=True)
class Support:
    """gpu_support.toml: what the image's torch runs on."""

    torch: str
    cuda: str
    min_driver_cuda: int
    min_driver: str
    arch_list: tuple[str, ...]
    exit_codes: dict  # failure name -> ExitCode

    def runs(self, capability: tuple[int, int]) -> bool:
        """Whether the wheel's kernels load on a GPU of this compute capability.

        NVIDIA's binary compatibility rule (CUDA C++ Programming Guide, "Binary
        Compatibility"): SASS for sm_XY runs on X.Z for Z >= Y, same major only
        (sm_86 serves an L4's 8.9); an arch-specific sm_XYa only on X.Y itself;
        PTX (compute_XY) is JIT-compiled by the driver for anything >= X.Y.
        """
        for kind, major, minor, suffix in map(parse_arch, self.arch_list):
            if kind == "compute" and capability >= (major, minor):
                return True
            if kind == "sm" and major == capability[0] and (
                    minor == capability[1] if suffix == "a" else minor <= capability[1]):
                return True
        return False

    @property
    def has_ptx(self) -> bool:
        return any(arch.startswith("compute_") for arch in self.arch_list)

    def describe_archs(self) -> str:
        """"sm_75 sm_80 ... (no PTX)", for messages."""
        return " ".join(self.arch_list) + ("" if self.has_ptx else " (no PTX)")

    def as_json(self) -> dict:
        """What the launcher's plan shows of the image (its `image_cuda` field)."""
        return {"torch": self.torch, "cuda": self.cuda, "min_driver": self.min_driver,
                "min_driver_cuda": self.min_driver_cuda, "arch_list": list(self.arch_list)}


ARCH = re.compile(r"^(sm|compute)_(\d+)(\d)([af]?)$")


def parse_arch(arch: str) -> tuple[str, int, int, str]:
    """"sm_86" -> ("sm", 8, 6, ""); "compute_90" -> ("compute", 9, 0, ""); "sm_90a" -> ("sm", 9, 0, "a")."""
    match = ARCH.match(arch)
    if not match:
        raise ValueError(f"gpu_support.toml: arch_list entry {arch!r} is not sm_NN or compute_NN")
    return match.group(1), int(match.group(2)), int(match.group(3)), match.group(4)


def capability(text: str) -> tuple[int, int]:
    """"8.9" -> (8, 9)."""
    major, _, minor = text.partition(".")
    return int(major), int(minor)


def load_support(path: pathlib.Path | str = SUPPORT_FILE) -> Support:
    """gpu_support.toml, checked: a missing key or a malformed arch is a ValueError naming it."""
    with open(path, "rb") as f:
        data = tomllib.load(f)
    missing = [k for k in ("torch", "cuda", "min_driver", "min_driver_cuda", "arch_list", "exit_codes") if k not in data]
    if missing:
        raise ValueError(f"{path}: lacks {', '.join(missing)}")
    for arch in data["arch_list"]:
        parse_arch(arch)
    codes = {name: ExitCode(int(spec["code"]), spec["blocks"]) for name, spec in data["exit_codes"].items()}
    for name, entry in codes.items():
        if entry.blocks not in BLOCKS:
            raise ValueError(f"{path}: exit_codes.{name}.blocks = {entry.blocks!r}; want one of {', '.join(BLOCKS)}")
    numbers = [entry.code for entry in codes.values()]
    if len(set(numbers)) != len(numbers):
        raise ValueError(f"{path}: an exit code is used twice ({sorted(numbers)})")
    return Support(str(data["torch"]), str(data["cuda"]), int(data["min_driver_cuda"]), str(data["min_driver"]),
                   tuple(data["arch_list"]), codes)


class CheckFailed(Exception):
    """The host cannot run this job; `name` is an [exit_codes] entry, the message names the fix."""

    def __init__(self, name: str, message: str):
        super().__init__(message)
        self.name = name


def cuda_version_text(version: int) -> str:
    """cuDriverGetVersion's 13000 as "13.0"."""
    return f"{version // 1000}.{version % 1000 // 10}"


def loaded_path(name: str) -> str | None:
    """The file the dynamic loader mapped for library NAME (from /proc/self/maps)."""
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                path = line.split(maxsplit=5)[-1].strip()
                if os.path.basename(path) == name:
                    return path
    except OSError:
        pass
    return None


def searched_paths(environ) -> list[str]:
    """Where the loader looks for the driver: LD_LIBRARY_PATH, then the system's cache."""
    return [p for p in environ.get("LD_LIBRARY_PATH", "").split(":") if p] + ["the ld.so cache (/etc/ld.so.cache)"]


def driver_release() -> str | None:
    """The driver release users see in nvidia-smi ("580.95.05"), from NVML or /proc; None if neither says."""
    try:
        nvml = ctypes.CDLL(NVML_LIBRARY)
        buffer = ctypes.create_string_buffer(96)
        if nvml.nvmlInit_v2() == 0 and nvml.nvmlSystemGetDriverVersion(buffer, 96) == 0:
            return buffer.value.decode()
    except (OSError, AttributeError):
        pass
    try:
        with open("/proc/driver/nvidia/version") as f:
            words = f.readline().split()
        return next((w for w in words if w[:1].isdigit() and "." in w), None)
    except OSError:
        return None


def probe_driver() -> dict:
    """What libcuda.so.1 says about the driver and the visible GPUs; {"driver": None} without one."""
    try:
        cuda = ctypes.CDLL(DRIVER_LIBRARY)
    except OSError:
        return {"driver": None}
    version = ctypes.c_int(0)
    cuda.cuDriverGetVersion(ctypes.byref(version))
    found = {"driver": loaded_path(DRIVER_LIBRARY) or DRIVER_LIBRARY, "driver_cuda": version.value,
             "driver_release": driver_release(), "gpus": []}
    status = cuda.cuInit(0)
    if status != 0:
        found["cu_init_error"] = status  # e.g. 100: no device; 35/803/804: driver and runtime mismatch
        return found
    count = ctypes.c_int(0)
    cuda.cuDeviceGetCount(ctypes.byref(count))
    for ordinal in range(count.value):
        device, major, minor = ctypes.c_int(0), ctypes.c_int(0), ctypes.c_int(0)
        name = ctypes.create_string_buffer(256)
        cuda.cuDeviceGet(ctypes.byref(device), ordinal)
        cuda.cuDeviceGetName(name, 256, device)
        cuda.cuDeviceGetAttribute(ctypes.byref(major), CAPABILITY_MAJOR, device)
        cuda.cuDeviceGetAttribute(ctypes.byref(minor), CAPABILITY_MINOR, device)
        found["gpus"].append({"name": name.value.decode(errors="replace"), "capability": f"{major.value}.{minor.value}"})
    return found


def wanted_gpus(environ) -> int:
    """GPUs the job paid for: the launcher sets TRAINING_GPU and one CUDA_VISIBLE_DEVICES entry per GPU."""
    if not environ.get("TRAINING_GPU"):
        return 0
    return len([d for d in environ.get("CUDA_VISIBLE_DEVICES", "0").split(",") if d.strip()]) or 1


def shm_needed(image_size: int, batch_size: int, workers: int, processes: int) -> int:
    """Bytes of /dev/shm the loaders can hold at once: every worker's prefetched batches, with headroom."""
    if workers <= 0:
        return 0
    batch = image_size * image_size * SHM_BYTES_PER_PIXEL * batch_size
    return int(batch * workers * PREFETCH_FACTOR * processes * SHM_HEADROOM)


def filesystem_bytes(path: str) -> tuple[int, int] | tuple[None, None]:
    """(size, free to this user) of the filesystem holding PATH."""
    try:
        stats = os.statvfs(path)
    except OSError:
        return None, None
    return stats.f_blocks * stats.f_frsize, stats.f_bavail * stats.f_frsize


def judge(found: dict, support: Support, wanted: int, shm_size: int | None, shm_need: int, environ) -> None:
    """Raises CheckFailed with the first reason this host cannot run the job (pure)."""
    needs = f"this image's torch {support.torch} is built for CUDA {support.cuda}"
    floor = (f"NVIDIA driver {support.min_driver} or newer (a driver for CUDA "
             f"{cuda_version_text(support.min_driver_cuda)} or later)")
    if found["driver"] is None:
        if wanted:
            raise CheckFailed("no_driver", (
                f"the job asked for {wanted} GPU(s) ({environ.get('TRAINING_GPU')}) but no NVIDIA driver library "
                f"({DRIVER_LIBRARY}) was found; searched: {', '.join(searched_paths(environ))}. On Vertex AI the "
                "driver is mounted at /usr/local/nvidia/lib64: the image's LD_LIBRARY_PATH must include it. "
                "Elsewhere, run the container with the NVIDIA runtime (--gpus all)."))
        return
    if (wanted or found.get("gpus")) and found["driver_cuda"] < support.min_driver_cuda:
        release = found.get("driver_release") or "unknown release"
        raise CheckFailed("driver_too_old", (
            f"the NVIDIA driver ({release}, CUDA {cuda_version_text(found['driver_cuda'])}) is too old: {needs} "
            f"and needs {floor}. Use a machine with a newer driver, or build the image with a torch for an older "
            "CUDA (docs/launch.md, GPU drivers)."))
    if "cu_init_error" in found and wanted:
        raise CheckFailed("no_driver", (
            f"the NVIDIA driver at {found['driver']} could not initialise (cuInit error {found['cu_init_error']}); "
            "no GPU is usable. Check that the job's machine has GPUs attached and the driver is loaded."))
    for gpu in found.get("gpus", ()):
        if not support.runs(capability(gpu["capability"])):
            raise CheckFailed("gpu_unsupported", (
                f"{gpu['name']} has compute capability {gpu['capability']}, which this image's torch "
                f"{support.torch} has no kernels for (it has {support.describe_archs()}): "
                "choose another GPU type (the launcher's plan refuses it)."))
    visible = len(found.get("gpus", ()))
    if visible < wanted:
        raise CheckFailed("too_few_gpus", (
            f"the job asked for {wanted} GPU(s) but {visible} are visible (CUDA_VISIBLE_DEVICES="
            f"{environ.get('CUDA_VISIBLE_DEVICES', '')}); the machine type and accelerator count must match."))
    if shm_need and shm_size is not None and shm_size < shm_need:
        raise CheckFailed("shm_too_small", (
            f"/dev/shm holds {shm_size / 2**20:.0f} MiB but the data loaders may need {shm_need / 2**20:.0f} MiB "
            "(workers x prefetched batches x processes, with headroom): set num_workers lower "
            "(--set num_workers=N, 0 loads in the training process) or give the container a larger /dev/shm."))


def report(found: dict, support: Support, wanted: int, shm_size: int | None, shm_need: int, environ) -> dict:
    gpus = found.get("gpus", [])
    return {
        "event": "startup_check", **found,
        "driver_cuda": cuda_version_text(found["driver_cuda"]) if found.get("driver_cuda") else None,
        "torch": support.torch, "torch_cuda": support.cuda, "min_driver": support.min_driver,
        "arch_list": list(support.arch_list),
        "native_bf16": bool(gpus) and all(capability(g["capability"]) >= NATIVE_BF16 for g in gpus),
        "gpus_wanted": wanted, "gpus_visible": len(gpus),
        "shm_bytes": shm_size, "shm_needed_bytes": shm_need,
        "disk_free_bytes": filesystem_bytes(environ.get("HF_HOME") or "/tmp")[1],
    }


def passed_report(environ) -> dict | None:
    """The JSON report of the check this process's entry point passed, or None (no check ran)."""
    return json.loads(environ.get(REPORT_ENV) or "null")


def run(image_size: int = 0, batch_size: int = 0, workers: int = 0, processes: int = 1,
        environ=os.environ, stream=sys.stdout, support: Support | None = None) -> int:
    """Probe, print the JSON report, and return 0 or the failure's exit code (its message on stderr)."""
    support = support or load_support()
    found = probe_driver()
    wanted = wanted_gpus(environ)
    shm_size = filesystem_bytes("/dev/shm")[0]
    shm_need = shm_needed(image_size, batch_size, workers, max(processes, wanted, 1))
    line = report(found, support, wanted, shm_size, shm_need, environ)
    try:
        judge(found, support, wanted, shm_size, shm_need, environ)
    except CheckFailed as failure:
        code = support.exit_codes[failure.name].code
        print(json.dumps({**line, "ok": False, "failure": failure.name, "exit_code": code}), file=stream, flush=True)
        print(f"start-up check failed ({failure.name}, exit {code}): {failure}", file=sys.stderr, flush=True)
        return code
    passed = json.dumps({**line, "ok": True})
    print(passed, file=stream, flush=True)
    environ[REPORT_ENV] = passed  # the smoke run's result carries it (smoke_report.py)
    return 0



if __name__ == "__main__":
    sys.exit(run())
