"""Independent OCI tools accept the layout the rules make (skopeo, umoci are
installed into the Bazel root by tools/bazel-root/packages.txt)."""

import json
import os
import shutil
import subprocess

from tools.oci import layout

HERE = os.path.dirname(os.path.abspath(__file__))
SMALL = os.path.join(HERE, "small")


def _run(*cmd):
    tool = shutil.which(cmd[0])
    assert tool, f"{cmd[0]} is not installed in this environment"
    return subprocess.run([tool, *cmd[1:]], check=True, capture_output=True, text=True).stdout


def test_skopeo_inspect_reports_our_digest():
    digest = layout.read_layout(SMALL, only=True).digest
    info = json.loads(_run("skopeo", "inspect", f"oci:{SMALL}:latest"))
    assert info["Digest"] == digest and info["Architecture"] == "amd64"


def test_umoci_unpacks_the_image(tmp_path):
    layout_copy = tmp_path / "image"
    shutil.copytree(SMALL, layout_copy)  # umoci takes a lock file in the layout
    _run("umoci", "unpack", "--rootless", "--image", f"{layout_copy}:latest", str(tmp_path / "bundle"))
    rootfs = tmp_path / "bundle" / "rootfs"
    assert (rootfs / "etc" / "hello.txt").read_text().startswith("static file")
    assert (rootfs / "app" / "tools" / "oci" / "testdata" / "hello.py").exists()
