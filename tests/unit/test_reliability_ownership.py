"""Reliability of pycgi.hosting.pycache_owner on this host: bad settings and hostile trees.

The module runs as root on trees in pytest's tmp_path and gives them to the `nobody` ids
(65534), so a change through a link would show on the files outside the tree. Cases that name
`/` run in check mode, so that a regression changes nothing.
"""
import json
import os
import pathlib
import signal
import stat
import subprocess
import sys

import pytest

from conftest import child_env, run_module

NOBODY = "65534"


def owner(tmp_path, check_mode=False, **args):
    return run_module("pycache_owner", args, check_mode=check_mode, tmp_path=tmp_path)


def write(path, content="", mode=0o644):
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content)
    path.chmod(mode)
    return path


def attributes(root):
    """uid, gid, mode, inode and link target (or content) of every path below ``root``, itself included."""
    found = {}
    for path in [pathlib.Path(root)] + sorted(pathlib.Path(root).rglob("*")):
        st = os.lstat(str(path))
        what = os.readlink(str(path)) if stat.S_ISLNK(st.st_mode) else (
            path.read_bytes() if stat.S_ISREG(st.st_mode) else None)
        found[str(path)] = (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode), st.st_ino, what)
    return found


def hostile_tree(tmp_path):
    """A tree whose caches hold planted links to files outside it, and the outside files."""
    outside = tmp_path / "outside"
    secret = write(outside / "shadow", "root:*:19000:0:99999:7:::\n", 0o600)
    shared = write(outside / "shared.conf", "shared\n", 0o660)
    write(outside / "dir" / "keep.pyc", "keep\n", 0o600)
    root = tmp_path / "cgi"
    write(root / "app.py", "#!/usr/bin/python3\nimport lib.m\n", 0o755)
    write(root / "lib" / "m.py", "M = 1\n")
    write(root / "lib" / "__pycache__" / "m.cpython-311.pyc", "code\n", 0o600)
    os.symlink(str(secret), str(root / "lib" / "__pycache__" / "evil.cpython-311.pyc"))
    os.link(str(shared), str(root / "lib" / "__pycache__" / "linked.cpython-311.pyc"))
    write(root / "other" / "o.py", "O = 1\n")
    os.symlink(str(outside / "dir"), str(root / "other" / "__pycache__"))
    os.symlink(str(outside), str(root / "escape"))
    return root, outside


# --- 4. hostile trees -----------------------------------------------------------------------------

@pytest.mark.parametrize("scope", ["pycache", "tree"])
def test_ownership_never_changes_through_a_link(tmp_path, scope):
    """Planted in the tree: a symlink in __pycache__ to a root-only file, a hard link in
    __pycache__ to a file outside, a __pycache__ that is a symlink to an outside directory, a
    symlink out of the tree. Nothing outside the tree changes owner or mode (in either scope),
    the links themselves are left as they are, and the real caches are given to the owner."""
    root, outside = hostile_tree(tmp_path)
    outside_before = attributes(outside)
    links = [root / "lib" / "__pycache__" / "evil.cpython-311.pyc", root / "other" / "__pycache__", root / "escape"]
    links_before = {str(p): os.lstat(str(p)).st_uid for p in links}

    result = owner(tmp_path, path=str(root), owner=NOBODY, group=NOBODY, scope=scope)
    assert not result.get("failed"), result
    assert attributes(outside) == outside_before
    assert {str(p): os.lstat(str(p)).st_uid for p in links} == links_before
    assert sorted(result["skipped_symlinks"]) == sorted(str(p) for p in links)
    cached = os.lstat(str(root / "lib" / "__pycache__" / "m.cpython-311.pyc"))
    assert (cached.st_uid, cached.st_gid, stat.S_IMODE(cached.st_mode)) == (65534, 65534, 0o644)
    hard = root / "lib" / "__pycache__" / "linked.cpython-311.pyc"
    assert str(hard) not in result["changed_paths"]
    assert "hard link" in json.dumps(result.get("warnings")), result.get("warnings")


def test_a_symlinked_root_is_refused(tmp_path):
    """A root that is itself a symlink: refused naming it; nothing is changed on either side."""
    root, outside = hostile_tree(tmp_path)
    before = attributes(tmp_path)
    result = owner(tmp_path, path=str(root / "escape"), owner=NOBODY, group=NOBODY)
    assert result["failed"] is True and "is a symlink" in result["msg"] and str(root / "escape") in result["msg"]
    assert attributes(tmp_path) == before


# --- 1. bad input ---------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["missing", "file"])
def test_root_missing_or_a_file_fails_naming_it(tmp_path, kind):
    """A root that does not exist or is a file: the task fails naming the path; nothing is created."""
    root = tmp_path / "cgi"
    if kind == "file":
        write(root, "X = 1\n")
    before = attributes(tmp_path)
    result = owner(tmp_path, path=str(root), owner=NOBODY, group=NOBODY)
    assert result["failed"] is True and str(root) in result["msg"], result
    assert ("No such file" if kind == "missing" else "not a directory") in result["msg"], result["msg"]
    assert attributes(tmp_path) == before


@pytest.mark.parametrize("root", ["/", "/tmp/..", "//"])
def test_the_whole_file_system_is_refused(tmp_path, root):
    """`/` as the root would give every __pycache__ of the host, the system Python's included,
    to the web server user: refused at once naming the setting (check mode, changes nothing)."""
    args = {"ANSIBLE_MODULE_ARGS": {"path": root, "owner": NOBODY, "group": NOBODY, "_ansible_check_mode": True}}
    args_file = tmp_path / "args.json"
    args_file.write_text(json.dumps(args))
    proc = subprocess.Popen([sys.executable, "-m", "ansible_collections.pycgi.hosting.plugins.modules.pycache_owner",
                             str(args_file)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=child_env(),
                            start_new_session=True)
    try:
        out, _err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail("pycache_owner walked on for 60 s instead of refusing %s" % root)
    result = json.loads(out)
    assert result.get("failed") is True and "whole file system" in result["msg"], result.get("msg")


@pytest.mark.parametrize("args, words", [
    ({"owner": "no-such-user-pycgi"}, "owner 'no-such-user-pycgi': no such user"),
    ({"group": "no-such-group-pycgi"}, "group 'no-such-group-pycgi': no such group"),
    ({"dir_mode": "0x755"}, "dir_mode"),
])
def test_unknown_owner_group_or_mode_fails_before_any_change(tmp_path, args, words):
    """An owner or group that does not exist, or a mode that is not octal: the task fails naming
    the setting and the tree is left exactly as it was."""
    root, _outside = hostile_tree(tmp_path)
    before = attributes(tmp_path)
    result = owner(tmp_path, **dict({"owner": NOBODY, "group": NOBODY}, path=str(root), **args))
    assert result["failed"] is True and words in result["msg"], result
    assert attributes(tmp_path) == before
