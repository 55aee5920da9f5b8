"""Providers of the OCI rules."""

OciImageInfo = provider(
    doc = "An image built by oci_image.",
    fields = {
        "layout": "tree artifact: the OCI image layout",
        "digest": "File holding the manifest digest",
    },
)

ImagePythonInfo = provider(
    doc = "An image's own interpreter, unpacked: it compiles the .pyc of the layers above it.",
    fields = {"root": "tree artifact holding usr/ (usr/bin/python3.11 and what it loads)"},
)

OciLayersInfo = provider(
    doc = "Layer blobs in image order, each with a `<blob>.json` sidecar (digest, diff_id, size).",
    fields = {
        "layers": "list of File (.tar.gz blobs)",
        "sidecars": "list of File (the .json next to each blob)",
    },
)
