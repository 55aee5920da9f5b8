"""Build small synthetic .deb files for tests (ar + control.tar.xz + data.tar.xz)."""

import hashlib
import io
import lzma
import tarfile


def _tar_xz(members) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name, kind, payload, mode in members:
            info = tarfile.TarInfo(name)
            info.mode = mode
            if kind == "dir":
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            elif kind == "symlink":
                info.type, info.linkname = tarfile.SYMTYPE, payload
                tar.addfile(info)
            elif kind == "hardlink":
                info.type, info.linkname = tarfile.LNKTYPE, payload
                tar.addfile(info)
            else:
                info.size = len(payload)
                tar.addfile(info, io.BytesIO(payload))
    return lzma.compress(raw.getvalue())


def _ar(members) -> bytes:
    out = [b"!<arch>\n"]
    for name, data in members:
        header = f"{name:<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(data):<10}`\n".encode()
        out += [header, data, b"\n" if len(data) % 2 else b""]
    return b"".join(out)


def make_deb(path, name, files, version="1.0", multi_arch=None, data_suffix="xz"):
    """files: [(path, kind, payload, mode)] with payload bytes / link target."""
    control = f"Package: {name}\nVersion: {version}\nArchitecture: amd64\nDescription: test\n"
    if multi_arch:
        control += f"Multi-Arch: {multi_arch}\n"
    md5 = "".join(f"{hashlib.md5(p).hexdigest()}  {n.lstrip('./')}\n"
                  for n, k, p, _ in files if k == "file")
    control_tar = _tar_xz([("./control", "file", control.encode(), 0o644),
                           ("./md5sums", "file", md5.encode(), 0o644)])
    data = _tar_xz([("./", "dir", None, 0o755)] + files)
    with open(path, "wb") as f:
        f.write(_ar([("debian-binary", b"2.0\n"), ("control.tar.xz", control_tar),
                     (f"data.tar.{data_suffix}", data)]))
    return path
