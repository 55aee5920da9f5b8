"""//Stack:arr_trainer really starts: the one test that uses the full CUDA image.

The layout is unpacked by umoci (an independent OCI tool that verifies every
blob while it unpacks) into a temporary root filesystem, then, as root,
`unshare --mount --pid --fork` + /proc + /dev + chroot run the image's own
`/usr/bin/python3` with exactly the image config's environment, working
directory and user (as a container runtime would), and:

  - torch, accelerate and ARR_COC import from the image's Python;
  - the entry point (the image's Entrypoint, without the production --config)
    trains one step with the embedded smoke config and writes a checkpoint;
  - the start-up check finds a stand-in NVIDIA driver (a stub libcuda.so.1
    built from Stack/testdata/libcuda_stub.c) at Vertex's mount path
    /usr/local/nvidia/lib64 through the image's own environment, and a driver
    too old for the image's CUDA, or a GPU it has no kernels for, stops the
    production entry point in seconds with its exit code, nothing downloaded.

Needs root (tools/bazel runs tests as root in its Bazel root); tagged
no-sandbox and exclusive: it unpacks about 5 GB, removed at the end.
"""

from __future__ import annotations

import json
import os
import contextlib
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib

import pytest

from tools.oci import layout

HERE = os.path.dirname(os.path.abspath(__file__))
LAYOUT = os.path.realpath(os.path.join(HERE, "arr_trainer"))
DIGEST_FILE = os.path.join(HERE, "arr_trainer.digest")
DRIVER_STUB = os.path.join(HERE, "libcuda_stub.so")
VERTEX_DRIVER_DIR = "usr/local/nvidia/lib64"  # where Vertex AI mounts the driver's libraries
LAYER_TYPES = ("application/vnd.oci.image.layer.v1.tar+gzip", "application/vnd.oci.image.layer.v1.tar")

# Runs in the new mount + pid namespace as root: mounts /proc and /dev into the
# root filesystem, enters it, becomes the image's user, execs the command.
ENTER = r"""
import json, os, subprocess, sys
spec = json.loads(sys.argv[1])
root = spec["root"]
subprocess.run(["mount", "-t", "proc", "proc", os.path.join(root, "proc")], check=True)
subprocess.run(["mount", "--rbind", "/dev", os.path.join(root, "dev")], check=True)
os.chroot(root)
os.chdir(spec["workdir"])
os.setgroups([])
os.setgid(spec["gid"])
os.setuid(spec["uid"])
os.execve(spec["argv"][0], spec["argv"], spec["env"])
"""



def mounts_under(path: str) -> list[str]:
    """Mount points at or below `path` in this process's mount namespace."""
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            point = line.split()[4]
            if point == path or point.startswith(path.rstrip("/") + "/"):
                found.append(point)
    return found


def resolve_user(root: str, user: str) -> tuple[int, int, str]:
    """(uid, gid, home) for the config's User ("", "name", "uid", "uid:gid"), from the image's /etc/passwd."""
    name, _, group = (user or "0").partition(":")
    with open(os.path.join(root, "etc", "passwd")) as f:
        entries = [line.rstrip("\n").split(":") for line in f if line.count(":") >= 6]
    match = next((e for e in entries if name in (e[0], e[2])), None)
    if match is None and not name.isdigit():
        raise AssertionError(f"image user {user!r} is not in the image's /etc/passwd")
    uid = int(match[2]) if match else int(name)
    gid = int(group) if group.isdigit() else int(match[3]) if match else uid
    home = match[5] if match else "/"
    return uid, gid, home


@pytest.fixture(scope="module")
def image():
    """(digest, manifest, config) of the layout, checked against the .digest file."""
    built = layout.read_layout(LAYOUT, only=True)
    with open(DIGEST_FILE) as f:
        assert f.read() == built.digest + "\n"
    return built.digest, built.manifest, built.config


@pytest.fixture(scope="module")
def rootfs(image):
    """The image unpacked by umoci, an independent OCI tool; removed afterwards (several GB).

    umoci checks every blob against its digest and the diff_ids while it
    unpacks, so this also validates the full layout.
    """
    assert os.geteuid() == 0, "this test needs root (tools/bazel runs tests as root in its Bazel root)"
    umoci = shutil.which("umoci")
    assert umoci, "umoci is not installed (tools/bazel-root/packages.txt)"
    _, manifest, _ = image
    assert all(layer["mediaType"] in LAYER_TYPES for layer in manifest["layers"])
    scratch = tempfile.mkdtemp(prefix="arr_trainer_rootfs_", dir=os.environ.get("TEST_TMPDIR"))
    bundle = os.path.join(scratch, "bundle")
    root = os.path.join(bundle, "rootfs")
    try:
        subprocess.run([umoci, "unpack", "--image", f"{LAYOUT}:latest", bundle], check=True,
                       stdout=subprocess.DEVNULL)
        for where in ("proc", "dev", "tmp"):
            os.makedirs(os.path.join(root, where), exist_ok=True)
        yield root
    finally:
        leftover = mounts_under(scratch)
        assert not leftover, f"mounts left under {scratch}: {leftover}; not removing it"
        shutil.rmtree(scratch)


def run_in_image(root: str, config: dict, argv: list[str], extra_env: dict | None = None,
                 timeout: int = 600) -> subprocess.CompletedProcess:
    """Run argv inside the image like a runtime: config Env (+ extra), WorkingDir, User."""
    settings = config["config"]
    uid, gid, home = resolve_user(root, settings.get("User", ""))
    env = dict(item.split("=", 1) for item in settings.get("Env", []))
    env.setdefault("HOME", home)  # what runtimes add from /etc/passwd
    env.update(extra_env or {})
    spec = {"root": root, "workdir": settings.get("WorkingDir") or "/", "uid": uid, "gid": gid,
            "argv": argv, "env": env}
    return subprocess.run(
        [shutil.which("unshare"), "--mount", "--pid", "--fork", "--kill-child", "--",
         sys.executable, "-I", "-c", ENTER, json.dumps(spec)],
        capture_output=True, text=True, timeout=timeout, env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")})


def test_skopeo_reads_the_full_layout(image):
    digest, manifest, _ = image
    skopeo = shutil.which("skopeo")
    assert skopeo, "skopeo is not installed (tools/bazel-root/packages.txt)"
    info = json.loads(subprocess.run([skopeo, "inspect", f"oci:{LAYOUT}:latest"],
                                     check=True, capture_output=True, text=True).stdout)
    assert info["Digest"] == digest
    assert info["Layers"] == [layer["digest"] for layer in manifest["layers"]]


def test_config_runs_the_entry_point_with_the_production_config(image):
    settings = image[2]["config"]
    assert settings["Entrypoint"] == ["/usr/bin/python3", "-m", "ARR_COC.Training.entrypoint"]
    assert settings["Cmd"] == ["--config", "ARR_COC/Training/configs/vertex.toml"]
    env = dict(item.split("=", 1) for item in settings["Env"])
    assert env["PYTHONUNBUFFERED"] == "1" and env["CUDA_VISIBLE_DEVICES"] == "0" and env["LANG"] == "C.UTF-8"
    assert settings["User"] == "65532:65532"  # distroless nonroot; see Stack/BUILD.bazel


def test_production_config_resolves_from_the_working_directory(rootfs, image):
    workdir = image[2]["config"]["WorkingDir"]
    relative = image[2]["config"]["Cmd"][1]
    assert os.path.isfile(os.path.join(rootfs, workdir.lstrip("/"), relative))


def test_torch_accelerate_and_arr_coc_import(rootfs, image):
    code = ("import os, sys, torch, accelerate, ARR_COC, ARR_COC.Training.entrypoint, ARR_COC.Training.train; "
            "print(sys.executable, torch.__version__, accelerate.__version__, ARR_COC.__file__, os.getuid(), os.getcwd())")
    result = run_in_image(rootfs, image[2], ["/usr/bin/python3", "-c", code])
    assert result.returncode == 0, result.stderr[-4000:]
    executable, torch_version, _, arr_coc, uid, cwd = result.stdout.split()
    assert executable == "/usr/bin/python3"
    assert int(uid) == resolve_user(rootfs, image[2]["config"].get("User", ""))[0]
    assert cwd == image[2]["config"]["WorkingDir"]
    assert "+cu" in torch_version or torch_version[0].isdigit()
    assert arr_coc == "/app/ARR_COC/__init__.py"


def test_entry_point_trains_one_step_and_writes_a_checkpoint(rootfs, image):
    settings = image[2]["config"]
    output = "/tmp/arr_trainer_smoke"
    result = run_in_image(rootfs, image[2], [*settings["Entrypoint"], "--max-steps", "1"],
                          {"OUTPUT_DIR": output, "HF_HUB_OFFLINE": "1"})
    assert result.returncode == 0, (result.stdout[-3000:], result.stderr[-4000:])
    checkpoint = os.path.join(rootfs, output.lstrip("/"), "checkpoints", "step-00000001")
    assert os.path.isfile(os.path.join(checkpoint, "COMPLETE")), result.stdout[-3000:]
    assert os.path.getsize(os.path.join(checkpoint, "state.pt")) > 0
    events = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert any(e.get("event") == "checkpoint" for e in events), result.stdout[-3000:]


def image_env(config: dict) -> dict:
    return dict(item.split("=", 1) for item in config["config"]["Env"])


def test_environment_finds_a_driver_mounted_where_vertex_puts_it(image):
    env = image_env(image[2])
    assert env["LD_LIBRARY_PATH"].split(":")[:2] == ["/usr/local/nvidia/lib64", "/usr/local/nvidia/lib"]
    assert env["PATH"].split(":")[0] == "/usr/local/nvidia/bin" and "/usr/bin" in env["PATH"].split(":")
    assert env["NVIDIA_DRIVER_CAPABILITIES"] == "compute,utility" and env["NVIDIA_VISIBLE_DEVICES"] == "all"
    assert env["HOME"] == "/home/nonroot" and env["HF_HOME"].startswith("/tmp/")


@contextlib.contextmanager
def stub_driver(root: str):
    """The stub driver at Vertex's mount path for the duration (later tests train on the CPU)."""
    folder = os.path.join(root, VERTEX_DRIVER_DIR)
    os.makedirs(folder, exist_ok=True)
    shutil.copyfile(DRIVER_STUB, os.path.join(folder, "libcuda.so.1"))
    try:
        yield
    finally:
        shutil.rmtree(os.path.join(root, "usr/local/nvidia"))


def check_report(result: subprocess.CompletedProcess) -> dict:
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith('{"event": "startup_check"')]
    assert len(lines) == 1, (result.stdout[-2000:], result.stderr[-2000:])
    return lines[0]


def exit_code(rootfs: str, name: str) -> int:
    with open(os.path.join(rootfs, "app/ARR_COC/Training/gpu_support.toml"), "rb") as f:
        return tomllib.load(f)["exit_codes"][name]["code"]


def test_start_up_check_loads_the_driver_from_the_vertex_mount(rootfs, image):
    with stub_driver(rootfs):
        result = run_in_image(rootfs, image[2], ["/usr/bin/python3", "-m", "ARR_COC.Training.startup_check"],
                              {"STUB_DRIVER_CUDA": "13000", "STUB_GPUS": "1", "STUB_CAPABILITY": "90",
                               "TRAINING_GPU": "H100"}, timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
    report = check_report(result)
    assert report["driver"] == "/usr/local/nvidia/lib64/libcuda.so.1"
    assert report["driver_cuda"] == "13.0" and report["torch_cuda"] == "13.0"
    assert report["gpus"] == [{"name": "NVIDIA Stub GPU", "capability": "9.0"}] and report["native_bf16"] is True
    assert report["gpus_wanted"] == 1 and report["shm_bytes"] > 0 and report["ok"] is True


@pytest.mark.parametrize("stub, failure, says", [
    ({"STUB_DRIVER_CUDA": "12080", "STUB_CAPABILITY": "89"}, "driver_too_old", "580.65.06"),
    ({"STUB_DRIVER_CUDA": "13000", "STUB_CAPABILITY": "70"}, "gpu_unsupported", "compute capability 7.0"),
])
def test_production_entry_point_stops_in_seconds_on_a_host_it_cannot_use(rootfs, image, stub, failure, says):
    """The image's own Entrypoint and Cmd (the production config, which would download the 2B model)."""
    settings = image[2]["config"]
    hf_home = os.path.join(rootfs, image_env(image[2])["HF_HOME"].lstrip("/"))
    with stub_driver(rootfs):
        started = time.monotonic()
        result = run_in_image(rootfs, image[2], [*settings["Entrypoint"], *settings["Cmd"]],
                              {**stub, "STUB_GPUS": "1", "TRAINING_GPU": "L4"}, timeout=60)
        seconds = time.monotonic() - started
    print(f"{failure}: exit {result.returncode} after {seconds:.1f} s")
    assert result.returncode == exit_code(rootfs, failure), (result.stdout[-2000:], result.stderr[-2000:])
    assert seconds < 10
    assert says in result.stderr and check_report(result)["failure"] == failure
    assert not os.path.exists(hf_home) or not os.listdir(hf_home), "the check must run before any download"
