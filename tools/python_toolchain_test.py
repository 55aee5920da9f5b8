"""The registered toolchain is Python 3.11 and sees no host site-packages.

Host packages leaking into tests would make them pass here and fail in the image.
"""

import os
import sys
import sysconfig


def _runfiles_root():
    return os.path.abspath(os.environ["TEST_SRCDIR"])


def test_interpreter_is_python_3_11():
    assert sys.version_info[:2] == (3, 11)


def test_interpreter_is_a_venv_with_its_own_empty_site_packages():
    assert sys.prefix != sys.base_prefix, "the toolchain should be a venv, not the raw host interpreter"
    purelib = sysconfig.get_paths()["purelib"]
    installed = [n for n in os.listdir(purelib) if not n.startswith(("_distutils_hack", "distutils-precedence"))] if os.path.isdir(purelib) else []
    assert installed == [], f"packages installed into the toolchain venv leak into every test: {installed}"


def test_no_site_packages_outside_runfiles_on_sys_path():
    runfiles = _runfiles_root()
    venv_site = os.path.realpath(sysconfig.get_paths()["purelib"])
    leaks = [
        p for p in sys.path
        if ("site-packages" in p or "dist-packages" in p)
        and not os.path.abspath(p).startswith(runfiles)
        and os.path.realpath(p) != venv_site
        and os.path.isdir(p)
    ]
    assert leaks == [], f"host site-packages on sys.path: {leaks}"


def test_locked_packages_come_from_runfiles():
    import pytest
    assert os.path.abspath(pytest.__file__).startswith(_runfiles_root())
