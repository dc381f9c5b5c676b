"""pycgi.hosting.precompile, run as Ansible runs it on a host, on real trees and interpreters.

Each numbered point of the module's contract has a test here; whether a cache is good is
asked of the interpreter that reads it (`python -v` says where an import came from).
"""
import os
import pathlib
import shutil
import stat
import subprocess

import pytest

from conftest import INTERPRETERS, child_env, interpreter, run_module


def precompile(tmp_path, check_mode=False, diff=False, **args):
    return run_module("precompile", args, check_mode=check_mode, diff=diff, tmp_path=tmp_path)


def info(python):
    """(version, cache tag) of ``python``."""
    out = subprocess.run([python, "-c", "import sys; print('%d.%d.%d' % sys.version_info[:3]);"
                                        " print(sys.implementation.cache_tag)"],
                         stdout=subprocess.PIPE, universal_newlines=True, check=True).stdout.split()
    return out[0], out[1]


def pyc_of(source, tag, level=0):
    source = pathlib.Path(source)
    suffix = ".opt-%d" % level if level else ""
    return source.parent / "__pycache__" / ("%s.%s%s.pyc" % (source.stem, tag, suffix))


def loads_from_cache(python, directory, module, pyc, *flags):
    """True when ``python`` imports ``module`` from ``pyc`` (and the pyc is not rewritten)."""
    before = os.stat(str(pyc))
    err = subprocess.run([python, "-v"] + list(flags) + ["-c", "import " + module], cwd=str(directory),
                         env=child_env(), stderr=subprocess.PIPE, stdout=subprocess.DEVNULL,
                         universal_newlines=True, check=True).stderr
    after = os.stat(str(pyc))
    return ("# code object from '%s'" % pyc in err and " matches " in err
            and (before.st_ino, before.st_mtime_ns) == (after.st_ino, after.st_mtime_ns))


def state(root):
    """Every path below ``root`` with its inode, mtime and content: what a run may change."""
    found = {}
    for path in sorted(pathlib.Path(root).rglob("*")):
        st = os.lstat(str(path))
        data = path.read_bytes() if stat.S_ISREG(st.st_mode) else os.readlink(str(path)) if path.is_symlink() else None
        found[str(path)] = (st.st_ino, st.st_mtime_ns, data)
    return found


def write(path, text, mode=0o644):
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)
    return path


def cgi_tree(root, python):
    """A CGI root: an entry script with .py, one without, and the package they import."""
    write(root / "index.py", "#!%s\nimport app.views\napp.views.main()\n" % python, 0o755)
    write(root / "report", "#!%s -S\nimport app.models\n" % python, 0o755)
    write(root / "app" / "__init__.py", "")
    write(root / "app" / "models.py", "ROWS = [1, 2, 3]\n")
    write(root / "app" / "views.py", "from app import models\n\ndef main():\n    return sum(models.ROWS)\n")
    return root


def versions():
    return sorted(INTERPRETERS, key=lambda v: tuple(map(int, v.split("."))))


# 1, 2, 3, 10: each interpreter, from the shebang lines; caches used by it; re-run unchanged.
def test_compiles_with_the_interpreter_named_by_the_scripts(any_python, tmp_path):
    _version, python = any_python
    root = cgi_tree(tmp_path / "cgi-bin", python)
    version, tag = info(python)

    result = precompile(tmp_path, path=str(root))
    assert result["rc"] == 0 and result["changed"] is True, result
    assert result["interpreters"] == [{"path": python, "version": version, "cache_tag": tag}]
    sources = ["app/__init__.py", "app/models.py", "app/views.py", "index.py"]
    assert result["compiled"] == [str(root / s) for s in sources]
    assert result["entry_scripts"] == [str(root / "index.py"), str(root / "report")]
    assert result["stats"] == {"sources": 4, "fresh": 0, "compiled": 4, "pruned": 0, "errors": 0}
    assert result["errors"] == [] and result["pruned"] == []
    assert loads_from_cache(python, root, "app.models", pyc_of(root / "app" / "models.py", tag))

    before = state(root)
    again = precompile(tmp_path, path=str(root))
    assert again["changed"] is False and again["compiled"] == []
    assert again["stats"] == {"sources": 4, "fresh": 4, "compiled": 0, "pruned": 0, "errors": 0}
    assert state(root) == before


# 3: a code push recompiles exactly the changed files; 8: by a new file renamed into place.
def test_a_code_push_recompiles_exactly_the_changed_file(tmp_path):
    python = interpreter("3.12")
    _version, tag = info(python)
    root = cgi_tree(tmp_path / "cgi-bin", python)
    precompile(tmp_path, path=str(root))
    pyc = pyc_of(root / "app" / "models.py", tag)
    old_bytes = pyc.read_bytes()
    reader = open(str(pyc), "rb")  # a request that opened the old cache mid-deploy
    before = state(root)

    write(root / "app" / "models.py", "ROWS = [4, 5, 6, 7]\n")
    result = precompile(tmp_path, path=str(root))
    assert result["changed"] is True
    assert result["compiled"] == [str(root / "app" / "models.py")]
    assert result["stats"]["fresh"] == 3
    after = state(root)
    changed_files = sorted(p for p in after if after[p] != before.get(p) and not os.path.isdir(p))
    assert changed_files == sorted([str(root / "app" / "models.py"), str(pyc)])
    # Replaced by rename, never rewritten in place: the open reader still has the whole old file.
    assert reader.read() == old_bytes
    reader.close()
    assert after[str(pyc)][0] != before[str(pyc)][0]
    assert not [p for p in after if p.endswith(".pycgi-tmp")]
    assert loads_from_cache(python, root, "app.models", pyc)


# 2: #!/usr/bin/env python3 is looked up in the host's PATH.
def test_env_shebang_is_resolved_with_the_hosts_path(tmp_path):
    root = tmp_path / "cgi-bin"
    write(root / "hello.py", "#!/usr/bin/env python3\nprint('hi')\n", 0o755)
    expected = shutil.which("python3", path=child_env()["PATH"])
    version, tag = info(expected)
    result = precompile(tmp_path, path=str(root))
    assert result["interpreters"] == [{"path": os.path.abspath(expected), "version": version, "cache_tag": tag}]
    assert pyc_of(root / "hello.py", tag).is_file()


def test_without_entry_scripts_usr_bin_python3_is_used(tmp_path):
    if not os.access("/usr/bin/python3", os.X_OK):
        pytest.skip("no /usr/bin/python3")
    root = tmp_path / "lib"
    write(root / "mod.py", "X = 1\n")
    write(root / "tool.py", "#!/usr/bin/python3.99\n")  # not executable: not an entry script
    result = precompile(tmp_path, path=str(root))
    version, tag = info("/usr/bin/python3")
    assert result["interpreters"] == [{"path": "/usr/bin/python3", "version": version, "cache_tag": tag}]
    assert result["entry_scripts"] == []
    assert pyc_of(root / "mod.py", tag).is_file()


# 2: a path that is not a working Python is a clear error naming it; nothing is written.
def test_a_missing_interpreter_is_named_and_nothing_written(tmp_path):
    root = tmp_path / "cgi-bin"
    write(root / "app.py", "X = 1\n")
    write(root / "old.cgi", "#!/opt/python3.4/bin/python3.4\nimport app\n", 0o755)
    before = state(root)
    result = precompile(tmp_path, path=str(root))
    assert result.get("failed") is True
    assert "/opt/python3.4/bin/python3.4" in result["msg"] and "old.cgi" in result["msg"]
    assert "does not exist" in result["msg"]
    assert state(root) == before


def test_env_python_not_on_path_is_named(tmp_path):
    root = tmp_path / "cgi-bin"
    write(root / "run", "#!/usr/bin/env python3.99\n", 0o755)
    result = precompile(tmp_path, path=str(root))
    assert result.get("failed") is True and "python3.99" in result["msg"] and "run" in result["msg"]


def test_something_that_is_not_python_is_named(tmp_path):
    root = tmp_path / "cgi-bin"
    write(root / "app.py", "X = 1\n")
    fake = write(tmp_path / "bin" / "python3", "#!/bin/sh\necho 'not python'\n", 0o755)
    candidates = [str(fake), "/bin/true"]
    python2 = os.path.expanduser("~/.pyenv/versions/2.7.18/bin/python2.7")
    if os.access(python2, os.X_OK):
        candidates.append(python2)
    before = state(root)
    for candidate in candidates:
        good = interpreter("3.12") if "3.12" in INTERPRETERS else interpreter("3.6")
        result = precompile(tmp_path, path=str(root), interpreters=[good, candidate])
        assert result.get("failed") is True, candidate
        assert candidate in result["msg"] and "not a working Python" in result["msg"]
        assert state(root) == before


# 4: hash-based invalidation with Python 3.6 fails before anything is written.
def test_hash_mode_with_python_36_fails_before_writing(tmp_path):
    py36 = interpreter("3.6")
    other = interpreter("3.12") if "3.12" in INTERPRETERS else interpreter("3.13")
    root = cgi_tree(tmp_path / "cgi-bin", other)
    before = state(root)
    result = precompile(tmp_path, path=str(root), interpreters=[other, py36], invalidation_mode="checked_hash")
    assert result.get("failed") is True
    assert py36 in result["msg"] and "3.7" in result["msg"] and "checked_hash" in result["msg"]
    assert state(root) == before


# 3: switching the invalidation mode recompiles; a hash-based pyc is not rewritten on a re-run.
def test_switching_invalidation_mode_recompiles(tmp_path):
    python = interpreter("3.13") if "3.13" in INTERPRETERS else interpreter("3.7")
    _version, tag = info(python)
    root = cgi_tree(tmp_path / "cgi-bin", python)
    precompile(tmp_path, path=str(root))
    hashed = precompile(tmp_path, path=str(root), invalidation_mode="checked_hash")
    assert hashed["stats"]["compiled"] == 4
    pyc = pyc_of(root / "app" / "views.py", tag)
    assert pyc.read_bytes()[4:8] == b"\x03\x00\x00\x00"
    assert loads_from_cache(python, root, "app.views", pyc)
    assert precompile(tmp_path, path=str(root), invalidation_mode="checked_hash")["changed"] is False
    unchecked = precompile(tmp_path, path=str(root), invalidation_mode="unchecked_hash")
    assert unchecked["stats"]["compiled"] == 4 and pyc.read_bytes()[4:8] == b"\x01\x00\x00\x00"


# 5: optimize levels, parallel workers.
def test_optimize_levels_and_workers(tmp_path):
    python = interpreter("3.12") if "3.12" in INTERPRETERS else interpreter("3.6")
    _version, tag = info(python)
    root = tmp_path / "cgi-bin"
    for index in range(120):
        write(root / "pkg" / ("m%03d.py" % index), '"""Doc %d."""\nassert True\nX = %d\n' % (index, index))
    result = precompile(tmp_path, path=str(root), interpreters=[python], optimize=[0, 1, 2], workers=2)
    assert result["stats"]["compiled"] == 120
    for level in (0, 1, 2):
        assert len(list((root / "pkg" / "__pycache__").glob("*.%s%s.pyc" % (tag, ".opt-%d" % level if level else "")))) == 120
    flags = {0: (), 1: ("-O",), 2: ("-OO",)}
    for level in (0, 1, 2):
        assert loads_from_cache(python, root / "pkg", "m007", pyc_of(root / "pkg" / "m007.py", tag, level), *flags[level])
    bad = precompile(tmp_path, path=str(root), interpreters=[python], optimize=[3])
    assert bad.get("failed") is True and "optimize" in bad["msg"]


def test_entry_script_running_python_O_is_warned_about(tmp_path):
    python = interpreter("3.6")
    root = tmp_path / "cgi-bin"
    write(root / "fast.py", "#!%s -O\nimport lib\n" % python, 0o755)
    write(root / "lib.py", "X = 1\n")
    result = precompile(tmp_path, path=str(root))
    assert any("fast.py" in str(w) and ".opt-1.pyc" in str(w) for w in result.get("warnings", []))
    assert not precompile(tmp_path, path=str(root), optimize=[0, 1]).get("warnings")


# 5: exclude globs are relative to path; excluded sources are neither compiled nor pruned.
def test_exclude(tmp_path):
    python = interpreter("3.12") if "3.12" in INTERPRETERS else interpreter("3.6")
    _version, tag = info(python)
    root = cgi_tree(tmp_path / "cgi-bin", python)
    write(root / "vendor" / "big.py", "X = 1\n")
    write(root / "app" / "tests" / "test_models.py", "X = 1\n")
    write(root / "app" / "skip_me.py", "X = 1\n")
    stale = write(pyc_of(root / "app" / "skip_me.py", tag), "an old cache of an excluded source")
    result = precompile(tmp_path, path=str(root), exclude=["vendor", "*/tests/*", "app/skip_me.py"])
    assert result["stats"]["sources"] == 4
    assert not (root / "vendor" / "__pycache__").exists()
    assert not (root / "app" / "tests" / "__pycache__").exists()
    assert stale.read_text() == "an old cache of an excluded source"
    assert result["pruned"] == []


# 6: prune orphans, foreign cache tags and our interrupted writes; only inside __pycache__.
def test_prune_after_a_python_upgrade_and_a_deleted_module(tmp_path):
    py36 = interpreter("3.6")
    new = interpreter("3.12") if "3.12" in INTERPRETERS else interpreter("3.13")
    _v, tag36 = info(py36)
    _v, tag = info(new)
    root = cgi_tree(tmp_path / "cgi-bin", py36)
    write(root / "app" / "legacy.py", "X = 1\n")
    assert precompile(tmp_path, path=str(root))["interpreters"][0]["cache_tag"] == tag36
    precompile(tmp_path, path=str(root), interpreters=[new], prune=False)
    (root / "app" / "legacy.py").unlink()
    cache = root / "app" / "__pycache__"
    leftover = write(cache / ("models.%s.pyc.4242.pycgi-tmp" % tag), "half")
    keep = [write(cache / "notes.txt", "not ours"), write(root / "app" / ("old.%s.pyc" % tag36), "outside a cache"),
            write(cache / ("views.%s.opt-1.pyc" % tag), "another level of a live source")]

    checked = precompile(tmp_path, check_mode=True, path=str(root), interpreters=[new])
    result = precompile(tmp_path, path=str(root), interpreters=[new])
    expected = sorted([str(leftover), str(pyc_of(root / "app" / "legacy.py", tag))]
                      + [str(pyc_of(root / s, tag36)) for s in
                         ("index.py", "app/__init__.py", "app/models.py", "app/views.py", "app/legacy.py")])
    assert result["pruned"] == expected and checked["pruned"] == expected
    assert result["changed"] is True and result["compiled"] == [] and result["stats"]["pruned"] == len(expected)
    assert all(not pathlib.Path(p).exists() for p in expected)
    assert all(p.exists() for p in keep)
    assert loads_from_cache(new, root, "app.models", pyc_of(root / "app" / "models.py", tag))
    assert precompile(tmp_path, path=str(root), interpreters=[new])["changed"] is False


def test_prune_false_keeps_everything(tmp_path):
    python = interpreter("3.6")
    root = cgi_tree(tmp_path / "cgi-bin", python)
    orphan = write(root / "app" / "__pycache__" / "gone.cpython-36.pyc", "x")
    foreign = write(root / "app" / "__pycache__" / "models.cpython-39.pyc", "x")
    result = precompile(tmp_path, path=str(root), prune=False)
    assert result["pruned"] == [] and orphan.exists() and foreign.exists()


# 7: errors with path and line; the rest compiled; fail or warn; sources never modified.
@pytest.mark.parametrize("on_error", ["fail", "warn"])
def test_errors_are_listed_with_their_line(tmp_path, on_error):
    python = interpreter("3.6")
    _v, tag = info(python)
    root = cgi_tree(tmp_path / "cgi-bin", python)
    write(root / "app" / "broken.py", "X = 1\n\ndef f(:\n    pass\n")
    (root / "app" / "latin.py").write_bytes(b"X = '\xe9t\xe9'\n")
    before = {p: v for p, v in state(root).items() if p.endswith(".py")}
    result = precompile(tmp_path, path=str(root), on_error=on_error)
    errors = [(e["path"], e["line"]) for e in result["errors"]]
    assert errors == [(str(root / "app" / "broken.py"), 3), (str(root / "app" / "latin.py"), 1)]
    assert result["errors"][0]["msg"].startswith("SyntaxError") and result["errors"][0]["interpreters"] == [python]
    assert result["stats"]["errors"] == 2 and result["stats"]["compiled"] == 4
    assert pyc_of(root / "app" / "models.py", tag).is_file()
    assert not pyc_of(root / "app" / "broken.py", tag).exists()
    assert {p: v for p, v in state(root).items() if p.endswith(".py")} == before
    if on_error == "fail":
        assert result.get("failed") is True and result["rc"] != 0
        assert "%s:3: SyntaxError" % (root / "app" / "broken.py") in result["msg"]
    else:
        assert not result.get("failed") and result["rc"] == 0
        assert any("broken.py:3: SyntaxError" in str(w) for w in result["warnings"])


# 7: a symlink to a directory outside the tree is not followed; nothing written outside.
def test_symlink_to_an_outside_directory_is_not_followed(tmp_path):
    python = interpreter("3.6")
    root = cgi_tree(tmp_path / "cgi-bin", python)
    outside = tmp_path / "elsewhere"
    write(outside / "shared.py", "X = 1\n")
    (root / "shared").symlink_to(outside)
    (root / "app" / "__pycache__").mkdir()
    (root / "__pycache__").symlink_to(outside)  # planted: must not be written through
    before = state(outside)
    result = precompile(tmp_path, path=str(root), on_error="warn")
    assert state(outside) == before
    assert result["symlinks_skipped"] == [str(root / "__pycache__"), str(root / "shared")]
    assert [e["path"] for e in result["errors"]] == [str(root / "__pycache__")]
    assert "symbolic link" in result["errors"][0]["msg"]
    assert result["compiled"] == [str(root / "app" / s) for s in ("__init__.py", "models.py", "views.py")]


# 9: check mode reports what a real run does and writes nothing; diff shows the cache states.
def test_check_mode_and_diff(tmp_path):
    python = interpreter("3.12") if "3.12" in INTERPRETERS else interpreter("3.6")
    _v, tag = info(python)
    root = cgi_tree(tmp_path / "cgi-bin", python)
    precompile(tmp_path, path=str(root))
    write(root / "app" / "models.py", "ROWS = []\n")
    write(root / "app" / "new.py", "Y = 2\n")
    orphan = write(root / "app" / "__pycache__" / ("gone.%s.pyc" % tag), "x")
    before = state(root)

    checked = precompile(tmp_path, check_mode=True, diff=True, path=str(root))
    assert state(root) == before
    real = precompile(tmp_path, diff=True, path=str(root))
    for key in ("changed", "compiled", "pruned", "errors", "stats", "interpreters", "entry_scripts", "diff"):
        assert checked[key] == real[key], key
    assert real["compiled"] == [str(root / "app" / "models.py"), str(root / "app" / "new.py")]
    assert real["pruned"] == [str(orphan)]
    cache = root / "app" / "__pycache__"
    assert real["diff"]["before"] == "".join([
        "%s: present (its source %s is gone)\n" % (orphan, root / "app" / "gone.py"),
        "%s: stale\n" % (cache / ("models.%s.pyc" % tag)),
        "%s: missing\n" % (cache / ("new.%s.pyc" % tag)),
    ])
    assert real["diff"]["after"] == "".join([
        "%s: removed\n" % orphan,
        "%s: current\n" % (cache / ("models.%s.pyc" % tag)),
        "%s: current\n" % (cache / ("new.%s.pyc" % tag)),
    ])
    again = precompile(tmp_path, check_mode=True, diff=True, path=str(root))
    assert again["changed"] is False and again["diff"]["before"] == again["diff"]["after"] == ""


# Two interpreters in one run, each writing the caches it reads.
def test_two_interpreters_in_one_run(tmp_path):
    old, new = interpreter("3.6"), interpreter("3.13") if "3.13" in INTERPRETERS else interpreter("3.12")
    root = tmp_path / "cgi-bin"
    cgi_tree(root, old)
    write(root / "modern.py", "#!%s\nimport app.views\n" % new, 0o755)
    result = precompile(tmp_path, path=str(root))
    tags = {i["path"]: i["cache_tag"] for i in result["interpreters"]}
    assert sorted(tags) == sorted([old, new]) and len(set(tags.values())) == 2
    for python, tag in tags.items():
        assert loads_from_cache(python, root, "app.views", pyc_of(root / "app" / "views.py", tag))
    # A second path to the same interpreter counts once.
    alias = tmp_path / "bin" / "python-alias"
    alias.parent.mkdir()
    alias.symlink_to(new)
    both = precompile(tmp_path, path=str(root), interpreters=[new, str(alias), old])
    assert [i["path"] for i in both["interpreters"]] == [new, old] and both["changed"] is False


def test_a_path_that_is_not_a_directory_fails(tmp_path):
    result = precompile(tmp_path, path=str(tmp_path / "nowhere"))
    assert result.get("failed") is True and str(tmp_path / "nowhere") in result["msg"]


def test_the_whole_file_system_is_refused(tmp_path):
    # Check mode, so that a regression could not write anything.
    result = precompile(tmp_path, check_mode=True, path="/tmp/..")
    assert result.get("failed") is True and "whole file system" in result["msg"]
