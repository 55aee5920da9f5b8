"""Where the trainer's outputs go: one fsspec layer for local folders and URLs alike.

On Vertex AI, AIP_MODEL_DIR, AIP_CHECKPOINT_DIR and AIP_TENSORBOARD_LOG_DIR
are gs:// URLs; a plain `open` on them writes into a local folder named
`gs:` that is lost with the container. Everything written goes through
these helpers instead, so a local path, gs:// (gcsfs) or memory:// behave
the same. Object stores have no rename and no append: an object is written
whole in one upload, which is atomic (readers see the old object or the
new one, never half of it).
"""

from __future__ import annotations

import os


def is_url(location: str) -> bool:
    return "://" in location


def filesystem(location: str):
    """(fsspec filesystem, path within it) for a local path or a URL."""
    import fsspec

    return fsspec.core.url_to_fs(location)


def is_local(fs) -> bool:
    """True for the local disk, where a folder rename is atomic; False for object stores."""
    protocols = fs.protocol if isinstance(fs.protocol, (tuple, list)) else (fs.protocol,)
    return "file" in protocols or "local" in protocols


def join(location: str, *names: str) -> str:
    return "/".join([location.rstrip("/"), *names])


def write_files(directory: str, files: dict[str, bytes]) -> None:
    """Write each name -> bytes under `directory` (created if needed), in the given order."""
    fs, root = filesystem(directory)
    fs.makedirs(root, exist_ok=True)
    for name, data in files.items():
        fs.pipe_file(join(root, name), data)


def read_file(directory: str, name: str) -> bytes:
    fs, root = filesystem(directory)
    path = join(root, name)
    if not fs.exists(path):
        raise FileNotFoundError(f"{join(directory, name)} does not exist: is {directory} an exported ARR-COC model?")
    return fs.cat_file(path)


def upload_folder(local_folder: str, destination: str) -> None:
    """Copy every file of a local folder to `destination` whole (replacing what is there)."""
    fs, root = filesystem(destination)
    fs.makedirs(root, exist_ok=True)
    for name in sorted(os.listdir(local_folder)):
        path = os.path.join(local_folder, name)
        if os.path.isfile(path):
            fs.put_file(path, join(root, name))
