"""Checkpoints on the local disk and on an object store (memory://): resume only from complete ones."""

import uuid

import fsspec
import pytest

from ARR_COC import storage
from ARR_COC.Training import checkpoint


@pytest.fixture(params=["local", "memory"])
def root(request, tmp_path):
    if request.param == "local":
        yield str(tmp_path / "checkpoints")
        return
    location = f"memory://checkpoints-{uuid.uuid4().hex[:8]}"
    yield location
    fs = fsspec.filesystem("memory")
    if fs.exists(location):
        fs.rm(location, recursive=True)


def test_resume_skips_a_folder_whose_marker_was_never_written(root):
    checkpoint.save(root, 3, {"step": 3})
    storage.write_files(storage.join(root, checkpoint.folder_name(7)), {checkpoint.STATE: b"cut off mid-upload"})
    assert checkpoint.complete_steps(root) == [3]
    assert checkpoint.load_latest(root) == {"step": 3}


def test_saving_a_step_again_replaces_it_whole(root):
    checkpoint.save(root, 5, {"version": 1})
    where = checkpoint.save(root, 5, {"version": 2})
    assert where == storage.join(root, "step-00000005")
    assert checkpoint.complete_steps(root) == [5]
    assert checkpoint.load_latest(root) == {"version": 2}
    fs, base = storage.filesystem(root)
    assert sorted(name.rsplit("/", 1)[-1] for name in fs.ls(base, detail=False)) == ["step-00000005"]


def test_no_checkpoint_yet(root):
    assert checkpoint.complete_steps(root) == [] and checkpoint.load_latest(root) is None
