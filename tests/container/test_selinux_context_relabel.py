# Copyright (c) 2026 pycgi.hosting contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""pycgi.hosting.selinux_context on a re-run: labels compared in the module, setfiles only for
the paths that differ, the full relabel wherever the module cannot decide a context itself.

SELinux is disabled in the kernel of these containers: labels are the security.selinux
attributes setfiles writes (checked with `stat -c %C`), set wrong by hand with setfattr. Every
setfiles run is recorded by a wrapper put in its place, so the tests see from outside whether
the module walked a whole tree with setfiles or handed it a list of paths.
"""
import json

import pytest

from harness.podman import Container, podman_available

SCRIPT = "httpd_sys_script_exec_t"
RW = "httpd_sys_rw_content_t"
SETFILES = "/usr/sbin/setfiles"
SETFILES_LOG = "/run/pycgi-setfiles.log"
# Records its arguments, then runs the real setfiles with them (named setfiles: it takes the
# behaviour of restorecon under any other name).
WRAPPER = """#!/usr/bin/python3
import json, os, sys
with open(%r, "a") as log:
    log.write(json.dumps(sys.argv[1:]) + "\\n")
os.execv(%r, ["setfiles"] + sys.argv[1:])
""" % (SETFILES_LOG, SETFILES + ".real")


@pytest.fixture(scope="module")
def host():
    """One container for the file, its setfiles recording each run (each test uses roots of its own)."""
    if not podman_available():
        pytest.fail("container tests need podman and PYCGI_TEST_IMAGE: run them with `make container-tests`")
    container = Container.start()
    try:
        container.exec("mv", SETFILES, SETFILES + ".real")
        container.put_file(SETFILES, WRAPPER, mode=0o755)
        yield container
    finally:
        container.remove()


def setfiles_runs(host):
    """The argument lists of the labeling setfiles runs since the last call (not the ones with -c,
    semanage's check of the file contexts against the policy at each commit)."""
    text = host.exec("cat", SETFILES_LOG, check=False).stdout
    host.exec("rm", "-f", SETFILES_LOG)
    return [argv for argv in map(json.loads, text.splitlines()) if "-c" not in argv]


def make_tree(host, root, packages=4, modules=6):
    """A CGI tree: an entry script and nested packages with caches (two interpreters), a name with
    a blank and one with non-ASCII letters. Returns {path: wanted type} of every path."""
    dirs = [root, root + "/__pycache__"]
    files = [root + "/hello.py", root + "/__pycache__/hello.cpython-311.pyc"]
    for number in range(packages):
        for package in ("%s/pkg%d" % (root, number), "%s/pkg%d/sub" % (root, number)):
            dirs += [package, package + "/__pycache__"]
            for index in range(modules):
                files += ["%s/m%d.py" % (package, index)] + [
                    "%s/__pycache__/m%d.%s.pyc" % (package, index, tag) for tag in ("cpython-311", "cpython-36")]
    dirs += [root + "/caf\u00e9 x", root + "/caf\u00e9 x/__pycache__"]
    files += [root + "/caf\u00e9 x/m.py", root + "/caf\u00e9 x/__pycache__/m.cpython-311.pyc"]
    host.exec("mkdir", "-p", *dirs)
    host.exec("touch", *files)
    return dict((path, RW if "/__pycache__" in path[len(root):] else SCRIPT) for path in dirs + files)


def on_disk(host, paths):
    """{path: type} of the security.selinux attributes, None for a path without one (one stat call)."""
    out = host.exec("stat", "--printf", "%n\t%C\n", *paths, check=False).stdout
    labels = dict(line.rpartition("\t")[::2] for line in out.splitlines())
    return dict((path, None if labels[path] == "?" else labels[path].split(":")[2]) for path in paths)


def set_type(host, path, setype, user="system_u"):
    host.exec("setfattr", "-n", "security.selinux", "-v", "%s:object_r:%s:s0" % (user, setype), path)


def run(host, args, **kwargs):
    result = host.run_module("selinux_context", args, **kwargs)
    assert not result["failed"], result
    return result


def test_a_rerun_compares_the_labels_and_relabels_only_what_differs(host):
    root = "/srv/quick"
    paths = make_tree(host, root)
    first = run(host, {"path": root})
    assert (first["relabel_method"], first["relabel_reason"], first["relabeled_count"]) == (
        "full", "the rules changed", len(paths)), first
    assert [argv[-1] for argv in setfiles_runs(host)] == [root]  # the whole tree, once
    assert on_disk(host, list(paths)) == paths

    again = run(host, {"path": root})
    assert (again["changed"], again["relabeled"], again["relabel_method"]) == (False, [], "compared"), again
    assert again["relabel_checked"] == len(paths) and again["relabel_reason"] is None
    assert setfiles_runs(host) == []  # no setfiles at all

    # A deep cache and a script labeled wrong by hand (the user part alone counts too: setfiles -F).
    deep = root + "/pkg3/sub/__pycache__/m5.cpython-36.pyc"
    script = root + "/caf\u00e9 x/m.py"
    set_type(host, deep, "httpd_sys_content_t")
    set_type(host, script, SCRIPT, user="unconfined_u")

    predicted = run(host, {"path": root}, check_mode=True)
    assert (predicted["changed"], sorted(predicted["relabeled"]), predicted["relabel_method"]) == (
        True, sorted([deep, script]), "compared"), predicted
    assert on_disk(host, [deep]) == {deep: "httpd_sys_content_t"}
    runs = setfiles_runs(host)
    assert len(runs) == 1 and "-n" in runs[0] and "-f" in runs[0] and root not in runs[0], runs

    fixed = run(host, {"path": root})
    assert (fixed["changed"], sorted(fixed["relabeled"]), fixed["relabeled_count"]) == (
        True, sorted([deep, script]), 2), fixed
    assert fixed["rules_added"] == [] and fixed["relabel_method"] == "compared"
    runs = setfiles_runs(host)
    assert len(runs) == 1 and "-f" in runs[0] and "-n" not in runs[0] and root not in runs[0], runs
    assert on_disk(host, list(paths)) == paths
    context = host.exec("stat", "--printf", "%C", script).stdout
    assert context == "system_u:object_r:%s:s0" % SCRIPT

    assert run(host, {"path": root})["changed"] is False
    assert setfiles_runs(host) == []


def test_a_cache_made_after_the_last_run_is_labeled(host):
    root = "/srv/grown"
    paths = make_tree(host, root, packages=2)
    run(host, {"path": root})
    setfiles_runs(host)
    # What the web server or a developer leaves behind without SELinux: no label at all.
    new = [root + "/pkg1/new", root + "/pkg1/new/__pycache__", root + "/pkg1/new/__pycache__/n.cpython-311.pyc",
           root + "/pkg1/new/n.py", root + "/pkg0/__pycache__/late.cpython-311.pyc"]
    host.exec("mkdir", "-p", new[1])
    host.exec("touch", *new[2:])
    assert set(on_disk(host, new).values()) == {None}
    result = run(host, {"path": root}, diff=True)
    assert (result["changed"], sorted(result["relabeled"]), result["relabel_method"]) == (
        True, sorted(new), "compared"), result
    assert result["diff"]["before"] == result["diff"]["after"] and root + "(/.*)?" in result["diff"]["after"]
    assert result["relabel_checked"] == len(paths) + len(new)
    # setfiles got the new package directory (it relabels the subtree) and the late cache, nothing else.
    runs = setfiles_runs(host)
    assert len(runs) == 1 and "-0" in runs[0], runs
    listed = host.exec("cat", runs[0][runs[0].index("-f") + 1], check=False)
    assert listed.returncode != 0  # the list lived in the module's temporary directory, removed
    assert on_disk(host, new) == dict((path, RW if "__pycache__" in path else SCRIPT) for path in new)


def test_rules_of_the_policy_inside_a_stock_tree_are_respected(host):
    """/var/www/cgi-bin/apcgui has a type of its own in the reference policy and cvsweb.cgi an exact
    rule; a label set by hand to the tree's type there is wrong and is put back."""
    root = "/var/www/cgi-bin"
    host.exec("mkdir", "-p", root + "/apcgui/__pycache__", root + "/app")
    host.exec("touch", root + "/apcgui/upsstats.py", root + "/apcgui/__pycache__/upsstats.cpython-311.pyc",
              root + "/cvsweb.cgi", root + "/app/run.py")
    first = run(host, {"path": root})
    assert [r["target"] for r in first["rules_added"]] == [root + "(/.*)?/__pycache__(/.*)?"]
    wanted = {root + "/apcgui/upsstats.py": "httpd_apcupsd_cgi_script_exec_t",
              root + "/apcgui/__pycache__/upsstats.cpython-311.pyc": RW,
              root + "/cvsweb.cgi": "httpd_cvs_script_exec_t", root + "/app/run.py": SCRIPT}
    assert on_disk(host, list(wanted)) == wanted
    for path in wanted:
        set_type(host, path, SCRIPT)
    setfiles_runs(host)
    result = run(host, {"path": root})
    assert result["relabel_method"] == "compared", result
    assert sorted(result["relabeled"]) == sorted(path for path, setype in wanted.items() if setype != SCRIPT)
    assert on_disk(host, list(wanted)) == wanted


def test_what_the_module_cannot_decide_gets_the_full_relabel(host):
    """An equivalence below the root (its paths are labeled as another tree's), then a file name
    with a newline: each time setfiles walks the whole root, and the labels are right."""
    root = "/srv/undecided"
    make_tree(host, root, packages=1)
    host.exec("mkdir", "-p", root + "/alias/__pycache__")
    host.exec("touch", root + "/alias/a.py")
    run(host, {"path": root})
    host.exec("semanage", "import", input="fcontext -a -e /var/www %s/alias\n" % root)
    setfiles_runs(host)
    result = run(host, {"path": root})
    assert result["relabel_method"] == "full", result
    assert result["relabel_reason"] == "the equivalence %s/alias = /var/www applies below %s" % (root, root)
    assert [argv[-1] for argv in setfiles_runs(host)] == [root]
    assert on_disk(host, [root + "/alias/a.py", root + "/pkg0/m0.py"]) == {
        root + "/alias/a.py": "httpd_sys_content_t", root + "/pkg0/m0.py": SCRIPT}
    host.exec("semanage", "fcontext", "-d", root + "/alias")

    odd = root + "/pkg0/line\nbreak.py"
    host.exec("touch", odd)
    set_type(host, root + "/pkg0/m1.py", "httpd_sys_content_t")
    result = run(host, {"path": root})
    assert (result["relabel_method"], result["relabel_reason"]) == (
        "full", "%s/pkg0 holds a name with a newline" % root), result
    assert [argv[-1] for argv in setfiles_runs(host)] == [root]
    assert on_disk(host, [root + "/pkg0/m1.py"]) == {root + "/pkg0/m1.py": SCRIPT}
    assert root + "/pkg0/m1.py" in result["relabeled"]


def test_a_path_setfiles_would_read_as_a_pattern_gets_the_full_relabel(host):
    root = "/srv/globs"
    make_tree(host, root, packages=1)
    star = root + "/pkg0/we*rd[1].py"
    host.exec("touch", star)
    run(host, {"path": root})
    assert run(host, {"path": root})["relabel_method"] == "compared"  # right labels: nothing to hand setfiles
    set_type(host, star, "httpd_sys_content_t")
    setfiles_runs(host)
    result = run(host, {"path": root})
    assert (result["relabel_method"], result["relabeled"]) == ("full", [star]), result
    assert "glob" in result["relabel_reason"]
    assert on_disk(host, [star]) == {star: SCRIPT}


def test_relabel_false_and_a_missing_root_relabel_nothing(host):
    root = "/srv/later"
    setfiles_runs(host)
    result = run(host, {"path": root})
    assert (result["relabel_method"], result["relabel_checked"], result["relabel_reason"]) == ("none", 0, None)
    make_tree(host, root, packages=1)
    result = run(host, {"path": root, "relabel": False})
    assert (result["changed"], result["relabel_method"], result["relabeled"]) == (False, "none", []), result
    assert setfiles_runs(host) == []
