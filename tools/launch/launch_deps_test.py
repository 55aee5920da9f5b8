"""`bazel run //tools:launch -- status|cancel|recent|watch|logs` must not build torch or the trainer.

The launcher asks the workspace's Bazel for the image and the trainer only when
a command needs them (workspace_bazel.py); a dependency added by accident would
make every `status` build torch and pretrain the tiny backbone first. This test
carries //tools/launch:launch as data, so its runfiles hold everything
`bazel run //tools:launch` builds (a genquery cannot answer here: its scope
closure includes toolchain stubs that are not real targets).
"""

import os
import pathlib

import pytest

RUNFILES = pathlib.Path.cwd().parent  # the test runs in <runfiles>/_main
MAIN = pathlib.Path.cwd()
# What it reads exists only under `bazel test` (plain pytest would read the source tree).
pytestmark = pytest.mark.skipif("TEST_SRCDIR" not in os.environ,
                                reason="reads //tools/launch:launch's runfiles: run it with tools/bazel test")


def repositories() -> list[str]:
    return sorted(os.listdir(RUNFILES))


def main_files() -> list[str]:
    return [str(pathlib.Path(d, f).relative_to(MAIN)) for d, _, files in os.walk(MAIN) for f in files]


def test_the_runfiles_hold_the_launcher_and_its_cloud_clients():
    assert "tools/launch/cli.py" in main_files()
    assert any("aiplatform" in r for r in repositories()), repositories()


@pytest.mark.parametrize("forbidden", ["torch", "triton", "nvidia", "accelerate"])
def test_no_training_wheel(forbidden):
    hits = [r for r in repositories() if forbidden in r]
    assert not hits, f"//tools:launch now carries {hits}: reach the trainer through workspace_bazel.py instead"


# The image's GPU support (a small TOML and its stdlib-only reader, the start-up
# check) is all of ARR_COC the launcher carries: it refuses GPUs the image's
# torch cannot run (image_support.py) and reads the check's exit codes.
ALLOWED = {"ARR_COC/Training/gpu_support.toml", "ARR_COC/Training/startup_check.py", "ARR_COC/Training/__init__.py",
           "ARR_COC/__init__.py"}


def test_the_runfiles_hold_the_image_gpu_support():
    assert ALLOWED <= set(main_files())


@pytest.mark.parametrize("forbidden", ["ARR_COC/", "tiny_backbone", "Stack/"])
def test_no_trainer_backbone_or_image(forbidden):
    hits = [f for f in main_files() if forbidden in f and f not in ALLOWED]
    assert not hits, f"//tools:launch now carries {hits[:5]}: reach them through workspace_bazel.py instead"
