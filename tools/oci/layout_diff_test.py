"""layout_diff tells exactly which layers two builds changed."""

import pytest

from tools.oci.layout_diff import compare


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
