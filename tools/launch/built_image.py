"""The image as Bazel built it: an OCI layout dir and its digest file.

The launcher never builds or re-hashes the image; it trusts the layout and
checks that the digest file names a manifest the layout really holds. The
layout is read by tools/oci/layout.py, the one reader of the format.
"""

from __future__ import annotations

import re

from tools.launch.errors import ImageError
from tools.oci import layout

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


blob_path = layout.blob_path


def check_layout(layout_dir: str, digest: str) -> layout.LayoutImage:
    """The image DIGEST of the layout; ImageError when the layout lacks it or is no layout."""
    try:
        return layout.read_layout(layout_dir, digest)
    except (layout.LayerError, OSError, ValueError) as e:
        raise ImageError(str(e)) from None


def short_tag(digest: str) -> str:
    """The human tag: the LAST 7 hex characters of the digest, as the original README.

    Never `latest`: a moving tag would hide which image a job ran.
    """
    return digest.split(":", 1)[1][-7:]


def reference(registry_host: str, repository: str, digest: str) -> str:
    """HOST[:PORT]/PATH/NAME@sha256:<hex>, without URL scheme: what Vertex pulls."""
    return f"{registry_host}/{repository}@{digest}"
