"""Fixtures for tests that need a real host: containers of the local test image.

These tests run through `make container-tests`, which builds the image and the collection.
Run outside it (no podman, no PYCGI_TEST_IMAGE) they fail with that instruction instead of
passing vacuously.
"""
import pytest

from harness.podman import Container, require_podman


@pytest.fixture(scope="module")
def module_container():
    """One container shared by the tests of a file (systemd running, Apache stopped)."""
    require_podman()
    with Container.start() as container:
        yield container


@pytest.fixture
def container():
    """A fresh container for one test."""
    require_podman()
    with Container.start() as container:
        yield container
