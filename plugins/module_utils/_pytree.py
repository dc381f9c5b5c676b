# Copyright (c) 2026 pycgi.hosting contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""One walk of a CGI tree: its Python sources, the scripts Apache runs, and its caches.

Plain functions on plain data, no Ansible objects, so that every module that looks at a tree
(precompile, pycache_info, ...) sees it the same way.

Rules:

* The walk never follows a symbolic link to a directory: such a link is not descended and is
  listed in ``symlinks`` (a ``__pycache__`` that is a link included). Links to files are
  followed like Python's import system follows them, but only when they resolve inside the
  walked root: a link that leads out of the tree (``config.py`` -> ``/root/secret.py``) is
  never opened, read or stat'ed for its content, and is listed in ``outside_links``, unless
  the caller asks for them (``follow_outside_links``). A source that is a dangling link or a
  loop of links is an error naming it.
* ``exclude`` patterns are shell globs (``fnmatch``, where ``*`` also matches ``/``) matched
  against the path relative to the root, e.g. ``tests``, ``vendor/*``, ``*/migrations/*.py``.
  An excluded directory is not descended at all.
* A Python source is a file whose name ends in ``.py`` outside ``__pycache__``.
* An entry script is what Apache runs directly: a file, with or without ``.py``, that has an
  execute bit (mod_cgi refuses to run anything else) and whose first line is a ``#!`` line
  naming a Python interpreter, directly (``#!/usr/bin/python3 -S``) or through ``env``
  (``#!/usr/bin/env python3``, ``#!/usr/bin/env -S python3 -u``). Python never caches the
  bytecode of such a script, whatever is done to the tree.
"""

from __future__ import annotations

import errno
import fnmatch
import os
import re
import stat
from typing import Callable, NamedTuple, Sequence

PYCACHE = "__pycache__"
# Linux reads at most this much of a #! line (BINPRM_BUF_SIZE).
SHEBANG_MAX = 256
_PYTHON_NAME = re.compile(r"python(?:\d+(?:\.\d+)*)?\Z")
# env options that take a value as the next word.
_ENV_OPTIONS_WITH_VALUE = frozenset(("-u", "--unset", "-C", "--chdir", "-P"))


class EntryScript(NamedTuple):
    path: str
    # What the #! line runs: an absolute path, or a bare name that env looks up in PATH.
    command: str
    # The words after the Python command (e.g. ['-S'] or ['-O']).
    options: list[str]


class Tree(NamedTuple):
    root: str  # absolute path of the walked directory
    sources: list[tuple[str, list[str]]]  # [(directory, [file names ending in .py])], both sorted
    entry_scripts: list[EntryScript]  # sorted by path
    pycache: list[tuple[str, list[str]]]  # [(__pycache__ directory, [names of the entries in it])]
    excluded: list[str]  # paths matched by an exclude pattern (directories are not descended)
    symlinks: list[str]  # symbolic links to directories, not descended
    outside_links: list[str]  # sources that are symbolic links to files outside the root: not read
    # [(path, message)]: directories that could not be read, sources that are symbolic links
    # leading nowhere (dangling, loops)
    errors: list[tuple[str, str]]


def parse_shebang(line: bytes | str) -> tuple[str, list[str]] | None:
    """The Python command named by a ``#!`` line, as ``(command, options)``, or None.

    ``line`` is the first line of a file (bytes or str, with or without the newline). The
    kernel splits a ``#!`` line into the interpreter and at most one argument; ``env -S``
    splits that argument again. Here every word is split, which reads both forms the way a
    person writing them means them.
    """
    if isinstance(line, bytes):
        line = line.decode("utf-8", "surrogateescape")
    if not line.startswith("#!"):
        return None
    words = line[2:].split()
    if not words:
        return None
    command, rest = words[0], words[1:]
    if not os.path.isabs(command):
        # The kernel would resolve it against the web server's working directory.
        return None
    if os.path.basename(command) == "env":
        found = None
        while rest:
            word = rest.pop(0)
            if word in _ENV_OPTIONS_WITH_VALUE:
                if rest:
                    rest.pop(0)
            elif word.startswith("-S") and len(word) > 2:
                rest.insert(0, word[2:])
            elif word.startswith("-") or ("=" in word and not word.startswith("=")):
                continue
            else:
                found = word
                break
        if found is None or (os.sep in found and not os.path.isabs(found)):
            return None
        command = found
    if not _PYTHON_NAME.match(os.path.basename(command)):
        return None
    return command, rest


def read_shebang(path: str) -> tuple[str, list[str]] | None:
    """``parse_shebang`` of the first line of the file at ``path`` (OSError if unreadable)."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    try:
        head = os.read(fd, SHEBANG_MAX)
    finally:
        os.close(fd)
    return parse_shebang(head.split(b"\n", 1)[0])


def exclude_matcher(patterns: Sequence[str] | None) -> Callable[[str], object] | None:
    """A function telling whether a root-relative path matches one of ``patterns`` (or None)."""
    kept = [p.rstrip("/") for p in patterns or () if p and p.rstrip("/")]
    if not kept:
        return None
    return re.compile("|".join("(?:%s)" % fnmatch.translate(p) for p in kept)).match


def walk(
    root: str, exclude: Sequence[str] | None = (), py_scripts: bool = True, follow_outside_links: bool = False
) -> Tree:
    """Walks ``root`` once (os.scandir, iteratively) and returns a :class:`Tree`.

    ``py_scripts=False`` leaves the ``.py`` files out of ``entry_scripts``, which saves a
    stat per source for a caller that stats them anyway (it then passes those with an
    execute bit to :func:`entry_scripts`). ``follow_outside_links`` takes links to files
    outside the root like any other file.
    """
    root = os.path.abspath(root)
    inside = os.path.join(os.path.realpath(root), "")
    outside_links: list[str] = []
    excluded_path = exclude_matcher(exclude)
    skip = len(os.path.join(root, ""))
    sources: list[tuple[str, list[str]]] = []
    entry_scripts: list[EntryScript] = []
    pycache: list[tuple[str, list[str]]] = []
    excluded: list[str] = []
    symlinks: list[str] = []
    errors: list[tuple[str, str]] = []
    exec_bits = stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH
    pending = [root]
    while pending:
        directory = pending.pop()
        try:
            with os.scandir(directory) as listing:
                entries = list(listing)
        except OSError as exc:
            errors.append((directory, "cannot read the directory: %s" % (exc.strerror or exc)))
            continue
        names: list[str] = []
        for entry in entries:
            name = entry.name
            if excluded_path is not None and excluded_path(entry.path[skip:]):
                excluded.append(entry.path)
                continue
            is_source = name.endswith(".py") and len(name) > 3
            try:
                if entry.is_dir(follow_symlinks=False):
                    if name == PYCACHE:
                        pycache.append(_pycache_listing(entry.path, errors))
                    else:
                        pending.append(entry.path)
                    continue
                if entry.is_symlink():
                    broken = _broken_link(entry.path)
                    if broken is not None:
                        # An import of it fails at run time: say so now, by name.
                        if is_source:
                            errors.append((entry.path, broken))
                        continue
                    if entry.is_dir():
                        symlinks.append(entry.path)
                        continue
                    if not follow_outside_links and not os.path.realpath(entry.path).startswith(inside):
                        # Root reads what the link names and writes it into a cache the web
                        # server user may read: never for a file outside the tree.
                        if is_source:
                            outside_links.append(entry.path)
                        continue
                if is_source and not py_scripts:
                    if entry.is_file():
                        names.append(name)
                    continue
                mode = entry.stat().st_mode
            except OSError:
                # A dangling link, or an entry removed during the walk: nothing to compile.
                continue
            if not stat.S_ISREG(mode):
                continue
            if is_source:
                names.append(name)
            if mode & exec_bits:
                script = _entry_script(entry.path)
                if script is not None:
                    entry_scripts.append(script)
        if names:
            names.sort()
            sources.append((directory, names))
    sources.sort()
    entry_scripts.sort()
    pycache.sort()
    excluded.sort()
    symlinks.sort()
    outside_links.sort()
    return Tree(root, sources, entry_scripts, pycache, excluded, symlinks, outside_links, errors)


def _broken_link(path: str) -> str | None:
    """Why the symbolic link ``path`` leads nowhere (dangling, a loop), or None."""
    try:
        os.stat(path)
    except OSError as exc:
        try:
            target = os.readlink(path)
        except OSError:
            target = "?"
        if exc.errno == errno.ELOOP:
            return "symbolic link loop (to %s): Python cannot import it" % target
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            return "dangling symbolic link to %s (missing): Python cannot import it" % target
        return "symbolic link to %s cannot be followed: %s" % (target, exc.strerror or exc)
    return None


def entry_scripts(paths: Sequence[str]) -> list[EntryScript]:
    """The :class:`EntryScript` of each of ``paths`` (executable files) that runs Python."""
    return [script for script in map(_entry_script, paths) if script is not None]


def _entry_script(path: str) -> EntryScript | None:
    try:
        shebang = read_shebang(path)
    except OSError:
        # Unreadable, so not known to run Python (an unreadable source is reported when
        # it is compiled).
        return None
    if shebang is None:
        return None
    return EntryScript(path, shebang[0], shebang[1])


def _pycache_listing(path: str, errors: list[tuple[str, str]]) -> tuple[str, list[str]]:
    try:
        names = sorted(os.listdir(path))
    except OSError as exc:
        errors.append((path, "cannot read the directory: %s" % (exc.strerror or exc)))
        names = []
    return path, names


def source_paths(tree: Tree) -> list[str]:
    """Every Python source of ``tree`` as a path, in walk order."""
    return [os.path.join(directory, name) for directory, names in tree.sources for name in names]


def parse_pyc_name(name: str) -> tuple[str, str, int] | None:
    """``(module stem, cache tag, optimization level)`` of a ``__pycache__`` file name, or None.

    ``mod.cpython-312.pyc`` gives ``('mod', 'cpython-312', 0)``, ``mod.cpython-312.opt-2.pyc``
    gives ``('mod', 'cpython-312', 2)``.
    """
    if not name.endswith(".pyc"):
        return None
    stem, _dot, tag = name[:-4].rpartition(".")
    level = 0
    if tag.startswith("opt-"):
        if not tag[4:].isdigit():
            return None
        level = int(tag[4:])
        stem, _dot, tag = stem.rpartition(".")
    if not stem or not tag:
        return None
    return stem, tag, level
