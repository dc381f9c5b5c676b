# Copyright (c) 2026 pycgi.hosting contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The collection's label lookup (`_selinux_lookup`) against libselinux on the whole reference policy.

selinux_context decides the context of the paths below a root itself (see `_selinux_lookup` for
why), so wherever it would decide otherwise than libselinux, it would leave a wrong label in place.
This asks both about every rule of the installed selinux-policy-default, local rules included,
and paths generated from each (`selinux_lookup_check.py`, run in a container of the test image
with its Python and libselinux): they must agree on every path ours decides.
"""

import json
import os
import shutil

import pytest

from harness.podman import Container, podman, podman_available

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
LOCAL_RULES = (
    "fcontext -a -f a -t httpd_sys_script_exec_t /srv/cgi(/.*)?\n"
    "fcontext -a -f a -t httpd_sys_rw_content_t /srv/cgi(/.*)?/__pycache__(/.*)?\n"
    "fcontext -a -f d -t httpd_sys_content_t /srv/cgi/static(/.*)?\n"
    "fcontext -m -f a -t httpd_sys_rw_content_t /usr/lib/cgi-bin(/.*)?\n"
    "fcontext -a -f a -t httpd_sys_rw_content_t /usr/lib/cgi-bin(/.*)?/__pycache__(/.*)?\n"
)


def test_lookup_agrees_with_libselinux_on_the_whole_reference_policy(tmp_path):
    if not podman_available():
        pytest.fail("container tests need podman and PYCGI_TEST_IMAGE: run them with `make container-tests`")
    collection = tmp_path / "lib" / "ansible_collections" / "pycgi" / "hosting"
    shutil.copytree(os.path.join(REPO, "plugins"), str(collection / "plugins"),
                    ignore=shutil.ignore_patterns("__pycache__"))
    for path in (collection.parent.parent, collection.parent, collection):
        (path / "__init__.py").touch()
    container = Container.start()
    try:
        podman("cp", str(tmp_path / "lib"), "%s:/root/lib" % container.name)
        container.copy_in(os.path.join(HERE, "selinux_lookup_check.py"), "/root/selinux_lookup_check.py")
        container.exec("semanage", "import", input=LOCAL_RULES)
        proc = container.exec("python3", "/root/selinux_lookup_check.py", "/root/lib", timeout=1800)
        result = json.loads(proc.stdout)
    finally:
        container.remove()
    assert result["disagreements"] == [], json.dumps(result["disagreements"][:20], indent=1)
    # The whole policy was asked about (a few thousand rules, tens of thousands of paths), local rules included.
    assert result["rules"] > 3000
    assert result["compared"] > 10 * result["rules"]
    # Ours declines (and the module lets setfiles decide) only below an equivalence or for a regular
    # expression Python may read otherwise than PCRE, and then rarely.
    assert all(reason.startswith(("the equivalence", "the rule")) for reason in result["declined_reasons"])
    assert result["declined"] < result["compared"] / 10
