"""Assemble an OCI image layout from a base image and layers (the action
behind `oci_image`), write its `.digest`, and optionally a single-file tar.

    python3 tools/oci/assemble.py --config config.json --layer a.tar.gz ... \
        [--base BASE_LAYOUT_DIR] --out LAYOUT_DIR --digest-out X.digest
    python3 tools/oci/assemble.py --tar LAYOUT_DIR --out X.tar

config.json holds the image settings (entrypoint, cmd, env, workdir, user,
labels, architecture, os) as written by tools/oci/defs.bzl. A setting that is
not given is inherited from the base image; env and labels are merged.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
from tools.oci import layout
from tools.oci.layout import Entry, LayerInfo

SETTING_KEYS = {"entrypoint": "Entrypoint", "cmd": "Cmd", "workdir": "WorkingDir", "user": "User"}


def read_base(layout_dir: str) -> tuple[list[LayerInfo], dict]:
    """(layers, config) of the single image in an OCI layout."""
    base = layout.read_layout(layout_dir, only=True)
    return base.layers, base.config


def _env_dict(env) -> dict[str, str]:
    if isinstance(env, dict):
        return dict(env)
    return dict(item.split("=", 1) for item in env or [])


def merge_settings(base_config: dict | None, settings: dict) -> dict:
    """Image settings over the base's: explicit values win, env and labels
    merge key by key, everything else is inherited when not given."""
    inherited = (base_config or {}).get("config", {})
    merged = {}
    for key, oci_key in SETTING_KEYS.items():
        value = settings.get(key)
        merged[key] = value if value not in (None, "", []) else inherited.get(oci_key)
    env = _env_dict(inherited.get("Env"))
    env.update(settings.get("env") or {})
    merged["env"] = env
    labels = dict(inherited.get("Labels") or {})
    labels.update(settings.get("labels") or {})
    merged["labels"] = labels
    base_platform = base_config or {}
    merged["architecture"] = settings.get("architecture") or base_platform.get("architecture", "amd64")
    merged["os"] = settings.get("os") or base_platform.get("os", "linux")
    return merged


def build(settings: dict, layer_paths: list[str], out_dir: str, base: str | None = None,
          blob_mode: str = "link") -> str:
    base_layers, base_config = read_base(base) if base else ([], None)
    layers = base_layers + [layout.describe_blob(p) for p in layer_paths]
    merged = merge_settings(base_config, settings)
    return layout.write_image_layout(out_dir, layers, tag=settings.get("tag", "latest"), blob_mode=blob_mode,
                                     **merged)


def layout_tar(layout_dir: str, out_path: str) -> None:
    """A deterministic, uncompressed single-file archive of a layout (blobs
    are already compressed)."""
    entries = []
    for root, dirs, files in os.walk(layout_dir):
        dirs.sort()
        for name in sorted(files):
            full = os.path.join(root, name)
            entries.append(Entry.file(os.path.relpath(full, layout_dir), source=full, mode=0o644))
    with open(out_path, "wb") as f:
        layout.write_tar_stream(entries, f, refuse_top=())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", help="JSON image settings")
    parser.add_argument("--layer", action="append", default=[])
    parser.add_argument("--base", help="base image layout directory")
    parser.add_argument("--out", required=True)
    parser.add_argument("--digest-out")
    parser.add_argument("--tar", help="layout dir to archive into --out")
    parser.add_argument("--blob-mode", choices=layout.BLOB_MODES, default="link",
                        help="how layer blobs enter the layout (symlink: no new inode for Bazel to re-hash)")
    args = parser.parse_args(argv)
    if args.tar:
        layout_tar(args.tar, args.out)
        return 0
    with open(args.config) as f:
        settings = json.load(f)
    digest = build(settings, args.layer, args.out, args.base, args.blob_mode)
    if args.digest_out:
        with open(args.digest_out, "w") as f:
            f.write(digest + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
