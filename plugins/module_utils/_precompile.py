# Copyright (c) 2026 pycgi.hosting contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Precompiles a CGI tree with each interpreter that runs it: the domain code of the
``pycgi.hosting.precompile`` module, plain functions on plain data.

:func:`precompile` is the entry point. It walks the tree once (``_pytree.walk``), works out
the interpreters (listed, or named by the entry scripts' ``#!`` lines), starts the compile
program (``_compile_worker``) once under each of them and reads its probe, refuses the job
before anything is written when an interpreter cannot do it, sends each one the list of
sources, then prunes what no interpreter will ever read.
"""

from __future__ import annotations

import dataclasses
import json
import os
import select
import shutil
import subprocess
import time
from typing import TYPE_CHECKING, Any, Collection, Iterable, NamedTuple, Optional, Sequence, cast

from ansible_collections.pycgi.hosting.plugins.module_utils import _compile_worker
from ansible_collections.pycgi.hosting.plugins.module_utils._pytree import Tree, entry_scripts, parse_pyc_name, walk

if TYPE_CHECKING:
    from typing import TypedDict

    from ansible_collections.pycgi.hosting.plugins.module_utils._compile_worker import Job
    from ansible_collections.pycgi.hosting.plugins.module_utils._compile_worker import Result as WorkerResult

    # (path, line or None, message): an error, the key under which the interpreters that met it gather.
    ErrorKey = tuple[str, Optional[int], str]

    class ErrorReport(TypedDict):
        path: str
        line: int | None
        msg: str
        interpreters: list[str]

    class InterpreterReport(TypedDict):
        path: str
        version: str
        cache_tag: str

    class ModulesReport(TypedDict):
        """What happened to one interpreter's own modules (``interpreter_modules``)."""

        interpreter: str
        dirs: list[str]
        sources: int
        fresh: int
        compiled: int
        errors: int
        failed: list[str]  # the first ten sources that failed

    class Stats(TypedDict):
        sources: int
        fresh: int
        compiled: int
        pruned: int
        errors: int

    class Diff(TypedDict):
        before_header: str
        after_header: str
        before: str
        after: str

    class _PrecompileResult(TypedDict):
        changed: bool
        compiled: list[str]
        pruned: list[str]
        errors: list[ErrorReport]
        interpreters: list[InterpreterReport]
        entry_scripts: list[str]
        symlinks_skipped: list[str]
        outside_links: list[str]
        stats: Stats
        interpreter_modules: list[ModulesReport]
        warnings: list[str]

    class PrecompileResult(_PrecompileResult, total=False):
        """What :func:`precompile` returns: the module's result (JSON), hence a dict."""

        diff: Diff


DEFAULT_INTERPRETER = "/usr/bin/python3"
INVALIDATION_MODES = ("timestamp", "checked_hash", "unchecked_hash")
OPTIMIZE_LEVELS = (0, 1, 2)
MIN_VERSION = (3, 6)
PREFIX_MIN_VERSION = (3, 8)
# -I: PYTHON* variables and the user's site directory ignored; -S: no site-packages, so no
# .pth file runs code; -B: the interpreter's own imports write no bytecode anywhere.
WORKER_FLAGS = ("-I", "-S", "-B", "-c")
PROBE_TIMEOUT = 60.0
PROBE_KEYS = frozenset(("executable", "version", "version_info", "cache_tag", "hash_pyc"))


class Interpreter(NamedTuple):
    """An interpreter to compile for, checked."""

    path: str  # as listed or named
    named_by: str  # why it is used (for messages)
    probe: dict[str, Any]  # _compile_worker.probe()


class PrecompileError(Exception):
    """A problem that stops the whole run: a bad option or interpreter, before anything is
    written, or an interpreter's compile program that fails after others wrote caches; then
    ``written`` lists the sources compiled before it (otherwise it is empty)."""

    def __init__(self, message: str, written: Iterable[str] = ()) -> None:
        super(PrecompileError, self).__init__(message)
        self.written = sorted(written)


def worker_source() -> str:
    """The compile program's source, read through its loader (a file, or Ansible's zip)."""
    loader: Any = _compile_worker.__loader__
    source = loader.get_source(_compile_worker.__name__)
    if not source:
        raise PrecompileError("the source of %s is not available" % _compile_worker.__name__)
    return source


def interpreter_requests(
    tree: Tree | None, interpreters: Sequence[str] | None = None, search_path: str | None = None
) -> list[tuple[str, str]]:
    """``[(path, named_by)]``: the interpreters to compile for, in order, not yet deduplicated.

    ``interpreters`` when given; otherwise those of the tree's entry scripts, a bare command
    (``#!/usr/bin/env python3``) looked up in ``search_path`` (default: this host's PATH);
    otherwise :data:`DEFAULT_INTERPRETER`.
    """
    if interpreters:
        return [(path, "listed in interpreters") for path in interpreters]
    if search_path is None:
        search_path = os.environ.get("PATH", os.defpath)
    tree = cast(Tree, tree)  # given when interpreters are not
    requests: list[tuple[str, list[str]]] = []
    seen: dict[str, int] = {}
    for script in tree.entry_scripts:
        command = script.command
        if not os.path.isabs(command):
            found = shutil.which(command, path=search_path)
            if found is None:
                raise PrecompileError(
                    "%s runs %r through env, and no %s is on PATH (%s); list the interpreter"
                    " in interpreters" % (script.path, command, command, search_path)
                )
            command = os.path.abspath(found)
        if command not in seen:
            seen[command] = len(requests)
            requests.append((command, [script.path]))
        else:
            requests[seen[command]][1].append(script.path)
    if not requests:
        return [(DEFAULT_INTERPRETER, "the default (no entry script names a Python)")]
    return [(command, _named_by(scripts)) for command, scripts in requests]


def _named_by(scripts: Sequence[str]) -> str:
    if len(scripts) == 1:
        return "named by the #! line of %s" % scripts[0]
    return "named by the #! lines of %s and %d more" % (scripts[0], len(scripts) - 1)


class _Worker:
    """The compile program running under one interpreter, waiting for its job."""

    proc: subprocess.Popen[bytes]

    def __init__(self, path: str, named_by: str, source: str, args: Sequence[str] = ()) -> None:
        self.path, self.named_by = path, named_by
        if not os.path.exists(path):
            raise PrecompileError("Python interpreter %s (%s) does not exist" % (path, named_by))
        # Not run_command: the program answers its probe before it is given its job, so that
        # every interpreter is checked before any of them writes (one process each).
        try:
            self.proc = subprocess.Popen(  # pylint: disable=ansible-bad-function
                [path] + list(WORKER_FLAGS) + [source] + list(args),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                close_fds=True,
            )
        except OSError as exc:
            raise PrecompileError(
                "Python interpreter %s (%s) cannot be run: %s" % (path, named_by, exc.strerror or exc)
            )

    def read_probe(self, deadline: float) -> dict[str, Any]:
        line = b""
        fd = self.proc.stdout.fileno()  # type: ignore[union-attr]
        while not line.endswith(b"\n"):
            ready = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))[0]
            if not ready:
                self.stop()
                raise self._broken("no answer within %d seconds" % PROBE_TIMEOUT)
            block = os.read(fd, 4096)
            if not block:
                break
            line += block
        try:
            probe = json.loads(line.decode("utf-8"))
        except ValueError:
            probe = None
        if not isinstance(probe, dict) or not PROBE_KEYS.issubset(probe):
            raise self._broken(self._stderr())
        return probe

    def run(self, job: bytes) -> WorkerResult:
        out, err = self.proc.communicate(job)
        if self.proc.returncode != 0:
            raise PrecompileError(
                "compiling with %s failed (exit status %d): %s" % (self.path, self.proc.returncode, _tail(err))
            )
        try:
            result = json.loads(out.decode("utf-8"))
        except ValueError:
            raise PrecompileError("compiling with %s gave no result: %s" % (self.path, _tail(err)))
        if "fatal" in result:
            raise PrecompileError("%s: %s" % (self.path, result["fatal"]))
        return result

    def stop(self) -> None:
        """Ends a program that has not been given its job, and reaps it."""
        if self.proc.returncode is None:
            self.proc.kill()
            self.proc.wait()
        self._close()

    def _stderr(self) -> str:
        """What a program that failed to start said (it is ended and reaped)."""
        try:
            self.proc.stdin.close()  # type: ignore[union-attr]
        except OSError:
            pass
        try:
            self.proc.wait(timeout=PROBE_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        err = self.proc.stderr.read()  # type: ignore[union-attr]
        self._close()
        return _tail(err) or "exit status %s" % self.proc.returncode

    def _close(self) -> None:
        for pipe in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            try:
                pipe.close()  # type: ignore[union-attr]
            except OSError:
                pass

    def _broken(self, detail: str) -> PrecompileError:
        return PrecompileError(
            "%s (%s) is not a working Python %d.%d+ interpreter: %s"
            % (self.path, self.named_by, MIN_VERSION[0], MIN_VERSION[1], detail)
        )


def _tail(data: bytes | None, lines: int = 5) -> str:
    text = data.decode("utf-8", "replace").strip() if data else ""
    return "\n".join(text.splitlines()[-lines:])


def _refusal(interp: Interpreter, invalidation_mode: str, pycache_prefix: str | None = None) -> str | None:
    """Why ``interp`` cannot do the job, or None."""
    probe = interp.probe
    if tuple(probe["version_info"]) < MIN_VERSION:
        return "%s (%s) is Python %s; Python %d.%d or later is needed" % (
            interp.path,
            interp.named_by,
            probe["version"],
            MIN_VERSION[0],
            MIN_VERSION[1],
        )
    if pycache_prefix and not probe.get("pycache_prefix"):
        return "pycache_prefix needs Python %d.%d or later (PYTHONPYCACHEPREFIX): %s (%s) is Python %s" % (
            PREFIX_MIN_VERSION[0],
            PREFIX_MIN_VERSION[1],
            interp.path,
            interp.named_by,
            probe["version"],
        )
    if not probe["cache_tag"]:
        return "%s (%s) does not cache bytecode (no cache tag)" % (interp.path, interp.named_by)
    if invalidation_mode != "timestamp" and not probe["hash_pyc"]:
        return "invalidation_mode %s needs hash-based .pyc files, which Python 3.7 introduced: %s (%s) is Python %s" % (
            invalidation_mode,
            interp.path,
            interp.named_by,
            probe["version"],
        )
    return None


def launch(requests: Iterable[tuple[str, str]], module_dirs_wanted: bool = False) -> list[_Worker]:
    """Starts the compile program under each requested interpreter (distinct real paths);
    ``module_dirs_wanted`` has each probe name the interpreter's own module directories."""
    source = worker_source()
    args = ("--module-dirs",) if module_dirs_wanted else ()
    started: list[_Worker] = []
    seen: set[str] = set()
    try:
        for path, named_by in requests:
            real = os.path.realpath(path)
            if real not in seen:
                seen.add(real)
                started.append(_Worker(path, named_by, source, args))
    except BaseException:
        stop(started)
        raise
    return started


def check_interpreters(
    started: Sequence[_Worker], invalidation_mode: str = "timestamp", pycache_prefix: str | None = None
) -> list[tuple[Interpreter, _Worker]]:
    """Reads each started program's probe; returns ``[(Interpreter, worker)]``.

    Two paths to the same executable count once. Raises PrecompileError, with every program
    stopped and nothing written, when one is broken or cannot do the job.
    """
    deadline = time.monotonic() + PROBE_TIMEOUT
    chosen: list[tuple[Interpreter, _Worker]] = []
    executables: set[str] = set()
    try:
        for worker in started:
            interp = Interpreter(worker.path, worker.named_by, worker.read_probe(deadline))
            refusal = _refusal(interp, invalidation_mode, pycache_prefix)
            if refusal:
                raise PrecompileError(refusal)
            executable = os.path.realpath(interp.probe["executable"] or worker.path)
            if executable in executables:
                worker.stop()
                continue
            executables.add(executable)
            chosen.append((interp, worker))
    except BaseException:
        stop(started)
        raise
    return chosen


def stop(workers: Iterable[_Worker]) -> None:
    for worker in workers:
        worker.stop()


def prefix_listing(tree: Tree, pycache_prefix: str) -> list[tuple[str, str, list[str]]]:
    """``[(cache directory, source directory, [names])]`` of the cache directories below
    ``pycache_prefix`` + the tree's root (sys.pycache_prefix layout), like ``tree.pycache``.

    Directories whose source directory is excluded, or reached through a symbolic link the
    walk does not follow, are left out: their caches are not the tree's to prune.
    """
    top = _compile_worker.cache_dir_of(tree.root, pycache_prefix)
    skipped = [os.path.join(path, "") for path in tree.excluded + tree.symlinks]
    listing = []
    for cache_dir, subdirs, files in os.walk(top):
        subdirs.sort()
        source_dir = os.path.join(os.sep, os.path.relpath(cache_dir, pycache_prefix))
        if any(os.path.join(source_dir, "").startswith(path) for path in skipped):
            subdirs[:] = []
            continue
        if files:
            listing.append((cache_dir, source_dir, sorted(files)))
    return listing


def prune_candidates(
    tree: Tree, cache_tags: Collection[str], pycache_prefix: str | None = None
) -> list[tuple[str, str]]:
    """``[(path, reason)]`` of the files in the tree's cache directories that no listed
    interpreter will read: caches of another tag, caches whose source is gone, and temporary
    files of interrupted writes. Other files are left alone.

    The cache directories are the tree's ``__pycache__`` directories, or with
    ``pycache_prefix`` those below that prefix + the tree's root (nothing else in the prefix).
    """
    sources = {directory: set(names) for directory, names in tree.sources}
    excluded = set(tree.excluded)
    outside = set(tree.outside_links)
    tmp_suffix = _compile_worker.TMP_SUFFIX
    if pycache_prefix:
        listing = prefix_listing(tree, pycache_prefix)
    else:
        listing = [(cache_dir, os.path.dirname(cache_dir), names) for cache_dir, names in tree.pycache]
    doomed = []
    for cache_dir, parent, names in listing:
        present = sources.get(parent, ())
        for name in names:
            if not name.endswith(".pyc"):
                if name.endswith(tmp_suffix):
                    doomed.append((os.path.join(cache_dir, name), "temporary file of an interrupted write"))
                continue
            parsed = parse_pyc_name(name)
            if parsed is None:
                continue
            source = parsed[0] + ".py"
            if parsed[1] not in cache_tags:
                doomed.append(
                    (os.path.join(cache_dir, name), "cache tag %s: no listed interpreter reads it" % parsed[1])
                )
            elif os.path.join(parent, source) in outside:
                doomed.append(
                    (
                        os.path.join(cache_dir, name),
                        "its source %s is a symbolic link out of the tree" % os.path.join(parent, source),
                    )
                )
            elif source not in present and os.path.join(parent, source) not in excluded:
                doomed.append((os.path.join(cache_dir, name), "its source %s is gone" % os.path.join(parent, source)))
    return doomed


def optimize_warnings(tree: Tree, optimize: Collection[int]) -> list[str]:
    """Entry scripts whose ``#!`` line runs Python with -O/-OO, so that their imports read
    ``.opt-N`` caches that ``optimize`` does not produce."""
    found: dict[int, list[str]] = {}
    for script in tree.entry_scripts:
        level = 0
        for word in script.options:
            if not word.startswith("-") or word.startswith("--"):
                break
            for flag in word[1:]:
                if flag == "O":
                    level += 1
                elif flag in "cmWXQ":
                    break
        level = min(level, 2)
        if level and level not in optimize:
            found.setdefault(level, []).append(script.path)
    return [
        "%s run Python with -%s, so their imports read .opt-%d.pyc caches: add %d to"
        " optimize to precompile them" % (", ".join(paths), "O" * level, level, level)
        for level, paths in sorted(found.items())
    ]


def _prune(
    tree: Tree,
    cache_tags: Collection[str],
    check_mode: bool,
    errors: dict[ErrorKey, list[str]],
    changes: list[tuple[str, str, str]],
    pycache_prefix: str | None = None,
) -> list[str]:
    """Removes (unless checking) the prune candidates; returns their paths. Adds a failed
    removal to ``errors`` and each removal to ``changes``."""
    pruned = []
    for doomed, reason in prune_candidates(tree, cache_tags, pycache_prefix):
        if not check_mode:
            try:
                os.unlink(doomed)
            except (FileNotFoundError, IsADirectoryError):
                continue
            except OSError as exc:
                errors.setdefault((doomed, None, "cannot remove: %s" % (exc.strerror or exc)), [])
                continue
        pruned.append(doomed)
        changes.append((doomed, "present (%s)" % reason, "removed"))
    return pruned


def _count_fresh(tree: Tree, not_fresh: Collection[str], failed_dirs: Collection[str]) -> tuple[int, int]:
    """``(sources, fresh)``: sources in the tree, and those no interpreter found wanting."""
    total = fresh = 0
    for directory, names in tree.sources:
        total += len(names)
        if directory not in failed_dirs:
            head = os.path.join(directory, "")
            fresh += sum(1 for name in names if head + name not in not_fresh)
    return total, fresh


def _check_prefix(path: str, pycache_prefix: str) -> None:
    """Refuses a pycache_prefix that Python would not use as given, or that mixes the caches
    into the sources."""
    if not os.path.isabs(pycache_prefix):
        raise PrecompileError("pycache_prefix %s must be an absolute path" % pycache_prefix)
    prefix = os.path.realpath(pycache_prefix)
    root = os.path.realpath(path)
    if prefix == os.sep:
        raise PrecompileError("pycache_prefix %s is the whole file system; name a cache directory" % pycache_prefix)
    if os.path.join(prefix, "").startswith(os.path.join(root, "")):
        raise PrecompileError(
            "pycache_prefix %s is inside path %s: it must lie outside the tree" % (pycache_prefix, path)
        )


def _within(inner: str, outer: str) -> bool:
    """Whether ``inner`` is ``outer`` or below it (normalized absolute paths)."""
    return inner == outer or inner.startswith(os.path.join(outer, ""))


def module_dirs(probe: dict[str, Any], root: str, pycache_prefix: str) -> list[str]:
    """The directories of an interpreter's own modules (standard library, site-packages) to
    precompile into ``pycache_prefix``: those that exist, outside the tree and the prefix
    (and holding neither), a directory inside another listed one left to that one."""
    found = sorted(
        {
            os.path.normpath(path)
            for path in probe.get("module_dirs") or ()
            if isinstance(path, str) and os.path.isabs(path)
        },
        key=lambda path: (len(path), path),
    )
    kept: list[str] = []
    for path in found:
        if any(_within(path, other) or _within(other, path) for other in (root, pycache_prefix)):
            continue
        if any(_within(path, outer) for outer in kept) or not os.path.isdir(path):
            continue
        kept.append(path)
    return kept


def _walk_module_dirs(
    chosen: Sequence[tuple[Interpreter, _Worker]], root: str, pycache_prefix: str
) -> dict[str, list[Tree]]:
    """``{interpreter path: [Tree]}``: the walked module directories of each interpreter
    (each directory walked once, whatever number of interpreters share it)."""
    walked: dict[str, Tree] = {}
    per_interpreter: dict[str, list[Tree]] = {}
    for interp, _worker in chosen:
        trees = []
        for path in module_dirs(interp.probe, root, pycache_prefix):
            if path not in walked:
                # The interpreter's own directories belong to root and the system; their links
                # (Debian's sitecustomize.py -> /etc/python3.X/) are the system's, and followed.
                walked[path] = walk(path, py_scripts=False, follow_outside_links=True)
            trees.append(walked[path])
        per_interpreter[interp.path] = trees
    return per_interpreter


def _error_order(item: tuple[ErrorKey, list[str]]) -> tuple[str, int, str]:
    (path, line, msg), _used = item
    return path, line or 0, msg


def _split_module_results(
    result: WorkerResult, interp: Interpreter, trees: Sequence[Tree], reports: list[ModulesReport]
) -> WorkerResult:
    """Takes the interpreter's own modules out of a compile program's ``result`` (returned
    without them) and appends their summary to ``reports``. Their problems are counted, never
    errors of the task: a distribution's modules are not the tree's to fix."""
    dirs = {directory for module_tree in trees for directory, _names in module_tree.sources}

    def mine(source: str) -> bool:
        return os.path.dirname(source) in dirs

    wanting: set[str] = set()
    failed: set[str] = set()
    compiled: set[str] = set()
    kept: WorkerResult = dict(  # type: ignore[assignment]
        result,
        pycs=[],
        errors=[],
        executables=[e for e in result["executables"] if not mine(e)],
        failed_dirs=[d for d in result["failed_dirs"] if d not in dirs],
    )
    for item in result["pycs"]:
        if mine(item[0]):
            wanting.add(item[0])
            if item[3]:
                compiled.add(item[0])
        else:
            kept["pycs"].append(item)
    for item in result["errors"]:
        if mine(item[0]) or item[0] in dirs:
            wanting.add(item[0])
            failed.add(item[0])
        else:
            kept["errors"].append(item)
    failed_dirs = {d for d in result["failed_dirs"] if d in dirs}
    counts = [_count_fresh(module_tree, wanting, failed_dirs) for module_tree in trees]
    report: ModulesReport = {
        "interpreter": interp.path,
        "dirs": [module_tree.root for module_tree in trees],
        "sources": sum(total for total, _fresh in counts),
        "fresh": sum(fresh for _total, fresh in counts),
        "compiled": len(compiled),
        "errors": len(failed),
        "failed": sorted(failed)[:10],
    }
    reports.append(report)
    return kept


class Options(NamedTuple):
    """The checked options of one run that every interpreter's job shares."""

    invalidation_mode: str
    levels: list[int]
    check_mode: bool
    workers: int
    pycache_prefix: str | None
    follow_outside_links: bool


@dataclasses.dataclass
class _Outcome:
    """What the interpreters' compile programs did, gathered as their results come in."""

    tree: Tree
    # (path, line, message) -> the interpreters that met it
    errors: dict[ErrorKey, list[str]]
    compiled: set[str] = dataclasses.field(default_factory=set)
    not_fresh: set[str] = dataclasses.field(default_factory=set)
    # (cache file, before, after) for the diff
    changes: list[tuple[str, str, str]] = dataclasses.field(default_factory=list)
    failed_dirs: set[str] = dataclasses.field(default_factory=set)
    modules_report: list[ModulesReport] = dataclasses.field(default_factory=list)

    def add(self, interp: Interpreter, result: WorkerResult) -> None:
        for source, pyc, state, written in result["pycs"]:
            self.not_fresh.add(source)
            if written:
                self.compiled.add(source)
            self.changes.append((pyc, state, "current" if written else "not written (error)"))
        for err_path, line, message in result["errors"]:
            self.not_fresh.add(err_path)
            self.errors.setdefault((err_path, line, message), []).append(interp.path)
        self.failed_dirs.update(result["failed_dirs"])


def _check_options(
    path: str,
    invalidation_mode: str,
    optimize: Iterable[int],
    workers: int,
    pycache_prefix: str | None,
    interpreter_modules: bool,
) -> tuple[list[int], str | None]:
    """Refuses bad options before anything runs; returns the optimization levels (sorted,
    distinct) and the normalized pycache_prefix."""
    if invalidation_mode not in INVALIDATION_MODES:
        raise PrecompileError(
            "invalidation_mode must be one of %s, not %r" % (", ".join(INVALIDATION_MODES), invalidation_mode)
        )
    levels = sorted(set(optimize))
    if not levels or any(level not in OPTIMIZE_LEVELS for level in levels):
        raise PrecompileError("optimize must list levels among 0, 1, 2, not %r" % (list(optimize),))
    if workers < 0:
        raise PrecompileError("workers must be 0 (one per CPU) or more, not %d" % workers)
    if not os.path.isdir(path):
        raise PrecompileError("path %s is not a directory" % path)
    if os.path.realpath(path) == os.sep:
        # The walk would cross every file system of the host and prune its caches.
        raise PrecompileError("path %s is the whole file system; name the CGI root" % path)
    if pycache_prefix:
        _check_prefix(path, pycache_prefix)
        pycache_prefix = os.path.normpath(pycache_prefix)
    elif interpreter_modules:
        raise PrecompileError(
            "interpreter_modules needs pycache_prefix: without a prefix each"
            " interpreter reads its own modules' caches from beside them"
        )
    return levels, pycache_prefix


def _walk_and_launch(
    path: str,
    interpreters: Sequence[str] | None,
    exclude: Sequence[str],
    search_path: str | None,
    interpreter_modules: bool,
    follow_outside_links: bool,
) -> tuple[Tree, list[_Worker]]:
    """The walked tree and the compile programs started for it (not yet checked)."""
    if interpreters:
        # Listed: the interpreters start while the tree is walked, and their programs stat
        # every source anyway, so the walk leaves the .py entry scripts to them.
        started = launch(interpreter_requests(None, interpreters), interpreter_modules)
        try:
            tree = walk(path, exclude, py_scripts=False, follow_outside_links=follow_outside_links)
        except BaseException:
            stop(started)
            raise
    else:
        tree = walk(path, exclude, follow_outside_links=follow_outside_links)
        started = launch(interpreter_requests(tree, search_path=search_path), interpreter_modules)
    return tree, started


def _job(tree: Tree, module_trees: Sequence[Tree], options: Options) -> bytes:
    """The JSON job for one interpreter's compile program (``_compile_worker.Job``): the tree's
    sources, and its own module directories (``module_trees``, trusted) if asked for."""
    dirs = list(tree.sources)
    trusted: list[str] = []
    for module_tree in module_trees:
        dirs.extend(module_tree.sources)
        trusted.extend(directory for directory, _names in module_tree.sources)
    job: Job = {
        "dirs": dirs,
        "invalidation_mode": options.invalidation_mode,
        "optimize": options.levels,
        "check": bool(options.check_mode),
        "workers": options.workers,
        "pycache_prefix": options.pycache_prefix or None,
        "roots": None if options.follow_outside_links else [os.path.join(os.path.realpath(tree.root), "")],
        "trusted_dirs": trusted,
    }
    return json.dumps(job).encode("ascii")


def _compile_all(
    chosen: Sequence[tuple[Interpreter, _Worker]],
    tree: Tree,
    module_trees: dict[str, list[Tree]],
    options: Options,
    listed: bool,
) -> _Outcome:
    """Gives each chosen interpreter's program its job, in order, and gathers the results.

    A program that fails after others wrote caches raises PrecompileError listing what was
    compiled. Every program that has not finished is stopped on the way out.
    """
    outcome = _Outcome(tree, {(err_path, None, message): [] for err_path, message in tree.errors})
    finished = 0
    try:
        for index, (interp, worker) in enumerate(chosen):
            try:
                result = worker.run(_job(outcome.tree, module_trees.get(interp.path, ()), options))
            except PrecompileError as exc:
                if not outcome.compiled:
                    raise
                raise PrecompileError(
                    "%s (after %d source(s) were compiled by the interpreters before it, listed in "
                    "compiled)" % (exc, len(outcome.compiled)),
                    outcome.compiled,
                )
            finished = index + 1
            if module_trees:
                result = _split_module_results(
                    result, interp, module_trees.get(interp.path, ()), outcome.modules_report
                )
            if index == 0 and listed:
                # Listed interpreters: the walk left the .py entry scripts to the first program.
                outcome.tree = outcome.tree._replace(
                    entry_scripts=sorted(outcome.tree.entry_scripts + entry_scripts(result["executables"]))
                )
            outcome.add(interp, result)
    finally:
        stop(worker for _interp, worker in chosen[finished:])
    return outcome


def _warnings(tree: Tree, levels: Sequence[int]) -> list[str]:
    return optimize_warnings(tree, levels) + [
        "%s is a symbolic link to %s, outside the tree: not read or compiled (follow_outside_links=true allows it)"
        % (link, os.path.realpath(link))
        for link in tree.outside_links
    ]


def _diff(outcome: _Outcome, pycache_prefix: str | None) -> Diff:
    """The before/after of the cache state: one line per cache file, then one per
    interpreter whose own modules were compiled."""
    changes = outcome.changes
    changes.sort()
    for report in outcome.modules_report:
        if report["compiled"] or report["errors"]:
            changes.append(
                (
                    "%s (caches of the own modules of %s, %d sources)"
                    % (pycache_prefix, report["interpreter"], report["sources"]),
                    "%d missing or stale" % (report["sources"] - report["fresh"]),
                    "%d current, %d not compiled" % (report["sources"] - report["errors"], report["errors"]),
                )
            )
    return {
        "before_header": "%s (bytecode caches)" % outcome.tree.root,
        "after_header": "%s (bytecode caches)" % outcome.tree.root,
        "before": "".join("%s: %s\n" % (pyc, before) for pyc, before, _after in changes),
        "after": "".join("%s: %s\n" % (pyc, after) for pyc, _before, after in changes),
    }


def _result(
    outcome: _Outcome, chosen: Sequence[tuple[Interpreter, _Worker]], pruned: list[str], levels: Sequence[int]
) -> PrecompileResult:
    tree = outcome.tree
    total, fresh = _count_fresh(tree, outcome.not_fresh, outcome.failed_dirs)
    return {
        "changed": bool(outcome.compiled or pruned or any(report["compiled"] for report in outcome.modules_report)),
        "compiled": sorted(outcome.compiled),
        "pruned": sorted(pruned),
        "errors": [
            {"path": p, "line": line, "msg": msg, "interpreters": used}
            for (p, line, msg), used in sorted(outcome.errors.items(), key=_error_order)
        ],
        "interpreters": [
            {"path": i.path, "version": i.probe["version"], "cache_tag": i.probe["cache_tag"]} for i, _w in chosen
        ],
        "entry_scripts": [script.path for script in tree.entry_scripts],
        "symlinks_skipped": tree.symlinks,
        "outside_links": tree.outside_links,
        "stats": {
            "sources": total,
            "fresh": fresh,
            "compiled": len(outcome.compiled),
            "pruned": len(pruned),
            "errors": len(outcome.errors),
        },
        "interpreter_modules": outcome.modules_report,
        "warnings": _warnings(tree, levels),
    }


def precompile(
    path: str,
    interpreters: Sequence[str] | None = None,
    invalidation_mode: str = "timestamp",
    optimize: Iterable[int] = (0,),
    workers: int = 0,
    exclude: Sequence[str] = (),
    prune: bool = True,
    check_mode: bool = False,
    diff: bool = False,
    search_path: str | None = None,
    pycache_prefix: str | None = None,
    interpreter_modules: bool = False,
    follow_outside_links: bool = False,
) -> PrecompileResult:
    """Brings the bytecode caches of the tree at ``path`` up to date.

    Arguments are the module's options; ``check_mode`` computes the same answer and writes
    nothing; ``diff`` adds a before/after of the cache state; ``search_path`` is the PATH
    used for ``#!/usr/bin/env python3`` (default: this process's); ``pycache_prefix``
    writes the caches where Python 3.8+ reads them under PYTHONPYCACHEPREFIX instead of into
    ``__pycache__`` directories; ``interpreter_modules`` (with ``pycache_prefix`` only) also
    writes there the caches of each interpreter's standard library and site-packages, which
    Python looks for in the prefix too once PYTHONPYCACHEPREFIX is set;
    ``follow_outside_links`` compiles sources that are symbolic links to files outside the
    tree (by default they are neither read nor compiled, and listed in ``outside_links``).

    Returns a :class:`PrecompileResult`: ``changed``, ``compiled`` (sources), ``pruned``
    (paths), ``errors``, ``interpreters``, ``entry_scripts`` (paths), ``symlinks_skipped``
    (paths), ``outside_links`` (paths), ``stats``, ``interpreter_modules`` (empty unless
    asked for), ``warnings`` (strings), and ``diff`` when asked for.
    Per-file problems land in ``errors``; PrecompileError means nothing was done.
    """
    levels, pycache_prefix = _check_options(
        path, invalidation_mode, optimize, workers, pycache_prefix, interpreter_modules
    )
    options = Options(invalidation_mode, levels, check_mode, workers, pycache_prefix, follow_outside_links)
    tree, started = _walk_and_launch(
        path, interpreters, exclude, search_path, interpreter_modules, follow_outside_links
    )
    chosen = check_interpreters(started, invalidation_mode, pycache_prefix)
    module_trees: dict[str, list[Tree]] = {}
    if interpreter_modules:
        try:
            # A pycache_prefix is given (_check_options refuses interpreter_modules without one).
            module_trees = _walk_module_dirs(chosen, tree.root, cast(str, pycache_prefix))
        except BaseException:
            stop(worker for _interp, worker in chosen)
            raise

    outcome = _compile_all(chosen, tree, module_trees, options, bool(interpreters))
    pruned: list[str] = []
    if prune:
        pruned = _prune(
            outcome.tree,
            {i.probe["cache_tag"] for i, _w in chosen},
            check_mode,
            outcome.errors,
            outcome.changes,
            pycache_prefix,
        )
    result = _result(outcome, chosen, pruned, levels)
    if diff:
        result["diff"] = _diff(outcome, pycache_prefix)
    return result
