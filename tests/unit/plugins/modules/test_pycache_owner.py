"""pycgi.hosting.pycache_owner run as Ansible runs it, on real files in tmp_path (as root,
changing only files in tmp_path, to nobody/nogroup)."""
import os
import stat

import pytest

from conftest import run_module

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="changing owners needs root")


def make_tree(root, packages=1, modules=1):
    for package in range(packages):
        cache = os.path.join(root, "pkg%d" % package, "__pycache__")
        os.makedirs(cache)
        os.chmod(cache, 0o700)
        for module in range(modules):
            open(os.path.join(root, "pkg%d" % package, "m%d.py" % module), "w").close()
            pyc = os.path.join(cache, "m%d.cpython-311.pyc" % module)
            open(pyc, "w").close()
            os.chmod(pyc, 0o600)
    script = os.path.join(root, "app.py")
    open(script, "w").close()
    os.chmod(script, 0o755)


def owner_of(path):
    st = os.lstat(path)
    return st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)


def test_changes_reports_and_is_idempotent(tmp_path):
    root = str(tmp_path / "cgi")
    make_tree(root)
    args = dict(path=root, owner="nobody", group="nogroup")
    result = run_module("pycache_owner", args, diff=True, tmp_path=tmp_path)
    assert result["rc"] == 0 and result["changed"] is True, result
    assert result["owner"] == "nobody" and result["group"] == "nogroup"
    assert result["changed_paths"] == [root + "/__pycache__", root + "/pkg0/__pycache__",
                                       root + "/pkg0/__pycache__/m0.cpython-311.pyc"]
    assert result["stats"] == dict(examined=2, changed=3, created=1, symlinks=0)
    assert result["diff"]["before"] == (
        "%s/__pycache__ (absent)\n%s/pkg0/__pycache__ root:root 0700\n%s/pkg0/__pycache__/m0.cpython-311.pyc root:root 0600\n"
        % (root, root, root))
    assert result["diff"]["after"] == (
        "%s/__pycache__ nobody:nogroup 0755\n%s/pkg0/__pycache__ nobody:nogroup 0755\n"
        "%s/pkg0/__pycache__/m0.cpython-311.pyc nobody:nogroup 0644\n" % (root, root, root))
    assert owner_of(root + "/pkg0/__pycache__/m0.cpython-311.pyc")[2] == 0o644

    again = run_module("pycache_owner", args, diff=True, tmp_path=tmp_path)
    assert again["changed"] is False and again["changed_paths"] == [] and "diff" not in again
    assert again["stats"] == dict(examined=3, changed=0, created=0, symlinks=0)


def test_check_mode_reports_the_same_and_changes_nothing(tmp_path):
    root = str(tmp_path / "cgi")
    make_tree(root)
    args = dict(path=root, owner="nobody", group="nogroup", scope="tree")
    checked = run_module("pycache_owner", args, check_mode=True, tmp_path=tmp_path)
    assert checked["changed"] is True
    assert owner_of(root + "/pkg0/__pycache__") == (0, 0, 0o700)
    assert not os.path.exists(root + "/__pycache__")
    done = run_module("pycache_owner", args, tmp_path=tmp_path)
    assert checked["changed_paths"] == done["changed_paths"]
    assert checked["stats"] == done["stats"]
    assert owner_of(root + "/app.py") == (65534, 65534, 0o755)


def test_changed_paths_and_diff_are_capped(tmp_path):
    root = str(tmp_path / "cgi")
    make_tree(root, packages=2, modules=80)
    result = run_module("pycache_owner", dict(path=root, owner="nobody", group="nogroup"), diff=True, tmp_path=tmp_path)
    assert result["stats"]["changed"] == 163
    assert len(result["changed_paths"]) == 100
    assert result["diff"]["after"].count("\n") == 101
    assert result["diff"]["after"].endswith("... and 63 more paths\n")


@pytest.mark.parametrize("args, message", [
    (dict(owner="no-such-user-x", group="nogroup"), "owner 'no-such-user-x': no such user on this host"),
    (dict(owner="nobody", group="no-such-group-x"), "group 'no-such-group-x': no such group on this host"),
    (dict(owner="nobody", group="nogroup", dir_mode="0777"), "dir_mode: 0777 is world-writable"),
    (dict(owner="nobody", group="nogroup", file_mode="rw-r--r--"), "file_mode: 'rw-r--r--' is not an octal mode"),
])
def test_bad_input_fails_before_anything_changes(tmp_path, args, message):
    root = str(tmp_path / "cgi")
    make_tree(root)
    result = run_module("pycache_owner", dict(path=root, **args), tmp_path=tmp_path)
    assert result.get("failed") is True and message in result["msg"], result
    assert owner_of(root + "/pkg0/__pycache__") == (0, 0, 0o700)
    assert not os.path.exists(root + "/__pycache__")


def test_symlinks_are_reported_and_left_alone(tmp_path):
    root = str(tmp_path / "cgi")
    make_tree(root)
    target = tmp_path / "elsewhere.pyc"
    target.write_text("")
    os.symlink(str(target), root + "/pkg0/__pycache__/evil.pyc")
    result = run_module("pycache_owner", dict(path=root, owner="nobody", group="nogroup"), tmp_path=tmp_path)
    assert result["skipped_symlinks"] == [root + "/pkg0/__pycache__/evil.pyc"]
    assert result["stats"]["symlinks"] == 1
    assert owner_of(str(target))[:2] == (0, 0)


def test_a_cache_that_is_a_file_is_a_warning(tmp_path):
    root = str(tmp_path / "cgi")
    os.makedirs(root)
    open(root + "/app.py", "w").close()
    open(root + "/__pycache__", "w").close()
    result = run_module("pycache_owner", dict(path=root, owner="nobody", group="nogroup"), tmp_path=tmp_path)
    assert result["rc"] == 0 and result["changed"] is False
    # ansible-core 2.19+ returns warnings as structured events.
    warnings = [w["event"]["msg"] if isinstance(w, dict) else w for w in result["warnings"]]
    assert warnings == [root + "/__pycache__ is a symlink or a file, not a directory; it was left alone"]


def test_a_missing_path_is_a_clear_error(tmp_path):
    result = run_module("pycache_owner", dict(path=str(tmp_path / "nope"), owner="nobody", group="nogroup"),
                        tmp_path=tmp_path)
    assert result["failed"] is True and result["msg"] == "%s: No such file or directory" % (tmp_path / "nope")
