"""Split a py_binary's runfiles into the image's Python layer groups.

Why groups: layers are cached and pushed by digest, so files are grouped by
how often they change (docs/architecture.md, decision 3):

    1  base (Debian, tools/oci/debian_rootfs.py; not made here)
    2  torch + nvidia-* + triton + cuda-* wheels  (GBs, change on torch bumps)
    3  every other third-party wheel
    4  project code (ARR_COC and any other first-party file, except 5)
    5  ARR_COC/Training                           (changes most often)

Third-party files go to usr/lib/python3/dist-packages, which is on Debian
Python's default sys.path; project code goes under /app (the image's working
directory). Files of external repos outside `site-packages` (BUILD files,
the build's own Python toolchain, rules_python helpers) are not shipped: the
image has its own interpreter.

Input is a manifest of `runfiles_path<TAB>real_path` lines (an empty real
path means an empty file, as Bazel's runfiles `empty_filenames`).

    python3 tools/oci/py_layers.py --manifest M --group 3 --out layer.tar.gz [--pyc]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
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
GROUP_NAMES = {2: "torch", 3: "third_party", 4: "app", 5: "training"}

# Wheel names (normalised with '_') that belong to the heavy accelerator group.
HEAVY_WHEELS = re.compile(r"^(torch|triton|nvidia_[a-z0-9_]+|cuda_[a-z0-9_]+)$")
# First-party subtrees with their own layer: (prefix, group), first match wins.
APP_GROUPS = (("ARR_COC/Training/", 5), ("", 4))


@dataclasses.dataclass(frozen=True)
class Placement:
    group: int
    dest: str            # path in the image, without leading '/'
    script: bool = False  # a console script whose shebang is rewritten


def wheel_name(repo: str, hub: str = "pypi") -> str:
    """'rules_python~0.22.1~pip~pypi_nvidia_cublas_cu13' -> 'nvidia_cublas_cu13'."""
    tail = re.split(r"[~+]", repo)[-1]
    prefix = hub + "_"
    return tail[len(prefix):] if tail.startswith(prefix) else tail


def is_wheel_repo(repo: str, hub: str = "pypi") -> bool:
    """Repos made by pip.parse are named `<hub>_<wheel>` (after any `~` prefix)."""
    return re.split(r"[~+]", repo)[-1].startswith(hub + "_")


def place(runfiles_path: str, hub: str = "pypi") -> Placement | None:
    """Where one runfile goes in the image, or None if it is not shipped."""
    parts = runfiles_path.split("/")
    repo, rest = parts[0], parts[1:]
    if not rest:
        return None
    if repo in MAIN_REPOS:
        rel = "/".join(rest)
        group = next(g for prefix, g in APP_GROUPS if rel.startswith(prefix))
        return Placement(group, f"{APP_DIR}/{rel}")
    group = 2 if HEAVY_WHEELS.match(wheel_name(repo, hub)) else 3
    if rest == ["site-packages", "__init__.py"]:
        return None  # would make dist-packages itself a package
    if rest[0] == "site-packages" and len(rest) > 1:
        return Placement(group, f"{DIST_PACKAGES}/{'/'.join(rest[1:])}")
    if rest[0] == "bin" and len(rest) == 2 and is_wheel_repo(repo, hub):
        return Placement(group, f"{SCRIPTS_DIR}/{rest[1]}", script=True)
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


def group_entries(pairs, group: int, hub: str = "pypi",
                  exclusive: bool = False) -> tuple[list[Entry], list[tuple[str, str]]]:
    """(entries of `group`, [(path, reason) dropped]); later runfiles with the
    same destination are refused by write_layer as duplicates.

    `exclusive`: the manifest holds only this group's candidates (the rule
    partitions runfiles so that an edit in one group does not rerun the
    others); a file that belongs to another group is an error, never skipped,
    so a disagreement between the rule's partition and `place` cannot lose it."""
    entries, dropped = [], []
    for rpath, real in sorted(pairs):
        where = place(rpath, hub)
        if where is None:
            dropped.append((rpath, "not shipped (outside site-packages / main repo)"))
            continue
        if where.group != group:
            if exclusive:
                raise layout.LayerError(f"{rpath}: belongs to group {where.group}, but was given to "
                                        f"group {group} (tools/oci/defs.bzl _candidate_group disagrees)")
            continue
        if not real:
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


def with_pyc(entries: list[Entry]) -> list[Entry]:
    """Add unchecked-hash .pyc next to every .py of the layer (same layer,
    so a change to a .py changes only its own layer)."""
    out = list(entries)
    present = {e.path for e in entries}
    for entry in entries:
        if entry.kind == layout.FILE and entry.path.endswith(".py"):
            target = pyc.pyc_path(entry.path)
            if target in present:
                continue
            source = entry.data if entry.data is not None else open(entry.source, "rb").read()
            code = pyc.compile_source(source, entry.path)
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
    parser.add_argument("--group", type=int, choices=sorted(GROUP_NAMES), required=True)
    parser.add_argument("--out", required=True, help="layer .tar.gz; a .json sidecar is written next to it")
    parser.add_argument("--hub", default="pypi", help="pip.parse hub name (repo prefix)")
    parser.add_argument("--pyc", action="store_true", help="add deterministic .pyc")
    parser.add_argument("--listing", help="also write the sorted path listing here")
    parser.add_argument("--drop", action="append", default=[], help="runfiles path not to ship")
    parser.add_argument("--architecture", help="image architecture (OCI name): refuse binaries for others")
    parser.add_argument("--exclusive", action="store_true",
                        help="the manifest holds only this group's files: refuse any other group's")
    args = parser.parse_args(argv)
    started = time.monotonic()
    pairs = [(r, p) for r, p in read_manifest(args.manifest) if r not in set(args.drop)]
    entries, _dropped = group_entries(pairs, args.group, args.hub, exclusive=args.exclusive)
    if args.pyc:
        entries = with_pyc(entries)
    info = layout.write_layer(entries, args.out, architecture=args.architecture)
    with open(args.out + ".json", "w") as f:
        f.write(info.to_json())
    if args.listing:
        with open(args.listing, "w") as f:
            f.write(listing(entries))
    print(f"group {args.group} ({GROUP_NAMES[args.group]}): {len(entries)} files, "
          f"{info.size / 1e6:.1f} MB gzip in {time.monotonic() - started:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
