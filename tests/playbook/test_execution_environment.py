"""An execution environment with this collection: `ansible-builder create` on
docs/execution-environment.yml and the built tarball, then the generated build context.

Where it stops: `ansible-builder build` pulls the base image from a container registry, which
these machines cannot reach. What the image build would do with the collection, the test does
here with the context's own scripts: the collection installed from the tarball, and the
context's introspect.py (the builder stage's dependency scan) run on it.
"""
import os
import shutil
import subprocess
import sys

import pytest
import yaml

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.dirname(sys.executable)
DEFINITION = os.path.join(REPO_ROOT, "docs", "execution-environment.yml")


def _version():
    with open(os.path.join(REPO_ROOT, "galaxy.yml")) as handle:
        return yaml.safe_load(handle)["version"]


@pytest.fixture(scope="module")
def context(tmp_path_factory):
    builder = os.path.join(BIN, "ansible-builder")
    if not os.access(builder, os.X_OK):
        pytest.skip("ansible-builder is not installed in this environment (requirements/test.txt)")
    work = tmp_path_factory.mktemp("ee")
    subprocess.run([os.path.join(BIN, "ansible-galaxy"), "collection", "build", "--force",
                    "--output-path", str(work), REPO_ROOT],
                   stdout=subprocess.DEVNULL, check=True, timeout=120)
    shutil.copy(DEFINITION, str(work / "execution-environment.yml"))
    subprocess.run([builder, "create", "-f", "execution-environment.yml", "-c", "context"],
                   cwd=str(work), stdout=subprocess.DEVNULL, check=True, timeout=120)
    return work


def test_the_definition_installs_this_release(context):
    tarball = "pycgi-hosting-%s.tar.gz" % _version()
    with open(DEFINITION) as handle:
        definition = yaml.safe_load(handle)
    assert definition["additional_build_files"] == [{"src": tarball, "dest": "collections"}]
    with open(str(context / "context" / "_build" / "requirements.yml")) as handle:
        requirements = yaml.safe_load(handle)
    assert requirements["collections"] == [{"name": "/build/collections/" + tarball, "type": "file"}]
    with open(str(context / tarball), "rb") as built, \
            open(str(context / "context" / "_build" / "collections" / tarball), "rb") as copied:
        assert built.read() == copied.read()


def test_the_containerfile_installs_the_collection_and_its_system_packages(context):
    with open(str(context / "context" / "Containerfile")) as handle:
        containerfile = handle.read()
    assert 'ARG EE_BASE_IMAGE="quay.io/centos/centos:stream9"' in containerfile
    assert 'ARG PYCMD="/usr/bin/python3.12"' in containerfile
    assert "ansible-galaxy collection install $ANSIBLE_GALAXY_CLI_COLLECTION_OPTS -r requirements.yml" in containerfile
    assert "introspect.py introspect --write-bindep=/tmp/src/bindep.txt" in containerfile
    assert "/output/scripts/install-from-bindep" in containerfile


def test_the_builder_stage_finds_the_collections_system_packages(context):
    tarball = "pycgi-hosting-%s.tar.gz" % _version()
    collections = context / "installed"
    subprocess.run([os.path.join(BIN, "ansible-galaxy"), "collection", "install", "--force",
                    "-p", str(collections), str(context / tarball)],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True, timeout=120)
    scan = subprocess.run([sys.executable, str(context / "context" / "_build" / "scripts" / "introspect.py"),
                           "introspect", str(collections)],
                          capture_output=True, text=True, check=True, timeout=120)
    found = yaml.safe_load(scan.stdout)
    assert found["python"] == []
    system = [line.split("#")[0].strip() for line in found["system"]]
    assert "policycoreutils-python-utils [platform:rpm platform:dpkg]" in system
    assert "httpd [platform:rpm]" in system and "apache2 [platform:dpkg]" in system
    assert all(line.endswith("# from collection pycgi.hosting") for line in found["system"])
