"""What the built collection ships: `ansible-galaxy collection build` of this checkout, as
`make collection` runs it, and the list of files in the tarball it writes.

A user gets the modules, the role, the playbook, meta, docs, the changelog and the licence;
the files that build, test or measure the collection stay in the repository (galaxy.yml's
build_ignore).
"""
import os
import subprocess
import sys
import tarfile

import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.dirname(sys.executable)

SHIPPED_TOP_LEVEL = {
    "CHANGELOG.rst", "COPYING", "FILES.json", "MANIFEST.json", "README.md", "bindep.txt",
    "changelogs", "docs", "meta", "playbooks", "plugins", "roles",
}
REQUIRED = {
    "COPYING", "README.md", "CHANGELOG.rst", "bindep.txt", "changelogs/changelog.yaml",
    "meta/runtime.yml", "meta/execution-environment.yml", "playbooks/site.yml",
    "roles/cgi_host/meta/argument_specs.yml", "roles/cgi_host/tasks/main.yml",
}


@pytest.fixture(scope="module")
def tarball_names(tmp_path_factory):
    out = tmp_path_factory.mktemp("build")
    subprocess.run([os.path.join(BIN, "ansible-galaxy"), "collection", "build", "--force",
                    "--output-path", str(out), REPO_ROOT],
                   cwd=REPO_ROOT, stdout=subprocess.DEVNULL, check=True, timeout=120)
    (tarball,) = out.glob("pycgi-hosting-*.tar.gz")
    with tarfile.open(str(tarball)) as tar:
        return {name[2:] if name.startswith("./") else name for name in tar.getnames()}


def test_only_what_a_user_needs_ships(tarball_names):
    top_level = {name.split("/", 1)[0] for name in tarball_names}
    assert top_level <= SHIPPED_TOP_LEVEL, sorted(top_level - SHIPPED_TOP_LEVEL)
    assert not [name for name in tarball_names
                if name.endswith((".pyc", ".png", ".tar.gz")) or "__pycache__" in name.split("/")]


def test_every_module_role_file_and_the_licence_ship(tarball_names):
    assert REQUIRED <= tarball_names, sorted(REQUIRED - tarball_names)
    for kind in ("modules", "module_utils", "doc_fragments"):
        for name in os.listdir(os.path.join(REPO_ROOT, "plugins", kind)):
            if name.endswith(".py"):
                assert "plugins/%s/%s" % (kind, name) in tarball_names
    for directory, _dirs, files in os.walk(os.path.join(REPO_ROOT, "roles")):
        for name in files:
            assert os.path.relpath(os.path.join(directory, name), REPO_ROOT) in tarball_names


def test_the_licence_is_the_gpl_3_text_and_every_plugin_names_it():
    with open(os.path.join(REPO_ROOT, "COPYING")) as handle:
        text = handle.read()
    assert "GNU GENERAL PUBLIC LICENSE" in text and "Version 3, 29 June 2007" in text
    assert "END OF TERMS AND CONDITIONS" in text
    for kind in ("modules", "module_utils", "doc_fragments"):
        for name in os.listdir(os.path.join(REPO_ROOT, "plugins", kind)):
            if not name.endswith(".py"):
                continue
            with open(os.path.join(REPO_ROOT, "plugins", kind, name)) as handle:
                head = handle.read(600)
            assert "# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)" in head, name
            assert "# SPDX-License-Identifier: GPL-3.0-or-later" in head, name
