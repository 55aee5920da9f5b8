"""pytest_test: a py_test that runs pytest on its test files.

Test files are the srcs named test_*.py or *_test.py; other srcs (helpers,
conftest.py) are importable but not collected on their own.
"""

load("@pypi//:requirements.bzl", "requirement")
load("@rules_python//python:defs.bzl", "py_test")

_RUNNER = "//tools/pytest:pytest_main.py"

def _is_test_file(src):
    name = src.split(":")[-1].split("/")[-1]
    return name.startswith("test_") or name.endswith("_test.py")

def pytest_test(name, srcs, deps = [], args = [], **kwargs):
    """A py_test that runs pytest over the test files among `srcs`.

    Args:
      name: target name.
      srcs: test files and their helpers.
      deps: libraries the tests import (pytest is added).
      args: extra pytest arguments, placed before the test files.
      **kwargs: passed to py_test (data, size, tags, env, timeout, ...).
    """
    test_files = [s for s in srcs if _is_test_file(s)]
    if not test_files:
        fail("pytest_test %s: no srcs named test_*.py or *_test.py" % name)
    py_test(
        name = name,
        srcs = srcs + [_RUNNER],
        main = _RUNNER,
        deps = deps + [requirement("pytest")],
        args = args + ["$(location %s)" % s for s in test_files],
        **kwargs
    )
