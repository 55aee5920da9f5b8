"""Image assembly over a base: settings inheritance, base layers reused by
digest, and the single-file archive is deterministic."""

import json
import os
import tarfile

import pytest

from tools.oci import assemble, layout
from tools.oci.layout import Entry


def _base(tmp_path):
    info = layout.write_layer([Entry.symlink("bin", "usr/bin"), Entry.file("usr/bin/x", data=b"x")],
                              tmp_path / "base.tar.gz", refuse_top=())
    layout.write_image_layout(tmp_path / "base", [info], env={"PATH": "/usr/bin", "A": "base"},
                              workdir="/", user="0", labels={"from": "base"})
    return tmp_path / "base"


def _app_layer(tmp_path, text=b"a"):
    path = tmp_path / f"app-{text.decode()}.tar.gz"
    layout.write_layer([Entry.file("app/a", data=text)], path)
    return str(path)


@pytest.mark.parametrize("settings,expected", [
    ({}, {"workdir": "/", "user": "0", "env": {"PATH": "/usr/bin", "A": "base"}}),
    ({"workdir": "/app", "env": {"A": "app", "B": "1"}},
     {"workdir": "/app", "user": "0", "env": {"PATH": "/usr/bin", "A": "app", "B": "1"}}),
    ({"user": "65532", "entrypoint": ["/usr/bin/python3"]},
     {"user": "65532", "entrypoint": ["/usr/bin/python3"]}),
])
def test_merge_settings(settings, expected):
    base = {"architecture": "amd64", "os": "linux",
            "config": {"WorkingDir": "/", "User": "0", "Env": ["PATH=/usr/bin", "A=base"]}}
    merged = assemble.merge_settings(base, settings)
    for key, value in expected.items():
        assert merged[key] == value


def test_image_extends_base_layers(tmp_path):
    base = _base(tmp_path)
    digest = assemble.build({"workdir": "/app", "cmd": ["run"]}, [_app_layer(tmp_path)], tmp_path / "img", str(base))
    index = json.loads((tmp_path / "img/index.json").read_text())
    assert index["manifests"][0]["digest"] == digest
    manifest = json.loads((tmp_path / "img/blobs/sha256" / digest[7:]).read_text())
    base_manifest_digest = json.loads((base / "index.json").read_text())["manifests"][0]["digest"]
    base_manifest = json.loads((base / "blobs/sha256" / base_manifest_digest[7:]).read_text())
    assert manifest["layers"][0] == base_manifest["layers"][0]
    assert len(manifest["layers"]) == 2
    config = json.loads((tmp_path / "img/blobs/sha256" / manifest["config"]["digest"][7:]).read_text())
    assert config["config"]["Labels"] == {"from": "base"}
    assert config["config"]["Env"] == ["A=base", "PATH=/usr/bin"]
    assert len(config["rootfs"]["diff_ids"]) == 2


def test_changing_one_layer_changes_digest_but_not_other_blobs(tmp_path):
    base = str(_base(tmp_path))
    d1 = assemble.build({}, [_app_layer(tmp_path, b"a")], tmp_path / "one", base)
    d2 = assemble.build({}, [_app_layer(tmp_path, b"b")], tmp_path / "two", base)
    assert d1 != d2
    shared = set(os.listdir(tmp_path / "one/blobs/sha256")) & set(os.listdir(tmp_path / "two/blobs/sha256"))
    assert len(shared) == 1  # the base layer; config, manifest and app layer differ


def test_layout_tar_is_deterministic(tmp_path):
    assemble.build({}, [_app_layer(tmp_path)], tmp_path / "img", str(_base(tmp_path)))
    assemble.layout_tar(tmp_path / "img", tmp_path / "1.tar")
    assemble.layout_tar(tmp_path / "img", tmp_path / "2.tar")
    assert (tmp_path / "1.tar").read_bytes() == (tmp_path / "2.tar").read_bytes()
    with tarfile.open(tmp_path / "1.tar") as tar:
        names = tar.getnames()
    assert "index.json" in names and "oci-layout" in names
    assert sum(n.startswith("blobs/sha256/") for n in names) == 4  # base + app layers, config, manifest


def test_cli_writes_digest_file(tmp_path):
    (tmp_path / "c.json").write_text(json.dumps({"entrypoint": ["/x"], "env": {"A": "1"}}))
    rc = assemble.main(["--config", str(tmp_path / "c.json"), "--layer", _app_layer(tmp_path),
                     "--out", str(tmp_path / "img"), "--digest-out", str(tmp_path / "d")])
    digest = (tmp_path / "d").read_text()
    assert rc == 0 and digest.startswith("sha256:") and digest.endswith("\n") and len(digest) == 72
    index = json.loads((tmp_path / "img/index.json").read_text())
    assert index["manifests"][0]["digest"] == digest.strip()
