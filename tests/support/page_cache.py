"""Put a file's pages out of, or into, the page cache, and count how much of it is there.

Why not `/proc/sys/vm/drop_caches`: it needs root on the host (a container gets
"Permission denied" even as root) and drops every cache on the machine.
`posix_fadvise(POSIX_FADV_DONTNEED)` evicts one file's clean pages without
privileges; `mincore(2)` over a read-only mapping says how many are resident,
so the eviction is checked rather than assumed.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import mmap
import os

_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
_libc.mmap.restype = ctypes.c_void_p
_libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                       ctypes.c_int, ctypes.c_long]
_libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
_libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p]
_MAP_FAILED = ctypes.c_void_p(-1).value


def evict(path: str) -> None:
    """Drops PATH's clean pages from the page cache (dirty pages stay: sync them first)."""
    with open(path, "rb") as f:
        os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)


def warm(path: str, block: int = 8 << 20) -> None:
    """Reads PATH once so its pages are resident."""
    with open(path, "rb", buffering=0) as f:
        buf = bytearray(block)
        while f.readinto(buf):
            pass


def resident_bytes(path: str) -> int:
    """How many bytes of PATH are in the page cache now (mincore over a PROT_READ mapping)."""
    size = os.path.getsize(path)
    if size == 0:
        return 0
    page = mmap.PAGESIZE
    with open(path, "rb") as f:
        addr = _libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, f.fileno(), 0)
        if addr in (None, _MAP_FAILED):
            raise OSError(ctypes.get_errno(), f"mmap {path}")
        try:
            pages = (size + page - 1) // page
            vec = ctypes.create_string_buffer(pages)
            if _libc.mincore(addr, size, vec) != 0:
                raise OSError(ctypes.get_errno(), f"mincore {path}")
            resident = sum(b & 1 for b in vec.raw)
        finally:
            _libc.munmap(addr, size)
    return min(size, resident * page)
