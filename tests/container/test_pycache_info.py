# Copyright (c) 2026 pycgi.hosting contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""pycgi.hosting.pycache_info on a real Debian host: Apache's config, the www-data user, the
SELinux userland and reference policy (SELinux itself is disabled in the kernel, so labels are
written with setfattr and the policy's answer comes from matchpathcon).

One container for the file; each test has a CGI root of its own. What the module says the
web server user cannot do is checked against a process running as www-data.
"""

import pytest

from harness.podman import Container, podman_available

STOCK = "/usr/lib/cgi-bin"
SCRIPT = "httpd_sys_script_exec_t"
RW = "httpd_sys_rw_content_t"
TAG = "cpython-311"


INDEX = "#!/usr/bin/python3\nimport app.views\nprint('Content-Type: text/plain')\nprint()\nprint(app.views.main())\n"


@pytest.fixture(scope="module")
def host():
    """One container for the file (each test uses a root of its own)."""
    if not podman_available():
        pytest.fail("container tests need podman and PYCGI_TEST_IMAGE: run them with `make container-tests`")
    container = Container.start()
    yield container
    container.remove()


def run(host, module, args):
    result = host.run_module(module, args)
    assert not result["failed"], result
    return result


def make_tree(host, root):
    host.put_file(root + "/index.py", INDEX, mode=0o755)
    host.put_file(root + "/app/__init__.py", "")
    host.put_file(root + "/app/views.py", "def main():\n    return 'hello'\n")


def compile_tree(host, root):
    """Caches written by root, as a deployment run by hand leaves them."""
    host.exec("python3", "-m", "compileall", "-q", root)


def info(host, check_mode=False, **args):
    result = host.run_module("pycache_info", args, check_mode=check_mode)
    assert not result["failed"], result
    assert result["changed"] is False
    return result


def import_as_www_data(host, root, module):
    host.exec("python3", "-c", "import " + module, user="www-data", workdir=root)


def exists(host, path):
    return host.exec("test", "-e", path, check=False).returncode == 0


def test_caches_owner_and_apache_block_of_the_stock_tree(host):
    make_tree(host, STOCK)
    compile_tree(host, STOCK)
    host.exec("chmod", "600", STOCK + "/app/__pycache__/views.%s.pyc" % TAG)

    result = info(host, path=STOCK)
    (interp,) = result["interpreters"]
    assert (interp["path"], interp["cache_tag"], interp["fresh"], interp["stale"], interp["missing"]) == (
        "/usr/bin/python3", TAG, 3, 0, 0)
    access = result["access"]
    assert (access["user"], access["group"], access["cache_mode"]) == ("www-data", "www-data", "writable")
    caches = [STOCK + "/__pycache__", STOCK + "/app/__pycache__"]
    assert access["cache_dirs_not_writable"] == {"count": 2, "paths": caches}
    assert access["pycs_not_readable"] == {"count": 1, "paths": [STOCK + "/app/__pycache__/views.%s.pyc" % TAG]}
    assert result["entry_scripts"]["scripts"] == [
        {"path": STOCK + "/index.py", "lines": 5, "bytes": len(INDEX), "interpreter": "/usr/bin/python3"}]
    assert result["apache"] == {"config": "/etc/apache2/apache2.conf", "present": False, "current": False,
                                "write_bytecode": None}
    assert "2 caches the web server user (www-data) cannot write" in result["summary"]

    # www-data agrees: it cannot write a new cache there.
    host.put_file(STOCK + "/app/extra.py", "EXTRA = 1\n")
    import_as_www_data(host, STOCK, "app.extra")
    assert not exists(host, STOCK + "/app/__pycache__/extra.%s.pyc" % TAG)

    run(host, "pycache_owner", {"path": STOCK})
    # In the main config, where pycache_info looks by default.
    run(host, "httpd_pycache", {"path": STOCK, "placement": "block"})
    result = info(host, path=STOCK)
    access = result["access"]
    assert access["cache_dirs_not_writable"]["count"] == 0 and access["pycs_not_readable"]["count"] == 0
    assert result["interpreters"][0]["missing_caches"] == [
        {"source": STOCK + "/app/extra.py", "cache": STOCK + "/app/__pycache__/extra.%s.pyc" % TAG}]
    assert result["apache"] == {"config": "/etc/apache2/apache2.conf", "present": True, "current": True,
                                "write_bytecode": True}
    assert "Apache: the pycgi __pycache__ block for %s is in /etc/apache2/apache2.conf" % STOCK in result["summary"]
    import_as_www_data(host, STOCK, "app.extra")
    assert exists(host, STOCK + "/app/__pycache__/extra.%s.pyc" % TAG)

    checked = info(host, check_mode=True, path=STOCK)
    assert checked["interpreters"][0]["fresh"] == 4 and checked["summary"][0].endswith("4 fresh, 0 stale, 0 missing")


def test_apache_block_in_the_default_drop_in(host):
    """Without apache_config, the block httpd_pycache writes with its default placement (a
    drop-in) is found after the main config: present and current, the drop-in named."""
    root = "/srv/info-drop-in"
    make_tree(host, root)
    drop_in = "/etc/apache2/conf-available/pycgi-pycache-srv-info-drop-in.conf"
    assert info(host, path=root)["apache"] == {"config": "/etc/apache2/apache2.conf", "present": False,
                                               "current": False, "write_bytecode": None}
    written = run(host, "httpd_pycache", {"path": root})
    assert written["dest"] == drop_in
    result = info(host, path=root)
    assert result["apache"] == {"config": drop_in, "present": True, "current": True, "write_bytecode": True}
    assert "Apache: the pycgi __pycache__ block for %s is in %s" % (root, drop_in) in result["summary"]
    # An explicit apache_config is the only file read.
    assert info(host, path=root, apache_config="/etc/apache2/apache2.conf")["apache"]["present"] is False
    run(host, "httpd_pycache", {"path": root, "state": "absent"})
    assert info(host, path=root)["apache"]["present"] is False


def on_disk(host, paths):
    out = host.exec("stat", "--printf", "%n\t%C\n", *paths).stdout
    return dict((line.rpartition("\t")[0], line.rpartition("\t")[2].split(":")[2]) for line in out.splitlines())


def test_selinux_labels_against_the_policy(host):
    root = "/srv/cgi/labels"
    make_tree(host, root)
    compile_tree(host, root)
    paths = [root, root + "/index.py", root + "/__pycache__", root + "/__pycache__/index.%s.pyc" % TAG, root + "/app",
             root + "/app/__init__.py", root + "/app/views.py", root + "/app/__pycache__",
             root + "/app/__pycache__/__init__.%s.pyc" % TAG, root + "/app/__pycache__/views.%s.pyc" % TAG]

    unlabeled = info(host, path=root)["selinux"]
    assert unlabeled["available"] is True and unlabeled["status"] == "disabled" and unlabeled["policy"] == "default"
    # Every path, decided from the real policy's rules (and confirmed by the real matchpathcon).
    assert unlabeled["method"] == "every_path", unlabeled
    assert (unlabeled["checked"], unlabeled["total"]) == (10, 10)
    assert sorted(unlabeled["unlabeled"]["paths"]) == sorted(paths)

    run(host, "selinux_context", {"path": root})
    selinux = info(host, path=root)["selinux"]
    assert selinux["root"] == {"path": root, "type": SCRIPT, "expected": SCRIPT}
    assert selinux["caches"] == {"expected": RW, "types": {RW: 5}}
    assert selinux["mismatched"]["count"] == 0 and selinux["unlabeled"]["count"] == 0

    # A file moved in from a home directory keeps its label.
    moved = root + "/app/views.py"
    host.exec("setfattr", "-n", "security.selinux", "-v", "unconfined_u:object_r:user_home_t:s0", moved)
    result = info(host, path=root)
    assert result["selinux"]["mismatched"] == {"count": 1, "paths": [
        {"path": moved, "type": "user_home_t", "expected": SCRIPT}]}
    # The SELinux tools agree.
    assert on_disk(host, [moved]) == {moved: "user_home_t"}
    verdict = host.exec("matchpathcon", "-V", moved, check=False).stdout
    assert "should be system_u:object_r:%s" % SCRIPT in verdict
    assert ("SELinux (disabled, policy default): root %s, caches %s by policy; 1 of 10 checked paths labeled "
            "otherwise, 0 unlabeled (every path)" % (SCRIPT, RW)) in result["summary"]

    # A file that is not Python, mislabeled: only a check of every path sees it.
    page = root + "/static/page.html"
    host.exec("mkdir", "-p", root + "/static")
    host.put_file(page, "<p>hello</p>\n")
    host.exec("setfattr", "-n", "security.selinux", "-v", "unconfined_u:object_r:user_home_t:s0", page)
    result = info(host, path=root)["selinux"]
    assert result["method"] == "every_path" and (result["checked"], result["total"]) == (12, 12)
    assert {"path": page, "type": "user_home_t", "expected": SCRIPT} in result["mismatched"]["paths"]
    assert result["unlabeled"]["paths"] == [root + "/static"]
    # The same report where the policy has an equivalence for the tree: a sample, matchpathcon's answers.
    subs = "/etc/selinux/default/contexts/files/file_contexts.subs"
    had = host.exec("test", "-e", subs, check=False).returncode == 0
    before = host.read_file(subs) if had else ""
    host.put_file(subs, before + "/srv/cgi /var/www\n")
    try:
        sampled = info(host, path=root)["selinux"]
    finally:
        if had:
            host.put_file(subs, before)
        else:
            host.exec("rm", subs)
    assert sampled["method"] == "sample" and "equivalence /srv/cgi = /var/www" in sampled["method_reason"], sampled
    assert page not in [item["path"] for item in sampled["mismatched"]["paths"]]


@pytest.mark.parametrize("mode", ["writable", "readonly"])
def test_a_tree_www_data_cannot_reach(host, mode):
    root = "/srv/private-%s/cgi" % mode
    make_tree(host, root)
    host.exec("chmod", "700", root.rsplit("/", 1)[0])
    result = info(host, path=root, cache_mode=mode)
    access = result["access"]
    assert access["root_blocked_by"] == root.rsplit("/", 1)[0]
    # No caches yet: in writable mode www-data would have to create them.
    creatable = access["cache_dirs_not_creatable"]["paths"]
    assert creatable == ([root, root + "/app"] if mode == "writable" else [])
