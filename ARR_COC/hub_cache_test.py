"""Hub weights and datasets staged once per revision, on gs:// through the real gcsfs client.

The bucket is the loopback Cloud Storage fake (tests/support/fake_gcs.py);
the hub is replaced by a fetch that writes a few files and records each call
in a file, so calls made by other processes count too. Concurrency runs in
real processes: this module is also their entry point (`python -m
ARR_COC.hub_cache_test ARGS_JSON`).
"""

import json
import os
import subprocess
import sys
import time
import types

import pytest

from ARR_COC import hub_cache
from tests.support import fake_gcs

BUCKET = "arr-coc-test"
REPO, REVISION = "Qwen/Qwen3-VL-2B-Instruct", "89644892e4d85e24eaac8bacfd4f463576704203"
FILES = {"config.json": b'{"model_type": "qwen3_vl"}', "weights/model-00001-of-00001.safetensors": bytes(range(256)) * 64}
WAIT_S = 60


class CountingFetch:
    """Writes FILES and `stager.txt` (who fetched) into the folder; one line per call in `count_file`.
    With `rendezvous`, waits inside the fetch until `stagers` fetches have started (so all of them
    found no copy in the cache); `hang` never returns (a stager killed mid-download)."""

    def __init__(self, count_file, who="test", rendezvous=None, stagers=1, hang=False):
        self.count_file, self.who, self.rendezvous, self.stagers, self.hang = \
            str(count_file), who, rendezvous, stagers, hang

    def __call__(self, folder: str) -> None:
        with open(self.count_file, "a") as handle:
            handle.write(self.who + "\n")
        for name, data in {**FILES, "stager.txt": self.who.encode()}.items():
            os.makedirs(os.path.dirname(os.path.join(folder, name)), exist_ok=True)
            with open(os.path.join(folder, name), "wb") as handle:
                handle.write(data)
        os.makedirs(os.path.join(folder, ".cache", "huggingface"), exist_ok=True)  # as snapshot_download leaves
        if self.rendezvous:
            os.makedirs(self.rendezvous, exist_ok=True)
            open(os.path.join(self.rendezvous, self.who), "w").close()
            deadline = time.time() + WAIT_S
            while (self.hang or len(os.listdir(self.rendezvous)) < self.stagers) and time.time() < deadline:
                time.sleep(0.05)

    def calls(self) -> list[str]:
        with open(self.count_file) as handle:
            return handle.read().split()


def tree(folder: str) -> dict[str, bytes]:
    out = {}
    for name in hub_cache.listing(folder):
        with open(os.path.join(folder, name), "rb") as handle:
            out[name] = handle.read()
    return out


def worker(args: dict) -> None:
    """One stager process: waits for the go file so that all start together, stages, exits."""
    fake_gcs.point_gcsfs_at(args["endpoint"])
    fetch = CountingFetch(args["count_file"], args["who"], args.get("rendezvous"), args.get("stagers", 1),
                          args.get("hang", False))
    while not os.path.exists(args["go"]):
        time.sleep(0.02)
    hub_cache.staged("models", REPO, REVISION, args["root"], fetch, args["local_dir"], settle_s=0.5)


def start(**args) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    return subprocess.Popen([sys.executable, "-m", "ARR_COC.hub_cache_test", json.dumps(args)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(process: subprocess.Popen) -> None:
    out, _ = process.communicate(timeout=WAIT_S * 2)
    assert process.returncode == 0, out


@pytest.fixture
def gcs(tmp_path):
    with fake_gcs.gcsfs_served(BUCKET) as (fake, endpoint):
        import fsspec

        root = f"gs://{BUCKET}/cache/hf"
        fs, entry = fsspec.core.url_to_fs(hub_cache.entry(root, "models", REPO, REVISION))
        if type(fs).__module__ != "gcsfs.core":
            pytest.fail("set GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT=false before gcsfs is imported (fake_gcs docstring)")
        yield types.SimpleNamespace(fake=fake, endpoint=endpoint, root=root, fs=fs, entry=entry,
                                    go=str(tmp_path / "go"), count=tmp_path / "count")
        assert fake.unhandled == []


def copies(gcs) -> set[str]:
    gcs.fs.invalidate_cache()
    prefix = f"{gcs.entry}/{hub_cache.COPIES}/"
    return {path[len(prefix):].split("/")[0] for path in gcs.fs.find(prefix)}


def marker(gcs) -> dict:
    return json.loads(gcs.fs.cat_file(f"{gcs.entry}/{hub_cache.MARKER}"))


@pytest.mark.parametrize("files, present, expected", [
    ({"a": 1}, {"a": 1}, True),
    ({"a": 1}, {"a": 1, "b": 2}, True),    # extra files are not read
    ({"a": 1, "b": 2}, {"a": 1}, False),   # an upload cut short
    ({"a": 5}, {"a": 4}, False),           # a short file
    ({}, {}, False),                       # a marker that lists nothing proves nothing
])
def test_complete(files, present, expected):
    assert hub_cache.complete(files, present) is expected


def test_first_attempt_stages_and_later_ones_read_the_bucket(gcs, tmp_path):
    fetch = CountingFetch(gcs.count)
    first = hub_cache.staged("models", REPO, REVISION, gcs.root, fetch, str(tmp_path / "node1" / "m"), settle_s=0.1)
    again = hub_cache.staged("models", REPO, REVISION, gcs.root, fetch, first, settle_s=0.1)
    other = hub_cache.staged("models", REPO, REVISION, gcs.root, fetch, str(tmp_path / "node2" / "m"), settle_s=0.1)
    assert fetch.calls() == ["test"]
    assert again == first and tree(first) == tree(other) == {**FILES, "stager.txt": b"test"}
    (copy,) = copies(gcs)
    assert marker(gcs)["copy"] == copy and ".cache/huggingface" not in json.dumps(marker(gcs))
    names = [w.split("/", 1)[1] for w in gcs.fake.writes]
    assert names[-1] == f"{gcs.entry.split('/', 1)[1]}/{hub_cache.MARKER}" and len(names) == len(FILES) + 2


def test_two_nodes_staging_at_once_leave_one_copy_and_the_same_files(gcs, tmp_path):
    rendezvous = str(tmp_path / "fetching")
    stagers = [start(endpoint=gcs.endpoint, root=gcs.root, go=gcs.go, count_file=str(gcs.count), who=who,
                     local_dir=str(tmp_path / who / "m"), rendezvous=rendezvous, stagers=2) for who in ("a", "b")]
    open(gcs.go, "w").close()
    for process in stagers:
        finish(process)
    assert sorted(CountingFetch(gcs.count).calls()) == ["a", "b"]  # both found the cache empty
    (copy,) = copies(gcs)
    winner = gcs.fs.cat_file(f"{gcs.entry}/{hub_cache.COPIES}/{copy}/stager.txt")
    assert marker(gcs)["copy"] == copy
    assert tree(str(tmp_path / "a" / "m")) == tree(str(tmp_path / "b" / "m")) == {**FILES, "stager.txt": winner}


def test_processes_of_one_machine_fetch_once(gcs, tmp_path):
    local_dir = str(tmp_path / "node" / "m")
    ranks = [start(endpoint=gcs.endpoint, root=gcs.root, go=gcs.go, count_file=str(gcs.count), who=f"rank{i}",
                   local_dir=local_dir) for i in range(3)]
    open(gcs.go, "w").close()
    for process in ranks:
        finish(process)
    assert len(CountingFetch(gcs.count).calls()) == 1
    assert tree(local_dir) == {**FILES, "stager.txt": CountingFetch(gcs.count).calls()[0].encode()}


def test_a_stager_killed_mid_fetch_does_not_block_the_machine(gcs, tmp_path):
    local_dir, rendezvous = str(tmp_path / "node" / "m"), str(tmp_path / "fetching")
    open(gcs.go, "w").close()
    killed = start(endpoint=gcs.endpoint, root=gcs.root, go=gcs.go, count_file=str(gcs.count), who="killed",
                   local_dir=local_dir, rendezvous=rendezvous, hang=True)
    deadline = time.time() + WAIT_S
    while not os.path.exists(os.path.join(rendezvous, "killed")) and time.time() < deadline:
        time.sleep(0.05)
    waiting = start(endpoint=gcs.endpoint, root=gcs.root, go=gcs.go, count_file=str(gcs.count), who="next",
                    local_dir=local_dir)
    time.sleep(1.0)
    assert waiting.poll() is None  # it waits on the lock of the machine's stager
    killed.kill()
    killed.communicate()
    finish(waiting)
    assert CountingFetch(gcs.count).calls() == ["killed", "next"]
    assert tree(local_dir) == {**FILES, "stager.txt": b"next"}


def _staging_prefix_without_marker(gcs):
    gcs.fs.rm(f"{gcs.entry}/{hub_cache.MARKER}")


def _marker_names_a_missing_file(gcs):
    gcs.fs.rm(f"{gcs.entry}/{hub_cache.COPIES}/{marker(gcs)['copy']}/config.json")


def _marker_names_a_short_file(gcs):
    name = f"{gcs.entry}/{hub_cache.COPIES}/{marker(gcs)['copy']}/weights/model-00001-of-00001.safetensors"
    gcs.fs.pipe_file(name, b"cut")


def _marker_is_cut_short(gcs):
    gcs.fs.pipe_file(f"{gcs.entry}/{hub_cache.MARKER}", b'{"copy": "')


@pytest.mark.parametrize("damage", [_staging_prefix_without_marker, _marker_names_a_missing_file,
                                    _marker_names_a_short_file, _marker_is_cut_short])
def test_an_interrupted_cache_is_ignored_and_staged_again(gcs, tmp_path, damage):
    hub_cache.staged("models", REPO, REVISION, gcs.root, CountingFetch(gcs.count, "first"),
                     str(tmp_path / "node1" / "m"), settle_s=0.1)
    (damaged,) = copies(gcs)
    damage(gcs)
    local = hub_cache.staged("models", REPO, REVISION, gcs.root, CountingFetch(gcs.count, "again"),
                             str(tmp_path / "node2" / "m"), settle_s=0.1)
    assert CountingFetch(gcs.count).calls() == ["first", "again"]
    assert tree(local) == {**FILES, "stager.txt": b"again"}
    assert hub_cache.read_marker(gcs.fs, gcs.entry)["copy"] in copies(gcs) - {damaged}


@pytest.mark.parametrize("name, revision, cache, staged", [
    (REPO, REVISION, "memory://hub", True),
    (REPO, REVISION, "", False),        # no cache root: from_pretrained reads the hub itself
    (REPO, None, "memory://hub", False),  # unpinned (the config refuses it for a hub model anyway)
    ("tiny", REVISION, "memory://hub", False),
])
def test_model_source_stages_only_pinned_hub_models(tmp_path, monkeypatch, name, revision, cache, staged):
    import tempfile

    from ARR_COC.backbone import model_source  # torch: not imported by the stager processes

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    fetch = CountingFetch(tmp_path / "count")
    source, passed_revision = model_source(name, revision, cache, fetch)
    if staged:
        assert (source, passed_revision) == (hub_cache.local_folder("models", REPO, REVISION), None)
        assert tree(source) == {**FILES, "stager.txt": b"test"} and fetch.calls() == ["test"]
    else:
        assert (source, passed_revision) == (name, revision) and not os.path.exists(tmp_path / "count")


if __name__ == "__main__":
    worker(json.loads(sys.argv[1]))
