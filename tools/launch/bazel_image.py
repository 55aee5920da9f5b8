"""The training image as Bazel builds it: //Stack:arr_trainer's layout and digest.

Why not `data` deps of the launcher: then every `bazel run //tools:launch`, even
`--local` or `status`, would first build the 5 GB CUDA image. Instead the
launcher asks the same Bazel (the workspace's tools/bazel, which reaches the
same output base) to build the image only when a plan needs its digest. Bazel
has released its lock by the time a `bazel run` binary starts.
"""

from __future__ import annotations

import os
import subprocess
import sys

IMAGE = "//Stack:arr_trainer"
DIGEST = IMAGE + ".digest"


class ImageBuildError(RuntimeError):
    """Bazel could not build or locate the image."""


def workspace(environ=os.environ) -> str:
    """The repository root, as `bazel run` names it."""
    root = environ.get("BUILD_WORKSPACE_DIRECTORY")
    if not root:
        raise ImageBuildError(
            "no image given and not started by `bazel run`: run `tools/bazel run //tools:launch -- ...`, "
            "or pass --image-layout and --image-digest")
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


def build(environ=os.environ, run=subprocess.run) -> tuple[str, str]:
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
