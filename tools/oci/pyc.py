"""Deterministic unchecked-hash .pyc for files that go into an image.

Why: precompiled bytecode halves `import torch` for a non-root user (who
cannot write __pycache__), but the timestamp .pyc a build host writes depend
on mtimes. PEP 552 unchecked-hash .pyc depend only on the source bytes, the
in-image file name and the interpreter. Not only its minor version: some
line tables differ between 3.11 patch releases, so layers are compiled by the
image's own python3.11 (ImagePython) wherever the host can run it, and the
build refuses anything but the image's minor version.
"""

from __future__ import annotations

import glob
import importlib.util
import os
import posixpath
import subprocess
import sys
import warnings

IMAGE_PYTHON = (3, 11)
# 0 = optimisation level of a plain `python3`; its cache tag is 'cpython-311'.
CACHE_TAG = f"cpython-{IMAGE_PYTHON[0]}{IMAGE_PYTHON[1]}"


class PycError(RuntimeError):
    """The build interpreter cannot produce .pyc for the image's Python."""


def check_interpreter() -> None:
    if sys.version_info[:2] != IMAGE_PYTHON or sys.implementation.cache_tag != CACHE_TAG:
        raise PycError(f"image Python is {IMAGE_PYTHON}, build tool runs "
                       f"{sys.version_info[:2]}: its .pyc would not load in the image")


def pyc_path(py_path: str) -> str:
    """'usr/lib/python3.11/os.py' -> 'usr/lib/python3.11/__pycache__/os.cpython-311.pyc'."""
    head, name = posixpath.split(py_path)
    return posixpath.join(head, "__pycache__", f"{name[:-3]}.{CACHE_TAG}.pyc")


def compile_source(source: bytes, image_path: str) -> bytes | None:
    """Bytes of the unchecked-hash .pyc of `source`, compiled as if it lived
    at `/image_path`; None when it does not compile (some packages ship files
    for newer Pythons: not fatal, Python then just compiles nothing)."""
    check_interpreter()
    from importlib import _bootstrap_external as ext  # the same writer py_compile uses

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            code = compile(source, "/" + image_path.lstrip("/"), "exec", dont_inherit=True)
    except (SyntaxError, ValueError):
        return None
    return bytes(ext._code_to_hash_pyc(code, importlib.util.source_hash(source), checked=False))


# Runs inside the image's own interpreter: reads frames (path, source) on stdin
# and answers each with its .pyc (empty: does not compile). Same steps as
# compile_source, written out on purpose: marshal writes a string as a
# back-reference only when its reference count is above one, so calling
# compile_source from here (which builds the filename afresh) changes a flag
# byte in some .pyc, and with it the image digest.
_SERVER = r"""
import importlib.util, sys, warnings
from importlib import _bootstrap_external as ext
inp, out = sys.stdin.buffer, sys.stdout.buffer
def read(n):
    data = inp.read(n)
    if len(data) != n:
        raise SystemExit(0)
    return data
while True:
    path = read(int.from_bytes(read(4), "big")).decode()
    source = read(int.from_bytes(read(8), "big"))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            code = compile(source, path, "exec", dont_inherit=True)
        pyc = bytes(ext._code_to_hash_pyc(code, importlib.util.source_hash(source), checked=False))
    except (SyntaxError, ValueError):
        pyc = b""
    out.write(len(pyc).to_bytes(8, "big") + pyc)
    out.flush()
"""


class ImagePython:
    """The image's own python3.11, run from an unpacked root filesystem through
    its own dynamic loader (no root, no chroot), as a .pyc compile server.

    Why: .pyc bytes depend on the compiler's patch version, not only the minor
    one (3.11.2 and 3.11.7 write different line tables for some functions), so
    the host's Python would make the digest depend on the host. Only a host that
    can run the image's binaries (linux on the image's CPU) can use it."""

    def __init__(self, rootfs: str):
        loaders = sorted(glob.glob(os.path.join(rootfs, "usr/lib/*/ld-linux*.so*")))
        python = os.path.join(rootfs, "usr/bin/python3.11")
        if not loaders or not os.path.exists(python):
            raise PycError(f"{rootfs} has no usr/bin/python3.11 and dynamic loader")
        libdir = os.path.dirname(loaders[0])
        argv = [loaders[0], "--library-path", libdir, python, "-I", "-S", "-c", _SERVER]
        try:
            self._proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        except OSError as e:
            raise PycError(f"cannot run the image's python3.11 here ({e})") from None
        probe = self.compile(b"import sys\n", "probe.py")
        if probe is None or probe[:4] != importlib.util.MAGIC_NUMBER:
            self.close()
            raise PycError("the image's python3.11 does not write this Python's .pyc format")

    def compile(self, source: bytes, image_path: str) -> bytes | None:
        path = ("/" + image_path.lstrip("/")).encode()
        try:
            self._proc.stdin.write(len(path).to_bytes(4, "big") + path + len(source).to_bytes(8, "big") + source)
            self._proc.stdin.flush()
            size = int.from_bytes(self._read(8), "big")
            return self._read(size) or None
        except (BrokenPipeError, EOFError, ValueError) as e:
            raise PycError(f"the image's python3.11 stopped ({e})") from None

    def _read(self, n: int) -> bytes:
        data = self._proc.stdout.read(n)
        if len(data) != n:
            raise EOFError("short read")
        return data

    def close(self) -> None:
        self._proc.stdin.close()
        self._proc.wait(timeout=30)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class HostPython:
    """This process's own Python 3.11 (same minor version as the image's; the
    patch version may differ, and with it some .pyc bytes)."""

    def compile(self, source: bytes, image_path: str) -> bytes | None:
        return compile_source(source, image_path)

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass


def compiler(rootfs: str | None, log=sys.stderr):
    """The image's interpreter unpacked at ROOTFS when this host can run it, else
    this Python, saying so in one line (the .pyc, so the digest, may then differ
    from a linux build's)."""
    if rootfs is None:
        return HostPython()
    try:
        return ImagePython(rootfs)
    except PycError as e:
        print(f"note: .pyc compiled by the host's Python {sys.version.split()[0]}, not the image's: {e}; "
              "the image digest may differ from one built on linux (docs/image.md)", file=log)
        return HostPython()
