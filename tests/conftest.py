"""Fixtures shared by the launcher's integration tests."""

import pytest

from tests.support import oci_images, registry_server


@pytest.fixture
def registry(tmp_path):
    """A real docker-registry process on a free loopback port, its storage in tmp_path."""
    work = tmp_path / "reg"
    work.mkdir()
    with registry_server.running_registry(str(work)) as reg:
        yield reg


@pytest.fixture
def image(tmp_path):
    """(layout dir, digest) of a small two-layer OCI image the launcher tests plan and push."""
    layout = str(tmp_path / "img")
    digest = oci_images.make_image(layout, [{"a.bin": 20_000}, {"app/x.py": b"x = 1\n"}])
    return layout, digest


@pytest.fixture
def state_file(tmp_path, monkeypatch):
    """The launcher's state file (ARR_LAUNCH_STATE) in tmp_path, so a test never reads or writes the user's."""
    path = tmp_path / "launches.json"
    monkeypatch.setenv("ARR_LAUNCH_STATE", str(path))
    return path
