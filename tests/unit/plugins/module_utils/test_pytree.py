"""_pytree: one walk of a CGI tree, on real files."""
import json
import os
import pathlib
import shutil
import tempfile

import pytest

from ansible_collections.pycgi.hosting.plugins.module_utils._pytree import (
    EntryScript,
    entry_scripts,
    parse_pyc_name,
    parse_shebang,
    source_paths,
    walk,
)


def write(path, text="", mode=0o644):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)
    return str(path)


@pytest.fixture
def tree(tmp_path):
    """A small CGI tree: scripts with and without .py, a package, caches, a stray file."""
    root = tmp_path / "cgi-bin"
    write(root / "index.py", "#!/usr/bin/python3\nimport app\n", 0o755)
    write(root / "report", "#!/usr/bin/env python3\nimport app\n", 0o755)
    write(root / "tool.py", "#!/usr/bin/python3\n", 0o644)            # not executable
    write(root / "run.sh", "#!/bin/sh\necho\n", 0o755)                 # not Python
    write(root / "app" / "__init__.py")
    write(root / "app" / "models.py", "X = 1\n")
    write(root / "app" / "README.txt", "docs\n")
    write(root / "app" / "__pycache__" / "models.cpython-312.pyc", "")
    write(root / "app" / "__pycache__" / "gone.cpython-36.pyc", "")
    (root / "app" / "__pycache__" / "nested").mkdir()
    write(root / "__pycache__" / "index.cpython-312.pyc", "")
    return root


def test_walk_finds_sources_scripts_and_caches(tree):
    found = walk(str(tree))
    root = str(tree)
    assert found.root == root
    assert found.sources == [
        (root, ["index.py", "tool.py"]),
        (os.path.join(root, "app"), ["__init__.py", "models.py"]),
    ]
    assert source_paths(found) == [os.path.join(root, "index.py"), os.path.join(root, "tool.py"),
                                   os.path.join(root, "app", "__init__.py"),
                                   os.path.join(root, "app", "models.py")]
    assert found.entry_scripts == [
        EntryScript(os.path.join(root, "index.py"), "/usr/bin/python3", []),
        EntryScript(os.path.join(root, "report"), "python3", []),
    ]
    # Caches are listed, never taken for sources nor descended.
    assert found.pycache == [
        (os.path.join(root, "__pycache__"), ["index.cpython-312.pyc"]),
        (os.path.join(root, "app", "__pycache__"), ["gone.cpython-36.pyc", "models.cpython-312.pyc", "nested"]),
    ]
    assert found.symlinks == [] and found.excluded == [] and found.errors == []


def test_walk_without_py_scripts_leaves_py_entry_scripts_to_the_caller(tree):
    found = walk(str(tree), py_scripts=False)
    assert [s.path for s in found.entry_scripts] == [str(tree / "report")]
    assert found.sources == walk(str(tree)).sources
    # The caller passes the sources it found executable.
    assert entry_scripts([str(tree / "index.py"), str(tree / "run.sh")]) == [
        EntryScript(str(tree / "index.py"), "/usr/bin/python3", [])]


def test_symlinked_directories_are_not_followed(tree, tmp_path):
    outside = tmp_path / "outside"
    write(outside / "secret.py", "X = 1\n")
    write(outside / "run", "#!/usr/bin/python3\n", 0o755)
    (tree / "shared").symlink_to(outside)
    (tree / "app" / "lib").symlink_to(outside, target_is_directory=True)
    # A linked source file inside the tree is a source: Python imports through it. One that
    # leads out of the tree is not read (listed in outside_links) unless asked for.
    (tree / "app" / "linked.py").symlink_to(outside / "secret.py")
    (tree / "app" / "inner.py").symlink_to(tree / "app" / "models.py")
    # A link named like a source that leads nowhere is an error naming it.
    (tree / "app" / "dangling.py").symlink_to(tmp_path / "nowhere.py")
    (tree / "app" / "loop.py").symlink_to(tree / "app" / "loop.py")

    found = walk(str(tree))
    assert found.symlinks == [str(tree / "app" / "lib"), str(tree / "shared")]
    paths = source_paths(found)
    assert str(tree / "app" / "linked.py") not in paths
    assert found.outside_links == [str(tree / "app" / "linked.py")]
    assert str(tree / "app" / "inner.py") in paths
    assert str(tree / "app" / "linked.py") in source_paths(walk(str(tree), follow_outside_links=True))
    assert not any(p.startswith(str(outside)) for p in paths)
    assert str(tree / "app" / "dangling.py") not in paths
    errors = dict(found.errors)
    assert sorted(errors) == [str(tree / "app" / "dangling.py"), str(tree / "app" / "loop.py")]
    assert "dangling" in errors[str(tree / "app" / "dangling.py")] and "nowhere.py" in errors[str(tree / "app" / "dangling.py")]
    assert "loop" in errors[str(tree / "app" / "loop.py")]
    assert all(not s.path.startswith(str(tree / "shared")) for s in found.entry_scripts)


def test_a_symlinked_pycache_is_noted_and_not_listed(tree, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    write(elsewhere / "models.cpython-312.pyc", "")
    (tree / "lib").mkdir()
    write(tree / "lib" / "util.py", "")
    (tree / "lib" / "__pycache__").symlink_to(elsewhere)
    found = walk(str(tree))
    assert str(tree / "lib" / "__pycache__") in found.symlinks
    assert all(cache_dir != str(tree / "lib" / "__pycache__") for cache_dir, _names in found.pycache)


@pytest.mark.parametrize("patterns, gone", [
    (["app"], ["app/__init__.py", "app/models.py"]),
    (["app/"], ["app/__init__.py", "app/models.py"]),
    (["app/models.py"], ["app/models.py"]),
    (["*/models.py"], ["app/models.py"]),
    (["*.py"], ["index.py", "tool.py", "app/__init__.py", "app/models.py"]),
    (["tool.py", "app/__init__.py"], ["tool.py", "app/__init__.py"]),
    (["models.py"], []),  # relative to the root: only a top-level models.py
])
def test_exclude_globs_are_relative_to_the_root(tree, patterns, gone):
    everything = set(source_paths(walk(str(tree))))
    found = walk(str(tree), exclude=patterns)
    left = set(source_paths(found))
    assert everything - left == {str(tree / g) for g in gone}


def test_an_excluded_directory_is_not_descended(tree):
    found = walk(str(tree), exclude=["app"])
    assert found.excluded == [str(tree / "app")]
    assert all(not d.startswith(str(tree / "app")) for d, _n in found.pycache)


def as_nobody(function):
    """``function()`` run in a child process as the user nobody (its JSON-able result)."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read_end)
            os.setgid(65534)
            os.setuid(65534)
            os.write(write_end, json.dumps(function()).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as handle:
        data = handle.read()
    os.waitpid(pid, 0)
    return json.loads(data.decode())


@pytest.fixture
def world_tmp():
    """A directory that other users can traverse (pytest's tmp_path is private to root)."""
    path = tempfile.mkdtemp(prefix="pytree-")
    os.chmod(path, 0o755)
    yield pathlib.Path(path)
    shutil.rmtree(path)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to switch to another user")
def test_an_unreadable_directory_is_reported_and_the_rest_walked(world_tmp):
    write(world_tmp / "ok.py", "X = 1\n")
    write(world_tmp / "locked" / "hidden.py", "X = 1\n")
    (world_tmp / "locked").chmod(0o700)
    found = as_nobody(lambda: walk(str(world_tmp)))
    assert found[1] == [[str(world_tmp), ["ok.py"]]]
    assert [path for path, _msg in found[7]] == [str(world_tmp / "locked")]
    assert "Permission denied" in found[7][0][1]


@pytest.mark.parametrize("line, expected", [
    ("#!/usr/bin/python3", ("/usr/bin/python3", [])),
    ("#!/usr/bin/python3 -S", ("/usr/bin/python3", ["-S"])),
    ("#! /usr/bin/python3.11 -O", ("/usr/bin/python3.11", ["-O"])),
    ("#!/usr/local/bin/python", ("/usr/local/bin/python", [])),
    ("#!/usr/bin/env python3", ("python3", [])),
    ("#!/usr/bin/env python3.12\r", ("python3.12", [])),
    ("#!/usr/bin/env -S python3 -u", ("python3", ["-u"])),
    ("#!/usr/bin/env -Spython3 -O", ("python3", ["-O"])),
    ("#!/usr/bin/env -i PATH=/opt/bin python3", ("python3", [])),
    ("#!/usr/bin/env -u LANG python3", ("python3", [])),
    ("#!/usr/bin/env /opt/py/bin/python3.9", ("/opt/py/bin/python3.9", [])),
    (b"#!/usr/bin/python3\n", ("/usr/bin/python3", [])),
    ("#!/bin/sh", None),
    ("#!/usr/bin/env perl", None),
    ("#!/usr/bin/env", None),
    ("#!python3", None),                     # relative: depends on Apache's working directory
    ("#!/usr/bin/env ./python3", None),
    ("#!/usr/bin/python3-config", None),
    ("# not a shebang", None),
    ("", None),
])
def test_parse_shebang(line, expected):
    assert parse_shebang(line) == expected


@pytest.mark.parametrize("name, expected", [
    ("mod.cpython-312.pyc", ("mod", "cpython-312", 0)),
    ("mod.cpython-36.opt-1.pyc", ("mod", "cpython-36", 1)),
    ("mod.cpython-313.opt-2.pyc", ("mod", "cpython-313", 2)),
    ("my.mod.cpython-312.pyc", ("my.mod", "cpython-312", 0)),
    ("mod.pypy39.pyc", ("mod", "pypy39", 0)),
    ("mod.pyc", None),
    ("mod.cpython-312.opt-x.pyc", None),
    ("mod.cpython-312.pyc.1234.pycgi-tmp", None),
    ("README", None),
])
def test_parse_pyc_name(name, expected):
    assert parse_pyc_name(name) == expected
