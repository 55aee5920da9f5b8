"""tests/support/derive_layout.py: a layout that differs from a built one by one file."""

from __future__ import annotations

import json
import os
import tarfile

import pytest

from tests.support import derive_layout
from tools.oci import assemble, layout

SETTINGS = dict(entrypoint=["/usr/bin/python3", "-m", "app.main"], cmd=["--config", "c.toml"],
                env={"PYTHONPATH": "/app", "LANG": "C.UTF-8"}, workdir="/app", user="65532:65532",
                labels={"org.opencontainers.image.title": "t"})


@pytest.fixture
def src(tmp_path):
    """Base-like layer, a big (hardlinked) layer, an app layer with a dir, a file, a symlink, owners."""
    work = tmp_path / "layers"
    work.mkdir()
    specs = [
        [layout.Entry.dir("usr"), layout.Entry.symlink("bin", "usr/bin")],
        [layout.Entry.file("opt/big.bin", data=os.urandom(2 * derive_layout.COPY_BELOW))],
        [layout.Entry.dir("app", mode=0o750, uid=65532, gid=65532),
         layout.Entry.file("app/a.py", data=b"A = 1\n"),
         layout.Entry.file("app/b.py", data=b"B = 2\n", mode=0o755),
         layout.Entry.symlink("app/link.py", "a.py")],
    ]
    infos = [layout.write_layer(e, str(work / f"l{i}.tar.gz"), refuse_top=() if i == 0 else
                                layout.LATER_LAYER_REFUSED_TOP) for i, e in enumerate(specs)]
    out = str(tmp_path / "src")
    digest = layout.write_image_layout(out, infos, blob_mode="copy", **SETTINGS)
    return out, digest


def blobs(d):
    return sorted(os.listdir(os.path.join(d, "blobs", "sha256")))


def test_no_change_reproduces_the_image(src, tmp_path):
    src_dir, digest = src
    out = str(tmp_path / "same")
    assert derive_layout.derive(src_dir, out, 2, {}) == digest
    assert blobs(out) == blobs(src_dir)
    with open(os.path.join(out, "index.json")) as a, open(os.path.join(src_dir, "index.json")) as b:
        assert a.read() == b.read()
    with open(out + ".digest") as f:
        assert f.read() == digest + "\n"


@pytest.mark.parametrize("index", [2, -1])
def test_one_file_change_rebuilds_only_that_layer(src, tmp_path, index):
    src_dir, digest = src
    out = str(tmp_path / "changed")
    new_digest, path = derive_layout.one_file_change(src_dir, out, index)
    assert path == "app/a.py" and new_digest != digest
    old_layers, old_config = assemble.read_base(src_dir)
    new_layers, new_config = assemble.read_base(out)
    changed = [i for i, (a, b) in enumerate(zip(old_layers, new_layers)) if a.digest != b.digest]
    assert changed == [2]
    assert new_config["config"] == old_config["config"]  # settings kept
    assert new_config["rootfs"]["diff_ids"][:2] == old_config["rootfs"]["diff_ids"][:2]
    # the big blob is a hardlink, not a copy
    assert os.stat(new_layers[1].path).st_ino == os.stat(old_layers[1].path).st_ino
    assert os.stat(new_layers[0].path).st_ino != os.stat(old_layers[0].path).st_ino
    # only the one file differs; owners, modes and the symlink survive
    with tarfile.open(old_layers[2].path) as a, tarfile.open(new_layers[2].path) as b:
        old = {m.name: (m.mode, m.uid, m.gid, m.linkname, a.extractfile(m).read() if m.isfile() else None)
               for m in a}
        new = {m.name: (m.mode, m.uid, m.gid, m.linkname, b.extractfile(m).read() if m.isfile() else None)
               for m in b}
    assert old.keys() == new.keys()
    assert [k for k in old if old[k] != new[k]] == ["app/a.py"]
    assert new["app/a.py"][4].startswith(b"A = 1\n")
    assert new["app"][:3] == (0o750, 65532, 65532)
    assert not os.path.exists(os.path.join(out, "layer.tmp"))
    with open(os.path.join(out, "index.json")) as f:
        assert json.load(f)["manifests"][0]["digest"] == new_digest


def test_unknown_path_is_refused(src, tmp_path):
    with pytest.raises(ValueError, match="not files of layer"):
        derive_layout.derive(src[0], str(tmp_path / "x"), 2, {"app/none.py": b""})
