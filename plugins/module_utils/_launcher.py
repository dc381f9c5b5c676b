# Copyright (c) 2026 pycgi.hosting contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Entry-script launchers: move a CGI script's code into a module Python caches.

Python never caches the bytecode of the script it is asked to run, only of what that script
imports. A launcher is a few lines left at the script's path; it loads the moved code through
the import system's source loader (which reads and writes ``__pycache__``) and executes it in
the launcher's own ``__main__`` namespace, so ``__name__``, ``__file__``, ``sys.argv``,
``sys.path[0]`` and ``sys.modules["__main__"]`` are what the script saw before.

The moved module is the script byte for byte plus one trailing comment line naming the script,
which is how a module this code wrote is told from someone else's file, and how ``absent``
puts the original back exactly.

Plain functions on plain data: ``plan()`` decides, ``apply()`` writes; nothing here knows Ansible
except that a syntax check runs an interpreter through a ``run_command``-shaped callable.
"""

from __future__ import annotations

import errno
import json
import keyword
import os
import re
import shutil
import stat
import sys
import tempfile
from typing import TYPE_CHECKING, Any, Callable, cast

if TYPE_CHECKING:
    # ``syntax_check(first_line, module_data, original_length, display_name)`` -> warnings
    SyntaxCheck = Callable[[bytes, bytes, int, str], list[str]]
    # AnsibleModule.run_command's shape: (argv, data=..., binary_data=...) -> (rc, out, err)
    RunCommand = Callable[..., tuple[int, Any, Any]]

LAUNCHER_MARKER = b"# pycgi.hosting entry launcher"
TRAILER_PREFIX = b"# pycgi.hosting entry launcher: code moved from "
TRAILER_SUFFIX = b"; state=absent moves it back\n"
MODULE_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# The one line of a launcher that names its module (the rest is fixed text).
LAUNCHER_EXEC_RE = re.compile(
    rb'^exec\(globals\(\)\.pop\("_pycgi_entry_code"\)\("([A-Za-z_][A-Za-z0-9_]*)\.py"\)\)$', re.MULTILINE
)
# PEP 263: an encoding declaration on the first or second line.
CODING_RE = re.compile(rb"^[ \t\f]*#.*?coding[:=][ \t]*[-\w.]+")
PYTHON_NAME_RE = re.compile(rb"^(?:python|pypy)[0-9.]*(?:-[A-Za-z0-9]+)?$")
# The largest launcher this code writes is well under this; a bigger file is a script.
LAUNCHER_MAX_SIZE = 4096
XATTR_SELINUX = "security.selinux"

LAUNCHER_BODY = (
    b"%(marker)s: the code of this script is in %(module)s beside it,\n"
    b"# where Python caches its compiled bytecode; this file only runs it as __main__.\n"
    b"# Managed by pycgi.hosting.entry_launcher: a new version of the script pushed to this\n"
    b"# path is moved there on its next run, and state=absent puts the code back here.\n"
    b"def _pycgi_entry_code(module_file):\n"
    b"    import importlib.machinery\n"
    b"    import os.path\n"
    b"    source = os.path.join(os.path.dirname(os.path.realpath(__file__)), module_file)\n"
    b"    return importlib.machinery.SourceFileLoader(module_file[:-3], source).get_code(module_file[:-3])\n"
    b'exec(globals().pop("_pycgi_entry_code")("%(module)s"))\n'
)

# Run by the script's own interpreter (Python 2 included, so that it can say so): compiles
# stdin's first N bytes (the original script) and then all of it (the module to be written).
SYNTAX_CHECK = r"""
import json, sys
result = {"version": list(sys.version_info[:3])}
if sys.version_info[0] >= 3:
    data = sys.stdin.buffer.read()
    for source in (data[:int(sys.argv[2])], data):
        try:
            compile(source, sys.argv[1], "exec", dont_inherit=True)
        except SyntaxError as error:
            result.update(line=error.lineno, msg=error.msg, text=(error.text or "").strip())
            break
        except ValueError as error:
            result.update(line=None, msg=str(error), text="")
            break
sys.stdout.write(json.dumps(result))
"""


class LauncherError(Exception):
    """A refusal or failure, worded for the user; nothing was changed when it is raised by plan()."""


class FileState:
    """What is at a path: its bytes and attributes (None when absent)."""

    def __init__(self, path: str, data: bytes, st: os.stat_result) -> None:
        self.path = path
        self.data = data
        self.uid = st.st_uid
        self.gid = st.st_gid
        self.mode = stat.S_IMODE(st.st_mode)


class Action:
    """One step of a plan: write ``data`` to ``path`` with attributes, set only the attributes,
    or remove ``path``."""

    def __init__(
        self,
        kind: str,
        path: str,
        data: bytes | None = None,
        uid: int | None = None,
        gid: int | None = None,
        mode: int | None = None,
        label_from: str | None = None,
    ) -> None:
        self.kind = kind  # "write", "attrs" (owner, group, mode) or "remove"
        self.path = path
        self.data = data
        self.uid = uid
        self.gid = gid
        self.mode = mode
        self.label_from = label_from

    def attrs(self) -> tuple[int, int, int]:
        """``(uid, gid, mode)`` of a "write" or "attrs" step (which sets all three)."""
        return cast("tuple[int, int, int]", (self.uid, self.gid, self.mode))


class Plan:
    def __init__(self, launcher: str, module: str) -> None:
        self.launcher = launcher
        self.module = module
        self.actions: list[Action] = []
        self.diff: list[dict[str, str]] = []
        self.warnings: list[str] = []
        self.rewrites_script = False

    @property
    def changed(self) -> bool:
        return bool(self.actions)

    @property
    def removed(self) -> list[str]:
        return [a.path for a in self.actions if a.kind == "remove"]


# ---------------------------------------------------------------- reading scripts and launchers


def split_first_line(data: bytes) -> tuple[bytes, bytes]:
    """(first line with its line ending, the rest)."""
    end = data.find(b"\n")
    if end < 0:
        return data, b""
    return data[: end + 1], data[end + 1 :]


def shebang_interpreter(first_line: bytes) -> tuple[bytes, bool] | None:
    """The interpreter a ``#!`` line names, as (program, resolve_on_path), or None.

    ``#!/usr/bin/env [-S] [VAR=x] python3`` names ``python3`` to be found on PATH."""
    if not first_line.startswith(b"#!"):
        return None
    words = first_line[2:].split()
    if not words:
        return None
    if os.path.basename(words[0]) == b"env":
        names = [w for w in words[1:] if not w.startswith(b"-") and b"=" not in w]
        if not names:
            return None
        return names[0], True
    return words[0], False


def is_python_shebang(first_line: bytes) -> bool:
    found = shebang_interpreter(first_line)
    return found is not None and bool(PYTHON_NAME_RE.match(os.path.basename(found[0])))


def coding_line(data: bytes) -> bytes:
    """The script's second line when it is an encoding declaration (the launcher keeps it)."""
    second = split_first_line(split_first_line(data)[1])[0]
    return second if CODING_RE.match(second) else b""


def render_launcher(script_data: bytes, module_name: str) -> bytes:
    """The launcher for a script: its shebang line (and encoding line), then fixed text."""
    shebang = split_first_line(script_data)[0]
    if not shebang.endswith(b"\n"):
        shebang += b"\n"
    body = LAUNCHER_BODY % {b"marker": LAUNCHER_MARKER, b"module": module_name.encode("ascii") + b".py"}
    return shebang + coding_line(script_data) + body


def launcher_module(data: bytes) -> str | None:
    """The module name a launcher runs, or None when ``data`` is not a launcher.

    A file is a launcher when one of its first three lines starts with the marker; one that
    has the marker but not the line naming the module is an error, never code to move (moving
    a launcher into its own module would make it run itself)."""
    if len(data) > LAUNCHER_MAX_SIZE:
        return None
    head = data.split(b"\n", 3)[:3]
    if not any(line.startswith(LAUNCHER_MARKER) for line in head):
        return None
    match = LAUNCHER_EXEC_RE.search(data)
    if not match:
        raise LauncherError(
            "it carries the pycgi.hosting launcher marker but its line naming the module "
            "was edited: push the script to it again, then re-run"
        )
    return match.group(1).decode("ascii")


def trailer_for(script_name: str) -> bytes:
    return TRAILER_PREFIX + json.dumps(script_name).encode("ascii") + TRAILER_SUFFIX


def module_source(original: bytes, script_name: str) -> bytes:
    """The moved module: the script byte for byte, a newline, and the trailer naming it.

    Appending keeps every line number (tracebacks match the original) and, the newline being
    added unconditionally, makes restoring exact whether or not the script ended with one."""
    return original + b"\n" + trailer_for(script_name)


def parse_module(data: bytes) -> tuple[str, bytes] | None:
    """(script name, original bytes) for a module this code wrote, or None."""
    if not data.endswith(TRAILER_SUFFIX):
        return None
    start = data.rfind(b"\n", 0, len(data) - 1)
    if start < 0 or not data[start + 1 :].startswith(TRAILER_PREFIX):
        return None
    quoted = data[start + 1 + len(TRAILER_PREFIX) : len(data) - len(TRAILER_SUFFIX)]
    try:
        name = json.loads(quoted.decode("ascii"))
    except ValueError:
        return None
    if not isinstance(name, str) or data[start + 1 :] != trailer_for(name):
        return None
    return name, data[:start]


# ---------------------------------------------------------------- names


def default_module_name(script_path: str) -> str:
    """``_<stem>_main``: report.py, report and report.cgi all give ``_report_main``."""
    stem = os.path.splitext(os.path.basename(script_path))[0]
    return "_%s_main" % re.sub(r"[^A-Za-z0-9_]", "_", stem)


def check_module_name(name: str) -> None:
    """Refuses names that are not plain module names or that would shadow an installed module
    for every script in the directory (a script's directory comes first on its sys.path)."""
    if name.endswith(".py"):
        raise LauncherError("module_name %r is a module name, not a file name: drop the .py" % name)
    if not MODULE_NAME_RE.match(name) or keyword.iskeyword(name):
        raise LauncherError(
            "module_name %r is not a valid Python module name (letters, digits, _; not starting with a digit)" % name
        )
    if name in getattr(sys, "stdlib_module_names", ()) or name in sys.builtin_module_names:
        raise LauncherError(
            "module_name %r is the name of a standard library module: every script in the "
            "directory that imports %s would get the moved code instead" % (name, name)
        )
    try:
        import importlib.util

        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        spec = None
    if spec is not None:
        raise LauncherError(
            "module_name %r is the name of an installed module (%s): every script in the "
            "directory that imports it would get the moved code instead" % (name, spec.origin or "a namespace package")
        )


# ---------------------------------------------------------------- syntax


def resolve_interpreter(first_line: bytes) -> str | None:
    """The path of the interpreter a shebang names on this host, or None when it is not found."""
    # A python shebang: checked before.
    found, on_path = cast("tuple[bytes, bool]", shebang_interpreter(first_line))
    program = os.fsdecode(found)
    if on_path:
        return shutil.which(program)
    return program if os.access(program, os.X_OK) else None


def check_syntax(
    run_command: RunCommand, first_line: bytes, module_data: bytes, original_length: int, display_name: str
) -> list[str]:
    """Compiles the script and the module to be written with the script's own interpreter
    (``async = 1`` is valid for Python 3.6 and an error for 3.7+); falls back to this Python,
    with a warning, when the shebang's interpreter is not on this host. Returns the warnings."""
    interpreter = resolve_interpreter(first_line)
    if interpreter is None:
        _compile_here(module_data, original_length, display_name)
        return [
            "%s: its interpreter (%s) was not found on this host; its syntax was checked with "
            "Python %d.%d instead"
            % (display_name, first_line.strip().decode("utf-8", "replace"), sys.version_info[0], sys.version_info[1])
        ]
    rc, out, err = run_command(
        [interpreter, "-c", SYNTAX_CHECK, display_name, str(original_length)], data=module_data, binary_data=True
    )
    try:
        result = json.loads(out)
    except ValueError:
        raise LauncherError(
            "%s: could not check its syntax with %s (rc=%s): %s"
            % (display_name, interpreter, rc, (err or out).strip()[-2000:])
        )
    if result["version"][0] < 3:
        raise LauncherError(
            "%s: its interpreter %s is Python %s; launchers need Python 3"
            % (display_name, interpreter, ".".join(map(str, result["version"])))
        )
    if "msg" in result:
        raise LauncherError(
            _syntax_message(
                display_name,
                result.get("line"),
                result["msg"],
                result.get("text"),
                "Python %d.%d" % tuple(result["version"][:2]),
            )
        )
    return []


def _compile_here(module_data: bytes, original_length: int, display_name: str) -> None:
    for source in (module_data[:original_length], module_data):
        try:
            compile(source, display_name, "exec", dont_inherit=True)
        except SyntaxError as error:
            raise LauncherError(
                _syntax_message(
                    display_name,
                    error.lineno,
                    error.msg,
                    (error.text or "").strip(),
                    "Python %d.%d" % sys.version_info[:2],
                )
            )
        except ValueError as error:
            raise LauncherError(
                _syntax_message(display_name, None, str(error), "", "Python %d.%d" % sys.version_info[:2])
            )


def _syntax_message(display_name: str, line: int | None, msg: str, text: str | None, python: str) -> str:
    where = "%s, line %s" % (display_name, line) if line else display_name
    shown = ": %s" % text if text else ""
    return "%s: syntax error for %s: %s%s; nothing was changed" % (where, python, msg, shown)


# ---------------------------------------------------------------- planning


def cache_files(module_path: str) -> list[str]:
    """The bytecode caches of a module in its ``__pycache__``, every interpreter and level."""
    directory, filename = os.path.split(module_path)
    cache_dir = os.path.join(directory, "__pycache__")
    prefix = filename[:-3] + "."
    try:
        names = sorted(os.listdir(cache_dir))
    except OSError:
        return []
    return [os.path.join(cache_dir, n) for n in names if _is_cache_of(n, prefix)]


def _is_cache_of(name: str, prefix: str) -> bool:
    # <module>.<cache tag>.pyc or <module>.<cache tag>.opt-<N>.pyc; the tag has no dot.
    if not (name.startswith(prefix) and name.endswith(".pyc")):
        return False
    parts = name[len(prefix) : -4].split(".")
    return len(parts) == 1 or (len(parts) == 2 and parts[1].startswith("opt-"))


def read_state(path: str) -> FileState | None:
    """FileState of a regular file, None when nothing is there; errors for anything else."""
    try:
        st = os.lstat(path)
    except OSError as error:
        if error.errno == errno.ENOENT:
            return None
        raise LauncherError("%s: cannot be read: %s" % (path, error.strerror))
    if stat.S_ISLNK(st.st_mode):
        raise LauncherError("%s is a symlink: name the file it points to (%s)" % (path, os.path.realpath(path)))
    if stat.S_ISDIR(st.st_mode):
        raise LauncherError("%s is a directory, not a script" % path)
    if not stat.S_ISREG(st.st_mode):
        raise LauncherError("%s is not a regular file" % path)
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as error:
        raise LauncherError("%s: cannot be read: %s" % (path, error.strerror))
    return FileState(path, data, st)


def module_path_for(script_path: str, module_name: str) -> str:
    return os.path.join(os.path.dirname(script_path), module_name + ".py")


def _text(data: bytes | None) -> str:
    return data.decode("utf-8", "replace") if data is not None else ""


def _add_diff(plan: Plan, path: str, before: bytes | None, after: bytes | None) -> None:
    plan.diff.append({"before_header": path, "after_header": path, "before": _text(before), "after": _text(after)})


def _own_module(module_state: FileState | None, script_name: str) -> tuple[str, bytes] | None:
    parsed = parse_module(module_state.data) if module_state else None
    return parsed if parsed and parsed[0] == script_name else None


def plan(
    path: str, module_name: str | None = None, state: str = "present", syntax_check: SyntaxCheck | None = None
) -> Plan:
    """What to do to bring ``path`` to ``state``; raises LauncherError, having changed nothing.

    ``syntax_check(first_line, module_data, original_length, display_name)`` returns warnings
    or raises; it is only called when a script's code is about to be moved."""
    path = os.path.abspath(path)
    script_name = os.path.basename(path)
    script = read_state(path)
    try:
        launched = launcher_module(script.data) if script else None
    except LauncherError as error:
        raise LauncherError("%s: %s" % (path, error))

    if module_name is None:
        module_name = launched or default_module_name(path)
    module_path = _checked_module_path(path, module_name)
    result = Plan(path, module_path)

    if script is None:
        if state == "present":
            raise LauncherError("%s does not exist" % path)
        return result

    current_module, original = _script_code(path, script_name, script, launched)
    target_module = current_module if launched == module_name else read_state(module_path)
    if state == "absent":
        _plan_absent(result, script, script_name, current_module, target_module, original)
    else:
        _plan_present(
            result, script, script_name, module_name, launched, current_module, target_module, original, syntax_check
        )
    return result


def _checked_module_path(path: str, module_name: str) -> str:
    """The path of the module ``module_name`` beside the script ``path``; refuses a name that
    cannot be one."""
    check_module_name(module_name)
    module_path = module_path_for(path, module_name)
    if module_path == path:
        raise LauncherError("module_name %r would make the module %s the script itself" % (module_name, module_path))
    if os.path.isdir(module_path[:-3]):
        raise LauncherError(
            "module_name %r: %s is a directory (a package) of that name; choose another module_name"
            % (module_name, module_path[:-3])
        )
    return module_path


def _script_code(
    path: str, script_name: str, script: FileState, launched: str | None
) -> tuple[FileState | None, bytes]:
    """``(the module the launcher runs or None, the script's code)``: the code is the file
    itself, or what its launcher runs."""
    if not launched:
        return None, script.data
    current_module = read_state(module_path_for(path, launched))
    if current_module is None:
        raise LauncherError(
            "%s is a launcher for %s, which is missing: push the script to %s again, then re-run"
            % (path, module_path_for(path, launched), path)
        )
    own = _own_module(current_module, script_name)
    if own is None:
        raise LauncherError(
            "%s is a launcher for %s, but that module does not end with the line naming %s "
            "that pycgi.hosting.entry_launcher wrote: it was edited or belongs to another script"
            % (path, current_module.path, script_name)
        )
    return current_module, own[1]


def _plan_absent(
    result: Plan,
    script: FileState,
    script_name: str,
    current_module: FileState | None,
    target_module: FileState | None,
    original: bytes,
) -> None:
    """state=absent: the code goes back to the script, the moved module and its caches go."""
    path = result.launcher
    # current_module: the module the launcher runs, None when the script is not a launcher.
    if current_module is not None:
        result.rewrites_script = True
        result.actions.append(Action("write", path, original, script.uid, script.gid, script.mode, label_from=path))
        _add_diff(result, path, script.data, original)
        _plan_removal(result, current_module)
    elif target_module is not None and _own_module(target_module, script_name):
        # The script was pushed again over its launcher: its old moved code is left over.
        _plan_removal(result, target_module)


def _plan_present(
    result: Plan,
    script: FileState,
    script_name: str,
    module_name: str,
    launched: str | None,
    current_module: FileState | None,
    target_module: FileState | None,
    original: bytes,
    syntax_check: SyntaxCheck | None,
) -> None:
    """state=present: the module holds the script's code, the script is the launcher."""
    path, module_path = result.launcher, result.module
    first_line = split_first_line(original)[0]
    if not is_python_shebang(first_line):
        shown = first_line.strip()[:120].decode("utf-8", "replace") or "(empty file)"
        raise LauncherError(
            "%s is not a Python script: its first line is not a python shebang (found: %s); "
            "nothing was changed" % (path, shown)
        )

    wanted_module = module_source(original, script_name)
    wanted_launcher = render_launcher(original, module_name)
    module_mode = script.mode & ~0o111 & ~(stat.S_ISUID | stat.S_ISGID)

    if (
        target_module is not None
        and target_module.data != wanted_module
        and not _own_module(target_module, script_name)
    ):
        raise LauncherError(
            "module_name %r: %s already exists and is not the moved code of %s; choose another "
            "module_name (nothing was changed)" % (module_name, module_path, script_name)
        )

    if not launched and syntax_check:
        result.warnings.extend(syntax_check(first_line, wanted_module, len(original), path))
    _plan_module(result, script, target_module, wanted_module, module_mode)

    if script.data != wanted_launcher:
        result.rewrites_script = True
        result.actions.append(
            Action("write", path, wanted_launcher, script.uid, script.gid, script.mode, label_from=path)
        )
        _add_diff(result, path, script.data, wanted_launcher)

    if current_module is not None and launched != module_name:
        # The launcher ran another module: it goes.
        _plan_removal(result, current_module)


def _plan_module(
    result: Plan, script: FileState, target_module: FileState | None, wanted_module: bytes, module_mode: int
) -> None:
    """The module (``result.module``) written with the script's code, or only given the
    script's owner and mode."""
    path, module_path = result.launcher, result.module
    if target_module is None or target_module.data != wanted_module:
        result.actions.append(
            Action("write", module_path, wanted_module, script.uid, script.gid, module_mode, label_from=path)
        )
        _add_diff(result, module_path, target_module.data if target_module else None, wanted_module)
        # A changed source can keep its size and (to the second) its mtime: old caches could pass
        # the timestamp check, so they go before the launcher can use the new module.
        result.actions.extend(Action("remove", p) for p in cache_files(module_path))
    elif (target_module.uid, target_module.gid, target_module.mode) != (script.uid, script.gid, module_mode):
        # Not rewritten: a new mtime would make its caches stale.
        result.actions.append(Action("attrs", module_path, uid=script.uid, gid=script.gid, mode=module_mode))
        _add_diff(
            result,
            module_path + " (owner, group, mode)",
            _attrs_text(target_module.uid, target_module.gid, target_module.mode),
            _attrs_text(script.uid, script.gid, module_mode),
        )


def _attrs_text(uid: int, gid: int, mode: int) -> bytes:
    return b"uid %d, gid %d, mode %04o\n" % (uid, gid, mode)


def _plan_removal(result: Plan, module_state: FileState) -> None:
    result.actions.append(Action("remove", module_state.path))
    _add_diff(result, module_state.path, module_state.data, None)
    result.actions.extend(Action("remove", p) for p in cache_files(module_state.path))


# ---------------------------------------------------------------- applying


def write_atomic(path: str, data: bytes, uid: int, gid: int, mode: int, label_from: str | None = None) -> None:
    """Writes a file whole or not at all: a temporary file in the same directory, given its
    owner, mode and SELinux label before it holds anything, then renamed over ``path``."""
    directory = os.path.dirname(path)
    fd: int | None
    fd, tmp = tempfile.mkstemp(prefix=".%s." % os.path.basename(path), suffix=".tmp", dir=directory)
    try:
        os.fchmod(fd, 0o600)
        if (uid, gid) != (os.geteuid(), os.getegid()):
            os.fchown(fd, uid, gid)
        _copy_label(label_from, tmp)
        with os.fdopen(fd, "wb") as handle:
            fd = None
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.rename(tmp, path)
    except BaseException:
        if fd is not None:
            os.close(fd)
        _unlink_quietly(tmp)
        raise


def _copy_label(source: str | None, target: str) -> None:
    """Gives the new file the SELinux label of the file it replaces or accompanies."""
    if not source or not hasattr(os, "getxattr"):
        return
    try:
        label = os.getxattr(source, XATTR_SELINUX)
        os.setxattr(target, XATTR_SELINUX, label)
    except OSError as error:
        if error.errno not in (errno.ENODATA, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOENT, errno.EPERM, errno.EACCES):
            raise


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def set_attrs(path: str, uid: int, gid: int, mode: int) -> None:
    os.chown(path, uid, gid)
    os.chmod(path, mode)


def apply(plan_: Plan) -> None:
    """Carries out a plan in order: a module is written before the launcher that runs it, and
    a module is removed only after the original is back. On a failure every finished step is
    undone and LauncherError names the file."""
    done: list[tuple[Action, FileState | None]] = []
    try:
        for action in plan_.actions:
            before = read_state(action.path)
            if action.kind == "write":
                write_atomic(action.path, cast(bytes, action.data), *action.attrs(), label_from=action.label_from)
            elif action.kind == "attrs":
                set_attrs(action.path, *action.attrs())
            else:
                os.unlink(action.path)
            done.append((action, before))
    except (OSError, LauncherError) as error:
        for finished, before in reversed(done):
            _undo(finished, before)
        verb = "cannot be removed" if action.kind == "remove" else "cannot be written"
        detail = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
        raise LauncherError("%s: %s: %s; the files were left as they were" % (action.path, verb, detail))


def _undo(action: Action, before: FileState | None) -> None:
    """Best effort: puts back what a finished step replaced (the error that stopped the plan is
    the one reported)."""
    try:
        if before is None:
            os.unlink(action.path)
        elif action.kind == "attrs":
            set_attrs(before.path, before.uid, before.gid, before.mode)
        else:
            write_atomic(
                before.path,
                before.data,
                before.uid,
                before.gid,
                before.mode,
                label_from=before.path if os.path.exists(before.path) else None,
            )
    except OSError:
        pass
