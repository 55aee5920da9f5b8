"""Benchmark: our push vs `skopeo copy` of the same layout to a loopback registry.

    PYTHONPATH=. python -m tests.support.bench_push [--mb 300]
    PYTHONPATH=. python -m tests.support.bench_push --layout bazel-bin/Stack/arr_trainer
    tools/bazel run //tests:bench_push -- --layout $PWD/bazel-bin/Stack/arr_trainer

Prints one JSON object: seconds for each (each into its own fresh registry,
same run), bytes re-uploaded after a one-file change as a share of the image,
and the time from command to submitted job when nothing changed (CLI against
the fake Vertex server, image already in the registry): in this process, and
as a fresh `python -m tools.launch.cli` process (what follows Bazel's start).

Without --layout the image is synthetic (--mb of incompressible data in 4
layers). With --layout DIR (a built OCI layout, e.g. //Stack:arr_trainer) the
one-file change is derived from it: layer --change-layer rebuilt with one file
changed, every other blob reused (tests/support/derive_layout.py). Registry
storage and derived layouts live under a temp dir in --scratch (default: the
system temp dir; keep it on the layout's filesystem so big blobs hardlink),
deleted afterwards.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import hashlib
import subprocess
import sys
import tempfile
import time

from tests.support import derive_layout, fake_google, oci_images, registry_server as rs
from tools.launch import cli, registry


def layers(mb: int, app: bytes) -> list[dict]:
    """Shaped like the real image: big rarely-changing layers, a small app layer."""
    big = mb * 1_000_000
    return [{"base.bin": big // 3}, {"torch.bin": big // 2}, {"deps.bin": big - big // 3 - big // 2},
            {"app/main.py": app}]


def timed(fn):
    t0 = time.monotonic()
    out = fn()
    return time.monotonic() - t0, out


def layout_digest(layout_dir: str) -> str:
    with open(os.path.join(layout_dir, "index.json")) as f:
        manifests = json.load(f)["manifests"]
    if len(manifests) != 1:
        raise SystemExit(f"{layout_dir}: expected one manifest, found {len(manifests)}")
    return manifests[0]["digest"]


def blob_bytes(layout_dir: str) -> int:
    d = os.path.join(layout_dir, "blobs", "sha256")
    return sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d))


def user_path(path: str) -> str:
    """Relative paths are the caller's (under `bazel run` the cwd is the runfiles tree)."""
    return os.path.join(os.environ.get("BUILD_WORKING_DIRECTORY", ""), os.path.expanduser(path))


def tool_version(args: list[str]) -> str:
    out = subprocess.run(args, capture_output=True, text=True, check=False)
    return (out.stdout or out.stderr).strip().splitlines()[0] if (out.stdout or out.stderr) else "?"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=int, default=300, help="synthetic image size (without --layout)")
    ap.add_argument("--layout", help="push this OCI layout instead of a synthetic image")
    ap.add_argument("--change-layer", type=int, default=3,
                    help="with --layout: the layer that gets the one-file change (3: ARR_COC in //Stack:arr_trainer)")
    ap.add_argument("--scratch", help="parent of the temp dir (registry storage, derived layouts)")
    a = ap.parse_args()
    scratch = user_path(a.scratch) if a.scratch else None
    result = {"started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "cpus": os.cpu_count(),
              "loadavg_start": os.getloadavg()[0],
              "skopeo": tool_version([rs.require_tool("skopeo"), "--version"]),
              "docker_registry": tool_version([rs.require_tool("docker-registry"), "--version"])}
    with tempfile.TemporaryDirectory(prefix="bench_push.", dir=scratch) as tmp:
        if a.layout:
            layout = os.path.abspath(user_path(a.layout))
            digest = layout_digest(layout)
            result.update(layout=layout, digest=digest)
        else:
            layout = os.path.join(tmp, "img")
            digest = oci_images.make_image(layout, layers(a.mb, b"print(1)\n"))
            result.update(layout=f"synthetic, {a.mb} MB", digest=digest)
        size = blob_bytes(layout)
        result["image_bytes"] = size
        os.makedirs(os.path.join(tmp, "r1"))
        os.makedirs(os.path.join(tmp, "r2"))
        with rs.running_registry(os.path.join(tmp, "r1")) as r1, \
                rs.running_registry(os.path.join(tmp, "r2")) as r2:
            t_ours, rep = timed(lambda: registry.push_layout(r1.url, "arr-trainer", layout, digest,
                                                             progress=False))
            skopeo = [rs.require_tool("skopeo"), "copy", "--preserve-digests", "--dest-tls-verify=false",
                      f"oci:{layout}", f"docker://{r2.host}/arr-trainer:x"]
            t_skopeo, _ = timed(lambda: subprocess.run(skopeo, check=True, capture_output=True))
            for r in (r1, r2):  # both landed intact, as an independent client reads them
                raw = rs.skopeo_inspect_raw(f"{r.host}/arr-trainer@{digest}")
                assert "sha256:" + hashlib.sha256(raw).hexdigest() == digest, r.host
            result.update(push_s=round(t_ours, 2), push_bytes=rep.bytes_uploaded,
                          skopeo_copy_s=round(t_skopeo, 2),
                          ratio_push_over_skopeo=round(t_ours / t_skopeo, 2))
            t_again, again = timed(lambda: registry.push_layout(r1.url, "arr-trainer", layout, digest,
                                                                progress=False))
            result.update(repush_unchanged_s=round(t_again, 3), repush_unchanged_bytes=again.bytes_uploaded)
            layout2 = os.path.join(tmp, "img2")
            if a.layout:
                digest2, changed_path = derive_layout.one_file_change(layout, layout2, a.change_layer)
                result["one_file_change"] = f"layer {a.change_layer}: {changed_path}"
            else:
                digest2 = oci_images.make_image(layout2, layers(a.mb, b"print(2)\n"))
                result["one_file_change"] = "layer 3: app/main.py"
            t_changed, changed = timed(lambda: registry.push_layout(r1.url, "arr-trainer", layout2, digest2,
                                                                    progress=False))
            # bytes_uploaded counts blobs; the manifest goes up twice besides (by digest, by tag).
            manifest_puts = 2 * os.path.getsize(os.path.join(layout2, "blobs", *digest2.split(":")))
            sent = changed.bytes_uploaded + manifest_puts
            result.update(repush_one_file_s=round(t_changed, 3),
                          repush_one_file_blobs=changed.blobs_uploaded,
                          repush_one_file_blob_bytes=changed.bytes_uploaded,
                          repush_one_file_manifest_put_bytes=manifest_puts,
                          repush_one_file_share=f"{sent / size:.7%}")
            fake = fake_google.FakeGoogle()
            with fake_google.running(fake) as url:
                def argv(name):
                    return ["--project", "p", "--registry", r1.url, "--vertex-endpoint", url,
                            "--quota-endpoint", url, "--image-layout", layout2,
                            "--image-digest", layout2 + ".digest", "--skip-preflight", "--run-name", name,
                            "--state-file", os.path.join(tmp, f"state-{name}.json")]
                with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                    t_submit, code = timed(lambda: cli.main(argv("bench")))
                assert code == 0 and len(fake.creates) == 1
                result["command_to_submitted_unchanged_in_process_s"] = round(t_submit, 3)
                # A fresh interpreter: imports and SDK start-up count, as after `bazel run`'s own start.
                env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
                proc = [sys.executable, "-m", "tools.launch.cli", *argv("bench-process")]
                t_proc, out = timed(lambda: subprocess.run(proc, env=env, capture_output=True, text=True))
                assert out.returncode == 0 and len(fake.creates) == 2, out.stderr[-2000:]
                result["command_to_submitted_unchanged_fresh_process_s"] = round(t_proc, 3)
    result["loadavg_end"] = os.getloadavg()[0]
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
