"""Fixtures shared by the launcher's integration tests."""

import pytest

from tests.support import registry_server


@pytest.fixture
def registry(tmp_path):
    """A real docker-registry process on a free loopback port, its storage in tmp_path."""
    work = tmp_path / "reg"
    work.mkdir()
    with registry_server.running_registry(str(work)) as reg:
        yield reg
