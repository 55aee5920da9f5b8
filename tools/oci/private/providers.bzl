"""Providers of the OCI rules."""

OciImageInfo = provider(
    doc = "An image built by oci_image.",
    fields = {
        "layout": "tree artifact: the OCI image layout",
        "digest": "File holding the manifest digest",
    },
)

OciLayersInfo = provider(
    doc = "Layer blobs in image order, each with a `<blob>.json` sidecar (digest, diff_id, size).",
    fields = {
        "layers": "list of File (.tar.gz blobs)",
        "sidecars": "list of File (the .json next to each blob)",
    },
)
