"""The trainer's outputs survive the job: checkpoints, export and TensorBoard events on a URL.

The same short training run (random tiny backbone, synthetic data, CPU)
writes through fsspec to `memory://` and to `gs://` through the real gcsfs
client, talking to the Cloud Storage JSON API fake of tests/support/fake_gcs.py
on loopback. The run stops, resumes from the URL, exports; the test then
reads everything back from the URL: complete checkpoints, the exported
selector (through `load_selector`), its provenance and every logged step in
the event files.
"""

import io
import json
import os
import tempfile
import uuid

import pytest
import torch

from ARR_COC.Training import checkpoint
from ARR_COC.Training.config import load_config
from ARR_COC.Training.train import run
from ARR_COC import storage
from tests.support import fake_gcs


@pytest.fixture
def memory_root():
    import fsspec

    root = f"memory://arr-coc-{uuid.uuid4().hex[:8]}"
    yield root
    fs = fsspec.filesystem("memory")
    if fs.exists(root):
        fs.rm(root, recursive=True)


@pytest.fixture
def gcs_root(monkeypatch):
    """gs://BUCKET/run on a fake GCS server, reached by gcsfs through fsspec's config for `gs`."""
    import fsspec

    fake = fake_gcs.FakeGCS(buckets={"arr-coc-test"})
    with fake_gcs.running(fake) as endpoint:
        monkeypatch.setitem(fsspec.config.conf, "gs", {"endpoint_url": endpoint, "token": "anon"})
        fs, _ = fsspec.core.url_to_fs("gs://arr-coc-test/run")
        if type(fs).__module__ != "gcsfs.core":
            pytest.fail(f"gcsfs gave {type(fs).__name__}, which asks the Storage Control gRPC API for the bucket "
                        "type first (60 s per call against a JSON-only server): set "
                        "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT=false before gcsfs is imported")
        yield "gs://arr-coc-test/run", fake
        type(fs).clear_instance_cache()


def train(root: str, monkeypatch, max_steps: int) -> str:
    """A short run with Vertex's AIP_* variables pointing under `root`; returns its JSON lines."""
    monkeypatch.setenv("AIP_MODEL_DIR", f"{root}/model")
    monkeypatch.setenv("AIP_CHECKPOINT_DIR", f"{root}/checkpoints")
    monkeypatch.setenv("AIP_TENSORBOARD_LOG_DIR", f"{root}/logs")
    config = load_config(None, environ={}, overrides={
        "output_dir": tempfile.mkdtemp(), "image_size": 128, "synthetic_train_size": 64, "synthetic_eval_size": 4,
        "batch_size": 4, "gradient_accumulation_steps": 1, "max_steps": max_steps, "save_every_n_steps": 2,
        "log_every_n_steps": 1, "eval_every_n_steps": 0})
    stream = io.StringIO()
    run(config, stream)
    return stream.getvalue()


def logged_steps(log_url: str) -> dict[str, list[int]]:
    """{tag: sorted steps} over every event file under the URL, read back through fsspec."""
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

    fs, root = storage.filesystem(log_url)
    steps: dict[str, list[int]] = {}
    with tempfile.TemporaryDirectory() as local:
        for index, remote in enumerate(sorted(fs.find(root))):
            path = os.path.join(local, f"events.out.tfevents.{index}")
            with open(path, "wb") as handle:
                handle.write(fs.cat_file(remote))
            for event in EventFileLoader(path).Load():
                for value in event.summary.value:
                    steps.setdefault(value.tag, []).append(event.step)
    return {tag: sorted(found) for tag, found in steps.items()}


def check_outputs_survive(root: str, monkeypatch) -> None:
    from ARR_COC.model import load_selector

    first = train(root, monkeypatch, max_steps=4)
    assert checkpoint.complete_steps(f"{root}/checkpoints") == [2, 4], first
    resumed = train(root, monkeypatch, max_steps=6)
    assert '"event": "resumed"' in resumed
    assert checkpoint.complete_steps(f"{root}/checkpoints") == [2, 4, 6]

    state = checkpoint.load_latest(f"{root}/checkpoints")
    assert state["position"]["step"] == 6
    loaded = load_selector(f"{root}/model")
    for name, tensor in loaded.selector.state_dict().items():
        assert torch.equal(tensor, state["selector"][name]), name
    provenance = json.loads(storage.read_file(f"{root}/model", "provenance.json"))
    assert (provenance["dataset"], provenance["base_model"], provenance["steps"]) == ("synthetic", "tiny", 6)

    # Both runs' event files, each with every step it logged (an append turned overwrite would lose all
    # but the last flush): losses at 1..4 from the first run and 5..6 from the resumed one.
    assert logged_steps(f"{root}/logs")["loss"] == [1, 2, 3, 4, 5, 6]


def test_outputs_survive_on_memory_url(memory_root, monkeypatch):
    check_outputs_survive(memory_root, monkeypatch)


def test_outputs_survive_on_gcs_through_gcsfs(gcs_root, monkeypatch):
    root, fake = gcs_root
    check_outputs_survive(root, monkeypatch)
    assert fake.unhandled == []
    written = set(fake.writes)
    assert {"arr-coc-test/run/model/selector.safetensors", "arr-coc-test/run/model/selector_config.json",
            "arr-coc-test/run/checkpoints/step-00000006/COMPLETE"} <= written
    # The marker of a checkpoint is written after its state, so a folder with a marker is whole.
    order = fake.writes
    for step in (2, 4, 6):
        folder = f"arr-coc-test/run/checkpoints/step-{step:08d}"
        assert order.index(f"{folder}/state.pt") < order.index(f"{folder}/COMPLETE")


def test_load_selector_names_a_missing_export(memory_root):
    from ARR_COC.model import load_selector

    with pytest.raises(FileNotFoundError, match="is .* an exported ARR-COC model"):
        load_selector(f"{memory_root}/nothing-here")
