"""The host does not choose the image's binaries: a linux/arm64 image built here
(x86_64, or any host) holds aarch64 wheels, says arm64, passes the guard, and
the guard refuses the same layer once a host-built binary is mixed in."""

import os
import tarfile

import markupsafe
import pytest

from tools.oci import binary_guard, layout
from tools.oci.layout import Entry

HERE = os.path.dirname(os.path.abspath(__file__))
IMAGE = layout.read_layout(os.path.join(HERE, "small_arm64"))


def _binaries():
    """(path, machine) of every ELF or Mach-O file in the image's layers."""
    found = []
    for blob in IMAGE.layer_paths:
        with tarfile.open(blob) as tar:
            for member in tar.getmembers():
                if member.isfile():
                    head = tar.extractfile(member).read(binary_guard.HEAD_BYTES)
                    machine = binary_guard.machine_of(head)
                    if machine:
                        found.append((member.name, machine))
    return found


def _extract(name):
    for blob in IMAGE.layer_paths:
        with tarfile.open(blob) as tar:
            if name in tar.getnames():
                return tar.extractfile(name).read()
    raise AssertionError(f"{name} is in no layer")


def test_config_says_linux_arm64():
    assert (IMAGE.config["os"], IMAGE.config["architecture"]) == ("linux", "arm64")


def test_every_binary_is_aarch64_and_both_wheels_brought_some():
    binaries = _binaries()
    assert {machine for _, machine in binaries} == {"ELF aarch64"}, binaries
    shipped = " ".join(path for path, _ in binaries)
    assert "dist-packages/yaml/" in shipped and "dist-packages/markupsafe/" in shipped


def test_the_digest_file_names_this_image():
    with open(os.path.join(HERE, "small_arm64.digest")) as f:
        assert f.read() == IMAGE.digest + "\n"


def _speedups_path():
    return next(path for path, _ in _binaries() if "markupsafe/_speedups" in path)


def test_guard_accepts_the_arm64_layer_and_refuses_it_mixed(tmp_path):
    arm = _extract(_speedups_path())
    ours = markupsafe._speedups.__file__  # this host's build (x86-64 here; Mach-O on a Mac)
    with open(ours, "rb") as f:
        host_machine = binary_guard.machine_of(f.read(binary_guard.HEAD_BYTES))
    assert host_machine and host_machine != "ELF aarch64"
    arm_only = [Entry.file("usr/lib/python3/dist-packages/markupsafe/_speedups.so", data=arm)]
    assert layout.write_layer(arm_only, str(tmp_path / "ok.tar.gz"), architecture="arm64").size > 0
    mixed = arm_only + [Entry.file("usr/lib/python3/dist-packages/host/_speedups.so", source=ours)]
    with pytest.raises(binary_guard.ForeignBinaryError, match=f"host/_speedups.so: {host_machine}"):
        layout.write_layer(mixed, str(tmp_path / "mixed.tar.gz"), architecture="arm64")
