"""Recent launches remembered locally, so `status`/`cancel` accept a launch id.

A launch is recorded *before* it is submitted (state "submitting"), so a
crash between submit and record still leaves the launch id to look up.
"""

from __future__ import annotations

import json
import os
import pathlib
import tempfile

KEEP = 50


def default_path(env=os.environ) -> pathlib.Path:
    if env.get("ARR_LAUNCH_STATE"):
        return pathlib.Path(env["ARR_LAUNCH_STATE"])
    base = env.get("XDG_STATE_HOME") or os.path.join(env.get("HOME", "."), ".local", "state")
    return pathlib.Path(base) / "arr-coc" / "launches.json"


def load(path: pathlib.Path) -> list[dict]:
    try:
        with open(path) as f:
            data = json.load(f)
    except FileNotFoundError:
        return []
    except ValueError:
        return []  # a corrupt file must not block launching; it is rewritten on save
    return data if isinstance(data, list) else []


def save(path: pathlib.Path, launches: list[dict]) -> None:
    """Atomic write (temp file + rename): concurrent readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".launches.")
    with os.fdopen(fd, "w") as f:
        json.dump(launches[-KEEP:], f, indent=1)
    os.replace(tmp, path)


def upsert(path: pathlib.Path, record: dict) -> None:
    launches = [r for r in load(path) if r.get("launch_id") != record["launch_id"]]
    launches.append(record)
    save(path, launches)


def find(path: pathlib.Path, key: str) -> dict | None:
    """The newest record whose launch id, job name or run name is KEY."""
    for r in reversed(load(path)):
        if key in (r.get("launch_id"), r.get("job_name"), r.get("run_name")):
            return r
    return None
