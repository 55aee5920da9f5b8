"""Assemble the image's base layer from the locked Debian packages.

Why this way: no dpkg, no root, no Docker on the build path; the layer tar is
written directly from the .deb contents (nothing is extracted to disk), with
merged /usr, and with the files that maintainer scripts would have made (see
docs/image.md). Its bytes depend only on the
.debs and this file.

    python3 tools/oci/debian_rootfs.py --lock Stack/base/debian.lock.json \
        --deb a.deb --deb b.deb ... --out base.tar.gz
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import posixpath
import sys
import tempfile
import time

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
from tools.oci import debfile, layout, pyc
from tools.oci.layout import DIR, FILE, SYMLINK, Entry, LayerError

# merged /usr: what packages ship under these goes to usr/, and the names
# themselves become links.
MERGED_USR = {"bin": "usr/bin", "sbin": "usr/sbin", "lib": "usr/lib", "lib64": "usr/lib64"}

# From libc-bin only what a distroless base needs (the rest are admin tools).
KEEP_ONLY = {
    "libc-bin": ("usr/lib/locale/C.utf8", "usr/sbin/ldconfig", "etc/ld.so.conf"),
}
DROP_PREFIXES = ("usr/share/man/", "usr/share/info/", "usr/share/lintian/")
PYTHON_LIB = "usr/lib/python3.11/"
CA_DIR = "usr/share/ca-certificates/"
CA_BUNDLE = "etc/ssl/certs/ca-certificates.crt"
MAX_CONTENT_BYTES = 512 << 20  # the base is ~70 MB; more means a wrong lock

NONROOT = 65532
PASSWD = (
    "root:x:0:0:root:/root:/sbin/nologin\n"
    "nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n"
    f"nonroot:x:{NONROOT}:{NONROOT}:nonroot:/home/nonroot:/sbin/nologin\n"
)
GROUP = f"root:x:0:\nnobody:x:65534:\nnonroot:x:{NONROOT}:\n"
NSSWITCH = ("passwd: files\ngroup: files\nshadow: files\nhosts: files dns\n"
            "networks: files\nprotocols: files\nservices: files\nethers: files\nrpc: files\n")
HOSTS = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"


def generated_entries() -> list[Entry]:
    """What postinst scripts, base-passwd and update-ca-certificates would
    have made (the CA bundle and dpkg database are computed separately)."""
    links = [Entry.symlink(name, target) for name, target in sorted(MERGED_USR.items())]
    return links + [
        Entry.symlink("usr/bin/python3", "python3.11"),
        Entry.symlink("usr/bin/python", "python3.11"),
        Entry.file("etc/passwd", data=PASSWD.encode()),
        Entry.file("etc/group", data=GROUP.encode()),
        Entry.file("etc/nsswitch.conf", data=NSSWITCH.encode()),
        Entry.file("etc/hosts", data=HOSTS.encode()),
        Entry.symlink("etc/localtime", "/usr/share/zoneinfo/Etc/UTC"),
        Entry.file("etc/timezone", data=b"Etc/UTC\n"),
        Entry.dir("tmp", mode=0o1777),
        Entry.dir("var/tmp", mode=0o1777),
        Entry.dir("root", mode=0o700),
        Entry.dir("home/nonroot", mode=0o700, uid=NONROOT, gid=NONROOT),
        Entry.dir("usr/lib/ssl"),
        Entry.symlink("usr/lib/ssl/certs", "/etc/ssl/certs"),
        Entry.symlink("usr/lib/ssl/cert.pem", "/" + CA_BUNDLE),
    ]


def merged_path(path: str) -> str | None:
    """Where a shipped path lands under merged /usr; None for the top-level
    directories that become links."""
    top, _, rest = path.partition("/")
    if top in MERGED_USR:
        return f"{MERGED_USR[top]}/{rest}" if rest else None
    return path


def keep(package: str, path: str) -> bool:
    """Table-driven filter of what a package contributes."""
    if package in KEEP_ONLY:
        return any(path == p or path.startswith(p) for p in KEEP_ONLY[package])
    if path.startswith(DROP_PREFIXES):
        return False
    if path.startswith("usr/share/doc/") and path.count("/") >= 4:
        return path.endswith("/copyright")
    return True


class Rootfs:
    """The base filesystem as a path -> Entry map, refusing conflicts."""

    def __init__(self):
        self.entries: dict[str, Entry] = {}
        self.owner: dict[str, str] = {}
        self.content_bytes = 0
        self.implicit: set[str] = set()

    def _add_parents(self, path: str) -> None:
        parent = posixpath.dirname(path)
        while parent and parent not in self.entries:
            self.entries[parent] = Entry.dir(parent)
            self.owner[parent] = "implicit"
            self.implicit.add(parent)
            parent = posixpath.dirname(parent)

    def add(self, entry: Entry, owner: str, override_dir: bool = False) -> None:
        """Add one entry; a directory may repeat (first wins unless
        `override_dir` or the first was implicit), anything else may not."""
        self._add_parents(entry.path)
        old = self.entries.get(entry.path)
        if old is not None:
            if old.kind == DIR and entry.kind == DIR:
                if override_dir or entry.path in self.implicit:
                    self.entries[entry.path] = entry
                    self.implicit.discard(entry.path)
                return
            if entry.path in self.implicit or (old.kind == DIR) != (entry.kind == DIR):
                raise LayerError(f"{entry.path} is a {entry.kind} ({owner}) and a directory with "
                                 f"entries below it ({self.owner[entry.path]})")
            if (old.kind, old.data, old.target) != (entry.kind, entry.data, entry.target):
                raise LayerError(f"{entry.path} shipped twice ({self.owner[entry.path]}, {owner})")
            return
        self.entries[entry.path] = entry
        self.owner[entry.path] = owner
        self.content_bytes += len(entry.data or b"")
        if self.content_bytes > MAX_CONTENT_BYTES:
            raise LayerError("base content over the memory cap: is the lock right?")

    def resolve(self, path: str, depth: int = 0) -> str | None:
        """Follow symlinks inside the rootfs; None when the path dangles."""
        if depth > 40:
            return None
        parts, current = path.split("/"), ""
        for i, part in enumerate(parts):
            current = posixpath.join(current, part) if current else part
            entry = self.entries.get(current)
            if entry is None:
                return None
            if entry.kind == SYMLINK:
                base = "" if entry.target.startswith("/") else posixpath.dirname(current)
                joined = posixpath.normpath(posixpath.join(base, entry.target.lstrip("/"), *parts[i + 1:]))
                if joined.startswith(".."):
                    return None
                return self.resolve(joined.lstrip("./") if joined != "." else "", depth + 1)
        return current

    def dangling(self) -> list[str]:
        return sorted(p for p, e in self.entries.items() if e.kind == SYMLINK and self.resolve(p) is None)


def package_entries(package: str, deb_path: str) -> tuple[list[Entry], list[str]]:
    """(entries at their merged-/usr paths, original paths kept) of one .deb;
    hardlinks become copies of their target's bytes."""
    raw = list(debfile.data_entries(deb_path))
    data_by_path = {e.path: e.data for e in raw if e.kind == "file"}
    entries, kept = [], []
    for e in raw:
        path = merged_path(e.path)
        if path is None or not keep(package, path):
            continue
        kept.append(e.path)
        if e.kind == "dir":
            entries.append(Entry.dir(path, mode=e.mode, uid=e.uid, gid=e.gid))
        elif e.kind == "symlink":
            entries.append(Entry.symlink(path, e.target, uid=e.uid, gid=e.gid))
        else:
            data = e.data if e.kind == "file" else data_by_path[e.target]
            entries.append(Entry.file(path, data=data, mode=e.mode, uid=e.uid, gid=e.gid))
    return entries, kept


def ca_bundle(fs: Rootfs) -> bytes:
    """update-ca-certificates' bundle: every .crt under the CA dir, sorted,
    each ending in a newline."""
    out = []
    for path in sorted(p for p in fs.entries if p.startswith(CA_DIR) and p.endswith(".crt")):
        data = fs.entries[path].data
        out.append(data if data.endswith(b"\n") else data + b"\n")
    return b"".join(out)


def status_stanza(control: bytes) -> str:
    """dpkg's status entry: the control fields plus the installed Status."""
    lines = control.decode("utf-8").rstrip("\n").split("\n")
    out = []
    for line in lines:
        out.append(line)
        if line.startswith("Package:"):
            out.append("Status: install ok installed")
    return "\n".join(out) + "\n"


def _control_field(control: bytes, name: str) -> str:
    for line in control.decode("utf-8").splitlines():
        if line.lower().startswith(name.lower() + ":"):
            return line.split(":", 1)[1].strip()
    return ""


def dpkg_entries(packages: list[tuple[str, dict[str, bytes], list[str]]]) -> list[Entry]:
    """/var/lib/dpkg/status and info/*.list, *.md5sums, so scanners see the packages."""
    stanzas, entries = [], []
    for name, control, kept in sorted(packages):
        stanzas.append(status_stanza(control["control"]))
        arch = _control_field(control["control"], "Architecture")
        multi = _control_field(control["control"], "Multi-Arch") == "same"
        stem = f"var/lib/dpkg/info/{name}:{arch}" if multi else f"var/lib/dpkg/info/{name}"
        listing = "/.\n" + "".join(f"/{p}\n" for p in kept)
        entries.append(Entry.file(stem + ".list", data=listing.encode()))
        if "md5sums" in control:
            kept_set = set(kept)
            lines = [l for l in control["md5sums"].decode().splitlines() if l.split("  ", 1)[-1] in kept_set]
            entries.append(Entry.file(stem + ".md5sums", data="".join(l + "\n" for l in lines).encode()))
    entries.append(Entry.file("var/lib/dpkg/status", data="\n".join(stanzas).encode()))
    return entries


def unpack_usr(fs: Rootfs, dest: str) -> str:
    """Write the rootfs's usr/ under DEST, enough to run its python3.11: files,
    folders, and each link as a relative link inside usr/ (links that leave
    usr/ or dangle are left out), so DEST can be a Bazel tree artifact."""
    links = []
    for path in sorted(fs.entries):
        entry = fs.entries[path]
        if not path.startswith("usr/"):
            continue
        target = os.path.join(dest, path)
        if entry.kind == DIR:
            os.makedirs(target, exist_ok=True)
        elif entry.kind == SYMLINK:
            links.append((path, entry.target))
        else:
            with open(target, "wb") as f:
                f.write(entry.data)
            os.chmod(target, 0o755 if (entry.mode or 0) & 0o111 else 0o644)
    for path, link in links:
        pointed = posixpath.normpath(link.lstrip("/") if link.startswith("/")
                                     else posixpath.join(posixpath.dirname(path), link))
        resolved = fs.resolve(pointed)
        if resolved and resolved.startswith("usr/"):
            os.symlink(posixpath.relpath(resolved, posixpath.dirname(path)), os.path.join(dest, path))
    return dest


def pyc_entries(fs: Rootfs) -> list[Entry]:
    """Unchecked-hash bytecode for the standard library (what py3compile
    would do, but deterministic), written by the base's own python3.11 when
    this host can run it."""
    out = []
    with tempfile.TemporaryDirectory() as scratch, pyc.compiler(unpack_usr(fs, scratch)) as compiler:
        for path in sorted(fs.entries):
            entry = fs.entries[path]
            if entry.kind == FILE and path.startswith(PYTHON_LIB) and path.endswith(".py"):
                code = compiler.compile(entry.data, path)
                if code is not None:
                    out.append(Entry.file(pyc.pyc_path(path), data=code))
    return out


def build_rootfs(debs: list[tuple[str, str]], compile_pyc: bool = True) -> Rootfs:
    """Rootfs model from [(package name, .deb path)]."""
    fs, dpkg = Rootfs(), []
    for name, deb_path in sorted(debs):
        entries, kept = package_entries(name, deb_path)
        for entry in entries:
            fs.add(entry, name)
        dpkg.append((name, debfile.control_files(deb_path), kept))
    for entry in generated_entries():
        fs.add(entry, "generated", override_dir=True)
    fs.add(Entry.file(CA_BUNDLE, data=ca_bundle(fs)), "generated")
    for entry in dpkg_entries(dpkg) + (pyc_entries(fs) if compile_pyc else []):
        fs.add(entry, "generated")
    dangling = fs.dangling()
    if dangling:
        raise LayerError(f"dangling symlinks in the base: {dangling[:10]}")
    return fs


def match_debs(lock: dict, deb_paths: list[str]) -> list[tuple[str, str]]:
    """Pair each locked package with the given .deb of the same sha256, so
    file names (and where Bazel put them) do not matter."""
    by_sha = {}
    for path in deb_paths:
        with open(path, "rb") as f:
            by_sha[hashlib.sha256(f.read()).hexdigest()] = path
    missing = [p["name"] for p in lock["packages"] if p["sha256"] not in by_sha]
    if missing:
        raise LayerError(f"no .deb with the locked sha256 for {missing}")
    return [(p["name"], by_sha[p["sha256"]]) for p in lock["packages"]]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lock", required=True)
    parser.add_argument("--deb", action="append", default=[])
    parser.add_argument("--deb-dir", help="take every *.deb in this folder")
    parser.add_argument("--out", required=True, help="layer .tar.gz (a .json sidecar is written next to it)")
    parser.add_argument("--no-pyc", action="store_true")
    parser.add_argument("--architecture", help="image architecture (OCI name): refuse binaries for others")
    parser.add_argument("--python-out", help="also write the base's usr/ here: its python3.11 compiles the image's .pyc")
    args = parser.parse_args(argv)
    debs = list(args.deb)
    if args.deb_dir:
        debs += sorted(os.path.join(args.deb_dir, n) for n in os.listdir(args.deb_dir) if n.endswith(".deb"))
    with open(args.lock) as f:
        lock = json.load(f)
    started = time.monotonic()
    fs = build_rootfs(match_debs(lock, debs), compile_pyc=not args.no_pyc)
    info = layout.write_layer(fs.entries.values(), args.out, refuse_top=(), architecture=args.architecture)
    if args.python_out:
        unpack_usr(fs, args.python_out)
    with open(args.out + ".json", "w") as f:
        f.write(info.to_json())
    print(f"base: {len(fs.entries)} entries, {info.size / 1e6:.1f} MB gzip, {info.diff_id} "
          f"in {time.monotonic() - started:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
