"""The workspace's own Bazel, called from inside `bazel run //tools:launch`.

Why not data deps of the launcher: then every `bazel run //tools:launch`, even
`status` or `recent`, would first build the CUDA image or torch and the tiny
backbone. Instead the launcher asks the same Bazel (the workspace's
tools/bazel, which reaches the same output base) for what a command needs:
the image when a plan needs its digest (`build_image`), the trainer for
`--local` (`run_trainer`). Bazel has released its lock by the time a
`bazel run` binary starts.
"""

from __future__ import annotations

import os
import subprocess
import sys

from tools.launch.errors import ImageBuildError


IMAGE = "//Stack:arr_trainer"
DIGEST = IMAGE + ".digest"
TRAINER = "//ARR_COC/Training:train"  # the image's entry point with the smoke config and the tiny backbone
# What `bazel run` and the Python launcher stub set for *this* binary: the nested
# Bazel sets its own for the trainer, and ours would put the launcher's runfiles
# on the trainer's path.
OWN_RUN_ENV = ("BUILD_WORKSPACE_DIRECTORY", "BUILD_WORKING_DIRECTORY", "PYTHONPATH", "PYTHONSAFEPATH",
               "RUNFILES_DIR", "RUNFILES_MANIFEST_FILE", "JAVA_RUNFILES")


def workspace(environ=os.environ) -> str:
    """The repository root, as `bazel run` names it."""
    root = environ.get("BUILD_WORKSPACE_DIRECTORY")
    if not root:
        raise ImageBuildError(
            "not started by `bazel run`: run `tools/bazel run //tools:launch -- ...` "
            "(or pass --image-layout and --image-digest)")
    return root


def bazel_command(root: str) -> list[str]:
    """The workspace's Bazel entry point (it picks the Bazel that started us)."""
    return [os.path.join(root, "tools", "bazel")]


def output_paths(cquery_stdout: str, root: str) -> tuple[str, str]:
    """(layout dir, digest file) from `cquery --output=files IMAGE DIGEST` (pure)."""
    paths = [os.path.join(root, line) for line in cquery_stdout.split() if line]
    layouts = [p for p in paths if not p.endswith(".digest")]
    digests = [p for p in paths if p.endswith(".digest")]
    if len(layouts) != 1 or len(digests) != 1:
        raise ImageBuildError(f"cannot tell the layout and digest apart in bazel's answer: {paths}")
    return layouts[0], digests[0]


def build_image(environ=os.environ, run=subprocess.run) -> tuple[str, str]:
    """Builds the image with Bazel and returns (layout dir, digest file)."""
    root = workspace(environ)
    bazel = bazel_command(root)
    built = run(bazel + ["build", IMAGE, DIGEST], cwd=root, stdout=sys.stderr)
    if built.returncode != 0:
        raise ImageBuildError(f"`tools/bazel build {IMAGE}` failed (exit {built.returncode}); see the log above")
    query = run(bazel + ["cquery", "--output=files", f"{IMAGE} + {DIGEST}"], cwd=root,
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    if query.returncode != 0:
        raise ImageBuildError(f"`tools/bazel cquery {IMAGE}` failed (exit {query.returncode})")
    return output_paths(query.stdout, root)


def trainer_command(root: str, argv: list[str]) -> list[str]:
    """`tools/bazel run //ARR_COC/Training:train -- ARGV` (pure)."""
    return bazel_command(root) + ["run", TRAINER, "--", *argv]


def trainer_env(environ, extra: dict) -> dict:
    """The caller's environment minus what `bazel run` set for the launcher, plus EXTRA (pure)."""
    return {**{k: v for k, v in environ.items() if k not in OWN_RUN_ENV}, **extra}


def run_trainer(argv: list[str], extra_env: dict, environ=os.environ) -> int:
    """Runs the trainer through Bazel in the caller's folder; its exit code is ours.

    The caller's folder, because the trainer writes `arr_coc_runs/` relative to
    where `bazel run` was typed, as `tools/bazel run //ARR_COC/Training:train` does.
    """
    root = workspace(environ)
    cwd = environ.get("BUILD_WORKING_DIRECTORY") or root
    return subprocess.run(trainer_command(root, argv), cwd=cwd, env=trainer_env(environ, extra_env)).returncode
