"""Read .deb files with the standard library only (no dpkg on the build path).

A .deb is an `ar` archive of `debian-binary`, `control.tar.*` and
`data.tar.*`. bookworm packages use xz (checked for the locked set); gzip and
uncompressed are also read; zstd is refused with a clear message because the
standard library has no decompressor for it and we do not want a host tool
on the build path.
"""

from __future__ import annotations

import dataclasses
import gzip
import io
import lzma
import tarfile
from collections.abc import Iterator

AR_MAGIC = b"!<arch>\n"
AR_HEADER = 60


class DebError(ValueError):
    """A .deb that this reader cannot (or must not) use."""


@dataclasses.dataclass(frozen=True)
class Member:
    name: str
    offset: int
    size: int


def ar_members(f) -> list[Member]:
    """Index of an ar archive: names, data offsets and sizes (data not read)."""
    f.seek(0)
    if f.read(len(AR_MAGIC)) != AR_MAGIC:
        raise DebError("not an ar archive")
    members, offset = [], len(AR_MAGIC)
    while True:
        f.seek(offset)
        header = f.read(AR_HEADER)
        if not header:
            return members
        if len(header) != AR_HEADER or header[58:60] != b"`\n":
            raise DebError(f"bad ar header at {offset}")
        name = header[:16].decode("ascii").strip().rstrip("/")
        size = int(header[48:58].decode("ascii").strip())
        members.append(Member(name, offset + AR_HEADER, size))
        offset += AR_HEADER + size + (size & 1)


class _Window(io.RawIOBase):
    """A read-only view of [offset, offset+size) of a file, so decompressors
    can stream one ar member without copying it."""

    def __init__(self, f, offset: int, size: int):
        self.f, self.start, self.left = f, offset, size
        self.pos = offset

    def readable(self):
        return True

    def readinto(self, buffer):
        n = min(len(buffer), self.left)
        if n <= 0:
            return 0
        self.f.seek(self.pos)
        data = self.f.read(n)
        buffer[: len(data)] = data
        self.pos += len(data)
        self.left -= len(data)
        return len(data)


def _decompressor(name: str, raw):
    if name.endswith(".xz"):
        return lzma.LZMAFile(raw)
    if name.endswith(".gz"):
        return gzip.GzipFile(fileobj=raw)
    if name.endswith(".zst"):
        raise DebError(f"{name}: zstd-compressed members are not supported (no decompressor in "
                       "the standard library); pin a package built with xz")
    if name.endswith(".tar"):
        return raw
    raise DebError(f"{name}: unknown compression")


def open_member_tar(f, prefix: str) -> tarfile.TarFile:
    """Stream-open `control.tar*` or `data.tar*` of an open .deb."""
    for member in ar_members(f):
        if member.name.startswith(prefix):
            stream = io.BufferedReader(_Window(f, member.offset, member.size), 1 << 20)
            return tarfile.open(fileobj=_decompressor(member.name, stream), mode="r|")
    raise DebError(f"no {prefix}* member")


@dataclasses.dataclass
class DebEntry:
    """One member of data.tar, content read into memory (base packages are
    small: 15 MB of .debs, ~70 MB unpacked)."""

    path: str           # as shipped, without "./"
    kind: str           # "file" | "dir" | "symlink" | "hardlink"
    mode: int
    uid: int
    gid: int
    data: bytes | None = None
    target: str | None = None


def _kind(info: tarfile.TarInfo) -> str:
    if info.isreg():
        return "file"
    if info.isdir():
        return "dir"
    if info.issym():
        return "symlink"
    if info.islnk():
        return "hardlink"
    raise DebError(f"{info.name}: unsupported member type {info.type!r}")


def _strip(name: str) -> str:
    return name[2:] if name.startswith("./") else name.lstrip("/")


def data_entries(path: str) -> Iterator[DebEntry]:
    """Entries of data.tar, in archive order."""
    with open(path, "rb") as f, open_member_tar(f, "data.tar") as tar:
        for info in tar:
            name = _strip(info.name).rstrip("/")
            if name in ("", "."):
                continue
            kind = _kind(info)
            data = tar.extractfile(info).read() if kind == "file" else None
            target = info.linkname if kind in ("symlink", "hardlink") else None
            if kind == "hardlink":
                target = _strip(target)
            yield DebEntry(name, kind, info.mode & 0o7777, info.uid, info.gid, data, target)


def control_files(path: str) -> dict[str, bytes]:
    """{'control': ..., 'md5sums': ..., ...} from control.tar."""
    out = {}
    with open(path, "rb") as f, open_member_tar(f, "control.tar") as tar:
        for info in tar:
            if info.isreg():
                out[_strip(info.name)] = tar.extractfile(info).read()
    return out
