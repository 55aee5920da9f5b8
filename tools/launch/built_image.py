"""The image as Bazel built it: an OCI layout dir and its digest file.

The launcher never builds or re-hashes the image; it trusts the layout and
checks that the digest file names a manifest the layout really holds.
"""

from __future__ import annotations

import json
import os
import re

from tools.launch.errors import ImageError

DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")


def read_digest(digest_file: str) -> str:
    try:
        with open(digest_file) as f:
            digest = f.read().strip()
    except OSError as e:
        raise ImageError(f"cannot read image digest file {digest_file}: {e.strerror}; "
                         "build it with `tools/bazel build //Stack:arr_trainer`") from None
    if not DIGEST_RE.match(digest):
        raise ImageError(f"{digest_file}: not a sha256 digest: {digest[:80]!r}")
    return digest


def blob_path(layout_dir: str, digest: str) -> str:
    algo, hexpart = digest.split(":", 1)
    return os.path.join(layout_dir, "blobs", algo, hexpart)


def check_layout(layout_dir: str, digest: str) -> dict:
    """The manifest descriptor for DIGEST from index.json; raises if it is not there."""
    try:
        with open(os.path.join(layout_dir, "index.json")) as f:
            index = json.load(f)
    except (OSError, ValueError) as e:
        raise ImageError(f"{layout_dir} is not an OCI layout (index.json: {e})") from None
    for desc in index.get("manifests", []):
        if desc.get("digest") == digest:
            if not os.path.exists(blob_path(layout_dir, digest)):
                raise ImageError(f"{layout_dir}: manifest blob {digest} missing")
            return desc
    raise ImageError(f"{layout_dir}/index.json does not list {digest}: stale digest file?")


def short_tag(digest: str) -> str:
    """The human tag: the LAST 7 hex characters of the digest, as the original README.

    Never `latest`: a moving tag would hide which image a job ran.
    """
    return digest.split(":", 1)[1][-7:]


def reference(registry_host: str, repository: str, digest: str) -> str:
    """HOST[:PORT]/PATH/NAME@sha256:<hex>, without URL scheme: what Vertex pulls."""
    return f"{registry_host}/{repository}@{digest}"
