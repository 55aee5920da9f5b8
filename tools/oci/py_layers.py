"""Write one Python layer of an image from a manifest of runfiles.

Which runfiles go to which layer is decided by the rule (layer_groups at the
call site, tools/oci/private/py_image_layers.bzl); this tool decides where
each given file lands in the image and writes the layer:

- third-party files (`<wheel repo>/site-packages/...`) go to
  usr/lib/python3/dist-packages, which is on Debian Python's default sys.path;
  a wheel's console scripts (`<wheel repo>/bin/NAME`) to usr/local/bin with
  the image's interpreter in their shebang;
- first-party files go under /app (the image's working directory);
- anything else of an external repository (BUILD files, the wheel file) and
  host litter (__pycache__, .git) is not shipped.

Input is a manifest of `runfiles_path<TAB>real_path` lines (an empty real
path means an empty file, as Bazel's runfiles `empty_filenames`).

    python3 tools/oci/py_layers.py --manifest M --name app --out layer.tar.gz [--pyc]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
from tools.oci import layout, pyc
from tools.oci.layout import Entry

DIST_PACKAGES = "usr/lib/python3/dist-packages"
SCRIPTS_DIR = "usr/local/bin"
APP_DIR = "app"
MAIN_REPOS = ("_main", "__main__")
IMAGE_PYTHON = "/usr/bin/python3.11"


@dataclasses.dataclass(frozen=True)
class Placement:
    dest: str             # path in the image, without leading '/'
    script: bool = False  # a console script whose shebang is rewritten


def place(runfiles_path: str) -> Placement | None:
    """Where one runfile goes in the image, or None if it is not shipped."""
    parts = runfiles_path.split("/")
    repo, rest = parts[0], parts[1:]
    if not rest:
        return None
    if repo in MAIN_REPOS:
        return Placement(f"{APP_DIR}/{'/'.join(rest)}")
    if rest == ["site-packages", "__init__.py"]:
        return None  # would make dist-packages itself a package
    if rest[0] == "site-packages" and len(rest) > 1:
        return Placement(f"{DIST_PACKAGES}/{'/'.join(rest[1:])}")
    if rest[0] == "bin" and len(rest) == 2:
        return Placement(f"{SCRIPTS_DIR}/{rest[1]}", script=True)
    return None


def rewrite_shebang(data: bytes) -> bytes:
    """Console scripts carry the build host's python in their shebang; point
    them at the image's own interpreter."""
    if not data.startswith(b"#!"):
        return data
    first, newline, rest = data.partition(b"\n")
    if b"python" not in first:
        return data
    return b"#!" + IMAGE_PYTHON.encode() + newline + rest


def read_manifest(path: str) -> list[tuple[str, str]]:
    pairs = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if line:
                rpath, _, real = line.partition("\t")
                pairs.append((rpath, real))
    return pairs


def layer_entries(pairs) -> tuple[list[Entry], list[tuple[str, str]]]:
    """(entries of the layer, [(path, reason) dropped]); later runfiles with the
    same destination are refused by write_layer as duplicates."""
    entries, dropped = [], []
    for rpath, real in sorted(pairs):
        where = place(rpath)
        if where is None:
            dropped.append((rpath, "not shipped (outside site-packages / main repo)"))
        elif not real:
            entries.append(Entry.file(where.dest, data=b""))
        elif where.script:
            with open(real, "rb") as f:
                entries.append(Entry.file(where.dest, data=rewrite_shebang(f.read()), mode=0o755))
        else:
            entries.append(Entry.file(where.dest, source=real))
    kept, excluded = layout.filter_entries(dedupe_identical(entries))
    return kept, dropped + excluded


def _content(entry: Entry) -> bytes:
    if entry.data is not None:
        return entry.data
    with open(entry.source, "rb") as f:
        return f.read()


def dedupe_identical(entries: list[Entry]) -> list[Entry]:
    """Several wheel repos ship the same namespace `__init__.py` (rules_python
    writes a pkgutil-style one into each: cuda/, nvidia/, google/); keep one
    copy when the bytes agree, refuse when they differ."""
    by_path: dict[str, Entry] = {}
    for entry in entries:
        first = by_path.setdefault(entry.path, entry)
        if first is not entry and _content(first) != _content(entry):
            raise layout.LayerError(f"{entry.path}: shipped by two wheels with different content")
    return list(by_path.values())


def with_pyc(entries: list[Entry], compiler=None) -> list[Entry]:
    """Add unchecked-hash .pyc next to every .py of the layer (same layer,
    so a change to a .py changes only its own layer), written by COMPILER
    (pyc.ImagePython / HostPython; this Python when None)."""
    compiler = compiler or pyc.HostPython()
    out = list(entries)
    present = {e.path for e in entries}
    for entry in entries:
        if entry.kind == layout.FILE and entry.path.endswith(".py"):
            target = pyc.pyc_path(entry.path)
            if target in present:
                continue
            source = entry.data if entry.data is not None else open(entry.source, "rb").read()
            code = compiler.compile(source, entry.path)
            if code is not None:
                out.append(Entry.file(target, data=code))
    return out


def listing(entries: list[Entry]) -> str:
    """The golden-listing form of a layer: one sorted path per line, dirs with '/'."""
    paths = [e.path + ("/" if e.kind == layout.DIR else "") for e in layout.with_parent_dirs(entries)]
    return "".join(p + "\n" for p in paths)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--manifest", required=True)
    parser.add_argument("--name", default="layer", help="the layer group's name, for the log line")
    parser.add_argument("--out", required=True, help="layer .tar.gz; a .json sidecar is written next to it")
    parser.add_argument("--level", type=int, default=layout.GZIP_LEVEL, choices=range(1, 10),
                        help=f"gzip level (default {layout.GZIP_LEVEL})")
    parser.add_argument("--pyc", action="store_true", help="add deterministic .pyc")
    parser.add_argument("--pyc-root", help="an unpacked base whose usr/bin/python3.11 compiles the .pyc "
                                           "(else this Python)")
    parser.add_argument("--listing", help="also write the sorted path listing here")
    parser.add_argument("--architecture", help="image architecture (OCI name): refuse binaries for others")
    args = parser.parse_args(argv)
    started = time.monotonic()
    entries, _dropped = layer_entries(read_manifest(args.manifest))
    if args.pyc:
        with pyc.compiler(args.pyc_root) as compiler:
            entries = with_pyc(entries, compiler)
    info = layout.write_layer(entries, args.out, architecture=args.architecture, level=args.level)
    with open(args.out + ".json", "w") as f:
        f.write(info.to_json())
    if args.listing:
        with open(args.listing, "w") as f:
            f.write(listing(entries))
    print(f"layer {args.name}: {len(entries)} files, "
          f"{info.size / 1e6:.1f} MB gzip in {time.monotonic() - started:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
