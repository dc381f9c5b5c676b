"""pycgi.hosting.precompile with pycache_prefix: caches where Python 3.8+ reads them under
PYTHONPYCACHEPREFIX, and no __pycache__ under the CGI tree; asked of the real interpreters."""
import os
import pathlib
import subprocess

import pytest

from conftest import INTERPRETERS, child_env, interpreter, run_module
from test_precompile import cgi_tree, info, state, write


def precompile(tmp_path, check_mode=False, **args):
    return run_module("precompile", args, check_mode=check_mode, tmp_path=tmp_path)


def prefix_pyc(prefix, source, tag):
    source = pathlib.Path(source)
    return pathlib.Path(str(prefix) + str(source.parent)) / ("%s.%s.pyc" % (source.stem, tag))


def import_verbose(python, directory, module, *args, **env):
    return subprocess.run([python] + list(args) + ["-v", "-c", "import " + module], cwd=str(directory),
                          env=child_env(**env), stderr=subprocess.PIPE, stdout=subprocess.DEVNULL,
                          universal_newlines=True, check=True).stderr


def modern():
    """Each Python 3.8+ on this machine: (version, path)."""
    return [v for v in sorted(INTERPRETERS, key=lambda v: tuple(map(int, v.split("."))))
            if tuple(map(int, v.split("."))) >= (3, 8)] or ["none"]


@pytest.mark.parametrize("version", modern())
def test_caches_land_in_the_prefix_and_are_loaded_from_it(version, tmp_path):
    python = interpreter(version)
    root = cgi_tree(tmp_path / "cgi-bin", python)
    prefix = tmp_path / "cache"
    _v, tag = info(python)

    result = precompile(tmp_path, path=str(root), pycache_prefix=str(prefix))
    assert result["rc"] == 0 and result["changed"] is True, result
    assert result["stats"] == {"sources": 4, "fresh": 0, "compiled": 4, "pruned": 0, "errors": 0}
    pyc = prefix_pyc(prefix, root / "app" / "models.py", tag)
    assert pyc.is_file()
    assert not list(root.rglob("__pycache__")) and not list(root.rglob("*.pyc"))

    # The interpreter also caches its own standard library there: only the tree's part counts.
    tree_cache = pathlib.Path(str(prefix) + str(root))
    before_root, before_cache = state(root), state(tree_cache)
    # The interpreter itself names the prefix cache it loaded, by either way of setting the prefix.
    for err in (import_verbose(python, root, "app.models", "-X", "pycache_prefix=%s" % prefix),
                import_verbose(python, root, "app.models", PYTHONPYCACHEPREFIX=str(prefix))):
        assert "# code object from '%s'" % pyc in err and " matches " in err, err
    assert state(root) == before_root and state(tree_cache) == before_cache

    again = precompile(tmp_path, path=str(root), pycache_prefix=str(prefix))
    assert again["changed"] is False and again["stats"]["fresh"] == 4
    assert state(tree_cache) == before_cache


def test_a_code_push_and_prune_work_in_the_prefix_tree_only(tmp_path):
    python = interpreter("3.12") if "3.12" in INTERPRETERS else interpreter("3.8")
    _v, tag = info(python)
    root = cgi_tree(tmp_path / "cgi-bin", python)
    write(root / "app" / "legacy.py", "X = 1\n")
    prefix = tmp_path / "cache"
    assert precompile(tmp_path, path=str(root), pycache_prefix=str(prefix))["stats"]["compiled"] == 5
    (root / "app" / "legacy.py").unlink()
    write(root / "app" / "models.py", "ROWS = [4, 5]\n")
    os.utime(str(root / "app" / "models.py"), (1, 1))
    orphan = prefix_pyc(prefix, root / "app" / "legacy.py", tag)
    foreign = write(prefix_pyc(prefix, root / "app" / "views.py", "cpython-36"), "old tag")
    # Another tree sharing the prefix, and a cache of the tree in its own __pycache__: not touched.
    other = write(prefix_pyc(prefix, tmp_path / "other" / "gone.py", tag), "another tree")
    local = write(root / "app" / "__pycache__" / ("gone.%s.pyc" % tag), "not in the prefix")

    checked = precompile(tmp_path, check_mode=True, path=str(root), pycache_prefix=str(prefix))
    result = precompile(tmp_path, path=str(root), pycache_prefix=str(prefix))
    assert result["compiled"] == [str(root / "app" / "models.py")] == checked["compiled"]
    assert result["pruned"] == sorted([str(orphan), str(foreign)]) == checked["pruned"]
    assert not orphan.exists() and not foreign.exists() and other.exists() and local.exists()
    err = import_verbose(python, root, "app.models", PYTHONPYCACHEPREFIX=str(prefix))
    assert "# code object from '%s'" % prefix_pyc(prefix, root / "app" / "models.py", tag) in err


@pytest.mark.parametrize("old", ["3.6", "3.7"])
def test_an_interpreter_older_than_38_is_refused_before_writing(old, tmp_path):
    old_python = interpreter(old)
    new = interpreter("3.12") if "3.12" in INTERPRETERS else interpreter("3.8")
    root = cgi_tree(tmp_path / "cgi-bin", old_python)
    prefix = tmp_path / "cache"
    before = state(tmp_path)
    for interpreters in (None, [new, old_python]):
        args = {"path": str(root), "pycache_prefix": str(prefix)}
        if interpreters:
            args["interpreters"] = interpreters
        result = precompile(tmp_path, **args)
        assert result.get("failed") is True, result
        assert "pycache_prefix" in result["msg"] and old_python in result["msg"] and "3.8" in result["msg"]
        assert state(tmp_path) == before and not prefix.exists()


def test_a_prefix_inside_the_tree_or_relative_is_refused(tmp_path):
    root = write(tmp_path / "cgi-bin" / "app.py", "X = 1\n").parent
    for prefix in (str(root / "cache"), "cache"):
        result = precompile(tmp_path, path=str(root), pycache_prefix=prefix)
        assert result.get("failed") is True and "pycache_prefix" in result["msg"], result
    assert sorted(p.name for p in root.iterdir()) == ["app.py"]
