"""layout_diff tells exactly which layers two builds changed."""

import json

import pytest

from tools.oci.layout import LayerInfo
from tools.oci.layout_diff import compare, main


def _image(*layers, manifest="sha256:m"):
    return {"manifest": manifest, "layers": [{"digest": d, "size": s} for d, s in layers]}


@pytest.mark.parametrize(
    "before, after, changed, changed_bytes",
    [
        (_image(("a", 10), ("b", 90)), _image(("a", 10), ("b", 90)), [], 0),
        (_image(("a", 10), ("b", 90)), _image(("a", 10), ("c", 80), manifest="sha256:n"), [1], 80),
        (_image(("a", 10), ("b", 90)), _image(("x", 10), ("y", 90), manifest="sha256:n"), [0, 1], 100),
    ],
)
def test_changed_layers_and_bytes(before, after, changed, changed_bytes):
    result = compare(before, after)
    assert result["changed"] == changed
    assert result["changed_bytes"] == changed_bytes
    assert result["same_manifest"] == (changed == [])


def test_different_layer_counts_are_refused():
    with pytest.raises(ValueError, match="numbers of layers"):
        compare(_image(("a", 1)), _image(("a", 1), ("b", 1)))


def _write(tmp_path, name, obj):
    path = tmp_path / name
    path.write_text(json.dumps(obj))
    return str(path)


def _sidecar(tmp_path, name, digest):
    """A layer file's sidecar as the layer actions write it (the blob itself is not read)."""
    info = LayerInfo(str(tmp_path / f"{name}.tar.gz"), digest, "sha256:tar", 1)
    (tmp_path / f"{name}.tar.gz.json").write_text(info.to_json())


@pytest.mark.parametrize("changed_layer, rc", [("app", 0), ("base", 1)])
def test_the_expected_layer_is_named_by_its_file(tmp_path, changed_layer, rc):
    """A check names the layer (its sidecar's digest), not its index in the image."""
    before = _write(tmp_path, "before.json", _image(("base", 10), ("app-1", 5)))
    after = _write(tmp_path, "after.json", _image(("base", 10), ("app-2", 5), manifest="sha256:n"))
    digests = {"app": "app-2", "base": "base"}
    _sidecar(tmp_path, changed_layer, digests[changed_layer])
    argv = ["diff", before, after, "--expect-changed-layer", str(tmp_path / f"{changed_layer}.tar.gz")]
    assert main(argv) == rc


def test_a_named_layer_outside_the_image_is_an_error(tmp_path):
    image = _write(tmp_path, "image.json", _image(("base", 10)))
    _sidecar(tmp_path, "other", "sha256:elsewhere")
    with pytest.raises(ValueError, match="not a layer of the image"):
        main(["diff", image, image, "--expect-changed-layer", str(tmp_path / "other.tar.gz")])
