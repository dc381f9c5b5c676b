# Copyright (c) 2026 pycgi.hosting contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""SELinux on the managed host: the labels on disk, compared with the ones the policy gives
(`scan_labels()`), and the commands of `selinux_context` (`Host`, `run()`)."""

from __future__ import annotations

import collections
import errno
import os
import stat

from ansible_collections.pycgi.hosting.plugins.module_utils._selinux_lookup import NO_CONTEXT, _bytes, _text, entry_specs, lookup


DEFAULT_STORE_ROOT = "/var/lib/selinux"


XATTR = "security.selinux"
# Characters of a path that setfiles' glob(3) (GLOB_BRACE) would not read literally.
_GLOB_SPECIAL = frozenset(b"*?[{\\")

LabelScan = collections.namedtuple("LabelScan", ["checked", "wrong", "samples", "reason"])
LabelScan.__doc__ = """The labels of a tree against the policy: how many paths were compared, the
(path, mode) of those whose label differs, one (path, context) for each rule that decided a path
and file type (for checking the decisions against matchpathcon), and why the tree could not be
compared (None when it was)."""


def read_label(path):
    """The security.selinux attribute of a path (not following a symlink) without its NUL; None
    when it has none. OSError when the file system keeps no such attribute."""
    try:
        value = os.getxattr(path, XATTR, follow_symlinks=False)
    except OSError as exc:
        if exc.errno == errno.ENODATA:
            return None
        raise
    return value.rstrip(b"\0")


def _file_type(entry):
    if entry.is_file(follow_symlinks=False):
        return stat.S_IFREG
    if entry.is_dir(follow_symlinks=False):
        return stat.S_IFDIR
    if entry.is_symlink():
        return stat.S_IFLNK
    return stat.S_IFMT(entry.stat(follow_symlinks=False).st_mode)


def scan_labels(root, specs, observe=None):
    """Compares the label of every path at and below `root` with the context `specs` give it;
    `observe(path, label, context)`, when given, sees each path compared (bytes), its label
    (bytes, None for none) and the context decided for it (text, maybe NO_CONTEXT).

    Walks as `setfiles` does (no symlink followed); a path without a label differs. Gives up
    (LabelScan.reason) where setfiles would not do the same as a relabel of the differing paths:
    a root that is a symlink, a mount point below the root, a name with a newline (setfiles'
    output is one line a path), a path no spec decides, a file system without SELinux labels
    (ENOTSUP), a directory that cannot be read.
    """
    root_b = _bytes(root)
    state = {"checked": 0}
    wrong, samples = [], collections.OrderedDict()
    wanted = dict((spec.index, _bytes(spec.rule.context)) for spec in specs)

    def give_up(reason):
        return LabelScan(state["checked"], wrong, samples, reason)

    def compare(path, mode, candidates, decider=None):
        """None, or why the path cannot be compared."""
        try:
            label = read_label(path)
        except OSError as exc:
            if exc.errno == errno.ENOENT:
                return None
            return "%s has no SELinux label to compare (%s)" % (_text(path), exc.strerror)
        spec = lookup(candidates, path, mode) or decider
        if spec is None:
            return "no rule decides the context of %s" % _text(path)
        if observe is not None:
            observe(path, label, spec.rule.context)
        state["checked"] += 1
        key = (spec.index, mode)
        if key not in samples:
            samples[key] = (path, spec.rule.context)
        if label != wanted[spec.index] and spec.rule.context != NO_CONTEXT:
            wrong.append((path, mode))
        return None

    try:
        top = os.lstat(root_b)
    except OSError as exc:
        return give_up("%s: %s" % (root, exc.strerror))
    if stat.S_ISLNK(top.st_mode):
        return give_up("%s is a symbolic link" % root)
    reason = compare(root_b, stat.S_IFMT(top.st_mode), specs)
    if reason:
        return give_up(reason)
    directories = [root_b] if stat.S_ISDIR(top.st_mode) else []
    while directories:
        directory = directories.pop()
        candidates, decider = entry_specs(specs, directory)
        try:
            with os.scandir(directory) as listing:
                entries = list(listing)
        except OSError as exc:
            if exc.errno == errno.ENOENT:
                continue  # removed meanwhile: nothing left to label
            return give_up("%s: %s" % (_text(directory), exc.strerror))
        for entry in entries:
            if b"\n" in entry.name:
                return give_up("%s holds a name with a newline" % _text(directory))
            try:
                mode = _file_type(entry)
                if mode == stat.S_IFDIR and entry.stat(follow_symlinks=False).st_dev != top.st_dev:
                    return give_up("%s is a mount point" % _text(entry.path))
            except OSError as exc:
                if exc.errno == errno.ENOENT:
                    continue
                return give_up("%s: %s" % (_text(entry.path), exc.strerror))
            if mode == stat.S_IFDIR:
                directories.append(entry.path)
            reason = compare(entry.path, mode, candidates, decider)
            if reason:
                return give_up(reason)
    return LabelScan(state["checked"], wrong, samples, None)


def relabel_list(wrong):
    """The paths to hand `setfiles -f`, sorted: the differing ones, less those below a differing
    directory (setfiles relabels a directory's whole subtree). None if a path holds a character
    setfiles' glob(3) would not read literally."""
    directories = set(path for path, mode in wrong if mode == stat.S_IFDIR)
    listed = []
    for path, _mode in sorted(wrong):
        if any(char in _GLOB_SPECIAL for char in path):
            return None
        parent = path
        while True:
            parent = parent.rpartition(b"/")[0]
            if not parent or parent in directories:
                break
        if not parent:
            listed.append(path)
    return listed


def nul_list(paths):
    """The input of `setfiles -0 -f`: each path ended by a NUL byte."""
    return b"".join(_bytes(path) + b"\0" for path in paths)


def path_text(path):
    """A path's bytes as the text run_command passes and prints (UTF-8, other bytes kept)."""
    return _text(path) if isinstance(path, bytes) else path


def path_bytes(path):
    """The bytes of a path as run_command's output holds it."""
    return _bytes(path)
