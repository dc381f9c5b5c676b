"""pycgi.hosting.pycache_info, run as Ansible runs it on a host, on real trees and interpreters.

What the module calls fresh is checked against the interpreter itself (`python -v` says which
caches it loads), and what it says the web server user cannot do against a real process
running as that user.
"""
import grp
import os
import pathlib
import pwd
import shutil
import stat
import subprocess
import sys
import tempfile

import pytest

from conftest import INTERPRETERS, child_env, interpreter, run_module


def info(tmp_path, check_mode=False, **args):
    result = run_module("pycache_info", args, check_mode=check_mode, tmp_path=tmp_path)
    assert result["rc"] == 0 and not result.get("failed"), result
    assert result["changed"] is False
    return result


def write(path, text, mode=0o644):
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)
    return path


def compile_tree(python, root, *flags):
    subprocess.run([python, "-m", "compileall", "-q"] + list(flags) + [str(root)],
                   env=child_env(), check=True, stdout=subprocess.DEVNULL)


def cache_tag(python):
    return subprocess.run([python, "-c", "import sys; print(sys.implementation.cache_tag)"],
                          stdout=subprocess.PIPE, universal_newlines=True, check=True).stdout.strip()


def loads_cache(python, root, source):
    """Whether ``python`` imports ``source`` (below ``root``) from its cache (-B: it writes nothing)."""
    source = pathlib.Path(source)
    parts = source.relative_to(root).with_suffix("").parts
    module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
    err = subprocess.run([python, "-B", "-v", "-c", "import " + module], cwd=str(root),
                         env=child_env(), stderr=subprocess.PIPE, stdout=subprocess.DEVNULL,
                         universal_newlines=True, check=True).stderr
    return " matches %s" % source in err


def snapshot(root):
    """Every path below ``root`` with its inode, mode, mtime and content."""
    found = {}
    for path in sorted(pathlib.Path(root).rglob("*")):
        st = os.lstat(str(path))
        found[str(path)] = (st.st_ino, st.st_mode, st.st_mtime_ns,
                            path.read_bytes() if stat.S_ISREG(st.st_mode) else None)
    return found


def only(result):
    assert len(result["interpreters"]) == 1, result["interpreters"]
    return result["interpreters"][0]


def package(root):
    """Three modules in a package and a top-level one."""
    write(root / "app" / "__init__.py", "")
    write(root / "app" / "models.py", "ROWS = [1, 2, 3]\n")
    write(root / "app" / "views.py", "from app import models\n\ndef main():\n    return sum(models.ROWS)\n")
    write(root / "util.py", "def helper():\n    return 42\n")
    return root


# Fresh, stale and missing, for every interpreter here (3.6 included), agree with the
# interpreter's own verdict, before and after edits.
def test_fresh_stale_missing_agree_with_the_interpreter(any_python, tmp_path):
    _version, python = any_python
    root = package(tmp_path / "cgi")
    compile_tree(python, root)
    tag = cache_tag(python)

    first = only(info(tmp_path, path=str(root), interpreters=[python]))
    assert (first["cache_tag"], first["fresh"], first["stale"], first["missing"]) == (tag, 4, 0, 0)
    assert all(loads_cache(python, root, s) for s in root.rglob("*.py"))

    models = root / "app" / "models.py"
    models.write_text("ROWS = [1, 2, 3, 4]\n")
    os.utime(str(models), (1, 1))
    write(root / "app" / "new.py", "NEW = True\n")
    result = info(tmp_path, path=str(root), interpreters=[python])
    report = only(result)
    assert (report["fresh"], report["stale"], report["missing"]) == (3, 1, 1), report
    assert report["stale_caches"] == [{
        "source": str(models), "cache": str(root / "app" / "__pycache__" / ("models.%s.pyc" % tag)),
        "reason": "source changed (modification time or size)"}]
    assert report["missing_caches"] == [{
        "source": str(root / "app" / "new.py"), "cache": str(root / "app" / "__pycache__" / ("new.%s.pyc" % tag))}]
    not_fresh = set(c["source"] for c in report["stale_caches"] + report["missing_caches"])
    for source in root.rglob("*.py"):
        assert loads_cache(python, root, source) == (str(source) not in not_fresh), source
    assert result["summary"][0] == "%s (%s, Python %s): 3 fresh, 1 stale, 1 missing" % (tag, python, report["version"])
    assert result["sources"] == 5


def test_hash_based_caches_are_judged_in_their_own_mode(tmp_path):
    python = interpreter("3.11")
    root = package(tmp_path / "cgi")
    write(root / "loose.py", "X = 1\n")
    compile_tree(python, root, "--invalidation-mode", "checked-hash")
    compile_tree(python, root / "loose.py", "--invalidation-mode", "unchecked-hash")
    report = only(info(tmp_path, path=str(root), interpreters=[python]))
    assert (report["fresh"], report["stale"], report["missing"]) == (5, 0, 0), report

    (root / "util.py").write_text("def helper():\n    return 43\n")
    (root / "loose.py").write_text("X = 2\n")
    report = only(info(tmp_path, path=str(root), interpreters=[python]))
    reasons = dict((pathlib.Path(c["source"]).name, c["reason"]) for c in report["stale_caches"])
    assert reasons == {"util.py": "source changed (checked hash)",
                       "loose.py": "source changed (unchecked hash: Python runs the old code)"}
    # The interpreter agrees: it recompiles the checked one and runs the old code of the other.
    assert not loads_cache(python, root, root / "util.py")
    assert loads_cache(python, root, root / "loose.py")


def test_another_release_and_truncated_caches_are_stale_with_their_reason(tmp_path):
    python = interpreter("3.11")
    root = package(tmp_path / "cgi")
    compile_tree(python, root)
    tag = cache_tag(python)
    pyc = root / "__pycache__" / ("util.%s.pyc" % tag)
    data = pyc.read_bytes()
    pyc.write_bytes(b"\x00\x00" + data[2:])
    (root / "app" / "__pycache__" / ("models.%s.pyc" % tag)).write_bytes(data[:10])
    report = only(info(tmp_path, path=str(root), interpreters=[python]))
    reasons = sorted((pathlib.Path(c["source"]).name, c["reason"]) for c in report["stale_caches"])
    assert reasons == [("models.py", "truncated"),
                       ("util.py", "written by another Python release (magic number 0000%s)" % data[2:4].hex())]


def test_orphans_foreign_tags_and_temporary_files(tmp_path):
    old, new = interpreter("3.9"), interpreter("3.12")
    root = package(tmp_path / "cgi")
    compile_tree(old, root)
    compile_tree(new, root)
    gone = root / "app" / "views.py"
    gone.unlink()
    tmp_file = root / "__pycache__" / ("util.%s.pyc.4242.pycgi-tmp" % cache_tag(new))
    tmp_file.write_bytes(b"half")
    other = root / "__pycache__" / "README"
    other.write_text("not ours\n")

    result = info(tmp_path, path=str(root), interpreters=[new])
    left = result["leftovers"]
    assert left["orphans"] == {"count": 2, "paths": sorted(
        str(root / "app" / "__pycache__" / ("views.%s.pyc" % cache_tag(p))) for p in (old, new))}
    assert left["foreign_tags"]["count"] == 3 and left["foreign_tags"]["tags"] == {"cpython-39": 3}
    assert sorted(left["foreign_tags"]["paths"]) == sorted(
        str(p) for p in root.rglob("*.cpython-39.pyc") if "views" not in p.name)
    assert left["temporary_files"] == {"count": 1, "paths": [str(tmp_file)]}
    assert result["summary"][1] == "2 caches whose source is gone, 3 of Python versions not in use (cpython-39: 3)"
    # Inspecting both interpreters: nothing is foreign any more.
    both = info(tmp_path, path=str(root), interpreters=[old, new])
    assert [i["cache_tag"] for i in both["interpreters"]] == ["cpython-39", "cpython-312"]
    assert both["leftovers"]["foreign_tags"] == {"count": 0, "paths": [], "tags": {}}


def test_entry_scripts_with_their_line_counts(tmp_path):
    python = interpreter("3.11")
    root = package(tmp_path / "cgi")
    big = write(root / "report.py", "#!%s\n" % python + "".join("x%d = %d\n" % (i, i) for i in range(3407)), 0o755)
    small = write(root / "hello", "#!/usr/bin/env python3\nimport util\nprint(util.helper())", 0o750)
    write(root / "not-run.py", "#!%s\nprint(1)\n" % python)  # no execute bit: Apache will not run it
    write(root / "shell.cgi", "#!/bin/sh\necho hi\n", 0o755)
    result = info(tmp_path, path=str(root), interpreters=[python])
    scripts = result["entry_scripts"]
    assert scripts["scripts"] == [
        {"path": str(big), "lines": 3408, "bytes": big.stat().st_size, "interpreter": python},
        {"path": str(small), "lines": 3, "bytes": small.stat().st_size, "interpreter": "python3"},
    ]
    assert (scripts["count"], scripts["lines"], scripts["bytes"]) == (2, 3411, big.stat().st_size + small.stat().st_size)
    assert "2 entry scripts never cached: 3,411 lines compiled per request" in result["summary"]


def test_interpreters_default_to_the_shebang_lines_and_problems_do_not_stop_it(tmp_path):
    python = interpreter("3.12")
    root = package(tmp_path / "cgi")
    index = write(root / "index.py", "#!%s\nimport util\n" % python, 0o755)
    write(root / "legacy", "#!/usr/bin/env python3.99\nimport util\n", 0o755)
    result = info(tmp_path, path=str(root))
    assert [(i["path"], i["named_by"]) for i in result["interpreters"]] == [
        (python, "named by the #! line of %s" % index)]
    assert len(result["problems"]) == 1 and "python3.99" in result["problems"][0]
    assert "problem: " + result["problems"][0] in result["summary"]

    listed = info(tmp_path, path=str(root), interpreters=[str(tmp_path / "no-such-python"), python])
    assert [i["path"] for i in listed["interpreters"]] == [python]
    assert listed["problems"] == ["Python interpreter %s (listed in interpreters) does not exist" % (tmp_path / "no-such-python")]


def test_counts_are_complete_and_lists_capped(tmp_path):
    python = interpreter("3.11")
    root = tmp_path / "cgi"
    for i in range(30):
        write(root / ("m%02d.py" % i), "V = %d\n" % i)
    report = only(info(tmp_path, path=str(root), interpreters=[python], list_limit=5, exclude=["m2*"]))
    assert report["missing"] == 20 and len(report["missing_caches"]) == 5


def test_check_mode_gives_the_same_answer_and_nothing_changes(tmp_path):
    python = interpreter("3.11")
    root = package(tmp_path / "cgi")
    compile_tree(python, root)
    (root / "util.py").write_text("def helper():\n    return 0\n")
    (root / "app" / "views.py").unlink()
    before = snapshot(root)
    normal = info(tmp_path, path=str(root), interpreters=[python])
    checked = info(tmp_path, check_mode=True, path=str(root), interpreters=[python])
    assert snapshot(root) == before
    for result in (normal, checked):
        result.pop("invocation", None)
        result.pop("rc")
    assert normal == checked


@pytest.fixture
def open_dir():
    """A directory any user can reach (pytest's own temporary directories are private)."""
    path = tempfile.mkdtemp(prefix="pycgi-info-", dir="/var/tmp")
    os.chmod(path, 0o755)
    yield pathlib.Path(path)
    shutil.rmtree(path)


def nobody():
    entry = pwd.getpwnam("nobody")
    return entry, grp.getgrgid(entry.pw_gid).gr_name


def run_as(entry, python, directory, module):
    subprocess.run([python, "-c", "import " + module], cwd=str(directory), env=child_env(), check=True,
                   user=entry.pw_uid, group=entry.pw_gid, extra_groups=[])


@pytest.mark.skipif(os.geteuid() != 0 or sys.version_info < (3, 9), reason="needs root to run a process as nobody")
def test_caches_the_web_server_user_cannot_use(open_dir, tmp_path):
    python = "/usr/bin/python3"
    if not os.access(python, os.X_OK):
        pytest.skip("no /usr/bin/python3")
    entry, group = nobody()
    tag = cache_tag(python)
    root = open_dir / "cgi"
    write(root / "a" / "one.py", "A = 1\n")
    write(root / "b" / "two.py", "B = 2\n")
    write(root / "c" / "three.py", "C = 3\n")
    (root / "a" / "__pycache__").mkdir(mode=0o755)
    (root / "c" / "__pycache__").mkdir(mode=0o755)
    os.chown(str(root / "c" / "__pycache__"), entry.pw_uid, entry.pw_gid)
    compile_tree(python, root / "c")
    secret = root / "c" / "__pycache__" / ("three.%s.pyc" % tag)
    secret.chmod(0o600)

    result = info(tmp_path, path=str(root), interpreters=[python], owner="nobody", group=group)
    access = result["access"]
    assert (access["user"], access["group"], access["root_blocked_by"]) == ("nobody", group, None)
    assert access["cache_dirs_not_writable"] == {"count": 1, "paths": [str(root / "a" / "__pycache__")]}
    assert access["cache_dirs_not_creatable"] == {"count": 1, "paths": [str(root / "b")]}
    assert access["pycs_not_readable"] == {"count": 1, "paths": [str(secret)]}
    assert "1 cache the web server user (nobody) cannot write" in result["summary"]

    # The real user agrees: it cannot write in a/ or create b/__pycache__, and it does write
    # in c/__pycache__, which it owns.
    for directory, module in ((root / "a", "one"), (root / "b", "two")):
        run_as(entry, python, directory, module)
    assert list((root / "a" / "__pycache__").iterdir()) == [] and not (root / "b" / "__pycache__").exists()
    write(root / "c" / "four.py", "D = 4\n")
    run_as(entry, python, root / "c", "four")
    assert (root / "c" / "__pycache__" / ("four.%s.pyc" % tag)).exists()

    # Given to the user, everything is usable; read-only caches need no writes.
    for path in (root / "a" / "__pycache__", secret):
        os.chown(str(path), entry.pw_uid, entry.pw_gid)
    fixed = info(tmp_path, path=str(root), interpreters=[python], owner="nobody", group=group)["access"]
    assert fixed["cache_dirs_not_writable"]["count"] == 0 and fixed["pycs_not_readable"]["count"] == 0
    readonly = info(tmp_path, path=str(root), interpreters=[python], owner="nobody", group=group,
                    cache_mode="readonly")["access"]
    assert readonly["cache_dirs_not_creatable"]["count"] == 0

    # A private directory on the way to the root hides everything.
    open_dir.chmod(0o700)
    blocked = info(tmp_path, path=str(root), interpreters=[python], owner="nobody", group=group)
    assert blocked["access"]["root_blocked_by"] == str(open_dir)


def test_unknown_owner_fails_before_anything(tmp_path):
    root = package(tmp_path / "cgi")
    result = run_module("pycache_info", {"path": str(root), "owner": "no-such-user-pycgi"}, tmp_path=tmp_path)
    assert result.get("failed") and "no-such-user-pycgi" in result["msg"]
    result = run_module("pycache_info", {"path": str(tmp_path / "absent")}, tmp_path=tmp_path)
    assert result.get("failed") and "is not a directory" in result["msg"]


def test_apache_block_written_by_httpd_pycache(tmp_path):
    python = interpreter("3.11")
    root = package(tmp_path / "cgi")
    conf = write(tmp_path / "httpd.conf", "ServerName localhost\n")
    args = dict(path=str(root), interpreters=[python], apache_config=str(conf))
    assert info(tmp_path, **args)["apache"] == {
        "config": str(conf), "present": False, "current": False, "write_bytecode": None}

    written = run_module("httpd_pycache", {"path": str(root), "dest": str(conf), "validate": False, "placement": "block",
                                           "write_bytecode": False}, tmp_path=tmp_path)
    assert written["changed"], written
    result = info(tmp_path, **args)
    assert result["apache"] == {"config": str(conf), "present": True, "current": True, "write_bytecode": False}
    assert "Apache: the pycgi __pycache__ block for %s is in %s" % (root, conf) in result["summary"]

    conf.write_text(conf.read_text().replace("Require all denied", "Require all granted"))
    assert info(tmp_path, **args)["apache"]["current"] is False
    conf.write_text(conf.read_text().replace("# END pycgi.hosting", "# ENDED pycgi.hosting"))
    assert "has no" in info(tmp_path, **args)["apache"]["error"]


@pytest.mark.skipif(shutil.which("matchpathcon") is not None, reason="this host has the SELinux tools")
def test_selinux_not_available_without_the_tools(tmp_path):
    root = package(tmp_path / "cgi")
    result = info(tmp_path, path=str(root), interpreters=[interpreter("3.11")])
    assert result["selinux"]["available"] is False and "matchpathcon" in result["selinux"]["reason"]


def test_every_interpreter_here_in_one_run(tmp_path):
    if len(INTERPRETERS) < 2:
        pytest.skip("needs two interpreters")
    pythons = [INTERPRETERS[v] for v in sorted(INTERPRETERS, key=lambda v: tuple(map(int, v.split("."))))]
    root = package(tmp_path / "cgi")
    compile_tree(pythons[0], root)
    result = info(tmp_path, path=str(root), interpreters=pythons)
    counts = [(i["fresh"], i["missing"]) for i in result["interpreters"]]
    assert counts == [(4, 0)] + [(0, 4)] * (len(pythons) - 1)
