"""The compile program, run as the driver runs it: under each real interpreter, JSON in and out.

What a .pyc is worth is decided by the interpreter that reads it, so the tests ask that
interpreter (`python -v` shows whether an import came from the cache) rather than trusting
our own reading of the header.
"""
import json
import os
import pathlib
import shutil
import stat
import struct
import subprocess
import tempfile

import pytest

from ansible_collections.pycgi.hosting.plugins.module_utils import _compile_worker as worker
from ansible_collections.pycgi.hosting.plugins.module_utils._precompile import WORKER_FLAGS, worker_source
from ansible_collections.pycgi.hosting.plugins.module_utils._pytree import walk

from conftest import INTERPRETERS, child_env, interpreter

SOURCE = worker_source()
FLAGS = {"timestamp": 0, "unchecked_hash": 1, "checked_hash": 3}


def version_tuple(version):
    return tuple(int(part) for part in version.split("."))


def run_worker(python, job, args=(), **popen):
    """(probe, result) of the compile program under ``python`` (with ``args``) given ``job``."""
    proc = subprocess.run([python] + list(WORKER_FLAGS) + [SOURCE] + list(args), input=json.dumps(job).encode(),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=300, check=False, **popen)
    assert proc.returncode == 0, proc.stderr.decode()
    probe_line, _newline, rest = proc.stdout.partition(b"\n")
    return json.loads(probe_line.decode()), json.loads(rest.decode())


def make_job(root, mode="timestamp", optimize=(0,), check=False, workers=1, prefix=None):
    return {"dirs": walk(str(root)).sources, "invalidation_mode": mode, "optimize": list(optimize),
            "check": check, "workers": workers, "pycache_prefix": prefix}


def ask(python, code, *args, **kwargs):
    """What ``python -c code args...`` prints (stripped)."""
    return subprocess.run([python, "-c", code] + list(args), stdout=subprocess.PIPE, check=True,
                          universal_newlines=True, env=child_env(), **kwargs).stdout.strip()


def cache_path(python, source, level=0):
    """Where ``python`` itself looks for the cache of ``source``."""
    return ask(python, "import importlib.util, sys; print(importlib.util.cache_from_source("
                       "sys.argv[1], optimization=int(sys.argv[2]) or ''))", str(source), str(level))


def import_verbosely(python, directory, module, *flags):
    """stderr of ``python -v [flags] -c 'import module'`` run in ``directory``."""
    return subprocess.run([python, "-v"] + list(flags) + ["-c", "import " + module], cwd=str(directory),
                          env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, check=True).stderr


def loaded_from_cache(stderr, pyc, source):
    return ("# %s matches %s" % (pyc, source) in stderr
            and "# code object from '%s'" % pyc in stderr)


def snapshot(path):
    st = os.stat(str(path))
    return st.st_ino, st.st_mtime_ns, pathlib.Path(path).read_bytes()


def make_tree(root, count=3):
    root.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        (root / ("mod%d.py" % index)).write_text("VALUE = %d\n\ndef f():\n    return VALUE\n" % index)
    return root


@pytest.fixture
def world_tmp():
    """A directory that the user nobody can traverse (pytest's tmp_path is private to root)."""
    path = tempfile.mkdtemp(prefix="compile-worker-")
    os.chmod(path, 0o755)
    yield pathlib.Path(path)
    shutil.rmtree(path)


def test_probe_describes_the_interpreter(any_python):
    version, python = any_python
    probe, result = run_worker(python, {"dirs": [], "invalidation_mode": "timestamp", "optimize": [0],
                                        "check": False, "workers": 1})
    assert probe["version"].startswith(version + ".")
    assert probe["version_info"] == list(version_tuple(version))
    assert probe["cache_tag"] == ask(python, "import sys; print(sys.implementation.cache_tag)")
    assert probe["magic"] == ask(python, "import importlib.util; print(importlib.util.MAGIC_NUMBER.hex())")
    assert probe["hash_pyc"] is (version_tuple(version) >= (3, 7))
    assert probe["cpus"] >= 1
    assert "module_dirs" not in probe
    assert result == {"fresh": 0, "pycs": [], "errors": [], "failed_dirs": [], "executables": []}


def test_the_probe_names_the_module_dirs_only_when_asked(any_python):
    """--module-dirs: the standard library and site-packages as the interpreter itself names
    them (asked with site's .pth files run, as a script runs); without it, not worked out."""
    _version, python = any_python
    job = {"dirs": [], "invalidation_mode": "timestamp", "optimize": [0], "check": False, "workers": 1}
    probe, _result = run_worker(python, job, args=["--module-dirs"])
    assert probe["module_dirs"][0] == ask(python, "import sysconfig; print(sysconfig.get_paths()['stdlib'])")
    site_dirs = json.loads(ask(python, "import json, site; print(json.dumps(site.getsitepackages()))"))
    assert set(site_dirs) <= set(probe["module_dirs"])
    assert "module_dirs" not in run_worker(python, job)[0]


def test_empty_input_stops_without_doing_anything(tmp_path):
    python = interpreter("3.6")
    make_tree(tmp_path)
    proc = subprocess.run([python] + list(WORKER_FLAGS) + [SOURCE], input=b"",
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60, check=False)
    assert proc.returncode == 0 and proc.stdout.count(b"\n") == 1
    assert not (tmp_path / "__pycache__").exists()


def test_written_pyc_is_loaded_from_the_cache_and_not_rewritten(any_python, tmp_path):
    _version, python = any_python
    make_tree(tmp_path)
    probe, result = run_worker(python, make_job(tmp_path))
    pyc = cache_path(python, tmp_path / "mod1.py")
    assert pyc == str(tmp_path / "__pycache__" / ("mod1.%s.pyc" % probe["cache_tag"]))
    assert sorted(p for _s, p, _st, _w in result["pycs"]) == sorted(
        cache_path(python, tmp_path / ("mod%d.py" % i)) for i in range(3))
    assert all(state == "missing" and written for _s, _p, state, written in result["pycs"])
    assert stat.S_IMODE(os.stat(pyc).st_mode) == 0o644
    assert stat.S_IMODE(os.stat(str(tmp_path / "__pycache__")).st_mode) == 0o755
    before = snapshot(pyc)
    assert loaded_from_cache(import_verbosely(python, tmp_path, "mod1"), pyc, tmp_path / "mod1.py")
    assert snapshot(pyc) == before


def test_a_current_pyc_is_left_alone_and_a_push_recompiles_only_what_changed(any_python, tmp_path):
    _version, python = any_python
    make_tree(tmp_path)
    run_worker(python, make_job(tmp_path))
    pycs = {i: cache_path(python, tmp_path / ("mod%d.py" % i)) for i in range(3)}
    before = {i: snapshot(p) for i, p in pycs.items()}

    _probe, again = run_worker(python, make_job(tmp_path))
    assert again["pycs"] == [] and again["fresh"] == 3
    assert {i: snapshot(p) for i, p in pycs.items()} == before

    # A push: new content and a new mtime for mod0; for mod2 the same mtime but another
    # size (compileall looks only at the mtime and would keep the stale cache).
    (tmp_path / "mod0.py").write_text("VALUE = 'pushed'\n")
    st = os.stat(str(tmp_path / "mod2.py"))
    (tmp_path / "mod2.py").write_text("VALUE = 2222\n\ndef f():\n    return VALUE\n")
    os.utime(str(tmp_path / "mod2.py"), ns=(st.st_atime_ns, st.st_mtime_ns))
    _probe, push = run_worker(python, make_job(tmp_path))
    assert sorted(s for s, _p, _st, _w in push["pycs"]) == [str(tmp_path / "mod0.py"), str(tmp_path / "mod2.py")]
    assert all(state == "stale" for _s, _p, state, _w in push["pycs"])
    assert push["fresh"] == 1
    assert snapshot(pycs[1]) == before[1]
    for i in (0, 2):
        assert loaded_from_cache(import_verbosely(python, tmp_path, "mod%d" % i), pycs[i], tmp_path / ("mod%d.py" % i))
    assert ask(python, "import mod0; print(mod0.VALUE)", cwd=str(tmp_path)) == "pushed"


@pytest.mark.parametrize("mode", ["checked_hash", "unchecked_hash"])
def test_hash_based_pycs(any_python, tmp_path, mode):
    version, python = any_python
    if version_tuple(version) < (3, 7):
        pytest.skip("hash-based pycs need Python 3.7")
    make_tree(tmp_path)
    run_worker(python, make_job(tmp_path, mode=mode))
    pyc = cache_path(python, tmp_path / "mod0.py")
    data = pathlib.Path(pyc).read_bytes()
    source = (tmp_path / "mod0.py").read_bytes()
    assert struct.unpack("<I", data[4:8])[0] == FLAGS[mode]
    assert data[8:16].hex() == ask(python, "import importlib.util, sys; print(importlib.util.source_hash("
                                           "open(sys.argv[1], 'rb').read()).hex())", str(tmp_path / "mod0.py"))
    assert loaded_from_cache(import_verbosely(python, tmp_path, "mod0"), pyc, tmp_path / "mod0.py")

    # Unlike compileall, a second run leaves hash-based pycs alone.
    before = snapshot(pyc)
    _probe, again = run_worker(python, make_job(tmp_path, mode=mode))
    assert again["pycs"] == [] and snapshot(pyc) == before

    # Same size, same mtime, other content: only the hash tells.
    st = os.stat(str(tmp_path / "mod0.py"))
    (tmp_path / "mod0.py").write_bytes(source.replace(b"VALUE = 0", b"VALUE = 7"))
    os.utime(str(tmp_path / "mod0.py"), ns=(st.st_atime_ns, st.st_mtime_ns))
    _probe, push = run_worker(python, make_job(tmp_path, mode=mode))
    assert [s for s, _p, _st, _w in push["pycs"]] == [str(tmp_path / "mod0.py")]

    # Switching the mode recompiles everything.
    _probe, switched = run_worker(python, make_job(tmp_path, mode="timestamp"))
    assert len(switched["pycs"]) == 3 and all(state == "stale" for _s, _p, state, _w in switched["pycs"])
    assert struct.unpack("<I", pathlib.Path(pyc).read_bytes()[4:8])[0] == 0


def test_hash_mode_on_python_36_is_refused_before_writing(tmp_path):
    python = interpreter("3.6")
    make_tree(tmp_path)
    _probe, result = run_worker(python, make_job(tmp_path, mode="checked_hash"))
    assert "3.7" in result["fatal"]
    assert not (tmp_path / "__pycache__").exists()


def test_optimize_levels_write_the_files_python_O_reads(any_python, tmp_path):
    _version, python = any_python
    (tmp_path / "opt.py").write_text('"""Doc."""\nassert False, "only without -O"\nDOC = __doc__\n')
    _probe, result = run_worker(python, make_job(tmp_path, optimize=(0, 1, 2)))
    expected = [cache_path(python, tmp_path / "opt.py", level) for level in (0, 1, 2)]
    assert sorted(p for _s, p, _st, _w in result["pycs"]) == sorted(expected)
    assert expected[1].endswith(".opt-1.pyc") and expected[2].endswith(".opt-2.pyc")
    assert loaded_from_cache(import_verbosely(python, tmp_path, "opt", "-O"), expected[1], tmp_path / "opt.py")
    assert loaded_from_cache(import_verbosely(python, tmp_path, "opt", "-OO"), expected[2], tmp_path / "opt.py")
    out = subprocess.run([python, "-OO", "-c", "import opt; print(opt.DOC)"], cwd=str(tmp_path), env=child_env(),
                         stdout=subprocess.PIPE, universal_newlines=True, check=True).stdout
    assert out.strip() == "None"


def test_errors_are_reported_with_their_line_and_the_rest_compiled(any_python, tmp_path):
    _version, python = any_python
    make_tree(tmp_path, 2)
    broken = {
        "syntax.py": b"X = 1\n\ndef f(:\n    pass\n",
        "nulls.py": b"X = 1\n\x00\n",
        "encoding.py": b"X = '\xff\xfe'\n",
        "unknown_codec.py": b"# -*- coding: no-such-codec -*-\nX = 1\n",
    }
    for name, data in broken.items():
        (tmp_path / name).write_bytes(data)
    before = {name: snapshot(tmp_path / name) for name in broken}
    _probe, result = run_worker(python, make_job(tmp_path))
    errors = {os.path.basename(path): (line, msg) for path, line, msg in result["errors"]}
    assert set(errors) == set(broken)
    assert errors["syntax.py"][0] == 3 and errors["syntax.py"][1].startswith("SyntaxError:")
    assert errors["encoding.py"][0] == 1 and "decode" in errors["encoding.py"][1]
    assert "null bytes" in errors["nulls.py"][1]
    assert "no-such-codec" in errors["unknown_codec.py"][1]
    written = sorted(os.path.basename(s) for s, _p, _st, w in result["pycs"] if w)
    assert written == ["mod0.py", "mod1.py"]
    assert sorted(os.listdir(str(tmp_path / "__pycache__"))) == sorted(
        os.path.basename(cache_path(python, tmp_path / n)) for n in ("mod0.py", "mod1.py"))
    assert {name: snapshot(tmp_path / name) for name in broken} == before


def test_check_mode_finds_the_same_work_and_writes_nothing(any_python, tmp_path):
    _version, python = any_python
    make_tree(tmp_path)
    (tmp_path / "bad.py").write_text("def (\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "new.py").write_text("X = 1\n")
    run_worker(python, make_job(tmp_path))
    (tmp_path / "mod0.py").write_text("VALUE = 'changed'\n")
    pyc0 = cache_path(python, tmp_path / "mod0.py")
    before = snapshot(pyc0)
    shutil.rmtree(str(tmp_path / "sub" / "__pycache__"))
    listing = sorted(str(p) for p in tmp_path.rglob("*"))

    _probe, checked = run_worker(python, make_job(tmp_path, check=True))
    assert sorted(str(p) for p in tmp_path.rglob("*")) == listing
    assert snapshot(pyc0) == before
    _probe, real = run_worker(python, make_job(tmp_path))
    assert sorted(checked["pycs"]) == sorted(real["pycs"])
    assert checked["errors"] == real["errors"] and [e[0] for e in real["errors"]] == [str(tmp_path / "bad.py")]


def test_a_planted_symlink_is_replaced_never_written_through(tmp_path):
    python = interpreter("3.12") if "3.12" in INTERPRETERS else interpreter("3.6")
    tree = make_tree(tmp_path / "tree", 1)
    target = tmp_path / "precious"
    target.write_text("do not touch\n")
    tag = ask(python, "import sys; print(sys.implementation.cache_tag)")
    (tree / "__pycache__").mkdir()
    planted = tree / "__pycache__" / ("mod0.%s.pyc" % tag)
    planted.symlink_to(target)
    _probe, result = run_worker(python, make_job(tree))
    assert [w for _s, _p, _st, w in result["pycs"]] == [True]
    assert target.read_text() == "do not touch\n"
    assert not planted.is_symlink() and planted.is_file()
    assert loaded_from_cache(import_verbosely(python, tree, "mod0"), str(planted), tree / "mod0.py")


def test_a_symlinked_pycache_is_an_error_for_its_directory_only(any_python, tmp_path):
    _version, python = any_python
    tree = make_tree(tmp_path / "tree", 1)
    make_tree(tree / "ok", 1)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tree / "__pycache__").symlink_to(elsewhere)
    for check in (True, False):
        _probe, result = run_worker(python, make_job(tree, check=check))
        assert result["errors"] == [[str(tree / "__pycache__"), None,
                                     "is a symbolic link: bytecode is never written through it"]]
        assert result["failed_dirs"] == [str(tree)]
        assert [s for s, _p, _st, _w in result["pycs"]] == [str(tree / "ok" / "mod0.py")]
    assert os.listdir(str(elsewhere)) == []


def test_a_header_without_code_is_not_current(tmp_path):
    python = interpreter("3.13") if "3.13" in INTERPRETERS else interpreter("3.6")
    make_tree(tmp_path, 1)
    run_worker(python, make_job(tmp_path))
    pyc = pathlib.Path(cache_path(python, tmp_path / "mod0.py"))
    header_len = 16 if ask(python, "import sys; print(sys.version_info >= (3, 7))") == "True" else 12
    pyc.write_bytes(pyc.read_bytes()[:header_len])
    _probe, result = run_worker(python, make_job(tmp_path))
    assert [state for _s, _p, state, _w in result["pycs"]] == ["stale"]
    assert loaded_from_cache(import_verbosely(python, tmp_path, "mod0"), str(pyc), tmp_path / "mod0.py")


def test_pyc_mode_is_0644_whatever_the_umask(tmp_path):
    python = interpreter("3.6")
    make_tree(tmp_path, 1)
    run_worker(python, make_job(tmp_path), preexec_fn=lambda: os.umask(0o077))
    assert stat.S_IMODE(os.stat(cache_path(python, tmp_path / "mod0.py")).st_mode) == 0o644
    assert stat.S_IMODE(os.stat(str(tmp_path / "__pycache__")).st_mode) == 0o755


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run the program as another user")
def test_permission_errors_are_per_file(world_tmp):
    # An interpreter the user nobody may run (pyenv's live in root's home).
    python = "/usr/bin/python3"
    if not os.access(python, os.X_OK):
        pytest.skip("no /usr/bin/python3")
    make_tree(world_tmp / "open", 1)
    secret = make_tree(world_tmp / "secret", 1) / "mod0.py"
    secret.chmod(0o600)
    readonly = make_tree(world_tmp / "readonly", 1)
    readonly.chmod(0o555)
    job = make_job(world_tmp)
    (world_tmp / "open").chmod(0o777)
    (world_tmp / "secret").chmod(0o777)
    _probe, result = run_worker(python, job, user=65534, group=65534)
    errors = {path: (line, msg) for path, line, msg in result["errors"]}
    assert errors[str(secret)] == (None, "PermissionError: Permission denied")
    assert errors[str(readonly / "__pycache__")][1].startswith("cannot open the cache directory: Permission denied")
    assert [(s, w) for s, _p, _st, w in result["pycs"] if w] == [(str(world_tmp / "open" / "mod0.py"), True)]
    assert not (readonly / "__pycache__").exists()


def test_pycache_prefix_writes_the_tree_python_X_pycache_prefix_reads(any_python, tmp_path):
    version, python = any_python
    tree = make_tree(tmp_path / "tree", 1)
    prefix = tmp_path / "prefix"
    _probe, result = run_worker(python, make_job(tree, prefix=str(prefix)))
    if version_tuple(version) < (3, 8):
        assert "3.8" in result["fatal"] and not prefix.exists()
        return
    pyc = subprocess.run([python, "-X", "pycache_prefix=%s" % prefix, "-c",
                          "import importlib.util, sys; print(importlib.util.cache_from_source(sys.argv[1]))",
                          str(tree / "mod0.py")], stdout=subprocess.PIPE, universal_newlines=True,
                         check=True).stdout.strip()
    assert [p for _s, p, _st, w in result["pycs"] if w] == [pyc]
    assert not (tree / "__pycache__").exists()
    stderr = import_verbosely(python, tree, "mod0", "-X", "pycache_prefix=%s" % prefix)
    assert loaded_from_cache(stderr, pyc, tree / "mod0.py")


def test_many_files_are_compiled_in_parallel_and_all_load(tmp_path):
    python = interpreter("3.12") if "3.12" in INTERPRETERS else interpreter("3.6")
    for package in range(4):
        make_tree(tmp_path / ("pkg%d" % package), 40)
    _probe, result = run_worker(python, make_job(tmp_path, workers=2))
    assert len(result["pycs"]) == 160 and all(w for _s, _p, _st, w in result["pycs"])
    assert result["errors"] == []
    stderr = import_verbosely(python, tmp_path / "pkg3", "mod39")
    assert loaded_from_cache(stderr, cache_path(python, tmp_path / "pkg3" / "mod39.py"), tmp_path / "pkg3" / "mod39.py")
    _probe, again = run_worker(python, make_job(tmp_path, workers=2))
    assert again["pycs"] == [] and again["fresh"] == 160


def test_in_parallel_forks_and_redoes_the_chunk_of_a_failed_child():
    parent = os.getpid()

    def who(_job, chunk):
        return [os.getpid(), chunk]

    results = worker.in_parallel(who, {}, [[1], [2], [3]])
    assert [chunk for _pid, chunk in results] == [[1], [2], [3]]
    assert results[0][0] == parent and len({pid for pid, _c in results}) == 3

    def dies_in_children(_job, chunk):
        if os.getpid() != parent:
            os._exit(3)
        return chunk

    assert worker.in_parallel(dies_in_children, {}, [["a"], ["b"]]) == [["a"], ["b"]]


def test_split_keeps_order_and_balances_weight():
    chunks = worker.split([(1, "a"), (1, "b"), (1, "c"), (1, "d"), (4, "e")], 2)
    assert chunks == [["a", "b", "c", "d"], ["e"]]
    assert worker.split([(5, "x")], 4) == [["x"]]
    assert sum(worker.split([(1, i) for i in range(10)], 3), []) == list(range(10))
