"""The base's own python3.11 writes the image's .pyc: it runs here from the
unpacked layer (no root), its bytes are what the layers ship, and a host that
cannot run it falls back to its own Python, saying so."""

import importlib.util
import os
import tarfile

import pytest

from tools.oci import pyc, py_layers

HERE = os.path.dirname(os.path.abspath(__file__))
BLOB = os.path.join(HERE, "rootfs.tar.gz")
SOURCE = b"def f(x):\n    try:\n        return x + 1\n    except TypeError:\n        return None\n"


@pytest.fixture(scope="module")
def rootfs():
    """The base's usr/ as the layer action wrote it beside the layer (a Bazel tree)."""
    return os.path.join(HERE, "rootfs.python")


def test_the_image_python_compiles_here_and_keeps_going_after_a_syntax_error(rootfs):
    with pyc.ImagePython(rootfs) as python:
        first = python.compile(SOURCE, "app/m.py")
        assert python.compile(b"def (:\n", "app/bad.py") is None
        assert python.compile(SOURCE, "app/m.py") == first
    assert first[:4] == importlib.util.MAGIC_NUMBER
    assert first[4:8] == (1).to_bytes(4, "little")  # unchecked-hash flags: no mtime inside


def test_the_base_layer_stdlib_pyc_are_the_image_pythons(rootfs):
    with tarfile.open(BLOB) as tar:
        source = tar.extractfile("usr/lib/python3.11/dataclasses.py").read()
        shipped = tar.extractfile("usr/lib/python3.11/__pycache__/dataclasses.cpython-311.pyc").read()
    with pyc.ImagePython(rootfs) as python:
        assert python.compile(source, "usr/lib/python3.11/dataclasses.py") == shipped


def test_py_layers_compiles_with_the_base_it_is_given(rootfs, tmp_path):
    src = tmp_path / "m.py"
    src.write_bytes(SOURCE)
    manifest = tmp_path / "manifest"
    manifest.write_text(f"_main/app_pkg/m.py\t{src}\n")
    out = tmp_path / "layer.tar.gz"
    assert py_layers.main(["--manifest", str(manifest), "--out", str(out), "--pyc", "--pyc-root", rootfs]) == 0
    with tarfile.open(out) as tar:
        shipped = tar.extractfile("app/app_pkg/__pycache__/m.cpython-311.pyc").read()
    with pyc.ImagePython(rootfs) as python:
        assert shipped == python.compile(SOURCE, "app/app_pkg/m.py")


def test_a_host_that_cannot_run_it_uses_its_own_python_and_says_so(tmp_path, capsys):
    import sys
    with pyc.compiler(str(tmp_path), log=sys.stderr) as python:
        assert isinstance(python, pyc.HostPython)
        assert python.compile(SOURCE, "app/m.py") == pyc.compile_source(SOURCE, "app/m.py")
    assert "not the image's" in capsys.readouterr().err
