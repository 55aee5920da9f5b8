"""Hub weights and datasets staged once per (repository, revision) in the run's bucket.

Every Vertex attempt used to fetch the 4.3 GB backbone and the 6.9 GB VQAv2
parquet from the Hugging Face hub, which rate-limits anonymous callers per IP.
A pinned revision never changes, so one copy per revision can be kept under a
cache root (any fsspec URL or local folder) and never invalidated:

    ROOT/models/Qwen/Qwen3-VL-2B-Instruct@<rev>/copies/<id>/...   the files
    ROOT/models/Qwen/Qwen3-VL-2B-Instruct@<rev>/complete.json     marker: copy id, file sizes
    ROOT/datasets/lmms-lab/VQAv2@<rev>/...                        the same for datasets

Object stores have no rename, so a stager uploads under a fresh copy id and
writes the marker last; readers trust a marker only when every file it lists
is there with its size, so an interrupted upload is ignored and staged again.
Two stagers at once (two nodes of a new job): each checks for a marker before
writing its own, waits SETTLE_S, reads the marker again; the one not named
deletes its copy and downloads the named one, so all end with the same files.

On one machine the processes share the local copy: the first to take a file
lock stages, the others block on the lock and then find the local copy
complete. The kernel drops the lock of a process that dies, so a crash never
leaves the others waiting; the next holder stages instead.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import tempfile
import time
import uuid

from ARR_COC import architectures, storage

KINDS = {"models": "model", "datasets": "dataset"}  # cache folder -> huggingface_hub repo_type
MARKER = "complete.json"
COPIES = "copies"
SETTLE_S = 2.0  # longer than a marker check plus upload takes, so a rival's marker is seen on the re-read
READ_ATTEMPTS = 3  # a copy can vanish under a reader when its stager lost the race
SKIPPED = (".cache",)  # huggingface_hub's bookkeeping inside a local_dir snapshot


def is_hub_name(name: str) -> bool:
    """A hub repository id ("org/name"), not `tiny`, `random:NAME`, a URL or an existing local folder."""
    return (name != "tiny" and architectures.random_architecture(name) is None and "://" not in name
            and not os.path.isdir(name))


def entry(cache_root: str, kind: str, repo: str, revision: str) -> str:
    if kind not in KINDS:
        raise ValueError(f"kind {kind!r} is not one of {sorted(KINDS)}")
    return storage.join(cache_root, kind, f"{repo}@{revision}")


def local_folder(kind: str, repo: str, revision: str) -> str:
    return os.path.join(tempfile.gettempdir(), "arr_coc_hub", kind, f"{repo}@{revision}")


def from_hub(kind: str, repo: str, revision: str):
    """fetch(local_dir) from the hub; huggingface_hub reads HF_TOKEN from the environment itself."""

    def fetch(local_dir: str) -> None:
        from huggingface_hub import snapshot_download

        snapshot_download(repo, revision=revision, repo_type=KINDS[kind], local_dir=local_dir)

    return fetch


def listing(folder: str) -> dict[str, int]:
    """{relative path: size} of a local folder's files, huggingface_hub's .cache left out."""
    files = {}
    for parent, dirs, names in os.walk(folder):
        if parent == folder:
            dirs[:] = [d for d in dirs if d not in SKIPPED]
        for name in names:
            path = os.path.join(parent, name)
            files[os.path.relpath(path, folder).replace(os.sep, "/")] = os.path.getsize(path)
    return dict(sorted(files.items()))


def complete(files: dict[str, int], present: dict[str, int]) -> bool:
    """Every listed file is present with its listed size (pure)."""
    return bool(files) and all(present.get(name) == size for name, size in files.items())


def read_marker(fs, root: str) -> dict | None:
    """The marker under `root` if the copy it names is complete, else None."""
    try:
        marker = json.loads(fs.cat_file(storage.join(root, MARKER)))
        copy = storage.join(root, COPIES, marker["copy"])
        files = {str(k): int(v) for k, v in marker["files"].items()}
    except (FileNotFoundError, ValueError, KeyError, TypeError, AttributeError):
        return None
    fs.invalidate_cache(copy)
    found = fs.find(copy, detail=True)
    present = {path[len(copy.rstrip("/")) + 1:]: int(info["size"]) for path, info in found.items()}
    return {"copy": marker["copy"], "files": files} if complete(files, present) else None


@contextlib.contextmanager
def machine_lock(local_dir: str):
    """One process per machine stages `local_dir`; the lock dies with its holder."""
    os.makedirs(os.path.dirname(local_dir), exist_ok=True)
    with open(local_dir + ".lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def local_complete(local_dir: str) -> bool:
    try:
        with open(local_dir + ".complete.json") as handle:
            files = json.load(handle)["files"]
    except (FileNotFoundError, ValueError, KeyError):
        return False
    return os.path.isdir(local_dir) and complete(files, listing(local_dir))


def install(folder: str, local_dir: str) -> None:
    """Move a filled folder to `local_dir`, then record its files (the local marker, written last)."""
    marker = local_dir + ".complete.json"
    with contextlib.suppress(FileNotFoundError):
        os.remove(marker)
    shutil.rmtree(local_dir, ignore_errors=True)
    os.replace(folder, local_dir)
    with open(marker + ".tmp", "w") as handle:
        json.dump({"files": listing(local_dir)}, handle)
    os.replace(marker + ".tmp", marker)


def download(fs, root: str, marker: dict, local_dir: str) -> bool:
    """The marker's copy into `local_dir`; False when it vanished or came short (a rival deleted it)."""
    partial = local_dir + ".partial"
    shutil.rmtree(partial, ignore_errors=True)
    copy = storage.join(root, COPIES, marker["copy"])
    names = list(marker["files"])
    targets = [os.path.join(partial, *name.split("/")) for name in names]
    for target in targets:
        os.makedirs(os.path.dirname(target), exist_ok=True)
    try:
        fs.get([storage.join(copy, name) for name in names], targets)
    except FileNotFoundError:
        return False
    if not complete(marker["files"], listing(partial)):
        return False
    install(partial, local_dir)
    return True


def upload(fs, root: str, folder: str) -> dict:
    """The folder's files under a fresh copy id; returns the marker that would name them."""
    files = listing(folder)
    if not files:
        raise ValueError(f"nothing to stage: {folder} is empty after the fetch")
    copy = uuid.uuid4().hex
    prefix = storage.join(root, COPIES, copy)
    for parent in sorted({storage.join(prefix, name).rsplit("/", 1)[0] for name in files}):
        fs.makedirs(parent, exist_ok=True)  # a no-op on object stores; local folders need it
    fs.put([os.path.join(folder, *name.split("/")) for name in files], [storage.join(prefix, n) for n in files])
    return {"copy": copy, "files": files}


def stage(cache_url: str, fetch, local_dir: str, settle_s: float) -> None:
    """Fill `local_dir` from the cache, or from `fetch` and then into the cache."""
    fs, root = storage.filesystem(cache_url)
    for _ in range(READ_ATTEMPTS):
        marker = read_marker(fs, root)
        if marker is None:
            break
        if download(fs, root, marker, local_dir):
            return
    fetched = local_dir + ".fetch"
    shutil.rmtree(fetched, ignore_errors=True)
    os.makedirs(fetched)
    fetch(fetched)
    mine = upload(fs, root, fetched)
    winner = read_marker(fs, root)
    if winner is None:
        fs.pipe_file(storage.join(root, MARKER), json.dumps(mine, indent=1).encode())
        time.sleep(settle_s)
        winner = read_marker(fs, root)
    if winner is not None and winner["copy"] != mine["copy"]:
        fs.rm(storage.join(root, COPIES, mine["copy"]), recursive=True)
        if download(fs, root, winner, local_dir):
            shutil.rmtree(fetched, ignore_errors=True)
            return
    install(fetched, local_dir)  # the winner's copy vanished too: ours holds the same revision


def staged(kind: str, repo: str, revision: str, cache_root: str, fetch, local_dir: str | None = None,
           settle_s: float = SETTLE_S) -> str:
    """A local folder holding `repo` at `revision`, read from the cache under `cache_root` when it has
    a complete copy, else filled by `fetch(folder)` and uploaded there for the next attempt."""
    local_dir = local_dir or local_folder(kind, repo, revision)
    cache_url = entry(cache_root, kind, repo, revision)
    with machine_lock(local_dir):
        if not local_complete(local_dir):
            stage(cache_url, fetch, local_dir, settle_s)
    return local_dir
