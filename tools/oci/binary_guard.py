"""Refuse binaries built for another machine than the image's: the guard against a
host-resolved wheel (macOS, aarch64) landing in a linux/amd64 image.

A layer file is a binary when its first bytes are an ELF or Mach-O header; an
ELF file's machine (e_machine) must be the image architecture's, and Mach-O
files (macOS) never run in a Linux image, whatever the architecture.
"""

from __future__ import annotations

import struct

# OCI `architecture` -> the ELF e_machine that runs on it (System V gABI values).
ELF_MACHINE_FOR_ARCH = {"amd64": 62, "arm64": 183, "386": 3, "arm": 40, "ppc64le": 21, "s390x": 22,
                        "riscv64": 243}
ELF_MACHINE_NAMES = {62: "x86-64", 183: "aarch64", 3: "i386", 40: "arm", 21: "ppc64", 22: "s390",
                     243: "riscv"}
# Magic numbers of binaries that are never Linux executables or libraries.
FOREIGN_MAGIC = {
    b"\xcf\xfa\xed\xfe": "Mach-O 64-bit (macOS)",
    b"\xce\xfa\xed\xfe": "Mach-O 32-bit (macOS)",
    b"\xca\xfe\xba\xbe": "Mach-O universal (macOS)",
}
HEAD_BYTES = 20


class ForeignBinaryError(ValueError):
    """A layer holds binaries for another machine; the message names the first few."""


def machine_of(head: bytes) -> str | None:
    """What machine a file's first bytes say it is for; None for a file that is no binary."""
    if head[:4] == b"\x7fELF" and len(head) >= HEAD_BYTES:
        endian = "<" if head[5] == 1 else ">"
        (machine,) = struct.unpack(endian + "H", head[18:20])
        return f"ELF {ELF_MACHINE_NAMES.get(machine, f'machine {machine}')}"
    return FOREIGN_MAGIC.get(head[:4])


def expected_machine(architecture: str) -> str:
    if architecture not in ELF_MACHINE_FOR_ARCH:
        raise ForeignBinaryError(f"unknown image architecture {architecture!r}; "
                                 f"known: {', '.join(ELF_MACHINE_FOR_ARCH)}")
    code = ELF_MACHINE_FOR_ARCH[architecture]
    return f"ELF {ELF_MACHINE_NAMES.get(code, f'machine {code}')}"


def foreign(heads, architecture: str) -> list[tuple[str, str]]:
    """(path, machine) of every binary among (path, head) pairs that ARCHITECTURE cannot run."""
    want = expected_machine(architecture)
    return [(path, got) for path, head in heads if (got := machine_of(head)) is not None and got != want]


def check(heads, architecture: str, shown: int = 5) -> None:
    """Raises ForeignBinaryError naming the first SHOWN foreign binaries and their machines."""
    bad = foreign(heads, architecture)
    if bad:
        listed = "; ".join(f"{path}: {machine}" for path, machine in bad[:shown])
        more = f" and {len(bad) - shown} more" if len(bad) > shown else ""
        raise ForeignBinaryError(
            f"{len(bad)} file(s) are binaries for another machine than the image's "
            f"linux/{architecture} ({expected_machine(architecture)}): {listed}{more}. Their wheels "
            "or packages were resolved for another platform (e.g. the build host's): resolve them "
            "for the image's platform")
