# Copyright (c) 2026 pycgi.hosting contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Controller-side caches of the ``release`` action, shared by Ansible's forks.

Each host of a play runs the action in its own worker process, so the work that is the same for
every host is kept in files under a lock, not in memory:

- the manifest of a source directory: one JSON file per (source path, excludes) holding, for
  every regular file, its stat key (mode, size, mtime, ctime, inode, device) and its sha256. A
  call walks the tree (``lstat`` only), reuses the hash of every file whose stat key is unchanged
  and hashes the others. The first fork hashes, the ones waiting on the lock find every key
  unchanged and hash nothing.
- the manifest of a git commit: keyed by the commit (an export of a commit never changes).
- the archive of the contents a host lacks: named by the sha256 of the sorted list of lacking
  content hashes. Its members are named by their content hash and checked while it is built, so
  it stays valid whatever happens to the source later; hosts lacking the same contents share it.

A stat key proves a file unchanged only if any later write must change it. A write in the same
clock tick as the stat (file systems stamp files with a coarse clock: a kernel tick, or whole
seconds on some file systems) keeps mtime, ctime and size, so a hash is stored only for a file
whose newest time stamp is older, by the time stamps' granularity, than the moment its content
was read. A file read sooner (it was written just before) is read again once that granularity
has passed, and that second hash is the one stored. The check assumes the controller's clock
and the file system's agree within that granularity, as they do for local file systems.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import stat
import time

from ansible_collections.pycgi.hosting.plugins.module_utils._release import (
    DIRECTORY,
    FILE,
    LINK,
    ReleaseError,
    build_manifest,
    check_link,
    lacking_files,
    walk_source,
    write_archive,
    write_json,
)

CACHE_FORMAT = 2
CHUNK = 1 << 20
# Granularity assumed for a file's time stamps: ten kernel ticks at the lowest tick rate when
# they carry nanoseconds, two seconds (FAT's) when every stamp is a whole second.
FINE_GRANULARITY_NS = 100 * 1000 * 1000
COARSE_GRANULARITY_NS = 2 * 1000 * 1000 * 1000
# A stamp further in the future than this is not waited for: such a file is never cached.
MAX_WAIT_NS = 3 * COARSE_GRANULARITY_NS
ARCHIVE_KEEP_SECONDS = 3600
READ_ATTEMPTS = 3


def stat_key(st):
    return [st.st_mode, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev]


def granularity_ns(st):
    second = 1000 * 1000 * 1000
    if st.st_mtime_ns % second == 0 and st.st_ctime_ns % second == 0:
        return COARSE_GRANULARITY_NS
    return FINE_GRANULARITY_NS


def settled_at(st):
    """The time after which a read of the file yields a hash its stat key can vouch for."""
    return max(st.st_mtime_ns, st.st_ctime_ns) + granularity_ns(st)


def _key(*parts):
    return hashlib.sha256(json.dumps(parts).encode("utf-8", "surrogateescape")).hexdigest()[:32]


class _Locked:
    """An exclusive ``flock`` on ``<directory>/<name>.lock`` for the ``with`` block."""

    def __init__(self, directory, name):
        os.makedirs(directory, mode=0o700, exist_ok=True)
        self.path = os.path.join(directory, name + ".lock")
        self.handle = None

    def __enter__(self):
        self.handle = open(self.path, "a")
        fcntl.flock(self.handle, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        self.handle.close()


def read_hash(path, clock=time.time_ns):
    """``(sha256, fstat, read_started_ns)`` of the regular file ``path``, read with its stat
    unchanged from before the read to after it."""
    for _attempt in range(READ_ATTEMPTS):
        started = clock()
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError as exc:
            raise ReleaseError("%s changed while it was hashed (%s): run again" % (path, exc.strerror))
        try:
            before = os.fstat(fd)
            if not stat.S_ISREG(before.st_mode):
                raise ReleaseError("%s changed while it was hashed (no longer a file): run again" % path)
            digest = hashlib.sha256()
            with os.fdopen(os.dup(fd), "rb") as handle:
                for block in iter(lambda: handle.read(CHUNK), b""):
                    digest.update(block)
            after = os.fstat(fd)
        finally:
            os.close(fd)
        if stat_key(before) == stat_key(after):
            return digest.hexdigest(), before, started
    raise ReleaseError("%s keeps changing while it is hashed: run again once it is written" % path)


def _load(path, expect):
    try:
        with open(path) as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or any(data.get(k) != v for k, v in expect.items()):
        return None
    return data


def directory_manifest(source, exclude, cache_dir, clock=time.time_ns, sleep=time.sleep, reader=read_hash):
    """The manifest of the directory ``source`` (as ``build_manifest`` makes it), hashing only the
    files whose stat key changed since they were last hashed, by any process. Returns
    ``(manifest, info)``; ``info``: ``state`` (``hit`` when no file was hashed, else ``miss``),
    ``hashed`` (files hashed), ``reread`` (files read again because they had just been
    written), ``untrusted`` (files not cached: time stamps in the future)."""
    source = os.path.abspath(source)
    exclude = sorted(exclude or ())
    key = _key("dir", CACHE_FORMAT, source, exclude)
    directory = os.path.join(cache_dir, "sources")
    cache_file = os.path.join(directory, key + ".json")
    expect = {"format": CACHE_FORMAT, "source": source, "exclude": exclude}
    with _Locked(directory, key):
        cached = (_load(cache_file, expect) or {}).get("files") or {}
        entries = walk_source(source, exclude)
        manifest, files, to_hash = {}, {}, []
        for rel, st in entries:
            mode = stat.S_IMODE(st.st_mode)
            if stat.S_ISDIR(st.st_mode):
                manifest[rel] = [DIRECTORY, 0, mode, ""]
            elif stat.S_ISLNK(st.st_mode):
                target = os.readlink(os.path.join(source, rel))
                check_link(source, rel, target)
                manifest[rel] = [LINK, 0, 0o777, target]
            elif stat.S_ISREG(st.st_mode):
                old = cached.get(rel)
                if isinstance(old, list) and len(old) == 2 and old[0] == stat_key(st):
                    manifest[rel] = [FILE, st.st_size, mode, old[1]]
                    files[rel] = old
                else:
                    to_hash.append(rel)
            else:
                raise ReleaseError("%s in %s is neither a file, a directory nor a symlink" % (rel, source))
        racy = []
        for rel in to_hash:
            digest, st, started = reader(os.path.join(source, rel), clock)
            manifest[rel] = [FILE, st.st_size, stat.S_IMODE(st.st_mode), digest]
            if started >= settled_at(st):
                files[rel] = [stat_key(st), digest]
            else:
                racy.append((rel, st))
        waited, untrusted, reread = 0, 0, 0
        if racy:
            now = clock()
            due = [(rel, st) for rel, st in racy if settled_at(st) - now <= MAX_WAIT_NS]
            untrusted = len(racy) - len(due)
            if due:
                pause = max(settled_at(st) for _rel, st in due) - now
                if pause > 0:
                    sleep(pause / 1e9)
                    waited = pause
                for rel, first in due:
                    digest, st, started = reader(os.path.join(source, rel), clock)
                    reread += 1
                    manifest[rel] = [FILE, st.st_size, stat.S_IMODE(st.st_mode), digest]
                    if stat_key(st) == stat_key(first) and started >= settled_at(st):
                        files[rel] = [stat_key(st), digest]
                    else:
                        untrusted += 1
        if to_hash or len(files) != len(cached):
            write_json(cache_file, dict(expect, files=files), mode=0o600)
    info = {"state": "miss" if to_hash else "hit", "hashed": len(to_hash), "reread": reread,
            "untrusted": untrusted, "waited_ms": int(waited / 1e6)}
    return manifest, info


def commit_manifest(source, exclude, cache_dir, commit):
    """The manifest of ``source``, an export of the git ``commit``: hashed once per commit and
    excludes, whatever directory the commit was exported to."""
    exclude = sorted(exclude or ())
    key = _key("git", CACHE_FORMAT, commit, exclude)
    directory = os.path.join(cache_dir, "commits")
    cache_file = os.path.join(directory, key + ".json")
    expect = {"format": CACHE_FORMAT, "commit": commit, "exclude": exclude}
    with _Locked(directory, key):
        cached = _load(cache_file, expect)
        if cached and isinstance(cached.get("manifest"), dict):
            return cached["manifest"], {"state": "hit", "hashed": 0}
        entries = walk_source(source, exclude)
        manifest = build_manifest(os.path.abspath(source), entries)
        write_json(cache_file, dict(expect, manifest=manifest), mode=0o600)
    hashed = sum(1 for value in manifest.values() if value[0] == FILE)
    return manifest, {"state": "miss", "hashed": hashed}


def source_manifest(source, exclude, cache_dir, commit=None):
    """The manifest of a directory, or of a git commit's export when ``commit`` is given."""
    if commit:
        return commit_manifest(source, exclude, cache_dir, commit)
    return directory_manifest(source, exclude, cache_dir)


def _prune(directory, keep_seconds, now, current):
    """Removes the archives (and their locks) unused for ``keep_seconds``."""
    try:
        names = os.listdir(directory)
    except OSError:
        return
    for name in names:
        if not name.endswith(".tar") or name == current:
            continue
        path = os.path.join(directory, name)
        try:
            if now - os.lstat(path).st_mtime > keep_seconds:
                os.unlink(path)
                os.unlink(path[:-len(".tar")] + ".lock")
        except OSError:
            pass


def shared_archive(source, manifest, lacking, cache_dir):
    """The archive of the ``lacking`` contents (``write_archive``'s format), built once for all the
    hosts that lack the same set and kept for an hour after its last use. Returns
    ``(path, files, bytes, "hit" | "miss")``."""
    chosen = lacking_files(manifest, lacking)
    size = sum(manifest[rel][1] for _digest, rel in chosen)
    key = hashlib.sha256("\n".join(digest for digest, _rel in chosen).encode()).hexdigest()[:32]
    directory = os.path.join(cache_dir, "archives")
    path = os.path.join(directory, key + ".tar")
    with _Locked(directory, key):
        if os.path.isfile(path):
            os.utime(path)
            return path, len(chosen), size, "hit"
        partial = "%s.%d.partial" % (path, os.getpid())
        try:
            files, size = write_archive(source, manifest, lacking, partial)
            os.chmod(partial, 0o600)
            os.rename(partial, path)
        finally:
            if os.path.lexists(partial):
                os.unlink(partial)
        _prune(directory, ARCHIVE_KEEP_SECONDS, time.time(), key + ".tar")
    return path, files, size, "miss"


def resolved_commit(workdir, key):
    """The commit a (source, version) pair resolved to earlier in this run, if it did: every host
    of the run gets the same commit even if the branch moves meanwhile."""
    try:
        with open(os.path.join(workdir, key + ".commit")) as handle:
            commit = handle.read().strip()
    except OSError:
        return None
    return commit or None


def remember_commit(workdir, key, commit):
    path = os.path.join(workdir, key + ".commit")
    partial = "%s.%d.partial" % (path, os.getpid())
    with open(partial, "w") as handle:
        handle.write(commit + "\n")
    os.replace(partial, path)


def _host_record_path(cache_dir, host, path, releases_dir):
    return os.path.join(cache_dir, "hosts", _key("host", host, path, releases_dir) + ".json")


def recorded_digest(cache_dir, host, path, releases_dir=None):
    """The manifest hash last seen live on (inventory host, root), or None. Only a hint: the host
    checks it against its own record before trusting it."""
    record = _load(_host_record_path(cache_dir, host, path, releases_dir), {"host": host, "path": path})
    if record is None:
        return None
    digest = record.get("digest")
    return digest if isinstance(digest, str) and len(digest) == 64 else None


def record_digest(cache_dir, host, path, releases_dir, digest):
    """Keeps ``digest`` (or forgets the record, with None) for (inventory host, root)."""
    target = _host_record_path(cache_dir, host, path, releases_dir)
    if digest is None:
        try:
            os.unlink(target)
        except OSError:
            pass
        return
    os.makedirs(os.path.dirname(target), mode=0o700, exist_ok=True)
    write_json(target, {"host": host, "path": path, "releases_dir": releases_dir, "digest": digest}, mode=0o600)


# Contents files unused for this long are removed when another is written.
CONTENTS_KEEP_SECONDS = 30 * 24 * 3600


def _contents_path(cache_dir, digest):
    return os.path.join(cache_dir, "contents", digest + ".json")


def remember_contents(cache_dir, digest, manifest):
    """Keeps the content hashes of the manifest whose hash is ``digest`` (one file per digest,
    shared by the hosts that hold it), for the next push to guess what a host lacks."""
    path = _contents_path(cache_dir, digest)
    if os.path.isfile(path):
        os.utime(path)
        return
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    contents = sorted({entry[3] for entry in manifest.values() if entry[0] == FILE})
    write_json(path, {"format": CACHE_FORMAT, "digest": digest, "contents": contents}, mode=0o600)
    now = time.time()
    directory = os.path.dirname(path)
    for name in os.listdir(directory):
        other = os.path.join(directory, name)
        try:
            if name.endswith(".json") and now - os.lstat(other).st_mtime > CONTENTS_KEEP_SECONDS:
                os.unlink(other)
        except OSError:
            pass


def expected_lacking(cache_dir, digest, manifest):
    """The contents of ``manifest`` that a host whose live release has the manifest hash
    ``digest`` lacks, as far as the controller knows (a guess the host checks); None when the
    controller does not know that release's contents."""
    record = _load(_contents_path(cache_dir, digest), {"format": CACHE_FORMAT, "digest": digest})
    if record is None:
        return None
    held = record.get("contents")
    if not isinstance(held, list):
        return None
    held = set(held)
    return sorted({entry[3] for entry in manifest.values() if entry[0] == FILE and entry[3] not in held})
