"""pycgi.hosting.precompile with pycache_prefix and interpreter_modules: the caches of each
interpreter's standard library and site-packages are written into the prefix too, because once
PYTHONPYCACHEPREFIX is set Python looks for every module's cache there, and without them the
first requests compile those modules and the web server user writes their caches."""
import os
import pathlib
import subprocess

import pytest

from conftest import INTERPRETERS, child_env, interpreter, run_module
from test_precompile import cgi_tree, state, write

from ansible_collections.pycgi.hosting.plugins.module_utils import _precompile


def newest_modern():
    found = [v for v in INTERPRETERS if tuple(map(int, v.split("."))) >= (3, 8)]
    if not found:
        pytest.skip("no Python 3.8 or later on this machine")
    return interpreter(max(found, key=lambda v: tuple(map(int, v.split(".")))))


def files(top):
    return sorted(str(p) for p in pathlib.Path(top).rglob("*") if p.is_file())


def run_app(python, root, prefix):
    """Imports the tree's package and some of the standard library, as a request would."""
    subprocess.run([python, "-c", "import json, email.parser, http.cookies, app.views"], cwd=str(root),
                   env=child_env(PYTHONPYCACHEPREFIX=str(prefix)), check=True)


def test_a_run_with_the_interpreters_modules_cached_writes_nothing_in_the_prefix(tmp_path):
    python = newest_modern()
    stdlib = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['stdlib'])"],
                            stdout=subprocess.PIPE, universal_newlines=True, check=True).stdout.strip()
    root = cgi_tree(tmp_path / "cgi-bin", python)
    sources = state(root)

    # Without the option (the control): the first run writes the standard library's caches.
    bare = tmp_path / "bare"
    assert run_module("precompile", dict(path=str(root), pycache_prefix=str(bare)), tmp_path=tmp_path)["rc"] == 0
    before = files(bare)
    run_app(python, root, bare)
    written = [p for p in files(bare) if p not in before]
    assert any(p.startswith(str(bare) + stdlib) for p in written), written

    prefix = tmp_path / "cache"
    args = dict(path=str(root), pycache_prefix=str(prefix), interpreter_modules=True)
    result = run_module("precompile", args, tmp_path=tmp_path)
    assert result["rc"] == 0 and result["changed"] is True, result.get("msg")
    assert result["stats"]["compiled"] == 4
    [report] = result["interpreter_modules"]
    assert report["interpreter"] == python and report["dirs"][0] == stdlib
    assert report["sources"] > 500 and report["compiled"] + report["errors"] == report["sources"]
    assert len(report["failed"]) == min(report["errors"], 10)
    assert os.path.isfile(str(prefix) + os.path.join(stdlib, "json", "decoder.%s.pyc" % info_tag(python)))

    before = files(prefix)
    run_app(python, root, prefix)
    assert files(prefix) == before
    assert state(root) == sources

    again = run_module("precompile", args, tmp_path=tmp_path)
    assert again["changed"] is False, again
    assert again["interpreter_modules"][0]["fresh"] == report["sources"] - report["errors"]
    assert again["interpreter_modules"][0]["compiled"] == 0


def info_tag(python):
    return subprocess.run([python, "-c", "import sys; print(sys.implementation.cache_tag)"],
                          stdout=subprocess.PIPE, universal_newlines=True, check=True).stdout.strip()


@pytest.fixture
def fake_module_dirs(tmp_path, monkeypatch):
    """The interpreter's module directories replaced by a small one (the rest is real: the walk,
    the compile program under the real interpreter, the split of its results): a package, a
    module with a syntax error (as some distributions ship test data), an executable module."""
    lib = tmp_path / "lib"
    write(lib / "pkg" / "__init__.py", "")
    write(lib / "pkg" / "util.py", "VALUE = 1\n")
    write(lib / "broken.py", "def (:\n")
    write(lib / "tool.py", "#!/usr/bin/python3\nprint('a tool')\n", 0o755)
    monkeypatch.setattr(_precompile, "module_dirs", lambda probe, root, prefix: [str(lib)])
    return lib


def test_module_dirs_are_compiled_counted_and_never_fail_the_run(tmp_path, fake_module_dirs):
    python = newest_modern()
    tag = info_tag(python)
    root = cgi_tree(tmp_path / "cgi-bin", python)
    prefix = tmp_path / "cache"
    lib = fake_module_dirs
    untouched = state(lib)

    # Listed interpreters: the compile program reports the executable sources it sees.
    checked = _precompile.precompile(str(root), interpreters=[python], pycache_prefix=str(prefix),
                                     interpreter_modules=True, check_mode=True, diff=True)
    assert not prefix.exists()
    result = _precompile.precompile(str(root), interpreters=[python], pycache_prefix=str(prefix),
                                    interpreter_modules=True, diff=True)
    for report in (checked["interpreter_modules"], result["interpreter_modules"]):
        assert report == [{"interpreter": python, "dirs": [str(lib)], "sources": 4, "fresh": 0, "compiled": 3,
                           "errors": 1, "failed": [str(lib / "broken.py")]}]
    assert result["changed"] is True and result["errors"] == [] and result["stats"]["errors"] == 0
    # The executable module of the interpreter is not an entry script of the tree.
    assert result["entry_scripts"] == [str(root / "index.py"), str(root / "report")]
    assert os.path.isfile(str(prefix) + str(lib / "pkg" / ("util.%s.pyc" % tag)))
    assert not os.path.exists(str(prefix) + str(lib / ("broken.%s.pyc" % tag)))
    assert "caches of the own modules of %s, 4 sources): 3 current, 1 not compiled" % python in result["diff"]["after"]
    assert state(lib) == untouched

    again = _precompile.precompile(str(root), pycache_prefix=str(prefix), interpreter_modules=True)
    assert again["changed"] is False
    assert again["interpreter_modules"][0]["fresh"] == 3 and again["interpreter_modules"][0]["compiled"] == 0

    # An upgrade of the interpreter's package changes a source: that cache is stale, and rewritten.
    write(lib / "pkg" / "util.py", "VALUE = 2\n")
    os.utime(str(lib / "pkg" / "util.py"), (1, 1))
    pushed = _precompile.precompile(str(root), pycache_prefix=str(prefix), interpreter_modules=True)
    assert pushed["changed"] is True and pushed["compiled"] == []
    assert pushed["interpreter_modules"][0]["compiled"] == 1


def test_interpreter_modules_without_a_prefix_is_refused_naming_the_options(tmp_path):
    root = cgi_tree(tmp_path / "cgi-bin", newest_modern())
    before = state(root)
    result = run_module("precompile", dict(path=str(root), interpreter_modules=True), tmp_path=tmp_path)
    assert result["failed"] is True
    assert "interpreter_modules needs pycache_prefix" in result["msg"]
    assert state(root) == before


@pytest.mark.parametrize("listed, kept", [
    (["/usr/lib/python3.11", "/usr/lib/python3/dist-packages"], ["/usr/lib/python3.11", "/usr/lib/python3/dist-packages"]),
    # RHEL: site-packages below the standard library is walked with it.
    (["/usr/lib64/python3.9", "/usr/lib64/python3.9/site-packages"], ["/usr/lib64/python3.9"]),
    # Relative, missing, the tree, the prefix, a directory holding either: left out.
    (["lib", "/nonexistent", "/srv/cgi", "/srv/cgi/lib", "/var/cache/pycgi", "/srv"], []),
])
def test_module_dirs_keep_existing_outside_dirs_once(listed, kept, monkeypatch):
    existing = {"/usr/lib/python3.11", "/usr/lib/python3/dist-packages", "/usr/lib64/python3.9",
                "/usr/lib64/python3.9/site-packages", "/srv/cgi", "/srv/cgi/lib", "/var/cache/pycgi", "/srv"}
    monkeypatch.setattr(_precompile.os.path, "isdir", lambda path: path in existing)
    assert _precompile.module_dirs({"module_dirs": listed}, "/srv/cgi", "/var/cache/pycgi") == kept
    assert _precompile.module_dirs({}, "/srv/cgi", "/var/cache/pycgi") == []


def test_a_module_of_the_interpreter_linked_out_of_its_directory_is_compiled(tmp_path, fake_module_dirs):
    """Debian's /usr/lib/python3.X/sitecustomize.py is a link to /etc/python3.X/: the interpreter's
    own directories are the system's, so their links are followed (unlike links out of the CGI
    tree), and the web server user never has to write that cache."""
    python = newest_modern()
    tag = info_tag(python)
    root = cgi_tree(tmp_path / "cgi-bin", python)
    prefix = tmp_path / "cache"
    etc = write(tmp_path / "etc" / "sitecustomize.py", "SITE = 1\n")
    (fake_module_dirs / "sitecustomize.py").symlink_to(etc)
    result = _precompile.precompile(str(root), interpreters=[python], pycache_prefix=str(prefix),
                                    interpreter_modules=True)
    assert result["interpreter_modules"][0]["sources"] == 5, result["interpreter_modules"]
    assert os.path.isfile(str(prefix) + str(fake_module_dirs / ("sitecustomize.%s.pyc" % tag)))
    assert result["outside_links"] == []
