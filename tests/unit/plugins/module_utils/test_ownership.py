"""The ownership walk on real files in tmp_path.

These tests run as root on the build machine; they only ever change files inside tmp_path,
to users and groups that exist everywhere (nobody/nogroup, daemon).
"""
import os
import pwd
import grp
import resource
import shutil
import stat
import subprocess

import pytest

from ansible_collections.pycgi.hosting.plugins.module_utils._ownership import (
    OwnershipError,
    default_web_group,
    default_web_user,
    fix_ownership,
    parse_mode,
    resolve_group,
    resolve_user,
)

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="changing owners needs root")

NOBODY = pwd.getpwnam("nobody").pw_uid
NOGROUP = grp.getgrnam("nogroup").gr_gid
DAEMON = pwd.getpwnam("daemon").pw_uid


def write(path, content="", mode=0o644):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as handle:
        handle.write(content)
    os.chmod(path, mode)
    return path


def snapshot(top):
    """(uid, gid, mode) of every path below top, symlinks themselves included."""
    result = {}
    for dirpath, dirnames, filenames in os.walk(top):
        for name in [""] + dirnames + filenames:
            path = os.path.join(dirpath, name) if name else dirpath
            st = os.lstat(path)
            result[path] = (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode))
    return result


def attrs(path):
    st = os.lstat(path)
    return st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)


@pytest.fixture
def cgi(tmp_path):
    """A CGI root as a developer leaves it: root-owned caches with private modes."""
    root = tmp_path / "cgi-bin"
    write(str(root / "app.py"), "#!/usr/bin/python3\n", 0o755)
    write(str(root / "notes.txt"), "x", 0o600)
    write(str(root / "__pycache__" / "app.cpython-311.pyc"), "", 0o600)
    write(str(root / "__pycache__" / "README"), "", 0o600)
    write(str(root / "pkg" / "__init__.py"))
    write(str(root / "pkg" / "__pycache__" / "__init__.cpython-311.pyc"), "", 0o640)
    write(str(root / "pkg" / "sub" / "mod.py"))
    write(str(root / "static" / "style.css"))
    os.chmod(str(root / "__pycache__"), 0o700)
    return str(root)


def test_pycache_scope_sets_caches_and_leaves_everything_else(cgi):
    report = fix_ownership(cgi, NOBODY, NOGROUP)
    assert attrs(cgi + "/__pycache__") == (NOBODY, NOGROUP, 0o755)
    assert attrs(cgi + "/__pycache__/app.cpython-311.pyc") == (NOBODY, NOGROUP, 0o644)
    assert attrs(cgi + "/pkg/__pycache__/__init__.cpython-311.pyc") == (NOBODY, NOGROUP, 0o644)
    # A file in a cache that is not bytecode gets the owner but keeps its mode.
    assert attrs(cgi + "/__pycache__/README") == (NOBODY, NOGROUP, 0o600)
    assert attrs(cgi + "/app.py") == (0, 0, 0o755)
    assert attrs(cgi + "/notes.txt") == (0, 0, 0o600)
    assert attrs(cgi) == (0, 0, 0o755)
    # Created where sources are: pkg/sub; not under static (no sources).
    assert attrs(cgi + "/pkg/sub/__pycache__") == (NOBODY, NOGROUP, 0o755)
    assert not os.path.exists(cgi + "/static/__pycache__")
    assert report.created == 1
    assert sorted(path for path, _before, _after in report.changes) == sorted([
        cgi + "/__pycache__", cgi + "/__pycache__/app.cpython-311.pyc", cgi + "/__pycache__/README",
        cgi + "/pkg/__pycache__", cgi + "/pkg/__pycache__/__init__.cpython-311.pyc", cgi + "/pkg/sub/__pycache__"])
    assert [(path, after) for path, before, after in report.changes if before is None] == \
        [(cgi + "/pkg/sub/__pycache__", (NOBODY, NOGROUP, 0o755))]
    assert (cgi + "/__pycache__/app.cpython-311.pyc", (0, 0, 0o600), (NOBODY, NOGROUP, 0o644)) in report.changes


def test_second_run_changes_nothing(cgi):
    fix_ownership(cgi, NOBODY, NOGROUP, scope="tree")
    before = snapshot(cgi)
    report = fix_ownership(cgi, NOBODY, NOGROUP, scope="tree")
    assert report.changes == [] and report.created == 0
    assert report.examined == len(before)
    assert snapshot(cgi) == before


def test_tree_scope_owns_everything_and_keeps_other_modes(cgi):
    before = snapshot(cgi)
    fix_ownership(cgi, NOBODY, NOGROUP, scope="tree", dir_mode=0o750, file_mode=0o640)
    after = snapshot(cgi)
    for path, (uid, gid, mode) in after.items():
        assert (uid, gid) == (NOBODY, NOGROUP), path
        if "__pycache__" not in path:
            assert mode == before[path][2], path
    assert after[cgi + "/app.py"][2] == 0o755
    assert after[cgi + "/__pycache__"][2] == 0o750
    assert after[cgi + "/pkg/__pycache__/__init__.cpython-311.pyc"][2] == 0o640
    assert after[cgi + "/pkg/sub/__pycache__"][2] == 0o750


def test_check_mode_reports_the_same_and_changes_nothing(cgi, tmp_path):
    twin = str(tmp_path / "twin")
    shutil.copytree(cgi, twin, symlinks=True)
    for directory, _subdirs, _files in os.walk(twin):
        os.chmod(directory, os.stat(directory.replace(twin, cgi)).st_mode)
    before = snapshot(cgi)
    checked = fix_ownership(cgi, NOBODY, NOGROUP, scope="tree", check_mode=True)
    assert snapshot(cgi) == before
    done = fix_ownership(twin, NOBODY, NOGROUP, scope="tree")
    assert [(path.replace(cgi, twin), before, after) for path, before, after in checked.changes] == done.changes
    assert (checked.examined, checked.created) == (done.examined, done.created)


def test_created_caches_get_the_exact_mode_whatever_the_umask(cgi):
    old = os.umask(0o077)
    try:
        fix_ownership(cgi, DAEMON, NOGROUP, dir_mode=0o775)
    finally:
        os.umask(old)
    assert attrs(cgi + "/pkg/sub/__pycache__") == (DAEMON, NOGROUP, 0o775)


def test_create_false_creates_nothing(cgi):
    report = fix_ownership(cgi, NOBODY, NOGROUP, create=False)
    assert not os.path.exists(cgi + "/pkg/sub/__pycache__")
    assert report.created == 0


def test_no_cache_is_created_inside_a_cache(tmp_path):
    root = str(tmp_path / "cgi")
    write(root + "/__pycache__/stray.py")
    fix_ownership(root, NOBODY, NOGROUP)
    assert os.listdir(root + "/__pycache__") == ["stray.py"]


def test_symlinks_are_neither_followed_nor_changed(tmp_path):
    outside = str(tmp_path / "outside")
    secret = write(outside + "/secret", "s", 0o600)
    write(outside + "/lib/mod.py")
    write(outside + "/lib/__pycache__/mod.cpython-311.pyc", "", 0o600)
    root = str(tmp_path / "cgi")
    write(root + "/app.py", "", 0o755)
    write(root + "/__pycache__/app.cpython-311.pyc", "", 0o600)
    os.symlink(secret, root + "/__pycache__/evil.cpython-311.pyc")
    os.symlink(outside + "/lib", root + "/lib")
    os.symlink(secret, root + "/link.py")
    outside_before = snapshot(outside)
    links_before = {path: attrs(path) for path in (root + "/__pycache__/evil.cpython-311.pyc", root + "/lib", root + "/link.py")}

    report = fix_ownership(root, NOBODY, NOGROUP, scope="tree")

    assert snapshot(outside) == outside_before
    assert not os.path.exists(outside + "/__pycache__")
    assert {path: attrs(path) for path in links_before} == links_before
    assert sorted(report.symlinks) == sorted(links_before)
    assert attrs(root + "/__pycache__/app.cpython-311.pyc") == (NOBODY, NOGROUP, 0o644)


def test_a_symlinked_cache_directory_is_left_alone_and_reported(tmp_path):
    outside = str(tmp_path / "outside")
    os.makedirs(outside)
    os.chmod(outside, 0o700)
    root = str(tmp_path / "cgi")
    write(root + "/app.py")
    os.symlink(outside, root + "/__pycache__")
    report = fix_ownership(root, NOBODY, NOGROUP)
    assert attrs(outside) == (0, 0, 0o700)
    assert report.created == 0
    assert report.symlinks == [root + "/__pycache__"]
    assert report.problems == [root + "/__pycache__ is a symlink or a file, not a directory; it was left alone"]


def test_root_that_is_a_symlink_is_refused(tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "link").symlink_to(real)
    with pytest.raises(OwnershipError, match="is a symlink"):
        fix_ownership(str(tmp_path / "link"), NOBODY, NOGROUP)


@pytest.mark.parametrize("name, message", [("missing", "No such file"), ("file", "not a directory")])
def test_root_that_is_no_directory_is_refused(tmp_path, name, message):
    write(str(tmp_path / "file"))
    with pytest.raises(OwnershipError, match=message):
        fix_ownership(str(tmp_path / name), NOBODY, NOGROUP)


def test_root_named_pycache_is_a_cache(tmp_path):
    cache = str(tmp_path / "__pycache__")
    write(cache + "/m.cpython-311.pyc", "", 0o600)
    os.chmod(cache, 0o700)
    fix_ownership(cache, NOBODY, NOGROUP)
    assert attrs(cache) == (NOBODY, NOGROUP, 0o755)
    assert attrs(cache + "/m.cpython-311.pyc") == (NOBODY, NOGROUP, 0o644)


def test_a_wide_tree_holds_one_descriptor_per_level(tmp_path):
    root = str(tmp_path / "wide")
    for index in range(300):
        write("%s/pkg%03d/m.py" % (root, index))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (64, hard))
    try:
        report = fix_ownership(root, NOBODY, NOGROUP)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert report.created == 300


def test_a_failing_change_names_the_path(tmp_path):
    if not shutil.which("chattr"):
        pytest.skip("chattr is not installed")
    root = str(tmp_path / "cgi")
    pyc = write(root + "/__pycache__/m.cpython-311.pyc")
    if subprocess.run(["chattr", "+i", pyc], capture_output=True, check=False).returncode != 0:
        pytest.skip("this file system has no immutable attribute")
    cache_before = attrs(root + "/__pycache__")
    try:
        with pytest.raises(OwnershipError, match="m.cpython-311.pyc: Operation not permitted") as failure:
            fix_ownership(root, NOBODY, NOGROUP)
    finally:
        subprocess.run(["chattr", "-i", pyc], check=True)
    # A directory is changed after what it holds: the file failed first, so the cache directory
    # was never given away, and the report (what was done before the failure) says so.
    assert attrs(root + "/__pycache__") == cache_before != (NOBODY, NOGROUP, 0o755)
    assert failure.value.report.changes == []


@pytest.mark.parametrize("value, mode", [("0755", 0o755), ("755", 0o755), ("0o750", 0o750), (0o644, 0o644), ("2775", 0o2775)])
def test_modes_parse(value, mode):
    assert parse_mode(value, "dir_mode") == mode


@pytest.mark.parametrize("value, message", [
    ("u+rwx", "not an octal mode"), ("0777", "world-writable"), ("0646", "world-writable"),
    ("17777", "out of range"), (-1, "out of range"),
])
def test_bad_modes_are_refused(value, message):
    with pytest.raises(OwnershipError, match="file_mode: .*" + message):
        parse_mode(value, "file_mode")


def test_users_and_groups_resolve_by_name_or_number():
    assert resolve_user("nobody") == NOBODY and resolve_user("4242") == 4242
    assert resolve_group("nogroup") == NOGROUP and resolve_group("4242") == 4242
    with pytest.raises(OwnershipError, match="owner 'no-such-user-x': no such user"):
        resolve_user("no-such-user-x")
    with pytest.raises(OwnershipError, match="group 'no-such-group-x': no such group"):
        resolve_group("no-such-group-x")


def test_default_web_user_is_the_one_this_host_has():
    def exists(lookup, name):
        try:
            lookup(name)
            return True
        except KeyError:
            return False
    expected_user = "apache" if exists(pwd.getpwnam, "apache") else "www-data" if exists(pwd.getpwnam, "www-data") else None
    expected_group = "apache" if exists(grp.getgrnam, "apache") else "www-data" if exists(grp.getgrnam, "www-data") else None
    assert default_web_user() == expected_user
    assert default_web_group() == expected_group
