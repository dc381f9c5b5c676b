# Copyright (c) 2026 pycgi.hosting contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""pycgi.hosting.selinux_context against the real semanage, policy store, matchpathcon and setfiles.

SELinux is disabled in the kernel of these containers, as on the machines that run the tests:
the module must still record the rules (checked with matchpathcon, which reads the policy's
file contexts) and write the labels (checked on disk with `stat -c %C`: `restorecon` would
prove nothing here). The tests share one container and use distinct roots; each policy commit
costs about a second and each command in the container a fraction of one, so every test makes
as few as it can and asks about many paths at once.
"""

import pytest

from harness.podman import Container, ModuleSkipped, podman_available

STORE = "/var/lib/selinux/default/active"
SCRIPT = "httpd_sys_script_exec_t"
RW = "httpd_sys_rw_content_t"
CONTENT = "httpd_sys_content_t"
# A file type of the reference policy that no file context uses: only semanage can vouch for it.
UNLISTED_FILE_TYPE = "httpd_user_rw_content_t"
# The paths of a CGI tree (an entry script, a package, caches at two depths) and the wanted type of each.
TREE = (("", SCRIPT), ("/hello.py", SCRIPT), ("/pkg", SCRIPT), ("/pkg/mod.py", SCRIPT),
        ("/__pycache__", RW), ("/__pycache__/hello.cpython-311.pyc", RW),
        ("/pkg/__pycache__", RW), ("/pkg/__pycache__/mod.cpython-311.pyc", RW))


@pytest.fixture(scope="module")
def host():
    """One container for the file (each test uses roots of its own)."""
    if not podman_available():
        pytest.fail("container tests need podman and PYCGI_TEST_IMAGE: run them with `make container-tests`")
    container = Container.start()
    yield container
    container.remove()


def make_trees(host, *roots):
    """A CGI tree (TREE) under each root, unlabelled."""
    host.exec("mkdir", "-p", *[root + path for root in roots for path, _t in TREE if "." not in path.rpartition("/")[2]])
    host.exec("touch", *[root + path for root in roots for path, _t in TREE if "." in path.rpartition("/")[2]])


def wanted(*roots):
    return dict((root + path, setype) for root in roots for path, setype in TREE)


def effective(host, paths):
    """{path: type} the policy gives (local rules included), from one matchpathcon call."""
    out = host.exec("matchpathcon", *paths).stdout
    return dict((line.rpartition("\t")[0], line.rpartition("\t")[2].split(":")[2]) for line in out.splitlines())


def on_disk(host, paths):
    """{path: type} of the security.selinux attributes, None for a file without one (one stat call)."""
    out = host.exec("stat", "--printf", "%n\t%C\n", *paths, check=False).stdout
    labels = dict(line.rpartition("\t")[::2] for line in out.splitlines())
    return dict((path, None if labels[path] == "?" else labels[path].split(":")[2]) for path in paths)


def local_rules(host):
    """The local rules in match order, as tuples of the store's fields (spec, [flag,] context)."""
    text = host.exec("cat", STORE + "/file_contexts.local", check=False).stdout
    return [tuple(line.split()) for line in text.splitlines() if line.strip() and not line.startswith("#")]


def specs(host, prefix):
    return [rule[0] for rule in local_rules(host) if rule[0].startswith(prefix)]


def commits(host):
    """libsemanage's commit counter: how many transactions changed the policy."""
    return int(host.exec("cat", STORE + "/commit_num").stdout.rstrip("\x00"))


def semanage_import(host, *lines):
    host.exec("semanage", "import", input="".join(line + "\n" for line in lines))


def test_five_roots_in_one_transaction_check_mode_first_then_idempotent(host):
    roots = ["/srv/cgi/app%d" % i for i in range(4)] + ["/srv/cgi/my.app+v2 (x)"]
    lookalike = "/srv/cgi/myXapp+v2 (x)"  # what an unescaped spec would match as well
    make_trees(host, lookalike, *roots)
    paths = wanted(*roots)
    before_rules, before_commits = local_rules(host), commits(host)

    predicted = host.run_module("selinux_context", {"path": roots}, check_mode=True)
    assert not predicted["failed"], predicted
    assert predicted["changed"] and len(predicted["rules_added"]) == 10
    assert sorted(predicted["relabeled"]) == sorted(paths) and predicted["relabeled_count"] == 40
    assert (local_rules(host), commits(host)) == (before_rules, before_commits)
    assert set(on_disk(host, list(paths)).values()) == {None}

    result = host.run_module("selinux_context", {"path": roots})
    assert not result["failed"], result
    assert result["changed"] and result["selinux_status"] == "disabled"
    assert result["rules_added"] == predicted["rules_added"] and result["rules_removed"] == []
    assert result["relabeled"] == predicted["relabeled"] and result["relabeled_count"] == 40
    assert commits(host) == before_commits + 1
    assert local_rules(host)[-2:] == [
        ("/srv/cgi/my\\.app\\+v2\\x20\\(x\\)(/.*)?", "system_u:object_r:%s:s0" % SCRIPT),
        ("/srv/cgi/my\\.app\\+v2\\x20\\(x\\)(/.*)?/__pycache__(/.*)?", "system_u:object_r:%s:s0" % RW),
    ]
    assert effective(host, list(paths)) == paths
    assert on_disk(host, list(paths)) == paths
    assert effective(host, [lookalike + "/hello.py"]) == {lookalike + "/hello.py": "var_t"}
    assert on_disk(host, [lookalike + "/hello.py"]) == {lookalike + "/hello.py": None}

    again = host.run_module("selinux_context", {"path": roots})
    assert not again["failed"], again
    assert (again["changed"], again["rules_added"], again["relabeled_count"]) == (False, [], 0), again
    assert (again["relabel_method"], again["relabel_checked"]) == ("compared", 40), again
    assert commits(host) == before_commits + 1

    # setfiles -F: a customizable type (public_content_t on Debian) is reset as well.
    stray = roots[1] + "/pkg/mod.py"
    host.exec("setfattr", "-n", "security.selinux", "-v", "system_u:object_r:public_content_t:s0", stray)
    reset = host.run_module("selinux_context", {"path": roots})
    assert not reset["failed"], reset
    assert (reset["changed"], reset["relabeled"], reset["rules_added"]) == (True, [stray], []), reset
    assert reset["relabel_method"] == "compared", reset
    assert on_disk(host, [stray]) == {stray: SCRIPT}


def test_stock_cgi_trees_get_only_the_cache_rule(host):
    roots = ["/usr/lib/cgi-bin", "/var/www/cgi-bin"]
    make_trees(host, *roots)
    paths = wanted(*roots)
    caches = [path for path, setype in paths.items() if setype == RW]
    assert set(effective(host, caches).values()) == {SCRIPT}  # what the reference policy gives
    result = host.run_module("selinux_context", {"path": roots})
    assert not result["failed"], result
    assert [r["target"] for r in result["rules_added"]] == [root + "(/.*)?/__pycache__(/.*)?" for root in roots]
    assert [specs(host, root + "(") for root in roots] == [[root + "(/.*)?/__pycache__(/.*)?"] for root in roots]
    assert effective(host, list(paths)) == paths
    assert on_disk(host, list(paths)) == paths


def test_a_tree_rule_added_after_the_cache_rule_is_put_back_in_order(host):
    root = "/srv/order"
    make_trees(host, root)
    semanage_import(host, "fcontext -a -t %s %s(/.*)?/__pycache__(/.*)?" % (RW, root), "fcontext -a -t %s %s(/.*)?" % (SCRIPT, root))
    assert effective(host, [root + "/__pycache__"]) == {root + "/__pycache__": SCRIPT}  # shadowed by the later tree rule
    result = host.run_module("selinux_context", {"path": root}, diff=True)
    assert not result["failed"], result
    cache = {"target": root + "(/.*)?/__pycache__(/.*)?", "ftype": "a", "setype": RW}
    assert (result["rules_removed"], result["rules_added"]) == ([cache], [cache])
    assert specs(host, root) == [root + "(/.*)?", root + "(/.*)?/__pycache__(/.*)?"]
    assert effective(host, list(wanted(root))) == wanted(root)
    assert on_disk(host, list(wanted(root))) == wanted(root)
    before, after = result["diff"]["before"].splitlines(), result["diff"]["after"].splitlines()
    assert [line.split()[0] for line in before[-2:]] == [root + "(/.*)?/__pycache__(/.*)?", root + "(/.*)?"]
    assert [line.split()[0] for line in after[-2:]] == [root + "(/.*)?", root + "(/.*)?/__pycache__(/.*)?"]


def test_a_base_policy_spec_is_modified_and_absent_gives_it_back(host):
    root, readonly = "/var/www/perl", {"script_type": CONTENT, "cache_type": CONTENT}
    make_trees(host, root)
    paths = list(wanted(root))
    result = host.run_module("selinux_context", dict(readonly, path=root))
    assert not result["failed"], result
    assert result["rules_added"] == [{"target": root + "(/.*)?", "ftype": "a", "setype": CONTENT}]
    assert set(effective(host, paths).values()) == set(on_disk(host, paths).values()) == {CONTENT}

    gone = host.run_module("selinux_context", dict(readonly, path=root, state="absent"))
    assert gone["changed"] and gone["rules_removed"] == result["rules_added"], gone
    assert specs(host, root) == []
    assert set(effective(host, paths).values()) == set(on_disk(host, paths).values()) == {SCRIPT}


def test_absent_removes_exactly_this_modules_rules(host):
    root = "/srv/gone"
    make_trees(host, root)
    paths = list(wanted(root))
    # Another rule for the same spec (directories only), another root's rule, then the rules the module adds.
    semanage_import(host, "fcontext -a -f d -t %s %s(/.*)?" % (CONTENT, root), "fcontext -a -t %s /srv/kept(/.*)?" % CONTENT,
                    "fcontext -a -t %s %s(/.*)?" % (SCRIPT, root), "fcontext -a -t %s %s(/.*)?/__pycache__(/.*)?" % (RW, root))
    host.exec("setfiles", "-F", "/etc/selinux/default/contexts/files/file_contexts", root)
    others = [rule for rule in local_rules(host) if rule[0] not in (root + "(/.*)?", root + "(/.*)?/__pycache__(/.*)?")
              or rule[1] == "-d"]
    assert len(others) == len(local_rules(host)) - 2

    check = host.run_module("selinux_context", {"path": root, "state": "absent"}, check_mode=True)
    assert check["changed"] and len(check["rules_removed"]) == 2 and check["relabeled_count"] == 8, check
    assert on_disk(host, paths) == wanted(root)

    result = host.run_module("selinux_context", {"path": root, "state": "absent"})
    assert not result["failed"], result
    assert result["rules_removed"] == check["rules_removed"] and result["relabeled"] == check["relabeled"]
    assert local_rules(host) == others
    # What the policy gives without them: the other rule for the directories, var_t for the files.
    assert on_disk(host, [root, root + "/hello.py"]) == {root: CONTENT, root + "/hello.py": "var_t"}
    assert host.run_module("selinux_context", {"path": root, "state": "absent"})["changed"] is False


def test_bad_input_fails_naming_the_setting_and_leaves_the_policy(host):
    make_trees(host, "/srv/bad")
    before = (local_rules(host), commits(host))
    for args, check_mode, message in (
            ({"path": "/srv/bad", "script_type": "no_such_t"}, False, "script_type: 'no_such_t' is not a file type"),
            ({"path": "/srv/bad", "cache_type": "httpd_t"}, True, "cache_type: 'httpd_t' is not a file type"),
            ({"path": "srv/bad"}, False, "path: 'srv/bad' is not an absolute path")):
        result = host.run_module("selinux_context", args, check_mode=check_mode)
        assert result["failed"] and message in result["msg"], result
    assert (local_rules(host), commits(host)) == before
    assert on_disk(host, ["/srv/bad/hello.py"]) == {"/srv/bad/hello.py": None}


def test_a_type_no_file_context_uses_is_checked_by_semanage_without_a_commit(host):
    root = "/srv/unlisted"
    make_trees(host, root)
    count = commits(host)
    result = host.run_module("selinux_context", {"path": root, "cache_type": UNLISTED_FILE_TYPE})
    assert not result["failed"], result
    assert commits(host) == count + 1
    assert on_disk(host, [root + "/__pycache__"]) == {root + "/__pycache__": UNLISTED_FILE_TYPE}


def test_rules_an_equivalence_would_override_are_refused(host):
    semanage_import(host, "fcontext -a -e /var/www /srv/web")
    make_trees(host, "/srv/web")
    before = local_rules(host)
    result = host.run_module("selinux_context", {"path": "/srv/web"})
    assert result["failed"] and "path: the rules for /srv/web would not take effect" in result["msg"], result
    assert local_rules(host) == before


def test_missing_tools_name_the_package_or_skip(host):
    host.exec("mv", "/usr/sbin/semanage", "/usr/sbin/semanage.hidden")
    try:
        failed = host.run_module("selinux_context", {"path": "/srv/none"})
        with pytest.raises(ModuleSkipped, match=r"\| SKIPPED"):
            host.run_module("selinux_context", {"path": "/srv/none", "missing_tools": "skip"})
    finally:
        host.exec("mv", "/usr/sbin/semanage.hidden", "/usr/sbin/semanage")
    assert failed["failed"] and "install the package policycoreutils-python-utils" in failed["msg"], failed
    assert specs(host, "/srv/none") == []
