"""The git commit and dirtiness of the workspace, recorded in the plan and job labels."""

from __future__ import annotations

import os
import subprocess


def workspace_dir() -> str:
    """`bazel run` starts binaries in runfiles; the user's checkout is BUILD_WORKSPACE_DIRECTORY."""
    return os.environ.get("BUILD_WORKSPACE_DIRECTORY") or os.getcwd()


def _git(args: list[str], cwd: str) -> str | None:
    try:
        out = subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=30, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout


def commit_and_dirty(cwd: str | None = None) -> tuple[str, bool]:
    """("<40 hex>" or "unknown", dirty); dirty means tracked changes or untracked files."""
    cwd = cwd or workspace_dir()
    head = _git(["rev-parse", "HEAD"], cwd)
    if head is None:
        return "unknown", False
    status = _git(["status", "--porcelain"], cwd) or ""
    return head.strip(), bool(status.strip())
