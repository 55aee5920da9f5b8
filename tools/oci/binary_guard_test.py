"""The binary guard: which files are binaries for which machine, and the layer it refuses."""

import io
import os
import struct
import sys
import tarfile

import pytest

from tools.oci import binary_guard as G
from tools.oci import layout
from tools.oci.layout import Entry


def elf_head(machine: int, little: bool = True) -> bytes:
    """The first 20 bytes of a 64-bit ELF for MACHINE (e_ident, e_type, e_machine)."""
    ident = b"\x7fELF" + bytes([2, 1 if little else 2, 1]) + bytes(9)
    return ident + struct.pack("<HH" if little else ">HH", 3, machine)


@pytest.mark.parametrize(
    "head,machine",
    [
        (elf_head(62), "ELF x86-64"),
        (elf_head(183), "ELF aarch64"),
        (elf_head(183, little=False), "ELF aarch64"),
        (elf_head(40), "ELF arm"),
        (b"\xcf\xfa\xed\xfe" + bytes(16), "Mach-O 64-bit (macOS)"),
        (b"\xca\xfe\xba\xbe" + bytes(16), "Mach-O universal (macOS)"),
        (b"#!/bin/sh\necho hi\n  ", None),
        (b"\x7fELF", None),  # too short to be a header
        (b"", None),
    ],
)
def test_machine_of(head, machine):
    assert G.machine_of(head) == machine


def test_this_interpreter_is_an_amd64_binary():
    with open(os.path.realpath(sys.executable), "rb") as f:
        head = f.read(G.HEAD_BYTES)
    assert G.foreign([("python", head)], "amd64") == []
    assert G.foreign([("python", head)], "arm64") == [("python", "ELF x86-64")]


@pytest.mark.parametrize(
    "architecture,heads,bad",
    [
        ("amd64", [("a.so", elf_head(62)), ("b.py", b"print(1)")], []),
        ("arm64", [("a.so", elf_head(183))], []),
        ("amd64", [("torch/lib/libtorch.dylib", b"\xcf\xfa\xed\xfe" + bytes(16))],
         [("torch/lib/libtorch.dylib", "Mach-O 64-bit (macOS)")]),
        ("amd64", [("x.so", elf_head(62)), ("y.so", elf_head(183))], [("y.so", "ELF aarch64")]),
    ],
)
def test_foreign(architecture, heads, bad):
    assert G.foreign(heads, architecture) == bad


def test_message_names_the_first_few_files_and_their_machine():
    heads = [(f"lib{i}.so", elf_head(183)) for i in range(7)]
    with pytest.raises(G.ForeignBinaryError) as e:
        G.check(heads, "amd64")
    msg = str(e.value)
    assert "7 file(s)" in msg and "lib0.so: ELF aarch64" in msg and "lib4.so" in msg
    assert "lib5.so" not in msg and "and 2 more" in msg and "linux/amd64 (ELF x86-64)" in msg


def test_unknown_architecture_is_an_error():
    with pytest.raises(G.ForeignBinaryError, match="unknown image architecture 'mips'"):
        G.check([], "mips")


def layer_names(path) -> list[str]:
    with tarfile.open(path) as tar:
        return tar.getnames()


def test_a_mixed_layer_is_refused_before_it_is_written(tmp_path):
    entries = [Entry.file("app/ok.so", data=elf_head(62) + bytes(100)),
               Entry.file("app/bad.so", data=elf_head(183) + bytes(100))]
    with pytest.raises(G.ForeignBinaryError, match="app/bad.so: ELF aarch64"):
        layout.write_layer(entries, tmp_path / "l.tar.gz", architecture="amd64")
    tar = io.BytesIO()
    with pytest.raises(G.ForeignBinaryError):
        layout.write_tar_stream(entries, tar, architecture="amd64")
    assert tar.getvalue() == b""  # not even the entries before the bad one
    layout.write_layer(entries[:1], tmp_path / "ok.tar.gz", architecture="amd64")
    assert layer_names(tmp_path / "ok.tar.gz") == ["app", "app/ok.so"]
    # without an architecture nothing is judged (layers of data only, tests)
    layout.write_layer(entries, tmp_path / "any.tar.gz")
    assert layer_names(tmp_path / "any.tar.gz") == ["app", "app/bad.so", "app/ok.so"]
