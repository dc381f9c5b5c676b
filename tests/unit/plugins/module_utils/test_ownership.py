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

from ansible_collections.pycgi.hosting.plugins.module_utils import _ownership
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


class Ways:
    """How the walk changes files, seen from its system calls: by name (os.chown with a
    dir_fd, i.e. fchownat) or through a descriptor (os.open of a non-directory by name).

    ``swap``, when set to (name, file) or (name, file, "symlink"), replaces the entry ``name``
    by a hard link (or a symlink) to ``file`` just before the walk's first change of ``name``,
    whichever way it takes: the race that a user who may write to the directory could win."""

    def __init__(self, monkeypatch):
        self.by_name = []
        self.opened = []
        self.swap = None
        real_chown, real_open = os.chown, os.open

        def swap_in(name, dir_fd):
            if self.swap and self.swap[0] == name:
                if self.swap[2:] == ("symlink",):
                    os.symlink(self.swap[1], ".swap", dir_fd=dir_fd)
                else:
                    os.link(self.swap[1], ".swap", dst_dir_fd=dir_fd)
                os.rename(".swap", name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
                self.swap = None

        def chown(path, *args, **kwargs):
            if kwargs.get("dir_fd") is not None:
                swap_in(path, kwargs["dir_fd"])
                self.by_name.append(path)
            return real_chown(path, *args, **kwargs)

        def open_(path, flags, *args, **kwargs):
            if kwargs.get("dir_fd") is not None and not flags & os.O_DIRECTORY:
                swap_in(path, kwargs["dir_fd"])
                self.opened.append(path)
            return real_open(path, flags, *args, **kwargs)

        monkeypatch.setattr(os, "chown", chown)
        monkeypatch.setattr(os, "open", open_)


def protected_hardlinks(monkeypatch, value):
    """What the walk reads of fs.protected_hardlinks, without changing the kernel's setting
    (the reader of module_utils is replaced for the test)."""
    monkeypatch.setattr(_ownership, "hardlinks_protected", lambda: value)


@pytest.fixture(params=["by name", "opened"])
def way(request, monkeypatch):
    """Each way of changing files in turn: by name (fs.protected_hardlinks read as 1) and
    through a descriptor (read as 0)."""
    protected_hardlinks(monkeypatch, request.param == "by name")
    ways = Ways(monkeypatch)
    ways.name = request.param
    return ways


def check_way(ways):
    """The walk took the way the test asked for, so that the test is not vacuous (by name, a
    file whose mode changes is still opened)."""
    if ways.name == "by name":
        assert ways.by_name, (ways.by_name, ways.opened)
    else:
        assert ways.opened and not ways.by_name, (ways.by_name, ways.opened)


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


def test_symlinks_are_neither_followed_nor_changed(tmp_path, way):
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
    check_way(way)


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


# --- changing by name (fast) or through a descriptor (safe) ---------------------------------------

@pytest.mark.parametrize("content, expected", [("1\n", True), ("0\n", False), ("", False), (None, False)])
def test_protected_hardlinks_is_read_from_the_kernel_setting(tmp_path, monkeypatch, content, expected):
    setting = tmp_path / "protected_hardlinks"
    if content is not None:
        setting.write_text(content)
    monkeypatch.setattr(_ownership, "PROTECTED_HARDLINKS", str(setting))
    assert _ownership.hardlinks_protected() is expected


def rich_tree(root, outside):
    """Every kind of entry the walk treats differently, with root-owned directories (as a
    developer or a deploy leaves them) except one that already belongs to the web user."""
    write(root + "/app.py", "#!/usr/bin/python3\n", 0o755)
    write(root + "/setgid.cgi", "", 0o2755)
    write(root + "/notes.txt", "", 0o600)
    write(root + "/stray.pyc", "", 0o600)
    write(root + "/__pycache__/app.cpython-311.pyc", "", 0o600)
    write(root + "/__pycache__/ok.cpython-311.pyc", "", 0o644)
    write(root + "/__pycache__/owner.cpython-311.pyc", "", 0o644)
    os.chown(root + "/__pycache__/ok.cpython-311.pyc", NOBODY, NOGROUP)
    write(root + "/__pycache__/README", "", 0o640)
    os.chmod(root + "/__pycache__", 0o700)
    write(root + "/lib/m.py")
    write(root + "/lib/__pycache__/m.cpython-311.pyc", "", 0o664)
    os.chown(root + "/lib/__pycache__/m.cpython-311.pyc", NOBODY, 0)
    # Two names, both in the tree: left alone either way.
    write(root + "/lib/a.dat", "", 0o644)
    os.link(root + "/lib/a.dat", root + "/lib/b.dat")
    os.mkfifo(root + "/lib/pipe", 0o600)
    os.symlink(outside + "/secret", root + "/lib/__pycache__/evil.cpython-311.pyc")
    write(root + "/pkg/sub/deep.py")
    # A cache the web user owns already, with a file root put there.
    write(root + "/web/w.py")
    write(root + "/web/__pycache__/w.cpython-311.pyc", "", 0o600)
    os.chown(root + "/web/__pycache__", NOBODY, NOGROUP)


def relative(report, root):
    def rel(path):
        assert path.startswith(root + "/") or path == root, path
        return path[len(root):]
    return dict(changes=[(rel(path), before, after) for path, before, after in report.changes],
                examined=report.examined, created=report.created, changed=report.changed,
                symlinks=[rel(path) for path in report.symlinks],
                problems=[problem.replace(root, "") for problem in report.problems])


def relative_snapshot(top):
    found = {}
    for path, attributes in snapshot(top).items():
        found[path[len(top):]] = attributes + (os.lstat(path).st_nlink,)
    return found


@pytest.mark.parametrize("scope", ["pycache", "tree"])
def test_by_name_and_through_a_descriptor_give_the_same_result(tmp_path, monkeypatch, scope):
    """The same tree, twice: fs.protected_hardlinks read as 1 (changes by name in root's
    directories) and as 0 (every file opened). Same report, same owners and modes after."""
    outside = str(tmp_path / "outside")
    write(outside + "/secret", "s", 0o600)
    results = {}
    for protected in (True, False):
        root = str(tmp_path / ("cgi-%s" % protected))
        rich_tree(root, outside)
        protected_hardlinks(monkeypatch, protected)
        ways = Ways(monkeypatch)
        report = fix_ownership(root, NOBODY, NOGROUP, scope=scope)
        results[protected] = (relative(report, root), relative_snapshot(root))
        # The FIFO: through an O_PATH descriptor (scope tree), never by name.
        assert "pipe" not in ways.by_name and ("pipe" in ways.opened) is (scope == "tree"), ways.__dict__
        regular = ways.by_name
        if protected:
            # Opened all the same: a mode to change, a directory the web user may write to.
            assert "owner.cpython-311.pyc" in regular, ways.__dict__
            assert sorted(name for name in ways.opened if name != "pipe") == [
                "app.cpython-311.pyc", "m.cpython-311.pyc", "w.cpython-311.pyc"]
        else:
            assert regular == [] and "owner.cpython-311.pyc" in ways.opened, ways.__dict__
        monkeypatch.undo()
    assert results[True] == results[False]
    found, after = results[True]
    assert found["changed"] > 4 and found["created"] == 1
    assert ("/lib/a.dat: skipped, it has 2 hard links and a change would reach its other names too"
            in found["problems"]) is (scope == "tree")
    assert after["/web/__pycache__/w.cpython-311.pyc"] == (NOBODY, NOGROUP, 0o644, 1)
    assert after["/__pycache__/app.cpython-311.pyc"] == (NOBODY, NOGROUP, 0o644, 1)
    assert attrs(outside + "/secret") == (0, 0, 0o600)


def test_a_hard_link_planted_in_a_cache_is_left_alone_by_name(tmp_path, monkeypatch):
    """A root-owned cache holding a hard link to a file from outside (one a web server user
    may read and write, which fs.protected_hardlinks = 1 still lets it link): the other files
    are changed by name, the linked one is not changed at all."""
    shared = write(str(tmp_path / "outside" / "shared.conf"), "shared\n", 0o660)
    root = str(tmp_path / "cgi")
    write(root + "/__pycache__/a.cpython-311.pyc", "", 0o644)
    os.link(shared, root + "/__pycache__/linked.cpython-311.pyc")
    protected_hardlinks(monkeypatch, True)
    ways = Ways(monkeypatch)
    report = fix_ownership(root, NOBODY, NOGROUP)
    assert ways.by_name == ["a.cpython-311.pyc"] and ways.opened == []
    assert attrs(shared) == (0, 0, 0o660)
    assert [path for path, _before, _after in report.changes] == [root + "/__pycache__", root + "/__pycache__/a.cpython-311.pyc"]
    assert report.problems == [root + "/__pycache__/linked.cpython-311.pyc: skipped, it has 2 hard links and a change "
                               "would reach its other names too"]


@pytest.mark.parametrize("owner, mode", [
    ("nobody", 0o755),  # a cache that already belongs to the web server user
    ("root", 0o775),    # its group may write to it
    ("root", 0o757),    # anyone may write to it
])
def test_a_file_swapped_in_where_others_may_write_is_never_changed(tmp_path, monkeypatch, owner, mode):
    """In a directory that someone besides root may write to, that someone may swap a hard
    link to another file in under a name between the walk's lstat and its change (simulated:
    the test swaps it in just before the walk's first change of that name). With
    fs.protected_hardlinks read as 1 the walk still takes the safe way there, finds that the
    file is not the one it examined, and changes nothing outside the tree."""
    shared = write(str(tmp_path / "outside" / "shared.conf"), "shared\n", 0o660)
    root = str(tmp_path / "cgi")
    cache = root + "/__pycache__"
    # Modes already right: only the owner differs, as for a change by name.
    write(cache + "/m.cpython-311.pyc", "", 0o644)
    write(cache + "/n.cpython-311.pyc", "", 0o644)
    uid = NOBODY if owner == "nobody" else 0
    os.chown(cache, uid, NOGROUP if uid else 0)
    os.chmod(cache, mode)
    protected_hardlinks(monkeypatch, True)
    ways = Ways(monkeypatch)
    ways.swap = ("m.cpython-311.pyc", shared)
    report = fix_ownership(root, NOBODY, NOGROUP)
    assert ways.swap is None, "the walk never changed the file"
    assert attrs(shared) == (0, 0, 0o660)
    assert ways.by_name == []
    assert cache + "/m.cpython-311.pyc: skipped, replaced during the walk" in report.problems
    cache_changed = [cache] if owner == "root" else []
    assert [path for path, _before, _after in report.changes] == cache_changed + [cache + "/n.cpython-311.pyc"]
    assert attrs(cache + "/n.cpython-311.pyc") == (NOBODY, NOGROUP, 0o644)


def test_not_root_means_no_change_by_name(tmp_path, monkeypatch):
    """Run as another user, the directory being root's proves nothing about that user's own
    processes: every file is opened (the effective uid is faked; changes stay within root's
    rights, so they still succeed)."""
    root = str(tmp_path / "cgi")
    write(root + "/__pycache__/a.cpython-311.pyc", "", 0o600)
    protected_hardlinks(monkeypatch, True)
    monkeypatch.setattr(os, "geteuid", lambda: NOBODY)
    ways = Ways(monkeypatch)
    fix_ownership(root, NOBODY, NOGROUP)
    assert ways.by_name == [] and ways.opened == ["a.cpython-311.pyc"]
    assert attrs(root + "/__pycache__/a.cpython-311.pyc") == (NOBODY, NOGROUP, 0o644)


def test_a_directory_is_given_away_only_after_its_contents(tmp_path, monkeypatch):
    """Whenever a file is changed by name, its directory still belongs to root alone."""
    root = str(tmp_path / "cgi")
    for index in range(3):
        write("%s/p%d/__pycache__/m.cpython-311.pyc" % (root, index), "", 0o644)
        write("%s/p%d/m.py" % (root, index))
    protected_hardlinks(monkeypatch, True)
    seen = []
    real_chown = os.chown

    def chown(path, *args, **kwargs):
        if kwargs.get("dir_fd") is not None:
            seen.append(attrs("/proc/self/fd/%d/" % kwargs["dir_fd"]))
        return real_chown(path, *args, **kwargs)

    monkeypatch.setattr(os, "chown", chown)
    fix_ownership(root, NOBODY, NOGROUP, scope="tree")
    assert len(seen) == 6 and set(seen) == {(0, 0, 0o755)}
    assert set(snapshot(root).values()) == {(NOBODY, NOGROUP, 0o755), (NOBODY, NOGROUP, 0o644)}


def test_a_change_by_name_never_follows_a_symlink(tmp_path, monkeypatch):
    """Nobody but root can swap a symlink in under a name in a directory of root's alone, so
    this cannot happen for real; the test (as root) does it anyway, just before the change by
    name, to check the second line of defence: the change stops at the symlink itself."""
    secret = write(str(tmp_path / "outside" / "secret"), "s", 0o644)
    root = str(tmp_path / "cgi")
    write(root + "/__pycache__/m.cpython-311.pyc", "", 0o644)
    protected_hardlinks(monkeypatch, True)
    ways = Ways(monkeypatch)
    ways.swap = ("m.cpython-311.pyc", secret, "symlink")
    fix_ownership(root, NOBODY, NOGROUP)
    assert ways.swap is None and ways.by_name == ["m.cpython-311.pyc"]
    assert attrs(secret) == (0, 0, 0o644)
    assert os.readlink(root + "/__pycache__/m.cpython-311.pyc") == secret


@pytest.mark.parametrize("swapped", ["hard link to a file", "hard link to another FIFO"])
def test_a_node_swapped_where_others_may_write_is_never_changed(tmp_path, monkeypatch, swapped):
    """A FIFO (or socket, or device node) is never opened for I/O, so it cannot be changed
    through an ordinary descriptor; it is changed through an O_PATH one, after checking that the
    descriptor names the node that was examined. In a cache that the web server user already
    owns, that user may swap a hard link to another file in under the node's name before the
    change (simulated as in the test above): nothing outside the tree changes."""
    outside = tmp_path / "outside"
    shared = write(str(outside / "shared.conf"), "shared\n", 0o660)
    if swapped == "hard link to another FIFO":
        shared = str(outside / "other.pipe")
        os.mkfifo(shared, 0o600)
    root = str(tmp_path / "cgi")
    cache = root + "/__pycache__"
    write(cache + "/m.cpython-311.pyc", "", 0o644)
    os.mkfifo(cache + "/x.pipe", 0o600)
    os.mkfifo(cache + "/y.pipe", 0o640)
    os.chown(cache, NOBODY, NOGROUP)
    protected_hardlinks(monkeypatch, True)
    ways = Ways(monkeypatch)
    ways.swap = ("x.pipe", shared)
    report = fix_ownership(root, NOBODY, NOGROUP)
    assert ways.swap is None, "the walk never reached the node"
    assert attrs(shared)[:2] == (0, 0)
    assert ways.by_name == []
    assert cache + "/x.pipe: skipped, replaced during the walk" in report.problems
    # The other node gets the owner, keeps its mode, and is still a FIFO.
    assert attrs(cache + "/y.pipe") == (NOBODY, NOGROUP, 0o640)
    assert stat.S_ISFIFO(os.lstat(cache + "/y.pipe").st_mode)
    assert sorted(path for path, _before, _after in report.changes) == [
        cache + "/m.cpython-311.pyc", cache + "/y.pipe"]
