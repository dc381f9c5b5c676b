"""The launcher domain code on real files and real interpreters (no Ansible involved)."""
import os
import shutil
import stat
import subprocess

import pytest

from ansible_collections.pycgi.hosting.plugins.module_utils._launcher import (
    Action,
    LauncherError,
    Plan,
    apply,
    cache_files,
    check_module_name,
    check_syntax,
    default_module_name,
    is_python_shebang,
    launcher_module,
    module_source,
    parse_module,
    plan,
    render_launcher,
    write_atomic,
)
from conftest import INTERPRETERS, interpreter


def run_command(args, data=None, binary_data=False):
    """The shape of AnsibleModule.run_command, done with subprocess."""
    proc = subprocess.run(args, input=data, capture_output=True, timeout=60, check=False)
    return proc.returncode, proc.stdout.decode(), proc.stderr.decode()


def write(path, data, mode=0o755):
    with open(str(path), "wb") as handle:
        handle.write(data)
    os.chmod(str(path), mode)
    return str(path)


@pytest.mark.parametrize("original", [
    b"#!/usr/bin/python3\nprint(1)\n",
    b"#!/usr/bin/python3\nprint(1)",
    b"#!/usr/bin/python3\r\nprint(1)\r\n",
    b"#!/usr/bin/python3\nprint(1)\n\n\n",
    b"#!/usr/bin/python3\nprint(1)\r",
    b"#!/usr/bin/python3\n",
    b"#!/usr/bin/python3",
    b"#!/usr/bin/python3\n# -*- coding: latin-1 -*-\ns = '\xe9'  # no final newline, ends in a comment",
])
@pytest.mark.parametrize("name", ["report.py", "report", 'we"ird n\u00e4me.cgi'])
def test_module_source_gives_back_the_original_exactly(original, name):
    moved = module_source(original, name)
    assert moved.startswith(original)
    assert parse_module(moved) == (name, original)


def test_module_keeps_every_line_number():
    original = b"#!/usr/bin/python3\nimport sys\n\ndef f():\n    raise ValueError\n"
    moved = module_source(original, "x.py")
    assert moved.splitlines()[:5] == original.splitlines()


@pytest.mark.parametrize("data", [
    b"#!/usr/bin/python3\nprint(1)\n",
    b"print(1)\n# pycgi.hosting entry launcher: code moved from \"x.py\"; state=absent moves it back",
    b"print(1)\n# pycgi.hosting entry launcher: code moved from x.py; state=absent moves it back\n",
    b"print(1)\n# pycgi.hosting entry launcher: code moved from \"x.py\" ; state=absent moves it back\n",
    b"# pycgi.hosting entry launcher: code moved from \"x.py\"; state=absent moves it back\n",
])
def test_parse_module_refuses_what_it_did_not_write(data):
    assert parse_module(data) is None


@pytest.mark.parametrize("line, expected", [
    (b"#!/usr/bin/python3\n", True),
    (b"#!/usr/bin/python3.6 -u\n", True),
    (b"#!/usr/bin/python\n", True),
    (b"#!/usr/bin/env python3\n", True),
    (b"#!/usr/bin/env -S PYTHONIOENCODING=utf-8 python3 -u\n", True),
    (b"#! /opt/pyenv/versions/3.13.0/bin/python3.13\n", True),
    (b"#!/usr/bin/pypy3\n", True),
    (b"#!/usr/bin/python3.11-dbg\n", True),
    (b"#!/bin/sh\n", False),
    (b"#!/usr/bin/env bash\n", False),
    (b"#!/usr/bin/perl -w\n", False),
    (b"#!/usr/bin/env\n", False),
    (b"#!\n", False),
    (b"import sys\n", False),
    (b"", False),
    (b"\xef\xbb\xbf#!/usr/bin/python3\n", False),
])
def test_python_shebang(line, expected):
    assert is_python_shebang(line) is expected


@pytest.mark.parametrize("path, expected", [
    ("/usr/lib/cgi-bin/report.py", "_report_main"),
    ("/usr/lib/cgi-bin/report", "_report_main"),
    ("/var/www/cgi-bin/report.cgi", "_report_main"),
    ("/var/www/cgi-bin/my-report.v2.py", "_my_report_v2_main"),
    ("/var/www/cgi-bin/2fa.py", "_2fa_main"),
    ("/var/www/cgi-bin/.hidden", "__hidden_main"),
])
def test_default_module_name(path, expected):
    assert default_module_name(path) == expected
    check_module_name(expected)


@pytest.mark.parametrize("name, complaint", [
    ("report.py", "not a file name"),
    ("bad-name", "not a valid Python module name"),
    ("1st", "not a valid Python module name"),
    ("class", "not a valid Python module name"),
    ("json", "standard library"),
    ("sys", "standard library"),
    ("pytest", "installed module"),
])
def test_module_names_that_are_refused(name, complaint):
    with pytest.raises(LauncherError, match=complaint):
        check_module_name(name)


def test_launcher_keeps_shebang_and_encoding_line_and_names_its_module():
    script = b"#!/usr/bin/env python3 -u\n# -*- coding: latin-1 -*-\nprint('\xe9')\n"
    launcher = render_launcher(script, "_report_main")
    assert launcher.startswith(b"#!/usr/bin/env python3 -u\n# -*- coding: latin-1 -*-\n")
    assert launcher_module(launcher) == "_report_main"
    assert len(launcher.splitlines()) == 12
    assert launcher_module(script) is None
    assert render_launcher(b"#!/usr/bin/python3", "m").startswith(b"#!/usr/bin/python3\n# pycgi.hosting")


def test_an_edited_launcher_is_an_error_not_code_to_move():
    launcher = render_launcher(b"#!/usr/bin/python3\n", "_report_main").replace(b'"_report_main.py"', b"name")
    with pytest.raises(LauncherError, match="edited"):
        launcher_module(launcher)


def test_cache_files_are_only_the_modules_own(tmp_path):
    cache = tmp_path / "__pycache__"
    cache.mkdir()
    own = ["_r_main.cpython-36.pyc", "_r_main.cpython-311.opt-1.pyc", "_r_main.cpython-313.opt-2.pyc",
           "_r_main.pypy39.pyc"]
    others = ["_r_main2.cpython-311.pyc", "_r.cpython-311.pyc", "_r_main.cpython-311.pyc.tmp", "x_r_main.cpython-311.pyc",
              "_r_main.py"]
    for name in own + others:
        (cache / name).write_bytes(b"")
    assert cache_files(str(tmp_path / "_r_main.py")) == sorted(str(cache / n) for n in own)
    assert cache_files(str(tmp_path / "none" / "_r_main.py")) == []


def test_syntax_is_checked_by_the_scripts_own_interpreter():
    py36 = interpreter("3.6").encode()
    py313 = interpreter("3.13").encode()
    code = b"import sys\nasync = 1\nprint(async)\n"
    for shebang, should_fail in ((py36, False), (py313, True)):
        first = b"#!" + shebang + b"\n"
        moved = module_source(first + code, "s.py")
        if should_fail:
            with pytest.raises(LauncherError, match=r"/x/s\.py, line 3: syntax error for Python 3\.13"):
                check_syntax(run_command, first, moved, len(first + code), "/x/s.py")
        else:
            assert check_syntax(run_command, first, moved, len(first + code), "/x/s.py") == []


@pytest.mark.parametrize("version", ["3.6", "3.13"])
@pytest.mark.parametrize("body, line", [
    (b"x = 1\ndef f(:\n    pass\n", 3),
    (b"x = 1\n\n\nif x:\nprint(x)\n", 6),
    (b"print('a')\nprint('b'\n", 3),
])
def test_syntax_errors_name_the_line(version, body, line):
    first = b"#!" + interpreter(version).encode() + b"\n"
    original = first + body
    with pytest.raises(LauncherError) as raised:
        check_syntax(run_command, first, module_source(original, "s.py"), len(original), "/x/s.py")
    message = str(raised.value)
    assert "nothing was changed" in message
    # An unclosed bracket is reported where it opens (3.10+) or at the end of the script
    # (3.6), never on the trailer line the module adds.
    assert "/x/s.py, line %d" % line in message or ("line 4" in message and line == 3)


def test_python2_is_refused():
    path = os.path.expanduser("~/.pyenv/versions/2.7.18/bin/python2.7")
    if not os.access(path, os.X_OK):
        pytest.skip("no Python 2 on this machine")
    first = b"#!" + path.encode() + b"\n"
    original = first + b"print 'hello'\n"
    with pytest.raises(LauncherError, match="Python 2"):
        check_syntax(run_command, first, module_source(original, "s.py"), len(original), "/x/s.py")


def test_missing_interpreter_falls_back_to_this_python_with_a_warning():
    first = b"#!/nonexistent/bin/python3\n"
    original = first + b"print(1)\n"
    warnings = check_syntax(run_command, first, module_source(original, "s.py"), len(original), "/x/s.py")
    assert len(warnings) == 1 and "/nonexistent/bin/python3" in warnings[0]
    with pytest.raises(LauncherError, match="line 2"):
        bad = first + b"print(1\n"
        check_syntax(run_command, first, module_source(bad, "s.py"), len(bad), "/x/s.py")


def test_plan_changes_nothing_and_apply_does_it_in_order(tmp_path):
    script = write(tmp_path / "report.py", b"#!/usr/bin/python3\nprint('hi')\n", 0o750)
    todo = plan(script)
    assert os.listdir(str(tmp_path)) == ["report.py"]
    assert [(a.kind, os.path.basename(a.path)) for a in todo.actions] == [("write", "_report_main.py"),
                                                                          ("write", "report.py")]
    apply(todo)
    assert stat.S_IMODE(os.stat(script).st_mode) == 0o750
    assert stat.S_IMODE(os.stat(str(tmp_path / "_report_main.py")).st_mode) == 0o640
    assert sorted(os.listdir(str(tmp_path))) == ["_report_main.py", "report.py"]
    assert not plan(script).changed


def test_write_atomic_leaves_nothing_behind_when_it_fails(tmp_path):
    (tmp_path / "d").mkdir()
    with pytest.raises(OSError):
        write_atomic(str(tmp_path / "d"), b"new", os.geteuid(), os.getegid(), 0o644)
    with pytest.raises(OSError):
        write_atomic(str(tmp_path / "missing-dir" / "x"), b"new", os.geteuid(), os.getegid(), 0o644)
    assert os.listdir(str(tmp_path)) == ["d"] and os.listdir(str(tmp_path / "d")) == []


def test_write_atomic_gives_owner_and_mode(tmp_path):
    target = str(tmp_path / "f")
    write_atomic(target, b"data", 65534, 65534, 0o640)
    st = os.stat(target)
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (65534, 65534, 0o640)
    assert os.listdir(str(tmp_path)) == ["f"]


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("chattr"), reason="needs root and chattr")
def test_a_failed_step_undoes_the_steps_before_it(tmp_path):
    """The module is written, then the launcher cannot replace the (immutable) script: the
    module is removed again and the script is untouched."""
    original = b"#!/usr/bin/python3\nprint('hi')\n"
    script = write(tmp_path / "report.py", original)
    todo = plan(script)
    if subprocess.run(["chattr", "+i", script], check=False).returncode != 0:
        pytest.skip("this file system has no immutable flag")
    try:
        with pytest.raises(LauncherError, match=r"report\.py: cannot be written: Operation not permitted; .*left as they were"):
            apply(todo)
    finally:
        subprocess.run(["chattr", "-i", script], check=True)
    assert sorted(os.listdir(str(tmp_path))) == ["report.py"]
    with open(script, "rb") as handle:
        assert handle.read() == original


def test_a_failed_removal_restores_the_files_removed_before(tmp_path):
    keep = write(tmp_path / "a.pyc", b"cache", 0o644)
    todo = Plan(str(tmp_path / "s"), str(tmp_path / "m.py"))
    todo.actions = [Action("remove", keep), Action("remove", str(tmp_path / "no-such-file"))]
    with pytest.raises(LauncherError, match="no-such-file"):
        apply(todo)
    with open(keep, "rb") as handle:
        assert handle.read() == b"cache"


def test_the_launcher_compiles_on_every_python_here():
    launcher = render_launcher(b"#!/usr/bin/python3\n", "_m")
    for version, path in sorted(INTERPRETERS.items()):
        proc = subprocess.run([path, "-c", "import sys; compile(sys.stdin.buffer.read(), 'l', 'exec')"],
                              input=launcher, capture_output=True, check=False)
        assert proc.returncode == 0, (version, proc.stderr)
