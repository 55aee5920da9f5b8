"""Rule-level tests of oci_image / py_image_layers / oci_layer on the small
image: determinism, digest file, layer hashes, golden listing, forbidden
files, base inheritance. Data sit next to this file in the runfiles."""

import gzip
import hashlib
import os
import tarfile

from tools.oci import layout

HERE = os.path.dirname(os.path.abspath(__file__))


def _path(*parts):
    return os.path.join(HERE, *parts)


def _blob(image, digest):
    return layout.blob_path(_path(image), digest)


def _manifest(image):
    built = layout.read_layout(_path(image), only=True)
    return built.digest, built.manifest


def _config(image):
    return layout.read_layout(_path(image), only=True).config


def _layer_names(image):
    _, manifest = _manifest(image)
    for desc in manifest["layers"]:
        with tarfile.open(_blob(image, desc["digest"])) as tar:
            yield desc["digest"], tar.getnames()


def _tree(image):
    out = {}
    for root, _, files in os.walk(_path(image)):
        for name in files:
            full = os.path.join(root, name)
            with open(full, "rb") as f:
                out[os.path.relpath(full, _path(image))] = hashlib.sha256(f.read()).hexdigest()
    return out


def test_same_inputs_same_image():
    assert _tree("small") == _tree("small_again")
    with open(_path("small.digest")) as a, open(_path("small_again.digest")) as b:
        assert a.read() == b.read()


def test_digest_file_is_the_manifest_digest():
    with open(_path("small.digest")) as f:
        text = f.read()
    digest, _ = _manifest("small")
    assert text == digest + "\n"
    with open(_blob("small", digest), "rb") as f:
        assert "sha256:" + hashlib.sha256(f.read()).hexdigest() == digest


def test_layer_digests_and_diff_ids_match_bytes():
    _, manifest = _manifest("small")
    diff_ids = _config("small")["rootfs"]["diff_ids"]
    assert len(manifest["layers"]) == len(diff_ids) == 5  # files + 4 layer groups
    for desc, diff_id in zip(manifest["layers"], diff_ids):
        with open(_blob("small", desc["digest"]), "rb") as f:
            data = f.read()
        assert "sha256:" + hashlib.sha256(data).hexdigest() == desc["digest"]
        assert len(data) == desc["size"]
        assert "sha256:" + hashlib.sha256(gzip.decompress(data)).hexdigest() == diff_id


def test_config_settings():
    config = _config("small")["config"]
    assert config["Entrypoint"] == ["/usr/bin/python3"]
    assert config["WorkingDir"] == "/app" and config["User"] == "65532"
    assert config["Env"] == ["LANG=C.UTF-8", "PYTHONUNBUFFERED=1"]


def _listing(group):
    with open(_path("hello_layers", f"{group}.txt")) as f:
        return f.read()


def test_golden_app_listing():
    with open(_path("golden", "app.txt")) as f:
        assert _listing("app") == f.read()


def test_a_more_specific_pattern_takes_its_file_out_of_the_catch_all():
    assert _listing("greeting").split() == [
        "app/", "app/tools/", "app/tools/oci/", "app/tools/oci/testdata/",
        "app/tools/oci/testdata/__pycache__/", "app/tools/oci/testdata/__pycache__/greeting.cpython-311.pyc",
        "app/tools/oci/testdata/greeting.py"]
    assert "greeting" not in _listing("app")


def test_a_group_without_files_is_an_empty_layer():
    assert _listing("torch") == ""


def test_third_party_group_has_the_wheel_in_dist_packages():
    with open(_path("hello_layers", "third_party.txt")) as f:
        names = f.read().split()
    assert "usr/lib/python3/dist-packages/zlib_ng/__init__.py" in names
    assert all(n.startswith("usr/") for n in names)


def test_no_forbidden_files_in_any_layer():
    for digest, names in _layer_names("small"):
        for name in names:
            assert name.split("/")[0] not in layout.LATER_LAYER_REFUSED_TOP, (digest, name)
            assert ".git" not in name.split("/"), name
            if "__pycache__" in name.split("/") and name.endswith(".pyc"):
                with tarfile.open(_blob("small", digest)) as tar:
                    head = tar.extractfile(name).read(16)
                assert layout.is_deterministic_pyc(head), name


def test_child_reuses_base_layers_and_inherits_settings():
    _, base = _manifest("small")
    _, child = _manifest("small_child")
    assert child["layers"][: len(base["layers"])] == base["layers"]
    assert len(child["layers"]) == len(base["layers"]) + 1
    config = _config("small_child")["config"]
    assert config["WorkingDir"] == "/app" and "CHILD=1" in config["Env"]


def test_single_file_archive_holds_the_layout():
    with tarfile.open(_path("small.tar")) as tar:
        names = set(tar.getnames())
    assert set(_tree("small")) <= names
