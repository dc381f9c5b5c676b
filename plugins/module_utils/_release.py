# Copyright (c) 2026 pycgi.hosting contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Releases of a CGI tree: the manifest of a source, what a host lacks of it, building a release
directory from hard links and an archive, and switching the root's symlink atomically.

Plain functions on plain data (no Ansible objects), shared by the controller side (the
``release`` action plugin: manifest, archive) and the host side (the ``release`` module).

Host layout, for a root ``/usr/lib/cgi-bin``::

    /usr/lib/cgi-bin -> .cgi-bin.releases/20261204T153000Z-1a2b3c4d   (the live release)
    /usr/lib/.cgi-bin.releases/<id>/                                  one directory per release
    /usr/lib/.cgi-bin.releases/.meta/<id>.json                        its manifest, commit, time
    /usr/lib/.cgi-bin.releases/.meta/history.json                     the releases made live, in order
    /usr/lib/.cgi-bin.releases/.meta/failures.json                    releases discarded after a failed check
    /usr/lib/.cgi-bin.shared/<rel>                                     shared paths
"""

from __future__ import annotations

import base64
import contextlib
import ctypes
import errno
import fcntl
import fnmatch
import hashlib
import io
import json
import mmap
import os
import re
import shutil
import stat
import tarfile
import threading
import time
import zlib
from typing import TYPE_CHECKING, Any, cast

from ansible_collections.pycgi.hosting.plugins.module_utils._launcher import (
    LAUNCHER_MAX_SIZE,
    LauncherError,
    default_module_name,
    is_python_shebang,
    launcher_module,
    split_first_line,
)

if TYPE_CHECKING:
    from typing import IO, Callable, Collection, Container, Iterable, Iterator, Sequence

    # A manifest, as JSON has it: {rel: [type, size, mode, sha256 or link target]}.
    Manifest = dict[str, list[Any]]
    # The walked entries of a source: [(rel, lstat result)].
    Entries = list[tuple[str, os.stat_result]]
    # The contents an archive must hold: {sha256: [(rel, size, mode)]}.
    Needed = dict[str, list[tuple[str, int, int]]]

# Names never taken from a source: version control and bytecode (the host compiles its own).
ALWAYS_EXCLUDED_DIRS = (".git", "__pycache__")
ALWAYS_EXCLUDED_FILES = ("*.pyc",)

FILE, DIRECTORY, LINK = "f", "d", "l"
META_DIR = ".meta"
HISTORY = "history.json"
FAILURES = "failures.json"
LOCK = ".lock"
PARTIAL_SUFFIX = ".partial"
ENTRY_SUFFIX = ".entry"
HASH_RE = re.compile(r"^[0-9a-f]{64}$")
RELEASE_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
CHUNK = 1 << 20
COMPRESSED_PREFIX = "zlib:"
RENAME_EXCHANGE = 2


class ReleaseError(Exception):
    """A problem the user must fix; the message names the file or setting."""


# --------------------------------------------------------------------------- controller side


def _excluded(rel: str, name: str, is_dir: bool, patterns: Iterable[str]) -> bool:
    if is_dir and name in ALWAYS_EXCLUDED_DIRS:
        return True
    if not is_dir and any(fnmatch.fnmatchcase(name, p) for p in ALWAYS_EXCLUDED_FILES):
        return True
    for pattern in patterns:
        if fnmatch.fnmatchcase(rel, pattern) or ("/" not in pattern and fnmatch.fnmatchcase(name, pattern)):
            return True
    return False


def walk_source(source: str, exclude: Collection[str] = ()) -> Entries:
    """The entries of ``source`` that a release holds: ``[(rel, lstat_result)]``, sorted, the
    excluded ones (and everything below an excluded directory) left out. Symlinks are not
    followed."""
    source = os.path.abspath(source)
    if not os.path.isdir(source):
        raise ReleaseError("source %s is not a directory" % source)
    entries: Entries = []
    stack = [""]
    while stack:
        rel_dir = stack.pop()
        with os.scandir(os.path.join(source, rel_dir)) as it:
            children = sorted(it, key=lambda e: e.name)
        for entry in children:
            rel = entry.name if not rel_dir else rel_dir + "/" + entry.name
            st = entry.stat(follow_symlinks=False)
            is_dir = stat.S_ISDIR(st.st_mode)
            if _excluded(rel, entry.name, is_dir, exclude):
                continue
            entries.append((rel, st))
            if is_dir:
                stack.append(rel)
    entries.sort(key=lambda item: item[0])
    return entries


def stat_signature(source: str, entries: Iterable[tuple[str, os.stat_result]]) -> str:
    """A cheap fingerprint of the tree: path, type, size, mode, mtime_ns, ctime_ns and inode of
    every entry. Equal signatures mean the hashes need not be computed again."""
    digest = hashlib.sha256(os.path.abspath(source).encode("utf-8", "surrogateescape"))
    for rel, st in entries:
        digest.update(
            (
                "\0%s\0%d\0%d\0%d\0%d\0%d" % (rel, st.st_mode, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)
            ).encode("utf-8", "surrogateescape")
        )
    return digest.hexdigest()


def file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def check_link(source: str, rel: str, target: str) -> None:
    """Refuses a symlink whose target leaves the source (absolute, or resolving outside it)."""
    root = os.path.realpath(source)
    if os.path.isabs(target):
        raise ReleaseError(
            "symlink %s in %s points to an absolute path (%s): only links inside the source are kept"
            % (rel, source, target)
        )
    resolved = os.path.realpath(os.path.join(root, os.path.dirname(rel), target))
    if resolved != root and not resolved.startswith(root + os.sep):
        raise ReleaseError("symlink %s in %s points outside the source (%s)" % (rel, source, target))


def build_manifest(source: str, entries: Iterable[tuple[str, os.stat_result]]) -> Manifest:
    """``{rel: [type, size, mode, sha256 or link target]}`` for the walked entries."""
    manifest: Manifest = {}
    for rel, st in entries:
        mode = stat.S_IMODE(st.st_mode)
        full = os.path.join(source, rel)
        if stat.S_ISDIR(st.st_mode):
            manifest[rel] = [DIRECTORY, 0, mode, ""]
        elif stat.S_ISLNK(st.st_mode):
            target = os.readlink(full)
            check_link(source, rel, target)
            manifest[rel] = [LINK, 0, 0o777, target]
        elif stat.S_ISREG(st.st_mode):
            manifest[rel] = [FILE, st.st_size, mode, file_sha256(full)]
        else:
            raise ReleaseError("%s in %s is neither a file, a directory nor a symlink" % (rel, source))
    return manifest


def encode_manifest(manifest: Manifest) -> str:
    """The manifest as the action plugin sends it: compressed JSON (a third of the bytes)."""
    text = json.dumps(manifest, separators=(",", ":"), sort_keys=True).encode("utf-8", "surrogateescape")
    return COMPRESSED_PREFIX + base64.b64encode(zlib.compress(text, 6)).decode("ascii")


def decode_manifest(text: str) -> Any:
    """A manifest argument: plain JSON, or ``encode_manifest``'s form."""
    try:
        if text.startswith(COMPRESSED_PREFIX):
            text = zlib.decompress(base64.b64decode(text[len(COMPRESSED_PREFIX) :], validate=True)).decode(
                "utf-8", "surrogateescape"
            )
        manifest = json.loads(text)
    except (ValueError, zlib.error) as exc:
        raise ReleaseError("manifest is not valid JSON: %s" % exc)
    return manifest


def manifest_digest(manifest: Manifest, shared_paths: Iterable[str] = (), entry_launchers: bool = False) -> str:
    """The content hash of a release: its manifest, its shared paths and whether its entry
    scripts are launchers (left out when they are not, so older releases keep their hash)."""
    parts: list[Any] = [sorted(manifest.items()), sorted(shared_paths)]
    if entry_launchers:
        parts.append("entry_launchers")
    text = json.dumps(parts, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()


def cached_manifest(source: str, exclude: Collection[str], cache_dir: str) -> tuple[Manifest, str]:
    """The manifest of ``source``, hashed at most once while the tree does not change, also
    across processes (Ansible's forks): the result is kept in ``cache_dir`` under a lock, with
    the tree's stat signature. Returns ``(manifest, "hit" | "miss")``."""
    source = os.path.abspath(source)
    os.makedirs(cache_dir, mode=0o700, exist_ok=True)
    key = hashlib.sha256(json.dumps([source, sorted(exclude)]).encode("utf-8", "surrogateescape")).hexdigest()[:32]
    cache_file = os.path.join(cache_dir, key + ".json")
    with open(os.path.join(cache_dir, key + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        entries = walk_source(source, exclude)
        signature = stat_signature(source, entries)
        try:
            with open(cache_file) as handle:
                cached = json.load(handle)
            if cached.get("signature") == signature:
                return cached["manifest"], "hit"
        except (OSError, ValueError):
            pass
        manifest = build_manifest(source, entries)
        # The tree changed while it was hashed: do not keep a manifest that matches neither.
        if stat_signature(source, walk_source(source, exclude)) == signature:
            write_json(cache_file, {"signature": signature, "source": source, "manifest": manifest}, mode=0o600)
        return manifest, "miss"


def lacking_files(manifest: Manifest, lacking: Iterable[str]) -> list[tuple[str, str]]:
    """``[(sha256, rel)]``: for each lacking content hash, one path of the source that holds it."""
    wanted = set(lacking)
    chosen: dict[str, str] = {}
    for rel, (kind, _size, _mode, digest) in sorted(manifest.items()):
        if kind == FILE and digest in wanted and digest not in chosen:
            chosen[digest] = rel
    missing = wanted - set(chosen)
    if missing:
        raise ReleaseError("the host asked for content the manifest does not hold: %s" % ", ".join(sorted(missing)))
    return sorted(chosen.items())


def write_archive(source: str, manifest: Manifest, lacking: Iterable[str], dest: str) -> tuple[int, int]:
    """An uncompressed tar at ``dest`` holding each lacking content once, named by its sha256.
    Each file is checked against its manifest hash while it is read. Returns (files, bytes)."""
    count = total = 0
    with tarfile.open(dest, "w", format=tarfile.PAX_FORMAT) as archive:
        for digest, rel in lacking_files(manifest, lacking):
            path = os.path.join(source, rel)
            with open(path, "rb") as handle:
                st = os.fstat(handle.fileno())
                data = handle.read()
            if hashlib.sha256(data).hexdigest() != digest:
                raise ReleaseError("%s in %s changed while it was pushed: run again" % (rel, source))
            info = tarfile.TarInfo(digest)
            info.size = len(data)
            info.mode = 0o600
            info.mtime = int(st.st_mtime)
            archive.addfile(info, io.BytesIO(data))
            count += 1
            total += len(data)
    return count, total


# --------------------------------------------------------------------------- host side: layout


def default_releases_dir(path: str) -> str:
    path = path.rstrip("/")
    return os.path.join(os.path.dirname(path), "." + os.path.basename(path) + ".releases")


def shared_root(path: str) -> str:
    path = path.rstrip("/")
    return os.path.join(os.path.dirname(path), "." + os.path.basename(path) + ".shared")


def write_json(path: str, data: Any, mode: int = 0o644) -> None:
    """Writes JSON atomically: a temporary file beside ``path``, then rename."""
    tmp = "%s.%d.tmp" % (path, os.getpid())
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, mode)
    try:
        with os.fdopen(fd, "w") as handle:
            # dumps, not dump: one pass of the C encoder instead of Python's chunked one.
            handle.write(json.dumps(data, sort_keys=True, separators=(",", ":")))
        os.rename(tmp, path)
    except BaseException:
        if os.path.lexists(tmp):
            os.unlink(tmp)
        raise


def read_json(path: str, default: Any = None) -> Any:
    try:
        with open(path) as handle:
            return json.load(handle)
    except FileNotFoundError:
        return default
    except ValueError as exc:
        raise ReleaseError("%s is not valid JSON: %s" % (path, exc))


class Layout:
    """The names of a root's release directories."""

    def __init__(self, path: str, releases_dir: str | None = None) -> None:
        self.path = os.path.abspath(path).rstrip("/") or "/"
        if self.path == "/":
            raise ReleaseError("path / cannot be a release root")
        self.releases = os.path.abspath(releases_dir or default_releases_dir(self.path))
        self.meta = os.path.join(self.releases, META_DIR)
        self.shared = shared_root(self.path)

    def release_path(self, release_id: str) -> str:
        return os.path.join(self.releases, release_id)

    def meta_path(self, release_id: str) -> str:
        return os.path.join(self.meta, release_id + ".json")

    def originals_path(self, release_id: str) -> str:
        """Where a release keeps the entry scripts it turned into launchers, as pushed (one link
        each, outside the served tree), so that later pushes can still link their content."""
        return os.path.join(self.meta, release_id + ENTRY_SUFFIX)

    def history(self) -> list[dict[str, Any]]:
        return read_json(os.path.join(self.meta, HISTORY), default=[])

    def record_live(self, release_id: str, how: str) -> None:
        history = self.history()
        history.append({"id": release_id, "how": how, "time": utc_stamp()})
        write_json(os.path.join(self.meta, HISTORY), history[-100:])

    def releases_on_disk(self) -> list[str]:
        """Release ids in the releases directory, oldest first (by their recorded time)."""
        try:
            names = [
                n
                for n in os.listdir(self.releases)
                if not n.startswith(".")
                and os.path.isdir(os.path.join(self.releases, n))
                and not os.path.islink(os.path.join(self.releases, n))
            ]
        except FileNotFoundError:
            return []

        def created(name: str) -> int:
            meta = read_json(self.meta_path(name), default={}) or {}
            return meta.get("created_ns") or os.lstat(os.path.join(self.releases, name)).st_mtime_ns

        return sorted(names, key=lambda n: (created(n), n))

    def live(self) -> tuple[str, str | None]:
        """``(kind, release id or None)``: kind ``missing``, ``directory`` (a plain directory,
        today's layout) or ``link``; the id is None for a link whose release is gone."""
        try:
            st = os.lstat(self.path)
        except FileNotFoundError:
            return "missing", None
        if stat.S_ISDIR(st.st_mode):
            return "directory", None
        if not stat.S_ISLNK(st.st_mode):
            raise ReleaseError("%s is neither a directory nor a symlink to a release" % self.path)
        target = os.readlink(self.path)
        full = os.path.normpath(os.path.join(os.path.dirname(self.path), target))
        if os.path.dirname(full) != self.releases:
            raise ReleaseError(
                "%s is a symlink to %s, which is not a release in %s: not changed" % (self.path, target, self.releases)
            )
        release_id = os.path.basename(full)
        return "link", release_id if os.path.isdir(full) else None

    def link_target(self, release_id: str) -> str:
        """The symlink's text: relative when the releases live beside the root."""
        full = self.release_path(release_id)
        return os.path.relpath(full, os.path.dirname(self.path))


def utc_stamp(when: float | None = None) -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(time.time() if when is None else when))


def new_release_id(digest: str, commit: str | None = None) -> str:
    return "%s-%s" % (utc_stamp(), (commit or digest)[: 10 if commit else 8])


def lock_layout(layout: Layout) -> IO[str]:
    """An exclusive lock on the root's releases for the rest of the process (one push at a time)."""
    os.makedirs(layout.meta, mode=0o755, exist_ok=True)
    handle = open(os.path.join(layout.releases, LOCK), "a")
    fcntl.flock(handle, fcntl.LOCK_EX)
    return handle


# --------------------------------------------------------------------------- host side: planning


def validate_manifest(manifest: Manifest, shared_paths: Iterable[str] = ()) -> None:
    """Refuses a manifest that could write outside the release: bad names, a parent that is not
    a directory of the manifest, links leaving it, a source file at a shared path."""
    if not isinstance(manifest, dict):
        raise ReleaseError("manifest must be a mapping of relative paths")
    for rel, entry in manifest.items():
        if not rel or rel.startswith("/") or any(part in ("", ".", "..") for part in rel.split("/")):
            raise ReleaseError("manifest path %r is not a plain relative path" % rel)
        if not isinstance(entry, (list, tuple)) or len(entry) != 4 or entry[0] not in (FILE, DIRECTORY, LINK):
            raise ReleaseError("manifest entry for %s is malformed: %r" % (rel, entry))
        parent = os.path.dirname(rel)
        if parent and (manifest.get(parent) or [None])[0] != DIRECTORY:
            raise ReleaseError("manifest path %s: its parent %s is not a directory of the manifest" % (rel, parent))
        if entry[0] == FILE and not HASH_RE.match(str(entry[3])):
            raise ReleaseError("manifest entry for %s has no sha256" % rel)
        if entry[0] == LINK:
            target = entry[3]
            resolved = os.path.normpath(os.path.join(parent, target))
            if os.path.isabs(target) or resolved == ".." or resolved.startswith("../"):
                raise ReleaseError("symlink %s points outside the release (%s)" % (rel, target))
    for shared in shared_paths:
        check_shared_path(shared)
        inside = sorted((manifest[r][0] == DIRECTORY, r) for r in manifest if r == shared or r.startswith(shared + "/"))
        if inside:
            raise ReleaseError(
                "source file %s is at the shared path %s: shared paths live outside the "
                "releases; remove it from the source or exclude it" % (inside[0][1], shared)
            )
        for rel in manifest:
            if shared.startswith(rel + "/") and manifest[rel][0] != DIRECTORY:
                raise ReleaseError("source file %s is in the way of the shared path %s" % (rel, shared))


def check_shared_path(shared: str) -> None:
    if not shared or shared.startswith("/") or any(p in ("", ".", "..") for p in shared.split("/")):
        raise ReleaseError("shared path %r must be a plain relative path" % shared)


def _same_file(path: str, size: int, mode: int, mtime_ns: int | None = None) -> bool:
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return (
        stat.S_ISREG(st.st_mode)
        and st.st_size == size
        and stat.S_IMODE(st.st_mode) == mode
        and (mtime_ns is None or st.st_mtime_ns == mtime_ns)
    )


def content_index(layout: Layout, release_ids: Sequence[str]) -> tuple[dict[tuple[str, int], str], dict[str, str]]:
    """``{(sha256, mode): path}`` and ``{sha256: path}`` of the files of the releases on disk
    whose recorded size, mode and mtime still hold (a file edited in place is not trusted)."""
    by_mode: dict[tuple[str, int], str]
    by_hash: dict[str, str]
    by_mode, by_hash = {}, {}
    for release_id in reversed(release_ids):  # the newest first
        meta = read_json(layout.meta_path(release_id), default=None)
        if not meta or not meta.get("manifest"):
            continue
        mtimes = meta.get("mtimes", {})
        launchers = meta.get("launchers") or {}
        for rel, (kind, size, mode, digest) in meta["manifest"].items():
            if kind != FILE or ((digest, mode) in by_mode):
                continue
            path = _content_path(layout, release_id, rel, launchers)
            if _same_file(path, size, mode, mtimes.get(rel)):
                by_mode[(digest, mode)] = path
                by_hash.setdefault(digest, path)
    return by_mode, by_hash


def _content_path(layout: Layout, release_id: str, rel: str, launchers: dict[str, Any]) -> str:
    """The file holding the pushed content of ``rel``: the release's own file, or for an entry
    script turned into a launcher, the original kept beside the release's record."""
    if rel in launchers:
        return os.path.join(layout.originals_path(release_id), launchers[rel]["original"])
    return os.path.join(layout.release_path(release_id), rel)


def release_intact(layout: Layout, release_id: str, meta: dict[str, Any]) -> bool:
    """True when the files a release recorded are still there, unchanged (size, mode, mtime),
    the launchers and modules it wrote included."""
    base = layout.release_path(release_id)
    mtimes = meta.get("mtimes", {})
    launchers = meta.get("launchers") or {}
    for written in launchers.values():
        for rel, (size, mode, mtime_ns) in written["files"].items():
            if not _same_file(os.path.join(base, rel), size, mode, mtime_ns):
                return False
    for rel, (kind, size, mode, digest) in meta["manifest"].items():
        path = _content_path(layout, release_id, rel, launchers)
        if kind == FILE and not _same_file(path, size, mode, mtimes.get(rel)):
            return False
        if kind == LINK and (not os.path.islink(path) or os.readlink(path) != digest):
            return False
        if kind == DIRECTORY and (not os.path.isdir(path) or os.path.islink(path)):
            return False
    return True


def release_with_digest(
    layout: Layout,
    digest: str | None,
    shared_paths: Collection[str] = (),
    entry_launchers: bool = False,
    prefer: str | None = None,
) -> tuple[str | None, Manifest | None]:
    """The release on the host that holds the manifest whose hash is ``digest`` (with these
    shared paths and launcher setting), for a push that sends only the hash. ``prefer`` (the live
    release) is tried first, then the others, newest first. A record is trusted only if its
    manifest hashes to ``digest`` again (a record edited by hand does not) and the release's files
    are intact. Returns ``(release id, manifest)`` or ``(None, None)``: the controller then sends
    the manifest."""
    if not HASH_RE.match(digest or ""):
        raise ReleaseError("digest %r is not a sha256 hex digest" % (digest,))

    def candidates() -> Iterator[str]:
        # The live release first, without reading every other record.
        if (
            prefer
            and RELEASE_ID_RE.match(prefer)
            and os.path.isdir(layout.release_path(prefer))
            and not os.path.islink(layout.release_path(prefer))
        ):
            yield prefer
        for other in reversed(layout.releases_on_disk()):
            if other != prefer:
                yield other

    for release_id in candidates():
        try:
            meta = read_json(layout.meta_path(release_id), default=None)
        except ReleaseError:
            continue
        if not isinstance(meta, dict) or meta.get("digest") != digest or not isinstance(meta.get("manifest"), dict):
            continue
        try:
            if manifest_digest(meta["manifest"], shared_paths, entry_launchers) != digest:
                continue
            if release_intact(layout, release_id, meta):
                return release_id, meta["manifest"]
        except (AttributeError, KeyError, TypeError, ValueError):
            continue
    return None, None


def plan_release(
    layout: Layout, manifest: Manifest, shared_paths: Collection[str] = (), entry_launchers: bool = False
) -> dict[str, Any]:
    """What building this manifest on the host needs. Returns a dict: ``digest``, ``reuse``
    (an identical release's id, or None), ``lacking`` (content hashes found in no release),
    ``lacking_bytes``, ``link`` / ``copy`` counts (files taken from existing releases)."""
    validate_manifest(manifest, shared_paths)
    digest = manifest_digest(manifest, shared_paths, entry_launchers)
    reuse, _manifest = release_with_digest(layout, digest, shared_paths, entry_launchers)
    plan: dict[str, Any] = {
        "digest": digest,
        "reuse": reuse,
        "lacking": [],
        "lacking_bytes": 0,
        "linked": 0,
        "copied": 0,
    }
    if plan["reuse"]:
        return plan
    by_mode, by_hash = content_index(layout, layout.releases_on_disk())
    lacking: dict[str, int] = {}
    for _rel, (kind, size, mode, sha) in manifest.items():
        if kind != FILE:
            continue
        if (sha, mode) in by_mode:
            plan["linked"] += 1
        elif sha in by_hash:
            plan["copied"] += 1
        else:
            lacking[sha] = size
    plan["lacking"] = sorted(lacking)
    plan["lacking_bytes"] = sum(lacking.values())
    return plan


def manifest_diff(old: Manifest | None, new: Manifest) -> dict[str, list[str]]:
    """Files added, changed and removed from manifest ``old`` to ``new`` (directories left out)."""
    old = old or {}
    added = sorted(r for r, e in new.items() if e[0] != DIRECTORY and r not in old)
    removed = sorted(r for r, e in old.items() if e[0] != DIRECTORY and r not in new)
    changed = sorted(r for r, e in new.items() if e[0] != DIRECTORY and r in old and list(old[r]) != list(e))
    return {"added": added, "changed": changed, "removed": removed}


# --------------------------------------------------------------------------- host side: building


TAR_BLOCK = 512
ZERO_BLOCK = bytes(TAR_BLOCK)
# Header types an archive of contents never holds, as its refusals name them.
TAR_KINDS = {
    b"1": "hard link",
    b"2": "symlink",
    b"3": "device",
    b"4": "device",
    b"5": "directory",
    b"K": "GNU long link name",
}
# Threads that create a release's names. A build's cost is the kernel's, creating names in the
# file system (most of all on the overlay file systems of containers), and the files of
# different directories are independent: each thread takes a directory at a time.
BUILD_THREADS = 4


def _tar_number(field: bytes) -> int:
    if field[:1] == b"\x80":
        return int.from_bytes(field[1:], "big")
    return int(field.split(b"\0", 1)[0].strip(b" ") or b"0", 8)


def _pax_records(raw: bytes) -> dict[str, str]:
    """The ``key=value`` records of a pax header's data (``"<length> <key>=<value>\\n"`` each)."""
    records: dict[str, str] = {}
    position = 0
    while position < len(raw) and raw[position] != 0:
        space = raw.index(b" ", position)
        length = int(raw[position:space])
        if length <= space - position:
            raise ValueError("pax record of length %d" % length)
        key, _sep, value = raw[space + 1 : position + length - 1].partition(b"=")
        records[key.decode("utf-8", "surrogateescape")] = value.decode("utf-8", "surrogateescape")
        position += length
    return records


def _tar_members(archive: str, data: Any) -> Iterator[tuple[str, bytes, int, int, int]]:
    """``(name, type flag, offset of the data, size, mtime)`` for each member of the tar held in
    ``data`` (bytes or an mmap). Only what an archive of contents needs is read, strictly: ustar
    headers whose checksums hold, whose data lies inside the archive. A pax header's path, size
    and mtime, and a GNU long name, apply to the member that follows them (so that a refusal
    names the member as tar would)."""
    offset = 0
    end = len(data)
    extended: dict[str, str] = {}
    while offset < end:
        header = data[offset : offset + TAR_BLOCK]
        if header == ZERO_BLOCK:
            return
        if len(header) < TAR_BLOCK:
            raise ReleaseError("archive %s cannot be read: it ends inside a header (truncated)" % archive)
        try:
            checksum, size, mtime = (_tar_number(header[i:j]) for i, j in ((148, 156), (124, 136), (136, 148)))
        except ValueError:
            checksum = size = mtime = -1
        if checksum != sum(header[:148]) + 8 * 32 + sum(header[156:]) or header[257:262] != b"ustar":
            raise ReleaseError("archive %s cannot be read: no valid tar header at byte %d" % (archive, offset))
        name = header[:100].split(b"\0", 1)[0]
        prefix = header[345:500].split(b"\0", 1)[0]
        if prefix:
            name = prefix + b"/" + name
        text = name.decode("utf-8", "surrogateescape")
        kind = header[156:157]
        start = offset + TAR_BLOCK
        if kind not in (b"x", b"g", b"L"):
            try:
                text = extended.get("path", text)
                size = int(extended.get("size", size))
                mtime = int(float(extended.get("mtime", mtime)))
            except ValueError:
                raise ReleaseError("archive %s cannot be read: a bad pax header for member %s" % (archive, text))
            extended = {}
        if start + size > end:
            raise ReleaseError("archive %s cannot be read: member %s is truncated" % (archive, text))
        offset = start + (size + TAR_BLOCK - 1) // TAR_BLOCK * TAR_BLOCK
        if kind == b"x" or kind == b"L":
            raw = data[start : start + size]
            try:
                extended.update(_pax_records(raw) if kind == b"x" else {"path": raw.split(b"\0", 1)[0].decode()})
            except ValueError:
                raise ReleaseError("archive %s cannot be read: a bad extended header at byte %d" % (archive, offset))
        elif kind != b"g":
            yield text, kind, start, size, mtime
    raise ReleaseError("archive %s cannot be read: it ends before tar's end-of-archive block (truncated)" % archive)


def _check_member(name: str, kind: bytes, wanted: Container[str] | None) -> None:
    if name.startswith("/"):
        raise ReleaseError("archive member %s has an absolute name: refused" % name)
    if ".." in name.split("/"):
        raise ReleaseError("archive member %s climbs out with '..': refused" % name)
    if kind not in (b"0", b"\0"):
        raise ReleaseError(
            "archive member %s is a %s: only regular files are accepted" % (name, TAR_KINDS.get(kind, "special file"))
        )
    if not HASH_RE.match(name) or (wanted is not None and name not in wanted):
        raise ReleaseError("archive member %s is not content this release lacks: refused" % name)


def _write_new(path: str, source_handle: IO[bytes], size: int, mode: int, mtime: float, digest: str) -> None:
    """Creates ``path`` (never through a symlink, never over an existing file) from a stream,
    checking its sha256."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    check = hashlib.sha256()
    written = 0
    with os.fdopen(fd, "wb") as out:
        for block in iter(lambda: source_handle.read(CHUNK), b""):
            check.update(block)
            out.write(block)
            written += len(block)
        os.fchmod(out.fileno(), mode)
    if written != size or check.hexdigest() != digest:
        raise ReleaseError("content for %s does not match its manifest hash" % path)
    os.utime(path, (mtime, mtime), follow_symlinks=False)


def _write_from(data: Any, path: str, start: int, size: int, mode: int, mtime: int) -> int:
    """Creates ``path`` (never through a symlink, never over an existing file) from ``size``
    bytes of ``data`` at ``start``; returns its mtime in ns."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        position, end = start, start + size
        while position < end:
            position += os.write(fd, data[position : min(position + CHUNK, end)])
        os.fchmod(fd, mode)
        os.utime(fd, (mtime, mtime))
        return os.fstat(fd).st_mtime_ns
    finally:
        os.close(fd)


def _in_threads(func: Callable[[Any], Any], items: Sequence[Any], threads: int = BUILD_THREADS) -> list[Any]:
    """``[func(item) for item in items]``, run on up to ``threads`` threads. The first error
    stops the threads (each finishes the item it holds) and is raised."""
    if threads <= 1 or len(items) <= 1:
        return [func(item) for item in items]
    results: list[Any] = [None] * len(items)
    errors: list[BaseException] = []
    lock = threading.Lock()
    positions = iter(range(len(items)))

    def work() -> None:
        while True:
            with lock:
                index = None if errors else next(positions, None)
            if index is None:
                return
            try:
                results[index] = func(items[index])
            except BaseException as error:  # raised again below, in the calling thread
                with lock:
                    errors.append(error)
                return

    workers = [threading.Thread(target=work, daemon=True) for _number in range(min(threads, len(items)))]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    if errors:
        raise errors[0]
    return results


def prefix_cache_dir(prefix: str, directory: str) -> str:
    """Where Python keeps the caches of the sources in ``directory`` under PYTHONPYCACHEPREFIX
    ``prefix``: the directory's real path (as sys.path has it) below the prefix, with no
    ``__pycache__``."""
    return os.path.join(prefix, os.path.realpath(directory).lstrip("/"))


def _make_cache_dirs(src_dir: str, dst_dir: str) -> None:
    """Creates ``dst_dir`` and its missing parents, each with the owner and mode of its
    counterpart above ``src_dir`` (the cache trees of two releases, side by side)."""
    missing: list[tuple[str, str]] = []
    src, dst = src_dir, dst_dir
    while not os.path.isdir(dst):
        missing.append((src, dst))
        src, dst = os.path.dirname(src), os.path.dirname(dst)
    for src, dst in reversed(missing):
        try:
            os.mkdir(dst, 0o700)
        except FileExistsError:
            # Made by another thread of the same build (below a cache prefix, the cache trees
            # of sibling directories share their parents).
            if os.path.isdir(dst) and not os.path.islink(dst):
                continue
            raise
        _copy_owner_mode(dst, os.lstat(src) if os.path.isdir(src) else os.lstat(os.path.dirname(dst)))
        _copy_label(src, dst)


def _copy_pycache(
    src_file: str,
    dst_file: str,
    pycache_prefix: str | None = None,
    dst_final: str | None = None,
    listings: dict[str, list[str]] | None = None,
) -> int:
    """Copies the caches of ``src_file`` (``__pycache__/<stem>.*.pyc`` beside it, or below
    ``pycache_prefix`` when the web server runs with one) to where Python will look for those of
    ``dst_file``, whose path once its release is live is ``dst_final``. The source is the same
    inode, so their timestamps, source mtime and size, stay current. Copies, not links: a cache
    the web server user may write in one release must not be another release's, and
    pycache_owner leaves a file with several links alone.

    ``src_file`` is any file of an earlier release with the same content and mode, not
    necessarily of the same name (several sources of a tree may be identical, empty
    ``__init__.py`` and ``models.py`` side by side): the caches are named after ``dst_file``.
    Python fixes up the code's file name when it loads a cache, and checks it against the
    source's mtime and size (or hash), which the hard link shares."""
    if not dst_file.endswith(".py"):
        # Python imports, and caches, only .py sources.
        return 0
    if pycache_prefix:
        src_cache = prefix_cache_dir(pycache_prefix, os.path.dirname(src_file))
        dst_cache = prefix_cache_dir(pycache_prefix, os.path.dirname(dst_final or dst_file))
    else:
        src_cache = os.path.join(os.path.dirname(src_file), "__pycache__")
        dst_cache = os.path.join(os.path.dirname(dst_file), "__pycache__")
    stem = os.path.basename(src_file).rpartition(".")[0] or os.path.basename(src_file)
    dst_stem = os.path.basename(dst_file)[: -len(".py")]
    listing = listings.get(src_cache) if listings is not None else None
    if listing is None:
        try:
            listing = os.listdir(src_cache)
        except OSError:
            listing = []
        if listings is not None:
            listings[src_cache] = listing
    names = [
        n
        for n in listing
        if n.startswith(stem + ".") and n.endswith(".pyc") and n[len(stem) + 1 :].count(".") in (1, 2)
    ]
    if not names:
        return 0
    if not os.path.isdir(dst_cache):
        _make_cache_dirs(src_cache, dst_cache)
    count = 0
    for name in names:
        try:
            src_fd = os.open(os.path.join(src_cache, name), os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:
            continue
        with os.fdopen(src_fd, "rb") as src:
            st = os.fstat(src.fileno())
            if not stat.S_ISREG(st.st_mode):
                continue
            dst = os.path.join(dst_cache, dst_stem + name[len(stem) :])
            if pycache_prefix and os.path.lexists(dst):
                # Left by an earlier build of this release id that failed after copying.
                os.unlink(dst)
            fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            with os.fdopen(fd, "wb") as out:
                shutil.copyfileobj(src, out, CHUNK)
            _copy_owner_mode(dst, st)
            _copy_label(os.path.join(src_cache, name), dst)
            os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)
            count += 1
    return count


SELINUX_XATTR = "security.selinux"
LABEL_ERRORS = (errno.ENODATA, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOENT, errno.EPERM, errno.EACCES)


def _copy_label(source: str, target: str) -> None:
    """Gives ``target`` the SELinux label of ``source`` (neither followed), when it has one:
    the same relative path in the release the new one follows, whose label the rules that
    cover every release gave it, so that labelling the new release finds it right instead of
    relabelling every new path. Where labels cannot be read or set nothing happens; the
    labelling step checks every path either way."""
    try:
        # Only from a path of the same type: a rule may give a directory another type.
        if stat.S_IFMT(os.lstat(source).st_mode) != stat.S_IFMT(os.lstat(target).st_mode):
            return
        label = os.getxattr(source, SELINUX_XATTR, follow_symlinks=False)
        os.setxattr(target, SELINUX_XATTR, label, follow_symlinks=False)
    except OSError as error:
        if error.errno not in LABEL_ERRORS:
            raise


def _label_base(layout: Layout, on_disk: Sequence[str]) -> str | None:
    """The tree whose labels a new release copies: the live release, the plain directory a
    first push migrates, or the newest release on disk; None when there is none."""
    kind: str | None
    live: str | None
    try:
        kind, live = layout.live()
    except ReleaseError:
        kind, live = None, None
    if kind == "link" and live:
        return layout.release_path(live)
    if kind == "directory":
        return layout.path
    return layout.release_path(on_disk[-1]) if on_disk else None


def _copy_owner_mode(path: str, st: os.stat_result) -> None:
    try:
        os.chown(path, st.st_uid, st.st_gid, follow_symlinks=False)
    except PermissionError:
        pass
    os.chmod(path, stat.S_IMODE(st.st_mode))


def _make_dirs(base: str, dirs: Sequence[str]) -> None:
    """Creates the directories ``dirs`` (relative, parents listed before their children) below
    ``base``, mode 0700 until the release is complete: each level at once, side by side."""
    levels: dict[int, dict[str, list[str]]] = {}
    for rel in dirs:
        levels.setdefault(rel.count("/"), {}).setdefault(os.path.dirname(rel), []).append(rel)

    def make(group: list[str]) -> None:
        for rel in group:
            os.mkdir(os.path.join(base, rel), 0o700)

    for depth in sorted(levels):
        _in_threads(make, list(levels[depth].values()))


def build_release(
    layout: Layout,
    manifest: Manifest,
    release_id: str,
    digest: str,
    archive: str | None = None,
    shared_paths: Collection[str] = (),
    shared_owner: str | None = None,
    commit: str | None = None,
    source_label: str | None = None,
    pycache_prefix: str | None = None,
    split_entry: Callable[[str], str | None] | None = None,
    archive_extra_ok: bool = False,
    validated: bool = False,
) -> dict[str, Any]:
    """Builds release ``release_id`` from hard links into the releases on disk, local copies and
    the lacking contents in ``archive`` (a tar of files named by sha256). Everything happens in
    ``.<id>.partial``, renamed to ``<id>`` at the end; a failure removes it. The caches of the
    linked sources are copied along, into the release or, with ``pycache_prefix``, below the
    prefix where the release's path will have them. Returns counts.

    ``split_entry(path)``, when given, turns the entry script at ``path`` (in the partial
    release) into a launcher and returns the module it wrote, or None when there was nothing
    to do; see :func:`split_entry_scripts`. ``archive_extra_ok``: the archive may hold contents
    the release does not need (they are skipped). ``validated``: the caller has checked this
    manifest with these shared paths already (:func:`plan_release` does).

    The directories of each level, and the files of each directory, are created on
    ``BUILD_THREADS`` threads; every content is checked before the first file is written."""
    if not validated:
        validate_manifest(manifest, shared_paths)
    final = layout.release_path(release_id)
    partial = os.path.join(layout.releases, "." + release_id + PARTIAL_SUFFIX)
    originals = layout.originals_path(release_id)
    if os.path.lexists(final):
        raise ReleaseError("release %s already exists" % final)
    on_disk = layout.releases_on_disk()
    by_mode, by_hash = content_index(layout, on_disk)
    label_base = _label_base(layout, on_disk)
    counts: dict[str, Any] = {"linked": 0, "copied": 0, "extracted": 0, "pycache_copied": 0, "launchers": []}
    if os.path.lexists(partial):
        shutil.rmtree(partial)
    # Left by a run killed while it built this release (the partial directory is gone with it).
    shutil.rmtree(originals, ignore_errors=True)
    os.mkdir(partial, 0o700)
    try:
        dirs = sorted(r for r, e in manifest.items() if e[0] == DIRECTORY)
        _make_dirs(partial, dirs)
        mtimes: dict[str, int] = {}
        needed: Needed = {}
        linked: set[str] = set()
        # The files each directory gets from hard links and from the archive, made by one thread.
        by_dir: dict[str, list[tuple[Any, ...]]] = {}
        for rel, (kind, size, mode, sha) in sorted(manifest.items()):
            dst = os.path.join(partial, rel)
            if kind == LINK:
                os.symlink(sha, dst)
            elif kind == FILE:
                if (sha, mode) in by_mode:
                    by_dir.setdefault(os.path.dirname(rel), []).append(("link", rel, by_mode[(sha, mode)]))
                    linked.add(rel)
                elif sha in by_hash:
                    src = by_hash[sha]
                    with open(src, "rb") as handle:
                        _write_new(dst, handle, size, mode, os.lstat(src).st_mtime, sha)
                    counts["copied"] += 1
                else:
                    needed.setdefault(sha, []).append((rel, size, mode))
        if needed and not archive:
            raise ReleaseError("%d files are missing on the host and no archive was given" % len(needed))
        with _mapped(archive if needed else None) as data:
            if needed:
                for write in _archive_writes(cast("str", archive), data, needed, archive_extra_ok):
                    by_dir.setdefault(os.path.dirname(write[1]), []).append(write)

            def make_files(jobs: list[tuple[Any, ...]]) -> tuple[int, int, int, dict[str, int]]:
                made: dict[str, int] = {}
                listings: dict[str, list[str]] = {}
                links = caches = writes = 0
                for job in jobs:
                    dst = os.path.join(partial, job[1])
                    if job[0] == "link":
                        os.link(job[2], dst, follow_symlinks=False)
                        links += 1
                        caches += _copy_pycache(job[2], dst, pycache_prefix, os.path.join(final, job[1]), listings)
                        made[job[1]] = os.lstat(dst).st_mtime_ns
                    else:
                        made[job[1]] = _write_from(data, dst, *job[2:])
                        writes += 1
                return links, caches, writes, made

            for links, caches, writes, made in _in_threads(make_files, list(by_dir.values())):
                counts["linked"] += links
                counts["pycache_copied"] += caches
                counts["extracted"] += writes
                mtimes.update(made)
        for shared in shared_paths:
            target = os.path.join(layout.shared, shared)
            link = os.path.join(partial, shared)
            _make_parents(partial, os.path.dirname(shared))
            os.symlink(os.path.relpath(target, os.path.dirname(os.path.join(final, shared))), link)
        for rel, (kind, _size, _mode, _sha) in manifest.items():
            if kind == FILE and rel not in mtimes:
                mtimes[rel] = os.lstat(os.path.join(partial, rel)).st_mtime_ns
        if label_base:
            # A hard link has its label already (the inode's); the rest, new paths, take the
            # label of the same path in the release this one follows.
            _copy_label(label_base, partial)
            for rel in manifest:
                if rel not in linked:
                    _copy_label(os.path.join(label_base, rel), os.path.join(partial, rel))
        launchers: dict[str, dict[str, Any]] = {}
        if split_entry is not None:
            launchers = split_entry_scripts(partial, manifest, originals, split_entry)
            counts["launchers"] = sorted(launchers)
        for rel in reversed(dirs):
            os.chmod(os.path.join(partial, rel), manifest[rel][2])
        os.chmod(partial, 0o755)
        meta = {
            "id": release_id,
            "digest": digest,
            "manifest": manifest,
            "mtimes": mtimes,
            "created": utc_stamp(),
            "created_ns": time.time_ns(),
            "commit": commit,
            "source": source_label,
            "shared_paths": list(shared_paths),
        }
        if launchers:
            meta["launchers"] = launchers
        write_json(layout.meta_path(release_id), meta)
        os.rename(partial, final)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        if pycache_prefix:
            shutil.rmtree(prefix_cache_dir(pycache_prefix, final), ignore_errors=True)
        if not os.path.lexists(final):
            shutil.rmtree(originals, ignore_errors=True)
            if os.path.lexists(layout.meta_path(release_id)):
                os.unlink(layout.meta_path(release_id))
        raise
    return counts


def split_entry_scripts(
    partial: str, manifest: Manifest, originals: str, split_entry: Callable[[str], str | None]
) -> dict[str, dict[str, Any]]:
    """Turns the entry scripts of a partial release into launchers with ``split_entry`` (the
    entry_launcher module's plan and apply). An entry script is a file of the manifest with an
    execute bit whose first line is a python shebang, and that is not a launcher already.

    Each file of the release is a new name: the launcher is renamed over the script's name, so
    an inode the script shares with another release (a hard link) is never written. Before
    that, the pushed script gets a second link in ``originals`` (outside the served tree): a
    later push links its content from there. Returns ``{rel: {"module": rel, "original": name,
    "files": {rel: [size, mode, mtime_ns]}}}`` for the scripts split."""
    launchers: dict[str, dict[str, Any]] = {}
    for rel, (kind, _size, mode, _sha) in sorted(manifest.items()):
        if kind != FILE or not mode & 0o111:
            continue
        path = os.path.join(partial, rel)
        with open(path, "rb") as handle:
            head = handle.read(LAUNCHER_MAX_SIZE + 1)
        try:
            if not is_python_shebang(split_first_line(head)[0]) or launcher_module(head) is not None:
                continue
        except LauncherError as error:
            raise ReleaseError("entry script %s of the source: %s" % (rel, error))
        module_rel = os.path.join(os.path.dirname(rel), default_module_name(rel) + ".py")
        if module_rel in manifest:
            raise ReleaseError(
                "the source holds %s, the module the launcher of the entry script %s would be "
                "written to: rename it, or leave entry launchers off" % (module_rel, rel)
            )
        if not os.path.isdir(originals):
            os.makedirs(originals, mode=0o700)
        original = str(len(launchers))
        os.link(path, os.path.join(originals, original), follow_symlinks=False)
        try:
            module_path = split_entry(path)
        except LauncherError as error:
            raise ReleaseError("entry script %s of the source: %s" % (rel, str(error).replace(partial + "/", "")))
        if module_path is None:
            os.unlink(os.path.join(originals, original))
            continue
        module_rel = os.path.relpath(module_path, partial)
        files: dict[str, list[int]] = {}
        for written in (rel, module_rel):
            st = os.lstat(os.path.join(partial, written))
            files[written] = [st.st_size, stat.S_IMODE(st.st_mode), st.st_mtime_ns]
        launchers[rel] = {"module": module_rel, "original": original, "files": files}
    return launchers


def _make_parents(base: str, rel_dir: str) -> None:
    if not rel_dir:
        return
    current = base
    for part in rel_dir.split("/"):
        current = os.path.join(current, part)
        if os.path.islink(current):
            raise ReleaseError("a shared path's parent %s is a symlink in the source" % current)
        if not os.path.isdir(current):
            os.mkdir(current, 0o755)


@contextlib.contextmanager
def _mapped(archive: str | None) -> Iterator[Any]:
    """The bytes of ``archive``, mapped (read-only) while the context lasts."""
    if archive is None:
        yield b""
        return
    try:
        handle = open(archive, "rb")
    except OSError as exc:
        raise ReleaseError("archive %s cannot be read: %s" % (archive, exc.strerror or exc))
    with handle:
        if os.fstat(handle.fileno()).st_size == 0:
            yield b""
            return
        with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
            yield data


def archive_contents(archive: str) -> set[str]:
    """The content hashes an archive of contents holds (its member names, each checked as
    :func:`_archive_writes` checks it, against no list of wanted contents)."""
    names: set[str] = set()
    with _mapped(archive) as data:
        for name, kind, _start, _size, _mtime in _tar_members(archive, data):
            _check_member(name, kind, None)
            names.add(name)
    return names


def _sha256_of(data: Any, start: int, size: int) -> str:
    check = hashlib.sha256()
    for position in range(start, start + size, CHUNK):
        check.update(data[position : min(position + CHUNK, start + size)])
    return check.hexdigest()


def _archive_writes(
    archive: str, data: Any, needed: Needed, extra_ok: bool = False
) -> list[tuple[str, str, int, int, int, int]]:
    """The files to write from the archive mapped in ``data``: ``(kind, rel, start, size, mode,
    mtime)`` for every path that wants each needed content, each content checked (name, type,
    size and sha256) before anything is written. With ``extra_ok`` (an archive of what the
    controller expected the host to lack), members the release does not need are skipped
    instead of refused."""
    writes: list[tuple[str, str, int, int, int, int]] = []
    seen: set[str] = set()
    for name, kind, start, size, mtime in _tar_members(archive, data):
        _check_member(name, kind, None if extra_ok else needed)
        if name in seen:
            raise ReleaseError("archive member %s appears twice: refused" % name)
        seen.add(name)
        if name not in needed:
            continue
        wants = needed[name]
        if any(want_size != size for _rel, want_size, _mode in wants) or _sha256_of(data, start, size) != name:
            raise ReleaseError("content for %s does not match its manifest hash (archive %s)" % (wants[0][0], archive))
        writes.extend(("write", rel, start, size, mode, mtime) for rel, _size, mode in wants)
    missing = sorted(set(needed) - seen)
    if missing:
        raise ReleaseError(
            "archive %s lacks %d contents the release needs (for %s)"
            % (archive, len(missing), needed[missing[0]][0][0])
        )
    return writes


def ensure_shared(
    layout: Layout,
    shared_paths: Iterable[str],
    owner_uid: int | None = None,
    group_gid: int | None = None,
    check_mode: bool = False,
) -> list[str]:
    """Creates the shared directories that are missing (owned as given). Returns those created."""
    created: list[str] = []
    for shared in shared_paths:
        check_shared_path(shared)
        target = os.path.join(layout.shared, shared)
        if os.path.lexists(target):
            continue
        created.append(shared)
        if check_mode:
            continue
        os.makedirs(target, mode=0o755)
        if owner_uid is not None or group_gid is not None:
            os.chown(target, -1 if owner_uid is None else owner_uid, -1 if group_gid is None else group_gid)
    return created


# --------------------------------------------------------------------------- host side: going live


def _renameat2_exchange(a: str, b: str) -> bool:
    """Swaps two names atomically (Linux renameat2 RENAME_EXCHANGE). False where unsupported."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        func = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd = -100
    func.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if func(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.EXDEV):
        return False
    raise OSError(err, os.strerror(err), a)


def _temp_link(layout: Layout, release_id: str) -> str:
    tmp = os.path.join(os.path.dirname(layout.path), ".%s.%d.new" % (os.path.basename(layout.path), os.getpid()))
    if os.path.lexists(tmp):
        os.unlink(tmp)
    os.symlink(layout.link_target(release_id), tmp)
    return tmp


def point_at(layout: Layout, release_id: str) -> None:
    """Makes ``path`` a symlink to the release: a new link beside it renamed over it (atomic)."""
    tmp = _temp_link(layout, release_id)
    try:
        os.rename(tmp, layout.path)
    except BaseException:
        if os.path.lexists(tmp):
            os.unlink(tmp)
        raise


def _copy_tree_exactly(src: str, dst: str) -> None:
    """Copies a directory with its links, modes, times and owners (for file systems that cannot
    rename it, such as a directory of an overlayfs lower layer)."""
    shutil.copytree(src, dst, symlinks=True, copy_function=shutil.copy2)
    for base, dirs, files in os.walk(src):
        for name in [""] + dirs + files:
            st = os.lstat(os.path.join(base, name))
            target = os.path.join(dst, os.path.relpath(os.path.join(base, name), src))
            os.lchown(target, st.st_uid, st.st_gid)
            if not stat.S_ISLNK(st.st_mode):
                os.chmod(target, stat.S_IMODE(st.st_mode))


def migrate_directory(layout: Layout) -> tuple[str, str]:
    """Turns the plain directory ``path`` into release ``migrated-<time>``, with ``path`` a
    symlink to it: the same directory, same inodes, under its new name. Returns
    ``(migrated id, method)``:

    - ``exchange``: a symlink made at the release's place, pointing at that place, and the
      directory swap names in one renameat2(RENAME_EXCHANGE): at every moment ``path`` leads to
      the old tree;
    - ``rename``: without it, the directory is renamed into place and the link renamed in right
      after (``path`` is missing for microseconds);
    - ``copy``: a file system that cannot rename the directory at all (EXDEV: a directory of an
      overlayfs lower layer, as in a container made from an image) gets it copied first, then
      removed and replaced by the link (``path`` is missing while the removal runs).

    A request already running resolved ``path`` as the directory, not as a link, so it goes on
    finding its old files below ``path`` only as long as ``path`` leads to this tree: switch to a
    new release only after such requests had time to end (go_live waits ``grace`` seconds)."""
    migrated = "migrated-" + utc_stamp()
    while os.path.lexists(layout.release_path(migrated)):
        migrated += "x"
    target = layout.release_path(migrated)
    os.symlink(layout.link_target(migrated), target)
    if _renameat2_exchange(target, layout.path):
        # ``target`` now names the old directory, and ``path`` the link to it.
        method = "exchange"
    else:
        os.unlink(target)
        try:
            os.rename(layout.path, target)
            method = "rename"
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
            partial = os.path.join(layout.releases, "." + migrated + PARTIAL_SUFFIX)
            _copy_tree_exactly(layout.path, partial)
            os.rename(partial, target)
            shutil.rmtree(layout.path)
            method = "copy"
        point_at(layout, migrated)
    write_json(
        layout.meta_path(migrated),
        {
            "id": migrated,
            "digest": None,
            "manifest": None,
            "created": utc_stamp(),
            "created_ns": time.time_ns(),
            "migrated_from": layout.path,
            "method": method,
        },
    )
    return migrated, method


def files_not_in(directory: str, manifest: Container[str]) -> list[str]:
    """The files of a plain directory (bytecode caches left out) that the manifest lacks."""
    found: list[str] = []
    for root, dirs, files in os.walk(directory):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        rel_root = os.path.relpath(root, directory)
        for name in files + [d for d in dirs if os.path.islink(os.path.join(root, d))]:
            rel = name if rel_root == "." else rel_root + "/" + name
            if rel not in manifest and not name.endswith(".pyc"):
                found.append(rel)
    return sorted(found)


def previous_release(layout: Layout, live_id: str | None) -> str | None:
    """The release that was live before ``live_id``, from the history (None when unknown)."""
    for entry in reversed(layout.history()):
        if entry["id"] != live_id:
            return entry["id"]
    return None


def prune(
    layout: Layout,
    keep: int,
    protect: Container[str],
    check_mode: bool = False,
    adding: int = 0,
    pycache_prefix: str | None = None,
) -> list[str]:
    """Removes the oldest releases beyond ``keep``, never one in ``protect``, with their caches
    below ``pycache_prefix`` when given. Returns the ids. ``adding`` counts a release check mode
    would have built."""
    on_disk = layout.releases_on_disk()
    removable = [r for r in on_disk if r not in protect]
    doomed = removable[: max(len(on_disk) + adding - keep, 0)]
    if not check_mode:
        for release_id in doomed:
            remove_release(layout, release_id, pycache_prefix)
    return doomed


def remove_release(layout: Layout, release_id: str, pycache_prefix: str | None = None) -> None:
    """Removes a release directory (its shared paths are symlinks: what they point at stays),
    its caches below ``pycache_prefix``, its kept entry scripts and its record."""
    shutil.rmtree(layout.release_path(release_id))
    if pycache_prefix:
        shutil.rmtree(prefix_cache_dir(pycache_prefix, layout.release_path(release_id)), ignore_errors=True)
    shutil.rmtree(layout.originals_path(release_id), ignore_errors=True)
    if os.path.lexists(layout.meta_path(release_id)):
        os.unlink(layout.meta_path(release_id))


def discard(
    layout: Layout, release_id: str, reason: str, pycache_prefix: str | None = None, check_mode: bool = False
) -> str:
    """Deals with a release whose checks failed before it went live. A release that has never
    been live is removed; one that has (the live one, or one a rollback may go back to) is kept
    and its record marked with the failure. Each failure is also logged in ``.meta/failures.json``.
    Returns ``removed``, ``marked`` or ``absent``."""
    if not os.path.isdir(layout.release_path(release_id)):
        return "absent"
    kind, live = layout.live()
    ever_live = release_id == live or any(entry["id"] == release_id for entry in layout.history())
    outcome = "marked" if ever_live else "removed"
    if check_mode:
        return outcome
    stamp = utc_stamp()
    if ever_live:
        meta = read_json(layout.meta_path(release_id), default={}) or {}
        meta["failed"] = {"time": stamp, "reason": reason}
        write_json(layout.meta_path(release_id), meta)
    else:
        remove_release(layout, release_id, pycache_prefix)
    failures = read_json(os.path.join(layout.meta, FAILURES), default=[]) or []
    failures.append({"id": release_id, "time": stamp, "reason": reason, "outcome": outcome})
    write_json(os.path.join(layout.meta, FAILURES), failures[-100:])
    return outcome


def remove_partials(layout: Layout) -> list[str]:
    """Removes half-built releases a killed run left (under the lock, no other run is building)."""
    try:
        names = os.listdir(layout.releases)
    except FileNotFoundError:
        return []
    gone: list[str] = []
    for name in names:
        if name.startswith(".") and name.endswith(PARTIAL_SUFFIX):
            shutil.rmtree(os.path.join(layout.releases, name), ignore_errors=True)
            gone.append(name)
    return gone
