"""A second OCI layout that differs from a built one by one file in one layer.

For the re-push benchmark on the real image: rebuild only that layer (its
entries read back from its own tar, written again by tools/oci's
`write_layer`), reuse every other blob (small ones copied, big ones
hardlinked: the 2.8 GB torch layer is never copied), and write the image with
the source image's settings, the way tools/oci/assemble.py builds over a base.
With no change the result is byte-identical to the source (same digest).

The rebuilt layer is held in memory: meant for small layers (the ARR_COC one).
"""

from __future__ import annotations

import os
import shutil
import tarfile

from tools.oci import assemble, layout

COPY_BELOW = 1 << 20  # blobs smaller than this are copied, bigger ones hardlinked


def read_entries(layer_path: str) -> list[layout.Entry]:
    """The layer's tar members as Entries (modes and owners kept as they are)."""
    entries = []
    with tarfile.open(layer_path, "r:*") as tar:
        for m in tar:
            if m.isdir():
                entries.append(layout.Entry.dir(m.name, mode=m.mode, uid=m.uid, gid=m.gid))
            elif m.isfile():
                entries.append(layout.Entry.file(m.name, data=tar.extractfile(m).read(), mode=m.mode,
                                                 uid=m.uid, gid=m.gid))
            elif m.issym():
                entries.append(layout.Entry.symlink(m.name, m.linkname, uid=m.uid, gid=m.gid))
            else:
                raise ValueError(f"{layer_path}: {m.name}: tar member type {m.type!r} not supported")
    return entries


def _place(src: str, dst: str, size: int) -> None:
    if os.path.exists(dst):
        return
    if size < COPY_BELOW:
        shutil.copyfile(src, dst)
    else:
        layout.place_blob(src, dst, "link")  # copies only when a hardlink is impossible


def derive(src_dir: str, out_dir: str, layer_index: int, replace: dict[str, bytes]) -> str:
    """Writes OUT_DIR (and OUT_DIR.digest): SRC_DIR's image with the files in
    REPLACE (layer path -> new bytes, each must exist in that layer) changed in
    layer LAYER_INDEX (negative: from the top). Returns the new manifest digest."""
    layers, config = assemble.read_base(src_dir)
    layer_index = range(len(layers))[layer_index]
    target = layers[layer_index]
    entries = read_entries(target.path)
    missing = set(replace) - {e.path for e in entries if e.kind == layout.FILE}
    if missing:
        raise ValueError(f"not files of layer {layer_index}: {sorted(missing)}")
    entries = [layout.Entry.file(e.path, data=replace[e.path], mode=e.mode, uid=e.uid, gid=e.gid)
               if e.path in replace else e for e in entries]
    blobs = os.path.join(out_dir, "blobs", "sha256")
    os.makedirs(blobs, exist_ok=True)
    scratch = os.path.join(out_dir, "layer.tmp")
    new = layout.write_layer(entries, scratch,
                             refuse_top=() if layer_index == 0 else layout.LATER_LAYER_REFUSED_TOP)
    new_layers = []
    for i, l in enumerate(layers):
        if i == layer_index:
            dst = os.path.join(blobs, new.digest.split(":", 1)[1])
            if os.path.exists(dst):
                os.unlink(scratch)
            else:
                os.replace(scratch, dst)
            new_layers.append(layout.LayerInfo(dst, new.digest, new.diff_id, new.size, new.media_type))
        else:
            dst = os.path.join(blobs, l.digest.split(":", 1)[1])
            _place(l.path, dst, l.size)
            new_layers.append(layout.LayerInfo(dst, l.digest, l.diff_id, l.size, l.media_type))
    settings = assemble.merge_settings(config, {})
    digest = layout.write_image_layout(out_dir, new_layers, tag=_tag(src_dir),
                                       created=config.get("created", layout.FIXED_CREATED), **settings)
    with open(out_dir + ".digest", "w") as f:
        f.write(digest + "\n")
    return digest


def _tag(layout_dir: str) -> str | None:
    import json

    with open(os.path.join(layout_dir, "index.json")) as f:
        annotations = json.load(f)["manifests"][0].get("annotations") or {}
    return annotations.get(layout.REF_NAME)


def one_file_change(src_dir: str, out_dir: str, layer_index: int,
                    suffix: bytes = b"\n# one-file change (bench_push)\n") -> tuple[str, str]:
    """derive() with the layer's first non-bytecode regular file (by path)
    given SUFFIX at its end. Returns (new digest, the changed path)."""
    layers, _ = assemble.read_base(src_dir)
    files = {e.path: e.data for e in read_entries(layers[layer_index].path)
             if e.kind == layout.FILE and not e.path.endswith((".pyc", ".pyo"))}
    if not files:
        raise ValueError(f"layer {layer_index} of {src_dir} has no regular file to change")
    path = min(files)
    return derive(src_dir, out_dir, layer_index, {path: files[path] + suffix}), path
