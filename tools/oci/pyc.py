"""Deterministic unchecked-hash .pyc for files that go into an image.

Why: precompiled bytecode halves `import torch` for a non-root user (who
cannot write __pycache__), but the timestamp .pyc a build host writes depend
on mtimes. PEP 552 unchecked-hash .pyc depend only on the source bytes, the
in-image file name and the interpreter's minor version, so the build refuses
to compile with anything but the image's Python minor version.
"""

from __future__ import annotations

import importlib.util
import posixpath
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
