# Copyright (c) 2026 pycgi.hosting contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Owner, group and modes of a CGI tree's bytecode caches (or of the whole tree), in one walk.

The walk is built for trees that the web server user can write to: every directory is opened
relative to its parent with O_NOFOLLOW and every change is made through that directory's
descriptor without following symlinks, so a symlink planted in the tree (even one swapped in
while the walk runs) is never followed and nothing outside the tree is ever changed. A file is
changed by its name only where nobody else can swap another file in under that name (see
``_Walk.settle_entries``); everywhere else it is opened first and changed only if it is still the file
that was examined.
"""

from __future__ import annotations

import grp
import os
import pwd
import stat
from typing import TYPE_CHECKING, Any, Callable, Iterator, Optional, cast

if TYPE_CHECKING:
    # What os.scandir returns (a context manager iterating over os.DirEntry).
    ScandirIterator = Any
    # (path, old uid, old gid, old mode, new mode), old uid None for a created cache; None
    # holds the place of a directory's change until the walk leaves it.
    Made = Optional[tuple[str, Optional[int], Optional[int], Optional[int], int]]
    Attrs = tuple[int, int, int]  # (uid, gid, mode)
    # (path, before: Attrs or None for a created cache, after: (uid, gid, mode))
    Change = tuple[str, Optional[Attrs], tuple[Optional[int], Optional[int], int]]
    # (directory descriptor, path, in a cache, its subdirectories to visit, the place of its
    # change in the report or None, its stat when settled, the mode it gets)
    Frame = tuple[int, str, bool, Iterator[str], Optional[int], Optional[os.stat_result], Optional[int]]

CACHE_DIR = "__pycache__"
WEB_SERVER_NAMES = ("apache", "www-data")
SCOPES = ("pycache", "tree")

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY
# A FIFO, socket or device node is never opened for I/O (a FIFO may block, a device act): an
# O_PATH descriptor names the inode, which is then changed through /proc/self/fd.
_O_PATH = getattr(os, "O_PATH", 0)
_NODE_FLAGS = _O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC
_S_IFMT = 0o170000
_S_IFREG = stat.S_IFREG
PROTECTED_HARDLINKS = "/proc/sys/fs/protected_hardlinks"
# A file with other names may have been planted from outside the tree (a web server user who
# owns the caches can hard-link a file it may write): changing it would change that file.
_HARD_LINKED = "%s: skipped, it has %d hard links and a change would reach its other names too"


class OwnershipError(Exception):
    """A request that cannot be carried out; ``report`` holds what was done before it, if anything."""

    def __init__(self, message: str, report: OwnershipReport | None = None) -> None:
        super(OwnershipError, self).__init__(message)
        self.report = report


class OwnershipReport:
    """What one walk found and changed (or would change, in check mode).

    ``changes`` lists (path, before, after) top-down, a directory before what it holds;
    ``before`` and ``after`` are (uid, gid, mode) tuples, ``before`` is None for a
    ``__pycache__`` the walk created. ``changed`` is their number, ``first_changes(n)`` the
    first ``n`` of them (cheaper than ``changes`` on a large tree). ``examined`` counts the
    paths whose owner and mode were checked, ``created`` the caches created; ``symlinks`` lists
    the symlinks met (left alone), ``problems`` what was skipped.
    """

    def __init__(self, uid: int | None = None, gid: int | None = None) -> None:
        self.uid = uid
        self.gid = gid
        # One flat (path, old uid, old gid, old mode, new mode) per change, old uid None for a
        # created cache: a walk that changes every file of a large tree builds one small tuple
        # per file, not three.
        self.made: list[Made] = []
        self.examined = 0
        self.created = 0
        self.symlinks: list[str] = []
        self.problems: list[str] = []

    def first_changes(self, limit: int | None = None) -> list[Change]:
        # After a walk no place-holding None is left.
        made: list[Any] = self.made if limit is None else self.made[:limit]
        uid, gid = self.uid, self.gid
        return [
            (path, None if old_uid is None else (old_uid, old_gid, old_mode), (uid, gid, mode))
            for path, old_uid, old_gid, old_mode, mode in made
        ]

    @property
    def changes(self) -> list[Change]:
        return self.first_changes()

    @property
    def changed(self) -> int:
        return len(self.made)


def default_web_user() -> str | None:
    """The web server's user on this host (``apache``, else ``www-data``), or None."""
    for name in WEB_SERVER_NAMES:
        try:
            pwd.getpwnam(name)
        except KeyError:
            continue
        return name
    return None


def default_web_group() -> str | None:
    """The web server's group on this host (``apache``, else ``www-data``), or None."""
    for name in WEB_SERVER_NAMES:
        try:
            grp.getgrnam(name)
        except KeyError:
            continue
        return name
    return None


def resolve_user(name: str) -> int:
    """The uid of a user name (or of a numeric id, taken as is)."""
    if name.isdigit():
        return int(name)
    try:
        return pwd.getpwnam(name).pw_uid
    except KeyError:
        raise OwnershipError("owner %r: no such user on this host" % name)


def resolve_group(name: str) -> int:
    """The gid of a group name (or of a numeric id, taken as is)."""
    if name.isdigit():
        return int(name)
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        raise OwnershipError("group %r: no such group on this host" % name)


def parse_mode(value: int | str, option: str) -> int:
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
        raise OwnershipError(
            "%s: %04o is world-writable; anyone on the host could plant bytecode the web server runs" % (option, mode)
        )
    return mode


def hardlinks_protected() -> bool:
    """True when the kernel's ``fs.protected_hardlinks`` is 1 (read once per walk).

    With it, a user can hard-link only a file they own or may both read and write. Anything
    else (0, no such file, not Linux) is False."""
    try:
        with open(PROTECTED_HARDLINKS) as handle:
            return handle.read().strip() == "1"
    except (OSError, ValueError):
        return False


class _Walk:
    def __init__(
        self, uid: int, gid: int, scope: str, dir_mode: int, file_mode: int, create: bool, check_mode: bool
    ) -> None:
        self.uid = uid
        self.gid = gid
        self.tree = scope == "tree"
        self.dir_mode = dir_mode
        self.file_mode = file_mode
        self.create = create
        self.check_mode = check_mode
        self.report = OwnershipReport(uid, gid)
        # Changing a file by name, without opening it first, is safe only where nobody else can
        # put another file under that name between the lstat and the change (see visit).
        self.by_name = not check_mode and os.geteuid() == 0 and hardlinks_protected()

    def run(self, root: str) -> OwnershipReport:
        try:
            fd = os.open(root, _DIR_FLAGS)
        except OSError as exc:
            raise OwnershipError("cannot open %s: %s" % (root, exc.strerror))
        # Depth first, one open descriptor per level: a wide tree does not exhaust descriptors.
        # A directory's own owner and mode are changed when it is left, after everything in it
        # (see visit); its change is listed where it was met, before what it holds.
        frames: list[Frame] = []
        try:
            try:
                self.enter(frames, fd, root, os.path.basename(root) == CACHE_DIR)
                while frames:
                    fd, path, in_cache, pending, slot, st, mode = frames[-1]
                    name = next(pending, None)
                    if name is None:
                        frames.pop()
                        try:
                            if slot is not None:
                                # A directory with a slot was settled: st and mode are set (enter).
                                self.leave(fd, path, cast(os.stat_result, st), cast(int, mode), slot)
                        finally:
                            os.close(fd)
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
                    self.enter(frames, child, child_path, in_cache or name == CACHE_DIR)
            finally:
                for frame in frames:
                    os.close(frame[0])
        except BaseException:
            # The directories still open were not changed: their places in the list go.
            self.report.made[:] = [change for change in self.report.made if change is not None]
            raise
        return self.report

    def enter(self, frames: list[Frame], fd: int, path: str, in_cache: bool) -> None:
        """Settles what the directory open as ``fd`` holds and pushes it on ``frames``."""
        report = self.report
        slot: int | None = None
        st: os.stat_result | None = None
        mode: int | None = None
        private = False
        if in_cache or self.tree:
            report.examined += 1
            try:
                st = os.fstat(fd)
            except OSError as exc:
                os.close(fd)
                raise OwnershipError("%s: %s" % (path, exc.strerror), report)
            current = st.st_mode & 0o7777
            mode = self.dir_mode if in_cache else current
            if st.st_uid != self.uid or st.st_gid != self.gid or current != mode:
                slot = len(report.made)
                report.made.append(None)
            # Only root may add, remove or rename its entries: root owns it, and neither its
            # group nor others may write to it (with an ACL, the group bits are its mask, which
            # bounds every named user and group).
            private = self.by_name and st.st_uid == 0 and not st.st_mode & 0o022
        try:
            subdirs = self.visit(fd, path, in_cache, st is not None, private)
        except BaseException:
            os.close(fd)
            raise
        frames.append((fd, path, in_cache, iter(subdirs), slot, st, mode))

    def leave(self, fd: int, path: str, st: os.stat_result, mode: int, slot: int) -> None:
        """Gives the directory open as ``fd`` its owner and ``mode``, after its contents."""
        if not self.check_mode:
            try:
                if st.st_uid != self.uid or st.st_gid != self.gid:
                    os.fchown(fd, self.uid, self.gid)
                if st.st_mode & 0o7777 != mode:
                    os.fchmod(fd, mode)
            except OSError as exc:
                raise OwnershipError("%s: %s" % (path, exc.strerror), self.report)
        self.report.made[slot] = (path, st.st_uid, st.st_gid, st.st_mode & 0o7777, mode)

    def visit(self, fd: int, path: str, in_cache: bool, settle: bool, private: bool) -> list[str]:
        """Settles the non-directory entries of the directory open as ``fd`` (when ``settle``),
        creates its missing cache (see fix_ownership's ``create``); returns the names of its
        subdirectories. ``private``: its files may be changed by name (see settle_entries)."""
        try:
            entries = os.scandir(fd)
        except OSError as exc:
            raise OwnershipError("%s: cannot list it: %s" % (path, exc.strerror), self.report)
        sources_fd = _open_parent(fd) if in_cache and settle else None
        try:
            subdirs, has_sources = self.settle_entries(entries, fd, path, in_cache, settle, private, sources_fd)
        finally:
            if sources_fd is not None:
                os.close(sources_fd)
        if has_sources and CACHE_DIR not in subdirs:
            self.create_cache(fd, path.rstrip("/") + "/" + CACHE_DIR)
        return subdirs

    def settle_entries(
        self,
        entries: ScandirIterator,
        fd: int,
        path: str,
        in_cache: bool,
        settle: bool,
        private: bool,
        sources_fd: int | None,
    ) -> tuple[list[str], bool]:
        """The loop of visit over ``entries`` (the listing of the directory open as ``fd``):
        ``(names of the subdirectories, whether it holds a *.py source)``. ``sources_fd`` is
        the directory above a cache, where the sources of its .pyc files are.

        The loop runs once per file of the tree: it keeps to local names, and a file that is
        already right, or that may be changed by name, costs no call of a Python function.

        Two ways to change a file:

        - By name (``private``): fchownat(AT_SYMLINK_NOFOLLOW) on the name that was just
          lstat'ed, one system call where the safe way takes four. Only for a regular file with
          a single link whose mode is already right (a chmod by name would follow a symlink),
          found by a walk running as root, in a directory that root owns and that
          neither its group nor others may write to. Nobody but root can then create, remove or
          rename a name in that directory, so between the lstat and the change nobody can put a
          symlink or a hard link to another file under the name: the change reaches the file
          that was examined, and a file with other names was already skipped by the lstat's
          link count. Were a symlink there all the same, the change would stop at it
          (AT_SYMLINK_NOFOLLOW). The directory stays root's alone while its files are changed,
          because the walk changes a directory's own owner and mode only when it leaves it
          (run). As a second guard, this way is also only taken with fs.protected_hardlinks = 1
          (read once per walk), under which a link swapped in could only name a file its maker
          owns or may read and write.
          fs.protected_hardlinks = 1 alone would not be enough in a directory that another user
          may write to (for instance a cache that already belongs to the web server user): that
          user may still hard-link any file it may read and write, from outside the tree, and
          swap it in under the name between the lstat and the change; the change would then
          give that file away. That is the very case the link count check is there for.
        - Safe (change_entry), everywhere else: the file is opened with O_NOFOLLOW and changed
          through the descriptor, only if it is still the file that was examined (same device
          and inode) and has a single link.
        """
        report = self.report
        prefix = path.rstrip("/") + "/"
        subdirs: list[str] = []
        append_subdir = subdirs.append
        symlinks = report.symlinks
        record = report.made.append
        uid, gid = self.uid, self.gid
        pyc_mode = self.file_mode if in_cache else None
        stat_at = os.stat
        look_for_sources = self.create and not in_cache
        has_sources = False
        examined = 0
        chown = os.chown
        with entries:
            for entry in entries:
                if entry.is_file(follow_symlinks=False):
                    if look_for_sources and entry.name.endswith(".py"):
                        has_sources = True
                        look_for_sources = False
                    if not settle:
                        continue
                    try:
                        st = entry.stat(follow_symlinks=False)
                    except FileNotFoundError:
                        continue
                    examined += 1
                    st_mode = st.st_mode
                    mode = current = st_mode & 0o7777
                    if pyc_mode is None:
                        if st.st_uid == uid and st.st_gid == gid:
                            continue
                    else:
                        if st_mode & _S_IFMT == _S_IFREG and entry.name.endswith(".pyc"):
                            # Only the .pyc files of caches get a mode; everything else keeps its own.
                            # Never easier to read than its source, in the directory above.
                            mode = pyc_mode
                            if sources_fd is not None:
                                try:
                                    source_mode = stat_at(
                                        entry.name.partition(".")[0] + ".py", dir_fd=sources_fd
                                    ).st_mode
                                    mode = pyc_mode & ~(0o444 & ~source_mode)
                                except (OSError, ValueError):
                                    # No source (an orphan, a prefix tree): the mode as asked.
                                    pass
                        if st.st_uid == uid and st.st_gid == gid and current == mode:
                            continue
                    name = entry.name
                    if private and current == mode and st.st_nlink == 1 and st_mode & _S_IFMT == _S_IFREG:
                        try:
                            chown(name, uid, gid, dir_fd=fd, follow_symlinks=False)
                        except FileNotFoundError:
                            continue
                        except OSError as exc:
                            raise OwnershipError("%s%s: %s" % (prefix, name, exc.strerror), report)
                        record((prefix + name, st.st_uid, st.st_gid, current, mode))
                    else:
                        self.change_entry(fd, prefix + name, name, st, mode)
                elif entry.is_dir(follow_symlinks=False):
                    append_subdir(entry.name)
                elif entry.is_symlink():
                    symlinks.append(prefix + entry.name)
                elif settle:
                    examined += self.settle_node(fd, prefix, entry)
        report.examined += examined
        return subdirs, has_sources

    def settle_node(self, fd: int, prefix: str, entry: os.DirEntry[str]) -> int:
        """Gives a FIFO, socket or device node listed in the directory open as ``fd`` the owner
        (its mode is its own); returns the number of paths examined (0: gone meanwhile)."""
        try:
            st = entry.stat(follow_symlinks=False)
        except FileNotFoundError:
            return 0
        if st.st_uid != self.uid or st.st_gid != self.gid:
            self.change_entry(fd, prefix + entry.name, entry.name, st, st.st_mode & 0o7777)
        return 1

    def settle_open(self, fd: int, path: str, st: os.stat_result, mode: int) -> None:
        """Gives the file open as ``fd`` the owner and ``mode``."""
        current_mode = st.st_mode & 0o7777
        if st.st_uid == self.uid and st.st_gid == self.gid and current_mode == mode:
            return
        if not self.check_mode:
            if st.st_uid != self.uid or st.st_gid != self.gid:
                self.apply(path, os.fchown, fd, self.uid, self.gid)
            # After the chown, which clears the set-id bits of files.
            if current_mode != mode:
                self.apply(path, os.fchmod, fd, mode)
        self.record(path, st, mode)

    def change_entry(self, dir_fd: int, path: str, name: str, st: os.stat_result, mode: int) -> None:
        """Gives the non-directory ``name`` of the directory open as ``dir_fd`` the owner and
        ``mode``, without trusting its name: the safe path of visit."""
        kind = st.st_mode & _S_IFMT
        regular = kind == _S_IFREG
        if kind == stat.S_IFLNK:
            # Listed as a file, a symlink by the time of the lstat: left alone like any other.
            self.report.symlinks.append(path)
        elif kind == stat.S_IFDIR:
            self.report.problems.append("%s: skipped, replaced during the walk" % path)
        elif regular and st.st_nlink > 1:
            self.report.problems.append(_HARD_LINKED % (path, st.st_nlink))
        elif self.check_mode:
            self.record(path, st, mode)
        elif not regular:
            self.change_node(dir_fd, path, name, st)
        else:
            # chmod has no no-follow form on Linux, and a hard link swapped in by name would be
            # followed: change a file through a descriptor opened with O_NOFOLLOW, and only if
            # it is still the file that was listed, with no other name.
            opened = self.open_examined(dir_fd, path, name, st, _FILE_FLAGS)
            if opened is None:
                return
            fd, current = opened
            try:
                if current.st_nlink > 1:
                    self.report.problems.append(_HARD_LINKED % (path, current.st_nlink))
                    return
                self.settle_open(fd, path, current, mode)
            finally:
                os.close(fd)

    def change_node(self, dir_fd: int, path: str, name: str, st: os.stat_result) -> None:
        """Gives the FIFO, socket or device node ``name`` the owner (its mode is its own),
        through a descriptor that names it without opening it for I/O, and only if it is still
        the node that was examined: by name, a hard link to another file swapped in meanwhile
        would be changed instead, and where others may write to the directory they could do so."""
        if not _O_PATH:
            self.report.problems.append("%s: skipped, this system cannot open it without I/O (O_PATH)" % path)
            return
        opened = self.open_examined(dir_fd, path, name, st, _NODE_FLAGS)
        if opened is None:
            return
        fd, _current = opened
        try:
            self.apply(path, os.chown, "/proc/self/fd/%d" % fd, self.uid, self.gid)
            self.record(path, st, st.st_mode & 0o7777)
        finally:
            os.close(fd)

    def open_examined(
        self, dir_fd: int, path: str, name: str, st: os.stat_result, flags: int
    ) -> tuple[int, os.stat_result] | None:
        """``(descriptor, its fstat)`` of ``name`` opened with ``flags`` (which never follow a
        symlink), or None with the reason in the report: gone meanwhile, not to be opened, or
        no longer the file that was examined (another device, inode or type)."""
        try:
            fd = os.open(name, flags, dir_fd=dir_fd)
        except FileNotFoundError:
            return None
        except OSError as exc:
            self.report.problems.append("%s: skipped, %s" % (path, exc.strerror))
            return None
        current = os.fstat(fd)
        if (current.st_dev, current.st_ino, current.st_mode & _S_IFMT) != (st.st_dev, st.st_ino, st.st_mode & _S_IFMT):
            os.close(fd)
            self.report.problems.append("%s: skipped, replaced during the walk" % path)
            return None
        return fd, current

    def record(self, path: str, st: os.stat_result, mode: int) -> None:
        self.report.made.append((path, st.st_uid, st.st_gid, st.st_mode & 0o7777, mode))

    def apply(self, path: str, action: Callable[..., object], *args: Any, **kwargs: Any) -> None:
        try:
            action(*args, **kwargs)
        except OSError as exc:
            raise OwnershipError("%s: %s" % (path, exc.strerror), self.report)

    def create_cache(self, dir_fd: int, path: str) -> None:
        try:
            st = os.lstat(CACHE_DIR, dir_fd=dir_fd)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise OwnershipError("%s: %s" % (path, exc.strerror), self.report)
        else:
            if not stat.S_ISDIR(st.st_mode):
                self.report.problems.append("%s is a symlink or a file, not a directory; it was left alone" % path)
            # A directory made since the listing: someone else's, left alone.
            return
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
        self.report.made.append((path, None, None, None, self.dir_mode))


def _open_parent(fd: int) -> int | None:
    """A descriptor of the directory above the one open as ``fd`` (where a cache's sources are), or None."""
    try:
        return os.open("..", _DIR_FLAGS, dir_fd=fd)
    except OSError:
        return None


def fix_ownership(
    path: str,
    uid: int,
    gid: int,
    scope: str = "pycache",
    dir_mode: int = 0o755,
    file_mode: int = 0o644,
    create: bool = True,
    check_mode: bool = False,
) -> OwnershipReport:
    """Gives the caches below ``path`` (scope ``pycache``) or everything below it (scope
    ``tree``) the owner ``uid`` and group ``gid``, ``dir_mode`` to ``__pycache__`` directories
    and ``file_mode`` to the ``.pyc`` files in them, in one walk; other modes are kept. A
    ``.pyc`` gets ``file_mode`` without the read bits its source (in the directory above its
    cache) lacks.

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
        raise OwnershipError(
            "%s is a symlink (to %s); name the directory itself, symlinks are never followed"
            % (root, os.readlink(root))
        )
    if not stat.S_ISDIR(st.st_mode):
        raise OwnershipError("%s is not a directory" % root)
    return _Walk(uid, gid, scope, dir_mode, file_mode, create, check_mode).run(root)
