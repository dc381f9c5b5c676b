# Copyright (c) 2026 pycgi.hosting contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Owner, group and modes of a CGI tree's bytecode caches (or of the whole tree), in one walk.

The walk is built for trees that the web server user can write to: every directory is opened
relative to its parent with O_NOFOLLOW and every change is made through that directory's
descriptor without following symlinks, so a symlink planted in the tree (even one swapped in
while the walk runs) is never followed and nothing outside the tree is ever changed.
"""

from __future__ import annotations

import grp
import os
import pwd
import stat

CACHE_DIR = "__pycache__"
WEB_SERVER_NAMES = ("apache", "www-data")
SCOPES = ("pycache", "tree")

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY
# A file with other names may have been planted from outside the tree (a web server user who
# owns the caches can hard-link a file it may write): changing it would change that file.
_HARD_LINKED = "%s: skipped, it has %d hard links and a change would reach its other names too"


class OwnershipError(Exception):
    """A request that cannot be carried out; ``report`` holds what was done before it, if anything."""

    def __init__(self, message, report=None):
        super(OwnershipError, self).__init__(message)
        self.report = report


class OwnershipReport:
    """What one walk found and changed (or would change, in check mode).

    ``changes`` lists (path, before, after) in walk order; ``before`` and ``after`` are
    (uid, gid, mode) tuples, ``before`` is None for a ``__pycache__`` the walk created.
    ``examined`` counts the paths whose owner and mode were checked, ``created`` the caches
    created; ``symlinks`` lists the symlinks met (left alone), ``problems`` what was skipped.
    """

    def __init__(self):
        self.changes = []
        self.examined = 0
        self.created = 0
        self.symlinks = []
        self.problems = []


def default_web_user():
    """The web server's user on this host (``apache``, else ``www-data``), or None."""
    for name in WEB_SERVER_NAMES:
        try:
            pwd.getpwnam(name)
        except KeyError:
            continue
        return name
    return None


def default_web_group():
    """The web server's group on this host (``apache``, else ``www-data``), or None."""
    for name in WEB_SERVER_NAMES:
        try:
            grp.getgrnam(name)
        except KeyError:
            continue
        return name
    return None


def resolve_user(name):
    """The uid of a user name (or of a numeric id, taken as is)."""
    if name.isdigit():
        return int(name)
    try:
        return pwd.getpwnam(name).pw_uid
    except KeyError:
        raise OwnershipError("owner %r: no such user on this host" % name)


def resolve_group(name):
    """The gid of a group name (or of a numeric id, taken as is)."""
    if name.isdigit():
        return int(name)
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        raise OwnershipError("group %r: no such group on this host" % name)


def parse_mode(value, option):
    """A permission mode from an octal string (``'0755'``, ``'755'``) or an int.

    World-writable modes are refused: anyone on the host could then plant bytecode that the
    web server runs."""
    if isinstance(value, int) and not isinstance(value, bool):
        mode = value
    else:
        text = str(value).strip()
        try:
            mode = int(text, 8)
        except ValueError:
            raise OwnershipError("%s: %r is not an octal mode such as '0755'" % (option, value))
    if not 0 <= mode <= 0o7777:
        raise OwnershipError("%s: %r is out of range for a mode" % (option, value))
    if mode & stat.S_IWOTH:
        raise OwnershipError("%s: %04o is world-writable; anyone on the host could plant bytecode the web server runs"
                             % (option, mode))
    return mode


class _Walk:
    def __init__(self, uid, gid, scope, dir_mode, file_mode, create, check_mode):
        self.uid = uid
        self.gid = gid
        self.tree = scope == "tree"
        self.dir_mode = dir_mode
        self.file_mode = file_mode
        self.create = create
        self.check_mode = check_mode
        self.report = OwnershipReport()

    def run(self, root):
        in_cache = os.path.basename(root) == CACHE_DIR
        try:
            fd = os.open(root, _DIR_FLAGS)
        except OSError as exc:
            raise OwnershipError("cannot open %s: %s" % (root, exc.strerror))
        # Depth first, one open descriptor per level: a wide tree does not exhaust descriptors.
        frames = []
        try:
            frames.append((fd, root, in_cache, iter(self.visit(fd, root, in_cache))))
            while frames:
                fd, path, in_cache, pending = frames[-1]
                name = next(pending, None)
                if name is None:
                    os.close(fd)
                    frames.pop()
                    continue
                child_path = path.rstrip("/") + "/" + name
                try:
                    child = os.open(name, _DIR_FLAGS, dir_fd=fd)
                except FileNotFoundError:
                    continue
                except OSError as exc:
                    # ELOOP / ENOTDIR: replaced by a symlink or a file since it was listed.
                    self.report.problems.append("%s: skipped, %s" % (child_path, exc.strerror))
                    continue
                child_in_cache = in_cache or name == CACHE_DIR
                frames.append((child, child_path, child_in_cache, iter(self.visit(child, child_path, child_in_cache))))
        finally:
            for frame in frames:
                os.close(frame[0])
        return self.report

    def visit(self, fd, path, in_cache):
        """Settles the directory open as ``fd`` and its non-directory entries; returns the
        names of its subdirectories."""
        report = self.report
        settle = in_cache or self.tree
        if settle:
            report.examined += 1
            self.settle_open(fd, path, os.fstat(fd), self.dir_mode if in_cache else None)
        try:
            entries = os.scandir(fd)
        except OSError as exc:
            raise OwnershipError("%s: cannot list it: %s" % (path, exc.strerror), report)
        prefix = path.rstrip("/") + "/"
        uid, gid, file_mode = self.uid, self.gid, self.file_mode
        subdirs = []
        has_sources = cache_entry = False
        examined = 0
        with entries:
            for entry in entries:
                name = entry.name
                if name == CACHE_DIR:
                    cache_entry = True
                if entry.is_symlink():
                    report.symlinks.append(prefix + name)
                    continue
                if entry.is_dir(follow_symlinks=False):
                    subdirs.append(name)
                    continue
                if not in_cache and name.endswith(".py") and entry.is_file(follow_symlinks=False):
                    has_sources = True
                if not settle:
                    continue
                try:
                    st = entry.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue
                examined += 1
                # Only the .pyc files of caches get a mode; everything else keeps its own.
                mode = st.st_mode & 0o7777
                if in_cache and name.endswith(".pyc") and stat.S_ISREG(st.st_mode):
                    mode = file_mode
                if st.st_uid != uid or st.st_gid != gid or st.st_mode & 0o7777 != mode:
                    self.change_entry(fd, prefix + name, name, st, mode)
        report.examined += examined
        if self.create and has_sources:
            if not cache_entry:
                self.create_cache(fd, prefix + CACHE_DIR)
            elif CACHE_DIR not in subdirs:
                report.problems.append("%s%s is a symlink or a file, not a directory; it was left alone" % (prefix, CACHE_DIR))
        return subdirs

    def settle_open(self, fd, path, st, mode):
        """Gives the file or directory open as ``fd`` the owner and ``mode`` (None: keep its mode)."""
        current_mode = st.st_mode & 0o7777
        if mode is None:
            mode = current_mode
        if st.st_uid == self.uid and st.st_gid == self.gid and current_mode == mode:
            return
        if not self.check_mode:
            if st.st_uid != self.uid or st.st_gid != self.gid:
                self.apply(path, os.fchown, fd, self.uid, self.gid)
            # After the chown, which clears the set-id bits of files.
            if current_mode != mode:
                self.apply(path, os.fchmod, fd, mode)
        self.record(path, st, mode)

    def change_entry(self, dir_fd, path, name, st, mode):
        """Gives the non-directory ``name`` of the directory open as ``dir_fd`` the owner and ``mode``."""
        regular = stat.S_ISREG(st.st_mode)
        if regular and st.st_nlink > 1:
            self.report.problems.append(_HARD_LINKED % (path, st.st_nlink))
        elif self.check_mode:
            self.record(path, st, mode)
        elif st.st_mode & 0o7777 == mode and not regular:
            # fchownat without following: a symlink swapped in meanwhile is not followed.
            self.apply(path, os.chown, name, self.uid, self.gid, dir_fd=dir_fd, follow_symlinks=False)
            self.record(path, st, mode)
        else:
            # chmod has no no-follow form on Linux, and a hard link swapped in by name would be
            # followed: change a file through a descriptor opened with O_NOFOLLOW, and only if
            # it is still the file that was listed, with no other name.
            try:
                fd = os.open(name, _FILE_FLAGS, dir_fd=dir_fd)
            except FileNotFoundError:
                return
            except OSError as exc:
                self.report.problems.append("%s: skipped, %s" % (path, exc.strerror))
                return
            try:
                current = os.fstat(fd)
                if (current.st_dev, current.st_ino) != (st.st_dev, st.st_ino):
                    self.report.problems.append("%s: skipped, replaced during the walk" % path)
                    return
                if regular and current.st_nlink > 1:
                    self.report.problems.append(_HARD_LINKED % (path, current.st_nlink))
                    return
                self.settle_open(fd, path, current, mode)
            finally:
                os.close(fd)

    def record(self, path, st, mode):
        self.report.changes.append((path, (st.st_uid, st.st_gid, st.st_mode & 0o7777), (self.uid, self.gid, mode)))

    def apply(self, path, action, *args, **kwargs):
        try:
            action(*args, **kwargs)
        except OSError as exc:
            raise OwnershipError("%s: %s" % (path, exc.strerror), self.report)

    def create_cache(self, dir_fd, path):
        if not self.check_mode:
            try:
                # Private until it has its owner, then its mode.
                os.mkdir(CACHE_DIR, 0o700, dir_fd=dir_fd)
                fd = os.open(CACHE_DIR, _DIR_FLAGS, dir_fd=dir_fd)
            except FileExistsError:
                return
            except OSError as exc:
                raise OwnershipError("%s: cannot create it: %s" % (path, exc.strerror), self.report)
            try:
                self.apply(path, os.fchown, fd, self.uid, self.gid)
                self.apply(path, os.fchmod, fd, self.dir_mode)
            finally:
                os.close(fd)
        self.report.created += 1
        self.report.changes.append((path, None, (self.uid, self.gid, self.dir_mode)))


def fix_ownership(path, uid, gid, scope="pycache", dir_mode=0o755, file_mode=0o644, create=True, check_mode=False):
    """Gives the caches below ``path`` (scope ``pycache``) or everything below it (scope
    ``tree``) the owner ``uid`` and group ``gid``, ``dir_mode`` to ``__pycache__`` directories
    and ``file_mode`` to the ``.pyc`` files in them, in one walk; other modes are kept.

    With ``create``, every directory holding ``*.py`` sources (outside the caches) gets a
    ``__pycache__`` of that owner and mode. Symlinks are never followed or changed; they are
    listed in the report. With ``check_mode`` nothing is changed and the report is the same.
    Returns an OwnershipReport; raises OwnershipError.
    """
    if scope not in SCOPES:
        raise OwnershipError("scope must be one of %s, got %r" % (", ".join(SCOPES), scope))
    root = os.path.abspath(path)
    if os.path.realpath(root) == os.sep:
        # Every __pycache__ of the host (the system Python's included) would go to the web server user.
        raise OwnershipError("path %s is the whole file system; name the CGI root" % path)
    try:
        st = os.lstat(root)
    except OSError as exc:
        raise OwnershipError("%s: %s" % (root, exc.strerror))
    if stat.S_ISLNK(st.st_mode):
        raise OwnershipError("%s is a symlink (to %s); name the directory itself, symlinks are never followed"
                             % (root, os.readlink(root)))
    if not stat.S_ISDIR(st.st_mode):
        raise OwnershipError("%s is not a directory" % root)
    return _Walk(uid, gid, scope, dir_mode, file_mode, create, check_mode).run(root)
