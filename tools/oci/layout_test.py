"""Layer and layout determinism: the digest is the build's identity, so the
same entries must give the same bytes, and any change must change them."""

import dataclasses
import gzip
import hashlib
import io
import json
import os
import random
import tarfile

import pytest

from tools.oci import layout
from tools.oci.layout import Entry, LayerError


def _entries(tmp_path, text="print('hi')\n"):
    src = tmp_path / "src.py"
    src.write_text(text)
    script = tmp_path / "run.sh"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o700)
    return [
        Entry.file("app/b.py", source=src),
        Entry.file("app/a.txt", data=b"a"),
        Entry.file("app/run.sh", source=script),
        Entry.symlink("app/link", "a.txt"),
        Entry.dir("home/nonroot", uid=65532, gid=65532),
    ]


def _members(path):
    with tarfile.open(path) as tar:
        return [(m.name, m.type, oct(m.mode), m.uid, m.gid, m.mtime, m.uname, m.gname)
                for m in tar.getmembers()]


def test_same_entries_same_bytes(tmp_path):
    one = layout.write_layer(_entries(tmp_path), tmp_path / "1.tar.gz")
    two = layout.write_layer(list(reversed(_entries(tmp_path))), tmp_path / "2.tar.gz")
    assert (tmp_path / "1.tar.gz").read_bytes() == (tmp_path / "2.tar.gz").read_bytes()
    assert (one.digest, one.diff_id, one.size) == (two.digest, two.diff_id, two.size)


def test_hashes_match_the_bytes(tmp_path):
    info = layout.write_layer(_entries(tmp_path), tmp_path / "l.tar.gz")
    blob = (tmp_path / "l.tar.gz").read_bytes()
    assert info.digest == "sha256:" + hashlib.sha256(blob).hexdigest()
    assert info.diff_id == "sha256:" + hashlib.sha256(gzip.decompress(blob)).hexdigest()
    assert info.size == len(blob)
    assert blob[4:8] == b"\0\0\0\0" and blob[3] == 0  # no mtime, no FNAME


def test_content_change_changes_digest(tmp_path):
    one = layout.write_layer(_entries(tmp_path), tmp_path / "1.tar.gz")
    two = layout.write_layer(_entries(tmp_path, "print('bye')\n"), tmp_path / "2.tar.gz")
    assert one.diff_id != two.diff_id


def test_members_are_sorted_normalised_and_have_parents(tmp_path):
    layout.write_layer(_entries(tmp_path), tmp_path / "l.tar.gz")
    assert _members(tmp_path / "l.tar.gz") == [
        ("app", tarfile.DIRTYPE, "0o755", 0, 0, 0, "", ""),
        ("app/a.txt", tarfile.REGTYPE, "0o644", 0, 0, 0, "", ""),
        ("app/b.py", tarfile.REGTYPE, "0o644", 0, 0, 0, "", ""),
        ("app/link", tarfile.SYMTYPE, "0o777", 0, 0, 0, "", ""),
        ("app/run.sh", tarfile.REGTYPE, "0o755", 0, 0, 0, "", ""),
        ("home", tarfile.DIRTYPE, "0o755", 0, 0, 0, "", ""),
        ("home/nonroot", tarfile.DIRTYPE, "0o755", 65532, 65532, 0, "", ""),
    ]


def test_source_file_mode_does_not_leak(tmp_path):
    entries = _entries(tmp_path)
    layout.write_layer(entries, tmp_path / "1.tar.gz")
    (tmp_path / "src.py").chmod(0o600)  # what a checkout under umask 077 gives
    layout.write_layer(entries, tmp_path / "2.tar.gz")
    assert (tmp_path / "1.tar.gz").read_bytes() == (tmp_path / "2.tar.gz").read_bytes()


@pytest.mark.parametrize("path", ["bin/sh", "lib/x.so", "lib64/ld.so", "sbin/init"])
def test_later_layers_refuse_merged_usr_roots(tmp_path, path):
    with pytest.raises(LayerError, match="must not carry"):
        layout.write_layer([Entry.file(path, data=b"")], tmp_path / "l.tar.gz")


def test_base_may_carry_merged_usr_links(tmp_path):
    layout.write_layer([Entry.symlink("bin", "usr/bin")], tmp_path / "l.tar.gz", refuse_top=())
    with tarfile.open(tmp_path / "l.tar.gz") as tar:
        assert [(m.name, m.type, m.linkname) for m in tar.getmembers()] == [("bin", tarfile.SYMTYPE, "usr/bin")]


@pytest.mark.parametrize("path,head,reason", [
    ("a/.git/config", None, "VCS"),
    ("a/__pycache__/m.cpython-311.pyc", b"\xa7\r\r\n" + b"\0" * 12, "bytecode"),
    ("m.pyc", b"\xa7\r\r\n\x03\0\0\0" + b"\0" * 8, "bytecode"),  # checked-hash
    ("a/__pycache__/notes.txt", None, "__pycache__"),
    ("home/u/.netrc", None, "credential"),
    ("x/id_ed25519", None, "credential"),
    ("app/.env", None, "credential"),
])
def test_exclusion_reasons(path, head, reason):
    assert reason in layout.exclusion_reason(path, head)


@pytest.mark.parametrize("path,head", [
    ("a/__pycache__/m.cpython-311.pyc", b"\xa7\r\r\n\x01\0\0\0" + b"\0" * 8),
    ("usr/lib/ssl/cert.pem", None),
    ("app/environment.py", None),
])
def test_allowed_paths(path, head):
    assert layout.exclusion_reason(path, head) is None


def test_write_layer_refuses_excluded_and_filter_drops_them(tmp_path):
    entries = [Entry.file("app/.git/HEAD", data=b"x"), Entry.file("app/a.py", data=b"")]
    with pytest.raises(LayerError, match="VCS"):
        layout.write_layer(entries, tmp_path / "l.tar.gz")
    kept, dropped = layout.filter_entries(entries)
    assert [e.path for e in kept] == ["app/a.py"]
    assert dropped[0][0] == "app/.git/HEAD"


@pytest.mark.parametrize("entries,match", [
    ([Entry.file("a", data=b""), Entry.file("a", data=b"")], "twice"),
    ([Entry.symlink("usr/x", "y"), Entry.file("usr/x/f", data=b"")], "parent is a symlink"),
])
def test_invalid_layers(tmp_path, entries, match):
    with pytest.raises(LayerError, match=match):
        layout.write_layer(entries, tmp_path / "l.tar.gz", refuse_top=())


@pytest.mark.parametrize("raw,norm", [("./a/b", "a/b"), ("/a//b/", "a/b"), ("a/./b", "a/b")])
def test_normalize_path(raw, norm):
    assert layout.normalize_path(raw) == norm


@pytest.mark.parametrize("raw", ["", "/", "../x", "a/../../b"])
def test_normalize_path_refuses(raw):
    with pytest.raises(LayerError):
        layout.normalize_path(raw)


def test_long_and_unicode_names_are_deterministic(tmp_path):
    name = "app/" + "d" * 120 + "/ünïcode.txt"
    one = layout.write_layer([Entry.file(name, data=b"x")], tmp_path / "1.tar.gz")
    two = layout.write_layer([Entry.file(name, data=b"x")], tmp_path / "2.tar.gz")
    assert one.digest == two.digest
    assert _members(tmp_path / "1.tar.gz")[-1][0] == name


def _layout(tmp_path, name, **kw):
    info = layout.write_layer(_entries(tmp_path), tmp_path / f"{name}.tar.gz")
    out = tmp_path / name
    digest = layout.write_image_layout(out, [info], entrypoint=["/usr/bin/python3"],
                                       cmd=["-c", "1"], env={"B": "2", "A": "1"},
                                       workdir="/app", user="65532", labels={"x": "y"}, **kw)
    return out, digest


def test_layout_is_valid_and_deterministic(tmp_path):
    out1, d1 = _layout(tmp_path, "one")
    out2, d2 = _layout(tmp_path, "two")
    assert d1 == d2
    assert sorted(os.listdir(out1 / "blobs/sha256")) == sorted(os.listdir(out2 / "blobs/sha256"))
    index = json.loads((out1 / "index.json").read_text())
    manifest_digest = index["manifests"][0]["digest"]
    assert manifest_digest == d1
    manifest_bytes = (out1 / "blobs/sha256" / d1.split(":")[1]).read_bytes()
    assert "sha256:" + hashlib.sha256(manifest_bytes).hexdigest() == d1
    manifest = json.loads(manifest_bytes)
    config = json.loads((out1 / "blobs/sha256" / manifest["config"]["digest"][7:]).read_bytes())
    assert config["config"]["Env"] == ["A=1", "B=2"]
    assert config["created"] == layout.FIXED_CREATED
    assert config["rootfs"]["diff_ids"][0].startswith("sha256:")
    assert json.loads((out1 / "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}


def test_config_change_changes_manifest_digest(tmp_path):
    _, d1 = _layout(tmp_path, "one")
    _, d2 = _layout(tmp_path, "two", architecture="arm64")
    assert d1 != d2


def test_tag_is_not_part_of_digest(tmp_path):
    _, d1 = _layout(tmp_path, "one", tag="a")
    _, d2 = _layout(tmp_path, "two", tag=None)
    assert d1 == d2


def test_layer_blob_is_hardlinked_not_copied(tmp_path):
    out, _ = _layout(tmp_path, "one")
    info = layout.describe_blob(tmp_path / "one.tar.gz")
    blob = out / "blobs/sha256" / info.digest[7:]
    assert os.stat(blob).st_ino == os.stat(tmp_path / "one.tar.gz").st_ino


def test_describe_blob_matches_write_layer(tmp_path):
    info = layout.write_layer(_entries(tmp_path), tmp_path / "l.tar.gz")
    again = layout.describe_blob(tmp_path / "l.tar.gz")
    assert (again.digest, again.diff_id, again.size) == (info.digest, info.diff_id, info.size)
    (tmp_path / "l.tar.gz.json").write_text(info.to_json())
    assert layout.describe_blob(tmp_path / "l.tar.gz").diff_id == info.diff_id


def test_plain_tar_is_its_own_diff_id(tmp_path):
    buf = io.BytesIO()
    layout.write_tar_stream([Entry.file("a", data=b"x")], buf)
    (tmp_path / "l.tar").write_bytes(buf.getvalue())
    info = layout.describe_blob(tmp_path / "l.tar")
    assert info.digest == info.diff_id and info.media_type == layout.MEDIA_LAYER_TAR


def _multi_block_entries(tmp_path):
    """About 5 blocks of mixed compressible and incompressible data, so blocks really split."""
    big = tmp_path / "big.bin"
    big.write_bytes(random.Random(7).randbytes(1 << 20) + b"torch " * 600_000)
    return _entries(tmp_path) + [Entry.file("app/big.bin", source=big),
                                 Entry.file("app/zeros", data=bytes(2 << 20))]


@pytest.mark.parametrize("threads", [1, 2, 4])
def test_gzip_bytes_do_not_depend_on_the_thread_count(tmp_path, threads):
    entries = _multi_block_entries(tmp_path)
    reference = layout.write_layer(entries, tmp_path / "ref.tar.gz", threads=1)
    info = layout.write_layer(entries, tmp_path / f"t{threads}.tar.gz", threads=threads)
    assert (tmp_path / f"t{threads}.tar.gz").read_bytes() == (tmp_path / "ref.tar.gz").read_bytes()
    assert info == dataclasses.replace(reference, path=info.path)
    assert reference.size > layout.GZIP_BLOCK // 2  # several compressed blocks


def test_threaded_gzip_is_one_valid_stream_with_a_fixed_header(tmp_path):
    info = layout.write_layer(_multi_block_entries(tmp_path), tmp_path / "l.tar.gz", threads=2)
    blob = (tmp_path / "l.tar.gz").read_bytes()
    assert blob[:2] == b"\x1f\x8b" and blob[4:8] == b"\0\0\0\0"  # gzip magic, mtime 0
    tar = gzip.decompress(blob)  # checks the CRC and length trailer too
    assert "sha256:" + hashlib.sha256(tar).hexdigest() == info.diff_id
    with tarfile.open(fileobj=io.BytesIO(tar)) as t:
        assert t.getmember("app/zeros").size == 2 << 20


def test_thread_count_comes_from_the_environment_or_the_cores():
    assert layout.gzip_threads({"ARR_OCI_GZIP_THREADS": "3"}) == 3
    assert layout.gzip_threads({}) == len(os.sched_getaffinity(0))
