"""Recent launches remembered locally, so `status`/`cancel`/`watch` accept a launch id.

A launch is recorded *before* it is submitted (state "submitting"), so a
crash between submit and record still leaves the launch id to look up. The
record also holds the plan and the supervision policy, so `watch` carries on
exactly where the first watcher stopped. A `launch smoke` record carries its
result under `smoke`, keyed by (image digest, GPU type): `launch
--require-smoke` looks it up, and the newest smoke of each pair is kept when
older launches are dropped. Records never hold secret values (secrets are
Secret Manager references).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pathlib
import tempfile

from tools.launch.errors import WatchLocked

KEEP = 50


def default_path(environ=os.environ) -> pathlib.Path:
    if environ.get("ARR_LAUNCH_STATE"):
        return pathlib.Path(environ["ARR_LAUNCH_STATE"])
    base = environ.get("XDG_STATE_HOME") or os.path.join(environ.get("HOME", "."), ".local", "state")
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
        json.dump(trim(launches), f, indent=1)
    os.replace(tmp, path)


def smoke_key(record: dict) -> tuple[str, str] | None:
    """(image digest, GPU type) of a smoke launch's record, None for any other record."""
    smoke = record.get("smoke")
    return (smoke["digest"], smoke["gpu"]) if isinstance(smoke, dict) else None


def trim(launches: list[dict]) -> list[dict]:
    """The last KEEP records, and before them the newest smoke of each pair they lack."""
    recent = launches[-KEEP:]
    seen = {smoke_key(r) for r in recent} - {None}
    older = []
    for record in reversed(launches[:-KEEP]):
        key = smoke_key(record)
        if key is not None and key not in seen:
            seen.add(key)
            older.append(record)
    return older[::-1] + recent


@contextlib.contextmanager
def _locked(path: pathlib.Path):
    """Serialises read-modify-write of the state file between launcher processes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield


def upsert(path: pathlib.Path, record: dict) -> None:
    with _locked(path):
        launches = [r for r in load(path) if r.get("launch_id") != record["launch_id"]]
        launches.append(record)
        save(path, launches)


def update(path: pathlib.Path, launch_id: str, **fields) -> dict:
    """Merges FIELDS into the launch's record; keys others set (cancel_requested) survive."""
    with _locked(path):
        launches = load(path)
        record = next((r for r in launches if r.get("launch_id") == launch_id), None)
        if record is None:
            record = {"launch_id": launch_id}
            launches.append(record)
        record.update(fields)
        save(path, launches)
        return dict(record)


@contextlib.contextmanager
def watch_lock(path: pathlib.Path, launch_id: str):
    """One watcher per launch: an exclusive lock held while watching, released on exit or crash."""
    lock_path = path.parent / f".watch-{launch_id}.lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "another process"
            raise WatchLocked(f"launch {launch_id} is already being watched by {holder}; "
                              "stop that watcher (Ctrl-C detaches it) or wait for it") from None
        f.seek(0)
        f.truncate()
        f.write(f"pid {os.getpid()}")
        f.flush()
        yield


def find(path: pathlib.Path, key: str) -> dict | None:
    """The newest record whose launch id, job name or run name is KEY."""
    for r in reversed(load(path)):
        if key in (r.get("launch_id"), r.get("job_name"), r.get("run_name")):
            return r
    return None


def passing_smoke(path: pathlib.Path, digest: str, gpu: str) -> dict | None:
    """The newest passing smoke result of DIGEST on GPU, or None."""
    for record in reversed(load(path)):
        if smoke_key(record) == (digest, gpu) and record["smoke"].get("passed"):
            return record["smoke"]
    return None
