"""pycgi.hosting.entry_launcher run as Ansible runs it, on real scripts in tmp_path run by real
interpreters: the output of a script before and after the split is compared byte for byte."""
import os
import stat
import subprocess

import pytest

from conftest import INTERPRETERS, child_env, interpreter, run_module

BEHAVIOUR_VERSIONS = ["3.6", "3.13"]

# Scripts as CGI authors write them; each prints what a request would see. {python} is the
# interpreter the shebang names.
SCRIPTS = {
    "main_guard": b'''#!{python}
"""Report page."""
import os
import sys


def main():
    sys.stdout.write("Content-Type: text/plain\\r\\nX-Report: 1\\r\\n\\r\\n")
    print("name", __name__, "doc", __doc__)
    print("file", os.path.basename(__file__), os.path.dirname(__file__) == os.path.dirname(sys.argv[0]))
    print("argv", sys.argv[1:], os.path.basename(sys.argv[0]))


if __name__ == "__main__":
    main()
''',
    "no_guard": b'''#!{python}
import sys
total = sum(i * i for i in range(1000))
print("Content-Type: text/html")
print()
print("<p>%d</p>" % total)
def helper():
    return "called"
print(helper(), len(sys.argv))
''',
    "stdin_environ": b'''#!{python}
import os
import sys
body = sys.stdin.buffer.read()
sys.stdout.buffer.write(b"Status: 201 Created\\r\\nContent-Type: application/octet-stream\\r\\n\\r\\n")
sys.stdout.buffer.write(body[::-1])
sys.stdout.buffer.write(("|%s|%s|%s" % (os.environ.get("REQUEST_METHOD"), os.environ.get("QUERY_STRING"),
                                        os.environ.get("CONTENT_LENGTH"))).encode())
''',
    "argv_exit_stderr": b'''#!{python}
import sys
print("args:", " ".join(sys.argv[1:]))
sys.stderr.write("warning on stderr\\n")
sys.stdout.flush()
sys.exit(int(sys.argv[1]) if len(sys.argv) > 1 else 0)
''',
    "namespace": b'''#!{python}
import pickle
import sys
NAMES = sorted(k for k in globals())
import __main__


class Point(object):
    def __init__(self, x):
        self.x = x


print(NAMES)
print(__spec__, __package__, __cached__, type(__loader__).__name__, __loader__.name)
print(__main__.Point is Point, sys.modules["__main__"].NAMES == NAMES)
print(pickle.loads(pickle.dumps(Point(7))).x)
print(sys.path[0] == __import__("os").path.dirname(__import__("os").path.realpath(__file__)))
''',
    "file_relative_and_encoding": b'''#!{python}
# -*- coding: latin-1 -*-
import os
import sibling
here = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(here, "data.txt")) as handle:
    print(handle.read().strip(), sibling.VALUE)
print(ascii("caf\xe9"), len("caf\xe9"))
''',
}


def script_bytes(name, python):
    return SCRIPTS[name].replace(b"{python}", python.encode())


def write(path, data, mode=0o755):
    with open(str(path), "wb") as handle:
        handle.write(data)
    os.chmod(str(path), mode)
    return str(path)


def read(path):
    with open(str(path), "rb") as handle:
        return handle.read()


def run_script(path, args=(), stdin=b"", env=None, python=None, flags=()):
    """Runs a script as Apache does (the kernel reads its shebang), or with an interpreter and
    its flags; returns (rc, stdout, stderr) as bytes."""
    argv = ([python] + list(flags) if python else []) + [path] + list(args)
    proc = subprocess.run(argv, input=stdin, capture_output=True, env=child_env(**(env or {})),
                          cwd=os.path.dirname(path), timeout=60, check=False)
    return proc.returncode, proc.stdout, proc.stderr


def snapshot(top):
    """Every file below top: bytes and (uid, gid, mode)."""
    result = {}
    for dirpath, _dirnames, filenames in os.walk(str(top)):
        for name in filenames:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            result[path] = (read(path), st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode))
    return result


def attrs(path):
    st = os.lstat(str(path))
    return st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)


def launch(tmp_path, args, **kw):
    result = run_module("entry_launcher", args, tmp_path=tmp_path, **kw)
    return result


@pytest.fixture
def cgi(tmp_path):
    root = tmp_path / "cgi-bin"
    root.mkdir()
    (root / "data.txt").write_text("data beside the script\n")
    (root / "sibling.py").write_text("VALUE = 'sibling imported'\n")
    return root


REQUEST = dict(args=("3", "two words"), stdin=b"posted body \x00\xff",
               env=dict(REQUEST_METHOD="POST", QUERY_STRING="a=1&b=%20", CONTENT_LENGTH="14"))


@pytest.mark.parametrize("version", BEHAVIOUR_VERSIONS)
@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_output_is_byte_identical_before_and_after(cgi, tmp_path, name, version):
    python = interpreter(version)
    original = script_bytes(name, python)
    script = write(cgi / "page.py", original)
    before = run_script(script, **REQUEST)
    assert before[0] in (0, 3) and before[1], before

    result = launch(tmp_path, dict(path=script))
    assert result["rc"] == 0 and result["changed"] is True, result
    assert result["launcher"] == script and result["module"] == str(cgi / "_page_main.py")
    assert len(read(script)) < 1024 and read(script).splitlines()[0] == original.splitlines()[0]

    for attempt in ("compiles and caches", "from the cache"):
        assert run_script(script, **REQUEST) == before, attempt
    assert [n for n in os.listdir(str(cgi / "__pycache__")) if n.startswith("_page_main.")], "no cache written"

    again = launch(tmp_path, dict(path=script))
    assert again["rc"] == 0 and again["changed"] is False, again

    back = launch(tmp_path, dict(path=script, state="absent"))
    assert back["rc"] == 0 and back["changed"] is True, back
    assert read(script) == original
    assert sorted(os.listdir(str(cgi))) == ["__pycache__", "data.txt", "page.py", "sibling.py"]
    assert not [n for n in os.listdir(str(cgi / "__pycache__")) if n.startswith("_page_main.")]
    assert run_script(script, **REQUEST) == before


def poison_cache(python, module):
    """Writes the module's cache from a different source of the same size and mtime, so only a
    launcher that really loads the .pyc prints what that other source says."""
    source = read(module)
    other = source.replace(b"from the source", b"FROM THE CACHE!")
    assert len(other) == len(source) and other != source
    stand_in = module + ".stand-in"
    write(stand_in, other, 0o644)
    st = os.stat(module)
    os.utime(stand_in, ns=(st.st_atime_ns, st.st_mtime_ns))
    code = ("import importlib.util, py_compile, sys; "
            "py_compile.compile(sys.argv[1], cfile=importlib.util.cache_from_source(sys.argv[2]), doraise=True)")
    subprocess.run([python, "-c", code, stand_in, module], check=True, env=child_env())
    os.unlink(stand_in)


def test_the_module_is_loaded_from_its_bytecode_cache(cgi, tmp_path, any_python):
    version, python = any_python
    script = write(cgi / "report", b"#!%s\nprint('from the source')\n" % python.encode())
    result = launch(tmp_path, dict(path=script))
    assert result["rc"] == 0 and result["changed"] is True, result
    module = str(cgi / "_report_main.py")

    tag = subprocess.run([python, "-c", "import sys; print(sys.implementation.cache_tag)"], capture_output=True,
                         text=True, check=True).stdout.strip()
    pyc = os.path.join(str(cgi), "__pycache__", "_report_main.%s.pyc" % tag)
    rc, out, err = run_script(script, python=python, flags=["-v"])
    assert (rc, out) == (0, b"from the source\n")
    assert ("# code object from %s" % module).encode() in err.replace(b"'", b"")
    assert os.path.exists(pyc), err.decode()[-3000:]

    rc, out, err = run_script(script, python=python, flags=["-v"])
    assert (rc, out) == (0, b"from the source\n")
    assert ("# code object from '%s'" % pyc).encode() in err, err.decode()[-3000:]
    assert ("# %s matches %s" % (pyc, module)).encode() in err

    # Proof that the cached code, not the source, is what runs (also with the bytecode writes
    # this machine's environment turns off).
    poison_cache(python, module)
    assert run_script(script)[1] == b"FROM THE CACHE!\n"
    assert run_script(script, env=dict(PYTHONDONTWRITEBYTECODE="1"))[1] == b"FROM THE CACHE!\n"
    # The script itself is never cached, the launcher included.
    assert not [n for n in os.listdir(os.path.dirname(pyc)) if n.startswith("report.")]


def test_check_mode_and_diff_then_idempotence(cgi, tmp_path):
    python = interpreter("3.13")
    original = script_bytes("main_guard", python)
    script = write(cgi / "report.py", original)
    before = snapshot(cgi)

    checked = launch(tmp_path, dict(path=script), check_mode=True, diff=True)
    assert checked["rc"] == 0 and checked["changed"] is True, checked
    assert snapshot(cgi) == before
    diffs = {d["before_header"]: d for d in checked["diff"]}
    assert diffs[script]["before"] == original.decode()
    assert "# pycgi.hosting entry launcher" in diffs[script]["after"]
    module = str(cgi / "_report_main.py")
    assert diffs[module]["before"] == "" and diffs[module]["after"].startswith(original.decode())

    done = launch(tmp_path, dict(path=script), diff=True)
    assert done["rc"] == 0 and done["changed"] is True, done
    assert done["diff"] == checked["diff"]
    after = snapshot(cgi)

    for check_mode in (True, False):
        again = launch(tmp_path, dict(path=script), check_mode=check_mode, diff=True)
        assert again["rc"] == 0 and again["changed"] is False and again["diff"] == [], again
    assert snapshot(cgi) == after

    undo_checked = launch(tmp_path, dict(path=script, state="absent"), check_mode=True, diff=True)
    assert undo_checked["changed"] is True and undo_checked["removed"] == [module]
    assert snapshot(cgi) == after


@pytest.mark.skipif(os.geteuid() != 0, reason="changing owners needs root")
def test_owner_group_mode_and_shebang_are_kept(cgi, tmp_path):
    python = interpreter("3.13")
    script = write(cgi / "report", b"#!%s -u\nprint('x')\n" % python.encode(), 0o750)
    os.chown(script, 65534, 65534)
    result = launch(tmp_path, dict(path=script))
    assert result["rc"] == 0 and result["changed"] is True, result
    assert attrs(script) == (65534, 65534, 0o750)
    assert attrs(cgi / "_report_main.py") == (65534, 65534, 0o640)
    assert read(script).startswith(b"#!%s -u\n" % python.encode())
    assert run_script(script)[1] == b"x\n"

    # The module follows the script's owner and mode when they change.
    os.chown(script, 0, 0)
    os.chmod(script, 0o755)
    fixed = launch(tmp_path, dict(path=script))
    assert fixed["changed"] is True and attrs(cgi / "_report_main.py") == (0, 0, 0o644)

    restored = launch(tmp_path, dict(path=script, state="absent"))
    assert restored["changed"] is True and attrs(script) == (0, 0, 0o755)


def test_a_new_version_pushed_over_the_launcher_is_split_again(cgi, tmp_path):
    python = interpreter("3.13")
    script = write(cgi / "report.py", b"#!%s\nprint('version 1')\n" % python.encode())
    assert launch(tmp_path, dict(path=script))["changed"] is True
    assert run_script(script)[1] == b"version 1\n"
    pyc = [n for n in os.listdir(str(cgi / "__pycache__")) if n.startswith("_report_main.")]
    assert pyc

    # Same size, same second: a cache that survived could pass the timestamp check.
    version2 = b"#!%s\nprint('version 2')\n" % python.encode()
    write(script, version2)
    assert run_script(script)[1] == b"version 2\n"
    result = launch(tmp_path, dict(path=script))
    assert result["rc"] == 0 and result["changed"] is True, result
    assert sorted(result["removed"]) == sorted(str(cgi / "__pycache__" / n) for n in pyc)
    assert b"# pycgi.hosting entry launcher" in read(script)
    assert read(cgi / "_report_main.py").startswith(version2)
    assert run_script(script)[1] == b"version 2\n"
    assert launch(tmp_path, dict(path=script))["changed"] is False

    back = launch(tmp_path, dict(path=script, state="absent"))
    assert back["changed"] is True and read(script) == version2


def test_absent_after_a_push_removes_only_the_left_over_module(cgi, tmp_path):
    python = interpreter("3.13")
    script = write(cgi / "report.py", b"#!%s\nprint(1)\n" % python.encode())
    launch(tmp_path, dict(path=script))
    pushed = b"#!%s\nprint(2)\n" % python.encode()
    write(script, pushed)
    result = launch(tmp_path, dict(path=script, state="absent"))
    assert result["rc"] == 0 and result["changed"] is True and result["removed"] == [str(cgi / "_report_main.py")]
    assert read(script) == pushed and not (cgi / "_report_main.py").exists()
    assert launch(tmp_path, dict(path=script, state="absent"))["changed"] is False


@pytest.mark.parametrize("original", [
    b"#!/usr/bin/python3\r\nprint('crlf')\r\n",
    b"#!/usr/bin/python3\nprint('no final newline')",
    b"#!/usr/bin/python3\n# -*- coding: latin-1 -*-\nprint('caf\xe9')\n\n\n",
])
def test_absent_restores_byte_for_byte(cgi, tmp_path, original):
    script = write(cgi / "report.py", original, 0o751)
    before = snapshot(cgi)
    assert launch(tmp_path, dict(path=script))["changed"] is True
    assert snapshot(cgi) != before
    result = launch(tmp_path, dict(path=script, state="absent"))
    assert result["rc"] == 0 and result["changed"] is True, result
    assert snapshot(cgi) == before


def test_module_name_option_and_renaming(cgi, tmp_path):
    python = interpreter("3.13")
    script = write(cgi / "name1", b"#!%s\nprint('named')\n" % python.encode())
    result = launch(tmp_path, dict(path=script, module_name="name1_code"))
    assert result["changed"] is True and result["module"] == str(cgi / "name1_code.py")
    assert run_script(script)[1] == b"named\n"
    # Without the option a later run keeps the module the launcher already runs.
    assert launch(tmp_path, dict(path=script))["changed"] is False

    renamed = launch(tmp_path, dict(path=script, module_name="name1_v2"))
    assert renamed["changed"] is True and str(cgi / "name1_code.py") in renamed["removed"]
    assert not (cgi / "name1_code.py").exists() and (cgi / "name1_v2.py").exists()
    assert run_script(script)[1] == b"named\n"


def test_backup(cgi, tmp_path):
    original = b"#!/usr/bin/python3\nprint(1)\n"
    script = write(cgi / "report.py", original)
    result = launch(tmp_path, dict(path=script, backup=True))
    assert result["changed"] is True and read(result["backup_file"]) == original
    assert "backup_file" not in launch(tmp_path, dict(path=script, backup=True))


def test_syntax_is_judged_by_the_shebangs_python(cgi, tmp_path):
    """`async = 1` is valid for Python 3.6, whatever runs the module."""
    python = interpreter("3.6")
    script = write(cgi / "old.py", b"#!%s\nasync = 'fine in 3.6'\nprint(async)\n" % python.encode())
    before = run_script(script)
    result = launch(tmp_path, dict(path=script))
    assert result["rc"] == 0 and result["changed"] is True, result
    assert run_script(script) == before


def refused(cgi, tmp_path, args, *expected):
    before = snapshot(cgi)
    result = launch(tmp_path, args)
    assert result["rc"] != 0 and result.get("failed") is True, result
    for text in expected:
        assert text in result["msg"], result["msg"]
    assert snapshot(cgi) == before
    return result["msg"]


def test_refuses_what_is_not_a_python_script(cgi, tmp_path):
    shell = write(cgi / "status.sh", b"#!/bin/sh\necho ok\n")
    refused(cgi, tmp_path, dict(path=shell), shell, "not a Python script", "#!/bin/sh")
    bare = write(cgi / "bare.py", b"import sys\nprint(sys.argv)\n")
    refused(cgi, tmp_path, dict(path=bare), bare, "not a Python script", "import sys")
    empty = write(cgi / "empty.py", b"")
    refused(cgi, tmp_path, dict(path=empty), "not a Python script", "(empty file)")


@pytest.mark.parametrize("version", BEHAVIOUR_VERSIONS)
def test_refuses_a_syntax_error_naming_the_line(cgi, tmp_path, version):
    python = interpreter(version)
    script = write(cgi / "broken.py", b"#!%s\nimport os\n\nif True\n    print(os.sep)\n" % python.encode())
    refused(cgi, tmp_path, dict(path=script), script + ", line 4", "syntax error for Python %s" % version)
    newer = write(cgi / "newer.py", b"#!%s\nx = 1\ntype Alias = list[int]\n" % python.encode())
    if version == "3.6":
        refused(cgi, tmp_path, dict(path=newer), newer + ", line 3")
    else:
        assert launch(tmp_path, dict(path=newer))["changed"] is True


def test_refuses_module_names_that_collide(cgi, tmp_path):
    script = write(cgi / "report.py", b"#!/usr/bin/python3\nprint(1)\n")
    write(cgi / "_report_main.py", b"# someone else's module\n", 0o644)
    refused(cgi, tmp_path, dict(path=script), "_report_main.py already exists", "choose another module_name")
    refused(cgi, tmp_path, dict(path=script, module_name="sibling"), "sibling.py already exists")
    refused(cgi, tmp_path, dict(path=script, module_name="json"), "standard library")
    refused(cgi, tmp_path, dict(path=script, module_name="my-code"), "not a valid Python module name")
    refused(cgi, tmp_path, dict(path=script, module_name="report"), "the script itself")
    (cgi / "helpers").mkdir()
    refused(cgi, tmp_path, dict(path=script, module_name="helpers"), "is a directory (a package)")

    # Another script's moved code is not ours either.
    other = write(cgi / "report.cgi", b"#!/usr/bin/python3\nprint(2)\n")
    os.unlink(str(cgi / "_report_main.py"))
    assert launch(tmp_path, dict(path=script))["changed"] is True
    refused(cgi, tmp_path, dict(path=other), "is not the moved code of report.cgi")


def test_refuses_paths_that_are_not_scripts(cgi, tmp_path):
    refused(cgi, tmp_path, dict(path=str(cgi / "missing.py")), "missing.py does not exist")
    refused(cgi, tmp_path, dict(path=str(cgi)), "is a directory")
    target = write(cgi / "real.py", b"#!/usr/bin/python3\nprint(1)\n")
    os.symlink(target, str(cgi / "link.py"))
    refused(cgi, tmp_path, dict(path=str(cgi / "link.py")), "is a symlink", target)


def test_refuses_a_launcher_whose_module_is_gone_or_not_ours(cgi, tmp_path):
    script = write(cgi / "report.py", b"#!/usr/bin/python3\nprint(1)\n")
    launch(tmp_path, dict(path=script))
    module = cgi / "_report_main.py"
    moved = read(module)

    write(module, b"print('edited by hand')\n", 0o644)
    for state in ("present", "absent"):
        refused(cgi, tmp_path, dict(path=script, state=state), "does not end with the line naming report.py")

    os.unlink(str(module))
    for state in ("present", "absent"):
        refused(cgi, tmp_path, dict(path=script, state=state), "_report_main.py, which is missing", "push the script")

    write(module, moved, 0o644)
    edited = read(script).replace(b'("_report_main.py")', b"(name)")
    write(script, edited)
    refused(cgi, tmp_path, dict(path=script), "launcher marker", "was edited")


def test_every_python_here_runs_the_launcher(cgi, tmp_path):
    """A few-line script, split once per interpreter, gives the same output through its
    launcher on every Python of this machine (3.6 to 3.13 and Debian's)."""
    for version, python in sorted(INTERPRETERS.items()):
        script = write(cgi / ("v" + version.replace(".", "_")), script_bytes("namespace", python))
        before = run_script(script)
        assert launch(tmp_path, dict(path=script))["changed"] is True
        assert run_script(script) == before, version
