"""Benchmark: our push vs `skopeo copy` of the same layout to a loopback registry.

    PYTHONPATH=. python -m tests.support.bench_push [--mb 300]

Prints one JSON object: seconds for each (each into its own fresh registry,
same run), bytes re-uploaded after a one-file change as a share of the image,
and the time from command to submitted job when nothing changed (CLI against
the fake Vertex server, image already in the registry).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import subprocess
import tempfile
import time

from tests.support import fake_google, oci_images, registry_server as rs
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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=int, default=300)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        layout = os.path.join(tmp, "img")
        digest = oci_images.make_image(layout, layers(a.mb, b"print(1)\n"))
        size = sum(os.path.getsize(os.path.join(layout, "blobs/sha256", f))
                   for f in os.listdir(os.path.join(layout, "blobs/sha256")))
        result = {"image_bytes": size}
        os.makedirs(os.path.join(tmp, "r1"))
        os.makedirs(os.path.join(tmp, "r2"))
        with rs.running_registry(os.path.join(tmp, "r1")) as r1, \
                rs.running_registry(os.path.join(tmp, "r2")) as r2:
            t_ours, rep = timed(lambda: registry.push_layout(r1.url, "arr-trainer", layout, digest,
                                                             progress=False))
            skopeo = [rs.require_tool("skopeo"), "copy", "--preserve-digests", "--dest-tls-verify=false",
                      f"oci:{layout}", f"docker://{r2.host}/arr-trainer:x"]
            t_skopeo, _ = timed(lambda: subprocess.run(skopeo, check=True, capture_output=True))
            result.update(push_s=round(t_ours, 2), skopeo_copy_s=round(t_skopeo, 2),
                          ratio_push_over_skopeo=round(t_ours / t_skopeo, 2))
            t_again, again = timed(lambda: registry.push_layout(r1.url, "arr-trainer", layout, digest,
                                                                progress=False))
            result.update(repush_unchanged_s=round(t_again, 3), repush_unchanged_bytes=again.bytes_uploaded)
            layout2 = os.path.join(tmp, "img2")
            digest2 = oci_images.make_image(layout2, layers(a.mb, b"print(2)\n"))
            _, changed = timed(lambda: registry.push_layout(r1.url, "arr-trainer", layout2, digest2,
                                                            progress=False))
            result.update(repush_one_file_bytes=changed.bytes_uploaded,
                          repush_one_file_share=round(changed.bytes_uploaded / size, 6))
            fake = fake_google.FakeGoogle()
            with fake_google.running(fake) as url:
                argv = ["--project", "p", "--registry", r1.url, "--vertex-endpoint", url,
                        "--quota-endpoint", url, "--image-layout", layout2,
                        "--image-digest", layout2 + ".digest", "--skip-preflight", "--run-name", "bench",
                        "--state-file", os.path.join(tmp, "state.json")]
                with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                    t_submit, code = timed(lambda: cli.main(argv))
                assert code == 0 and len(fake.creates) == 1
                result["command_to_submitted_unchanged_s"] = round(t_submit, 3)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
