"""Small OCI layouts for push tests, built with the image rules' own writer (tools/oci/layout.py)."""

from __future__ import annotations

import os
import random

from tools.oci import layout


def make_image(out_dir: str, layer_files: list[dict], *, seed: int = 0) -> str:
    """Writes a layout whose layers hold the given files; returns the manifest digest.

    layer_files: one {path: bytes | int} per layer; an int is that many
    pseudo-random (incompressible) bytes from SEED, so blob sizes are predictable.
    Writes OUT_DIR.digest like the Bazel rule's `.digest` output.
    """
    rng = random.Random(seed)
    work = out_dir + ".layers"
    os.makedirs(work, exist_ok=True)
    infos = []
    for i, files in enumerate(layer_files):
        entries = []
        for path, content in sorted(files.items()):
            data = rng.randbytes(content) if isinstance(content, int) else content
            entries.append(layout.Entry.file(path, data=data))
        infos.append(layout.write_layer(entries, os.path.join(work, f"layer{i}.tar.gz")))
    digest = layout.write_image_layout(out_dir, infos, cmd=["/bin/true"], blob_mode="copy")
    with open(out_dir + ".digest", "w") as f:
        f.write(digest + "\n")
    return digest


def layer_digests(layout_dir: str, digest: str) -> list[str]:
    import json

    with open(os.path.join(layout_dir, "blobs", *digest.split(":"))) as f:
        manifest = json.load(f)
    return [l["digest"] for l in manifest["layers"]]
