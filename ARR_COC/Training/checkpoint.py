"""Atomic, resumable checkpoints of the trainable state only, local or any fsspec URL.

A checkpoint is a folder `step-00000040/` holding `state.pt` (selector
weights, optimizer, scheduler, data position, and under "processes" each
process's own RNG and sampling state, in rank order) and an empty `COMPLETE`
marker, which is always written after the state. Resume takes the newest
folder with a marker, so a job killed mid-write resumes from the previous one.

- Local disk: the folder is written as `step-XXXXXXXX.tmp` (state, then
  marker) and renamed; the rename is atomic, so the folder appears complete.
- Object stores (gs://, memory://): there is no rename (gcsfs `mv` copies
  and deletes object by object), but one object upload is atomic. So an old
  marker of the same step is deleted first, `state.pt` is uploaded in one
  piece, and the marker last: a folder with a marker always has its whole
  state, and a crash before the marker leaves a folder that resume skips.
- Several processes: rank 0 gathers the others' states and is the only
  writer, so a checkpoint is one file that is complete or absent.

The frozen backbone is never saved.
"""

from __future__ import annotations

import hashlib
import io
import random
import re

import numpy as np
import torch

from ARR_COC import storage

MARKER = "COMPLETE"
STATE = "state.pt"
FOLDER = re.compile(r"^step-(\d{8})$")


def folder_name(step: int) -> str:
    return f"step-{step:08d}"


def rng_state() -> dict:
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}


def restore_rng(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def weights_digest(tensors: dict) -> str:
    """sha256 over names, dtypes, shapes and bytes: equal exactly when the weights are bit-identical."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        tensor = tensors[name].detach().cpu().contiguous()
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)};".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def process_state(sampling: torch.Generator, selector: dict) -> dict:
    """What differs between processes (RNG streams, the sampling generator), plus a digest of its weights."""
    return {"rng": rng_state(), "sampling": sampling.get_state(), "selector_sha256": weights_digest(selector)}


def restore_process_state(saved: dict, sampling: torch.Generator) -> None:
    restore_rng(saved["rng"])
    if saved.get("sampling") is not None:
        sampling.set_state(saved["sampling"])


def process_states(state: dict) -> list[dict]:
    """The per-process states in rank order; checkpoints written before there were several hold one inline."""
    if "processes" in state:
        return state["processes"]
    return [{"rng": state["rng"], "sampling": state.get("sampling")}]


def check_same_weights(processes: list[dict], step: int) -> None:
    """Data-parallel processes must hold identical weights; a difference is a bug worth stopping for."""
    digests = [saved["selector_sha256"] for saved in processes]
    if len(set(digests)) > 1:
        raise RuntimeError(f"step {step}: the processes' selector weights differ (sha256 per rank: "
                           f"{[d[:12] for d in digests]}); gradients were not synchronised")


def save(root: str, step: int, state: dict) -> str:
    """Write `state` as checkpoint `step` under `root` atomically; returns its location."""
    fs, base = storage.filesystem(root)
    final, location = storage.join(base, folder_name(step)), storage.join(root, folder_name(step))
    buffer = io.BytesIO()
    torch.save(state, buffer)
    files = {STATE: buffer.getvalue(), MARKER: b""}  # in this order: the marker last
    if storage.is_local(fs):
        if fs.exists(f"{final}.tmp"):
            fs.rm(f"{final}.tmp", recursive=True)
        storage.write_files(f"{location}.tmp", files)
        if fs.exists(final):
            fs.rm(final, recursive=True)
        fs.mv(f"{final}.tmp", final, recursive=True)
    else:
        if fs.exists(storage.join(final, MARKER)):
            fs.rm_file(storage.join(final, MARKER))
        storage.write_files(location, files)
    return location


def complete_steps(root: str) -> list[int]:
    """Steps of the checkpoints under `root` that finished writing, oldest first."""
    fs, base = storage.filesystem(root)
    fs.invalidate_cache(base)  # another process (an earlier attempt of the job) may have written since
    if not fs.exists(base):
        return []
    steps = []
    for entry in fs.ls(base, detail=False):
        match = FOLDER.match(entry.rstrip("/").rsplit("/", 1)[-1])
        if match and fs.exists(f"{entry.rstrip('/')}/{MARKER}"):
            steps.append(int(match.group(1)))
    return sorted(steps)


def load_latest(root: str) -> dict | None:
    """The newest complete checkpoint's state, or None when there is none."""
    steps = complete_steps(root)
    if not steps:
        return None
    fs, base = storage.filesystem(root)
    with fs.open(f"{base.rstrip('/')}/{folder_name(steps[-1])}/{STATE}", "rb") as handle:
        return torch.load(io.BytesIO(handle.read()), weights_only=False)
