"""Fixtures for tests that need a real host: containers of the local test image.

These tests run through `make container-tests`, which builds the image and the collection.
Run outside it (no podman, no PYCGI_TEST_IMAGE) they fail with that instruction instead of
passing vacuously.
"""
import pytest

from harness.podman import Container, podman_available


def _require_podman():
    if not podman_available():
        pytest.fail("container tests need podman and PYCGI_TEST_IMAGE: run them with `make container-tests`")


@pytest.fixture(scope="module")
def module_container():
    """One container shared by the tests of a file (systemd running, Apache stopped)."""
    _require_podman()
    container = Container.start()
    yield container
    container.remove()


@pytest.fixture
def container():
    """A fresh container for one test."""
    _require_podman()
    container = Container.start()
    yield container
    container.remove()
