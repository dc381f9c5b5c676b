"""Reliability of pycgi.hosting.precompile on this host: bad input, hostile trees, a killed run.

Every case runs the real module process on a tree in pytest's tmp_path (nothing else on the
host is touched; the one case that names `/` runs in check mode). "Left as it was" is checked
by a snapshot of every path below the test's directory: inode, mode, mtime and content.
docs/reliability.md lists these cases; tools/reliability_doc.py regenerates it from the docstrings.
"""
import json
import os
import pathlib
import shutil
import signal
import stat
import subprocess
import sys
import time
import uuid

import pytest

from conftest import INTERPRETERS, child_env, interpreter, run_module

SYSTEM_PYTHON = "/usr/bin/python3"


def system_python():
    if not os.access(SYSTEM_PYTHON, os.X_OK):
        pytest.skip("no %s on this machine" % SYSTEM_PYTHON)
    return SYSTEM_PYTHON


def precompile(tmp_path, check_mode=False, **args):
    return run_module("precompile", args, check_mode=check_mode, tmp_path=tmp_path)


def start_module(name, args, tmp_path, check_mode=False):
    """The module as its own process (and process group), for the cases that time it or kill it."""
    params = dict(args, _ansible_check_mode=check_mode, _ansible_diff=False)
    args_file = tmp_path / ("args-%s-%s.json" % (name, uuid.uuid4().hex[:8]))
    args_file.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": params}))
    return subprocess.Popen([sys.executable, "-m", "ansible_collections.pycgi.hosting.plugins.modules." + name,
                             str(args_file)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=child_env(),
                            start_new_session=True)


def finish(proc, timeout):
    """The module's JSON result; a run that outlives ``timeout`` is killed and fails the test."""
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail("the module was still running after %d s" % timeout)
    try:
        return json.loads(out)
    except ValueError:
        raise AssertionError("no JSON from the module (rc=%d): %s %s" % (proc.returncode, out, err))


def write(path, content, mode=0o644):
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, str):
        content = content.encode("utf-8")
    path.write_bytes(content)
    path.chmod(mode)
    return path


def snapshot(root):
    """Every path below ``root`` (itself included): kind, inode, mode, owner, mtime, content or target.

    A directory's mtime is left out: it moves when a cache directory is created in it, which
    the entries of the snapshot show anyway."""
    found = {}
    for path in [pathlib.Path(root)] + sorted(pathlib.Path(root).rglob("*")):
        st = os.lstat(str(path))
        if stat.S_ISREG(st.st_mode):
            data = path.read_bytes()
        elif stat.S_ISLNK(st.st_mode):
            data = os.readlink(str(path))
        else:
            data = None
        mtime = None if stat.S_ISDIR(st.st_mode) else st.st_mtime_ns
        found[str(path)] = (stat.S_IFMT(st.st_mode), st.st_ino, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid,
                            mtime, data)
    return found


def tag_of(python):
    return subprocess.run([python, "-c", "import sys; print(sys.implementation.cache_tag)"], check=True,
                          stdout=subprocess.PIPE, universal_newlines=True).stdout.strip()


def pyc(source, tag):
    source = pathlib.Path(source)
    return source.parent / "__pycache__" / ("%s.%s.pyc" % (source.stem, tag))


# Run by each interpreter over the caches of its own tag: a cache either loads completely (the
# magic number of this interpreter, then a code object marshal reads to the end) or is named.
CHECK_CACHES = r"""
import importlib.util, marshal, os, sys
tag, bad, count = sys.implementation.cache_tag, [], 0
header = 16 if sys.version_info >= (3, 7) else 12
for directory, _dirs, files in os.walk(sys.argv[1]):
    for name in files:
        if name.endswith(".%s.pyc" % tag):
            path = os.path.join(directory, name)
            with open(path, "rb") as handle:
                data = handle.read()
            try:
                assert data[:4] == importlib.util.MAGIC_NUMBER, "wrong magic"
                code = marshal.loads(data[header:])
                assert hasattr(code, "co_code"), "not a code object"
                count += 1
            except Exception as exc:
                bad.append("%s: %r" % (path, exc))
print(count)
print("\n".join(bad))
"""


def loadable_caches(python, root):
    """(number of caches of ``python``'s tag that load, [those that do not])."""
    out = subprocess.run([python, "-c", CHECK_CACHES, str(root)], check=True, stdout=subprocess.PIPE,
                         universal_newlines=True, env=child_env()).stdout.splitlines()
    return int(out[0]), [line for line in out[1:] if line]


def leftovers(root):
    return sorted(str(p) for p in pathlib.Path(root).rglob("*.pycgi-tmp"))


def good_tree(root):
    write(root / "good.py", "X = 1\n")
    write(root / "pkg" / "__init__.py", "")
    write(root / "pkg" / "util.py", "def f():\n    return 2\n")
    return root


def assert_only_good_caches_added(before, after, good_sources, tag):
    """``after`` is ``before`` plus the caches (and their directories) of ``good_sources``."""
    added = {path for path in after if path not in before}
    expected = {str(pyc(s, tag)) for s in good_sources}
    expected |= {str(pyc(s, tag).parent) for s in good_sources}
    assert added == expected
    assert {path: after[path] for path in before} == before


# --- 1. bad input ------------------------------------------------------------------------------

def test_syntax_error_is_named_with_its_line_and_the_rest_compiled(tmp_path):
    """A source with a syntax error: the task fails naming the file and the line; every other
    source is compiled; no source changes; a re-run changes nothing more."""
    python = system_python()
    tag = tag_of(python)
    root = good_tree(tmp_path / "cgi")
    # Alone in its directory: not even an empty __pycache__ may appear for it.
    bad = write(root / "broken" / "broken.py", "A = 1\nB = 2\nif True print(3)\n")
    before = snapshot(root)

    result = precompile(tmp_path, path=str(root), interpreters=[python])
    assert result["failed"] is True and result["rc"] != 0, result
    assert "%s:3: SyntaxError" % bad in result["msg"], result["msg"]
    assert [(e["path"], e["line"]) for e in result["errors"]] == [(str(bad), 3)]
    after = snapshot(root)
    assert_only_good_caches_added(before, after, [root / "good.py", root / "pkg" / "__init__.py",
                                                  root / "pkg" / "util.py"], tag)
    assert loadable_caches(python, root) == (3, [])

    again = precompile(tmp_path, path=str(root), interpreters=[python])
    assert again["failed"] is True and again["compiled"] == [] and again["pruned"] == []
    assert snapshot(root) == after


@pytest.mark.parametrize("content, line, words", [
    (b"# a comment\nNAME = '\xff\xfe'\n", 2, "utf-8"),
    (b"# -*- coding: klingon -*-\nX = 1\n", None, "klingon"),
    (b"X = 1\nY = '\x00'\n", None, "null"),
], ids=["invalid-utf8", "unknown-coding-cookie", "null-byte"])
def test_undecodable_source_is_named_and_the_rest_compiled(tmp_path, content, line, words):
    """An undecodable source (bytes that are not UTF-8, an unknown coding cookie, a null byte):
    the task fails naming the file and the reason; the good sources are compiled."""
    python = system_python()
    tag = tag_of(python)
    root = good_tree(tmp_path / "cgi")
    bad = write(root / "bad" / "undecodable.py", content)
    before = snapshot(root)

    result = precompile(tmp_path, path=str(root), interpreters=[python])
    assert result["failed"] is True, result
    assert [e["path"] for e in result["errors"]] == [str(bad)]
    assert str(bad) in result["msg"] and words in result["msg"].lower(), result["msg"]
    if line is not None:
        assert result["errors"][0]["line"] == line
    assert_only_good_caches_added(before, snapshot(root), [root / "good.py", root / "pkg" / "__init__.py",
                                                           root / "pkg" / "util.py"], tag)


def test_fifo_or_directory_named_like_a_source_never_blocks_the_run(tmp_path):
    """Names ending in .py that are not regular files: a FIFO (opening it to read would wait
    forever) and a directory. Python cannot import either; the run finishes at once and
    compiles the rest."""
    python = system_python()
    tag = tag_of(python)
    root = good_tree(tmp_path / "cgi")
    os.mkfifo(str(root / "pipe.py"))
    write(root / "dir.py" / "inner.py", "Z = 3\n")
    for listed in ([python], None):
        proc = start_module("precompile", {"path": str(root), "interpreters": listed}, tmp_path)
        result = finish(proc, timeout=60)
        assert not result.get("failed"), result
        assert str(root / "pipe.py") not in result["compiled"]
        assert stat.S_ISFIFO(os.lstat(str(root / "pipe.py")).st_mode)
        assert not pyc(root / "pipe.py", tag).exists()
        assert pyc(root / "dir.py" / "inner.py", tag).is_file()


def test_dangling_symlink_and_symlink_loops_are_named(tmp_path):
    """A dangling symlink named like a source and a loop of symlinks are errors naming each of
    them (Python would fail to import them); a symlink to a directory that loops back is not
    followed; the walk ends; everything else is compiled and nothing is written through a link."""
    python = system_python()
    tag = tag_of(python)
    root = good_tree(tmp_path / "cgi")
    os.symlink("gone.py", str(root / "dangling.py"))
    os.symlink("loop_b.py", str(root / "loop_a.py"))
    os.symlink("loop_a.py", str(root / "loop_b.py"))
    os.symlink("..", str(root / "pkg" / "up"))
    os.symlink("self", str(root / "pkg" / "self"))
    before = snapshot(root)

    result = precompile(tmp_path, path=str(root), interpreters=[python])
    assert result["failed"] is True, result
    named = {e["path"]: e["msg"] for e in result["errors"]}
    assert sorted(named) == sorted(str(root / n) for n in ("dangling.py", "loop_a.py", "loop_b.py"))
    assert "dangling" in named[str(root / "dangling.py")] and "gone.py" in named[str(root / "dangling.py")]
    assert "loop" in named[str(root / "loop_a.py")]
    for name in ("dangling.py", "loop_a.py", "loop_b.py"):
        assert str(root / name) in result["msg"]
    assert str(root / "pkg" / "up") in result["symlinks_skipped"]
    assert_only_good_caches_added(before, snapshot(root), [root / "good.py", root / "pkg" / "__init__.py",
                                                           root / "pkg" / "util.py"], tag)

    warned = precompile(tmp_path, path=str(root), interpreters=[python], on_error="warn")
    assert not warned.get("failed") and warned["changed"] is False, warned
    assert str(root / "dangling.py") in json.dumps(warned.get("warnings"), ensure_ascii=False), warned


def test_shell_metacharacters_in_names_are_never_executed(tmp_path):
    """Spaces, non-ASCII letters, quotes, `;`, `$(...)` and backquotes in the root, the file
    names, the #! line's interpreter path and the listed interpreter: everything is compiled
    and no command hidden in a name ever runs."""
    python = system_python()
    tag = tag_of(python)
    marker = "/tmp/pwned-%s" % uuid.uuid4().hex
    hostile = "it's \"q\" ; $(touch %s) `touch %s` & | é ü 目录" % (marker, marker)
    root = tmp_path / ("cgi %s" % hostile)
    # A #! line ends its interpreter at the first blank, so that path has none.
    shebang_python = tmp_path / ";`touch${IFS}pwned`$(touch${IFS}pwned)'q'" / "python3"
    listed_python = tmp_path / ("bin $(touch %s);" % marker) / "python3 ;touch x"
    for link in (shebang_python, listed_python):
        link.parent.mkdir(parents=True)
        os.symlink(python, str(link))
    sources = [
        write(root / ("mod $(touch %s).py" % marker.replace("/", "_")), "X = 1\n"),
        write(root / "naïve ;touch pwned; 'x'.py", "Y = 2\n"),
        write(root / "entry `id`.py", "#!%s\nimport sys\n" % shebang_python, 0o755),
    ]
    for listed, used in ((None, shebang_python), ([str(listed_python)], listed_python)):
        result = precompile(tmp_path, path=str(root), interpreters=listed)
        assert not result.get("failed"), result
        assert [i["path"] for i in result["interpreters"]] == [str(used)]
        assert result["entry_scripts"] == [str(sources[2])]
        for source in sources:
            assert pyc(source, tag).is_file(), source
        shutil.rmtree(str(root / "__pycache__"))
    assert not os.path.exists(marker)
    assert not list(tmp_path.rglob("pwned")) and not os.path.exists("pwned") and not os.path.exists("x")


@pytest.mark.parametrize("kind", ["missing", "file"])
def test_root_missing_or_a_file_fails_naming_it(tmp_path, kind):
    """A root that does not exist or is a file: the task fails naming the path; nothing is created."""
    root = tmp_path / "cgi"
    if kind == "file":
        write(root, "X = 1\n")
    before = snapshot(tmp_path)
    result = precompile(tmp_path, path=str(root))
    assert result["failed"] is True and str(root) in result["msg"] and "not a directory" in result["msg"], result
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("root", ["/", "/tmp/..", "//"])
def test_root_that_is_the_whole_file_system_is_refused(tmp_path, root):
    """`/` (however spelled) as the root would compile and prune caches all over the host: it is
    refused at once, naming the setting (run in check mode, so that a regression writes nothing)."""
    proc = start_module("precompile", {"path": root, "interpreters": [system_python()]}, tmp_path, check_mode=True)
    result = finish(proc, timeout=60)
    assert result.get("failed") is True, {k: result.get(k) for k in ("msg", "stats")}
    assert "path" in result["msg"] and "/" in result["msg"] and "whole file system" in result["msg"], result["msg"]


@pytest.mark.parametrize("candidate", ["/nonexistent/python3", "/bin/true", "/usr/bin/perl", "not-executable",
                                       "directory"])
def test_interpreter_missing_or_not_python_is_named_and_nothing_written(tmp_path, candidate):
    """An interpreter that is missing, not executable, a directory, or not Python (true, perl):
    the task fails naming it, before any interpreter writes anything (a good one is listed first)."""
    if candidate == "not-executable":
        candidate = str(write(tmp_path / "python3", "X = 1\n", 0o644))
    elif candidate == "directory":
        candidate = str(tmp_path)
    elif not os.path.exists(candidate) and not candidate.startswith("/nonexistent"):
        pytest.skip("no %s on this machine" % candidate)
    root = good_tree(tmp_path / "cgi")
    before = snapshot(root)
    proc = start_module("precompile", {"path": str(root), "interpreters": [system_python(), candidate]}, tmp_path)
    result = finish(proc, timeout=120)
    assert result.get("failed") is True and candidate in result["msg"], result
    assert "listed in interpreters" in result["msg"], result["msg"]
    assert snapshot(root) == before


def test_hash_invalidation_with_python_36_fails_before_writing(tmp_path):
    """invalidation_mode checked_hash or unchecked_hash with Python 3.6 (no hash-based .pyc): the
    task fails naming the setting and the interpreter; the other interpreter writes nothing either."""
    py36 = interpreter("3.6")
    root = good_tree(tmp_path / "cgi")
    before = snapshot(root)
    for mode in ("checked_hash", "unchecked_hash"):
        result = precompile(tmp_path, path=str(root), interpreters=[system_python(), py36], invalidation_mode=mode)
        assert result["failed"] is True, result
        assert "invalidation_mode %s" % mode in result["msg"] and py36 in result["msg"] and "3.6" in result["msg"]
        assert snapshot(root) == before
    ok = precompile(tmp_path, path=str(root), interpreters=[py36])
    assert not ok.get("failed") and ok["changed"] is True, ok
    assert loadable_caches(py36, root) == (3, [])


# --- 3. interruption ----------------------------------------------------------------------------

def big_tree(root, modules=800):
    """Enough source that compiling it takes seconds: modules of a few hundred lines each."""
    body = "".join("def f%d(a, b=%d):\n    return [a * b + i for i in range(%d) if i %% 3]\n\n" % (i, i, i)
                   for i in range(40))
    for index in range(modules):
        write(root / ("pkg%02d" % (index % 40)) / ("mod%04d.py" % index), "N = %d\n%s" % (index, body))
    for index in range(40):
        write(root / ("pkg%02d" % index) / "__init__.py", "")


def pycs_written(root):
    return sum(1 for _p in pathlib.Path(root).rglob("*.pyc"))


def children_of(pid):
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open("/proc/%s/stat" % entry) as handle:
                    fields = handle.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry))
    return found


def wait_for_first_caches(proc, root, deadline):
    """Waits until the compile has written some caches (and is still running)."""
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail("the compile ended before it could be interrupted: make the tree bigger")
        if any(pathlib.Path(root).glob("pkg0*/__pycache__/*.pyc")):
            return
        time.sleep(0.02)
    pytest.fail("no cache written within the time allowed")


def test_sigkill_mid_compile_leaves_no_torn_pyc_and_the_next_runs_converge(tmp_path):
    """The whole task (module, compile program, its forked workers) killed with SIGKILL about
    0.3 s into writing caches: every cache present loads completely with the interpreter that
    reads it, sources are untouched; the next run reports changed=true and leaves no temporary
    file, the one after it changed=false."""
    interpreters = [system_python()] + ([INTERPRETERS["3.6"]] if "3.6" in INTERPRETERS else [])
    root = tmp_path / "cgi"
    big_tree(root)
    sources = {p: p.read_bytes() for p in root.rglob("*.py")}
    proc = start_module("precompile", {"path": str(root), "interpreters": interpreters, "workers": 2}, tmp_path)
    wait_for_first_caches(proc, root, time.monotonic() + 120)
    time.sleep(0.3)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate()
    time.sleep(0.2)  # forked workers die with the group; let the kernel finish reaping them

    written = pycs_written(root)
    total = len(sources) * len(interpreters)
    assert 0 < written < total, "the kill should land mid-run (%d of %d written)" % (written, total)
    for python in interpreters:
        _count, bad = loadable_caches(python, root)
        assert bad == []
    assert {p: p.read_bytes() for p in root.rglob("*.py")} == sources

    resumed = precompile(tmp_path, path=str(root), interpreters=interpreters)
    assert not resumed.get("failed") and resumed["changed"] is True, resumed
    assert resumed["stats"]["compiled"] + resumed["stats"]["fresh"] == len(sources)
    assert leftovers(root) == []
    for python in interpreters:
        assert loadable_caches(python, root) == (len(sources), [])
    again = precompile(tmp_path, path=str(root), interpreters=interpreters)
    assert not again.get("failed") and again["changed"] is False, again


def test_killed_compile_program_fails_the_task_cleanly(tmp_path):
    """Only the compile program is killed (the OOM killer's choice): the task fails with a
    message naming the interpreter, not a traceback; no forked worker keeps writing after the
    task has ended; the next run converges."""
    python = system_python()
    root = tmp_path / "cgi"
    big_tree(root)
    proc = start_module("precompile", {"path": str(root), "interpreters": [python], "workers": 2}, tmp_path)
    wait_for_first_caches(proc, root, time.monotonic() + 120)
    workers = children_of(proc.pid)
    assert workers, "no compile program found"
    for pid in workers:
        os.kill(pid, signal.SIGKILL)
    result = finish(proc, timeout=120)
    assert result.get("failed") is True and python in result["msg"], result
    assert "Traceback" not in result["msg"]
    # Whatever the killed program had forked must stop too, not write on behind the task's back.
    time.sleep(1.0)
    settled = pycs_written(root)
    time.sleep(1.0)
    assert pycs_written(root) == settled, "a compile process kept writing after the task ended"
    assert loadable_caches(python, root)[1] == []

    resumed = precompile(tmp_path, path=str(root), interpreters=[python])
    assert not resumed.get("failed") and resumed["changed"] is True, resumed
    assert leftovers(root) == []
    assert precompile(tmp_path, path=str(root), interpreters=[python])["changed"] is False


# --- 4. hostile trees ---------------------------------------------------------------------------

def test_planted_links_in_pycache_are_replaced_never_written_through(tmp_path):
    """Inside __pycache__: a symlink named like a stale cache pointing at a copy of an /etc file,
    a hard link to another, a symlink named like our temporary file, an orphan cache that is a
    symlink, and a __pycache__ that is itself a symlink to an outside directory. The caches
    become regular files of their own, the planted links are removed or reported, and every
    outside file keeps its content, inode, mode and mtime."""
    python = system_python()
    tag = tag_of(python)
    outside = tmp_path / "outside"
    passwd = write(outside / "passwd", pathlib.Path("/etc/passwd").read_bytes(), 0o644)
    hosts = write(outside / "hosts", b"127.0.0.1 localhost\n", 0o644)
    write(outside / "dir" / "keep.txt", "keep\n")
    root = good_tree(tmp_path / "cgi")
    write(root / "lib" / "m.py", "M = 1\n")
    cache = root / "pkg" / "__pycache__"
    cache.mkdir()
    os.symlink(str(passwd), str(cache / ("util.%s.pyc" % tag)))
    os.link(str(hosts), str(cache / ("__init__.%s.pyc" % tag)))
    os.symlink(str(passwd), str(cache / ("util.%s.pyc.12345.pycgi-tmp" % tag)))
    os.symlink(str(hosts), str(cache / ("gone.%s.pyc" % tag)))
    os.symlink(str(outside / "dir"), str(root / "lib" / "__pycache__"))
    outside_before = snapshot(outside)

    result = precompile(tmp_path, path=str(root), interpreters=[python])
    assert result["failed"] is True, result
    linked_cache = str(root / "lib" / "__pycache__")
    assert [(e["path"], "symbolic link" in e["msg"]) for e in result["errors"]] == [(linked_cache, True)]
    assert snapshot(outside) == outside_before
    for name in ("util", "__init__"):
        st = os.lstat(str(cache / ("%s.%s.pyc" % (name, tag))))
        assert stat.S_ISREG(st.st_mode) and st.st_nlink == 1
    assert sorted(os.listdir(str(cache))) == sorted("%s.%s.pyc" % (n, tag) for n in ("util", "__init__"))
    assert loadable_caches(python, root) == (3, [])


def test_nothing_is_created_world_writable_even_with_umask_0(tmp_path):
    """With umask 0 (a careless service manager) the caches and cache directories precompile
    and pycache_owner create are 0644 and 0755; world-writable modes are refused as settings."""
    python = system_python()
    root = good_tree(tmp_path / "cgi")
    write(root / "sub" / "deep.py", "D = 4\n")
    old = os.umask(0)
    try:
        compiled = precompile(tmp_path, path=str(root), interpreters=[python])
        owned = run_module("pycache_owner", {"path": str(root), "owner": str(os.getuid()), "group": str(os.getgid())},
                           tmp_path=tmp_path)
    finally:
        os.umask(old)
    assert not compiled.get("failed") and not owned.get("failed"), (compiled, owned)
    writable = [p for p in root.rglob("*") if os.lstat(str(p)).st_mode & stat.S_IWOTH]
    assert writable == []
    assert {oct(stat.S_IMODE(os.lstat(str(p)).st_mode)) for p in root.rglob("__pycache__")} == {"0o755"}
    assert {oct(stat.S_IMODE(os.lstat(str(p)).st_mode)) for p in root.rglob("*.pyc")} == {"0o644"}
    for setting in ({"dir_mode": "0777"}, {"file_mode": "0666"}, {"dir_mode": "1757"}):
        refused = run_module("pycache_owner", dict(setting, path=str(root)), tmp_path=tmp_path)
        assert refused["failed"] is True and "world-writable" in refused["msg"], refused
