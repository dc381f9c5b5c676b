"""The release action's controller caches on real files in tmp_path: the source's hashes shared
by processes (as Ansible's forks share them), edits between runs, files written in the same clock
tick as their hashing, git commits, and the archives shared by hosts lacking the same contents."""
import hashlib
import multiprocessing
import os
import stat
import tarfile
import time

import pytest

from ansible_collections.pycgi.hosting.plugins.module_utils import _release as rel
from ansible_collections.pycgi.hosting.plugins.plugin_utils import _release_cache as cache

APP = {"hello.py": "#!/usr/bin/python3\nimport lib.util\nprint(lib.util.VERSION)\n",
       "lib/__init__.py": "", "lib/util.py": "VERSION = 1\n", "static/readme.txt": "hi\n"}


def make_tree(root, files, settle=True):
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    os.symlink("lib/util.py", str(root / "util_link.py"))
    if settle:
        # Older than the time stamps' granularity: hashed once, not read again.
        time.sleep(cache.FINE_GRANULARITY_NS / 1e9 + 0.05)
    return root


def manifest_of(source, exclude=()):
    return rel.build_manifest(str(source), rel.walk_source(str(source), exclude))


def _in_process(args):
    manifest, info = cache.directory_manifest(*args)
    return manifest, info


def test_one_process_hashes_the_others_wait_and_reuse(tmp_path):
    src = make_tree(tmp_path / "src", APP)
    store = str(tmp_path / "cache")
    with multiprocessing.get_context("fork").Pool(6) as pool:
        results = pool.map(_in_process, [(str(src), [], store)] * 6)
    expected = manifest_of(src)
    assert all(manifest == expected for manifest, _info in results)
    infos = sorted((info["state"], info["hashed"], info["reread"]) for _manifest, info in results)
    assert infos == [("hit", 0, 0)] * 5 + [("miss", len(APP), 0)]


def test_a_same_size_edit_between_runs_is_hashed_again(tmp_path):
    src = make_tree(tmp_path / "src", APP)
    store = str(tmp_path / "cache")
    cache.directory_manifest(str(src), [], store)
    util = src / "lib" / "util.py"
    before = os.stat(str(util))
    util.write_text("VERSION = 2\n")
    # Same size, and the old mtime put back: the edit still shows in ctime.
    os.utime(str(util), ns=(before.st_atime_ns, before.st_mtime_ns))
    manifest, info = cache.directory_manifest(str(src), [], store)
    assert (info["state"], info["hashed"]) == ("miss", 1)
    assert manifest == manifest_of(src)
    assert manifest["lib/util.py"][3] == hashlib.sha256(b"VERSION = 2\n").hexdigest()
    assert cache.directory_manifest(str(src), [], store)[1]["state"] == "hit"


def test_added_removed_and_excluded_files(tmp_path):
    src = make_tree(tmp_path / "src", APP)
    store = str(tmp_path / "cache")
    cache.directory_manifest(str(src), [], store)
    (src / "static" / "readme.txt").unlink()
    (src / "new.py").write_text("x = 1\n")
    manifest, info = cache.directory_manifest(str(src), [], store)
    assert (info["state"], info["hashed"]) == ("miss", 1) and manifest == manifest_of(src)
    manifest, info = cache.directory_manifest(str(src), ["*.txt", "new.py"], store)
    assert info["state"] == "miss" and manifest == manifest_of(src, ["*.txt", "new.py"])


class SimulatedClock:
    """A clock that runs behind the real one and that ``sleep`` advances without waiting: the
    test decides when the files' time stamps count as recent."""

    def __init__(self, behind_ns):
        self.behind = behind_ns
        self.slept = []

    def __call__(self):
        return time.time_ns() - self.behind

    def sleep(self, seconds):
        self.slept.append(seconds)
        self.behind -= int(seconds * 1e9) + 1


def test_an_edit_in_the_clock_tick_of_its_hashing_is_not_cached(tmp_path, monkeypatch):
    """A write in the same clock tick as the hash keeps mtime, size and (on such a file system)
    ctime. This machine's file system stamps nanoseconds, so the test simulates the coarse one:
    the stat key leaves ctime out and the edit puts the old mtime back."""
    monkeypatch.setattr(cache, "stat_key", lambda st: [st.st_mode, st.st_size, st.st_mtime_ns, st.st_ino])
    monkeypatch.setattr(cache, "settled_at", lambda st: st.st_mtime_ns + cache.granularity_ns(st))
    src = make_tree(tmp_path / "src", APP, settle=False)
    util = src / "lib" / "util.py"
    store = str(tmp_path / "cache")
    edited = []

    def reader(path, clock):
        result = cache.read_hash(path, clock)
        if path == str(util) and not edited:
            st = os.stat(path)
            util.write_text("VERSION = 2\n")
            os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
            edited.append(path)
        return result

    clock = SimulatedClock(0)
    manifest, info = cache.directory_manifest(str(src), [], store, clock=clock, sleep=clock.sleep, reader=reader)
    assert edited and clock.slept and info["reread"] == len(APP)
    assert manifest["lib/util.py"][3] == hashlib.sha256(b"VERSION = 2\n").hexdigest()
    manifest, info = cache.directory_manifest(str(src), [], store)
    assert info["state"] == "hit"
    assert manifest["lib/util.py"][3] == hashlib.sha256(b"VERSION = 2\n").hexdigest()


def test_a_settled_file_is_read_once(tmp_path):
    src = make_tree(tmp_path / "src", APP, settle=False)
    clock = SimulatedClock(-10 * 10 ** 9)  # ten seconds ahead: every stamp is old
    manifest, info = cache.directory_manifest(str(src), [], str(tmp_path / "c"), clock=clock, sleep=clock.sleep)
    assert (info["hashed"], info["reread"], clock.slept) == (len(APP), 0, [])
    assert manifest == manifest_of(src)


def test_a_file_stamped_in_the_future_is_never_cached(tmp_path):
    src = make_tree(tmp_path / "src", APP)
    future = time.time_ns() + 3600 * 10 ** 9
    os.utime(str(src / "hello.py"), ns=(future, future))
    store = str(tmp_path / "cache")
    clock = SimulatedClock(0)
    first = cache.directory_manifest(str(src), [], store, clock=clock, sleep=clock.sleep)[1]
    assert (first["hashed"], first["untrusted"], clock.slept) == (len(APP), 1, [])
    again = cache.directory_manifest(str(src), [], store)[1]
    assert (again["state"], again["hashed"]) == ("miss", 1)


def test_a_git_commit_is_hashed_once_wherever_it_was_exported(tmp_path):
    src = make_tree(tmp_path / "export-1", APP)
    store = str(tmp_path / "cache")
    manifest, info = cache.source_manifest(str(src), [], store, commit="a" * 40)
    assert (info["state"], info["hashed"]) == ("miss", len(APP)) and manifest == manifest_of(src)
    again, info = cache.source_manifest(str(tmp_path / "export-elsewhere"), [], store, commit="a" * 40)
    assert info["state"] == "hit" and again == manifest
    assert cache.source_manifest(str(src), ["*.txt"], store, commit="a" * 40)[1]["state"] == "miss"
    assert cache.source_manifest(str(src), [], store, commit="b" * 40)[1]["state"] == "miss"


def _archive(args):
    return cache.shared_archive(*args)


def test_hosts_lacking_the_same_contents_share_one_archive(tmp_path):
    src = make_tree(tmp_path / "src", APP)
    store = str(tmp_path / "cache")
    manifest = manifest_of(src)
    lacking = sorted({v[3] for v in manifest.values() if v[0] == rel.FILE})
    with multiprocessing.get_context("fork").Pool(4) as pool:
        results = pool.map(_archive, [(str(src), manifest, lacking, store)] * 4)
    assert len({path for path, _f, _b, _s in results}) == 1
    assert sorted(state for _p, _f, _b, state in results) == ["hit"] * 3 + ["miss"]
    size = sum(len(c) for c in set(APP.values()))
    assert {(files, size_) for _p, files, size_, _s in results} == {(len(lacking), size)}
    path = results[0][0]
    with tarfile.open(path) as archive:
        for member in archive.getmembers():
            assert hashlib.sha256(archive.extractfile(member).read()).hexdigest() == member.name
    # Named by contents, so a later edit of the source does not make it wrong: another set
    # of lacking contents is another archive.
    (src / "lib" / "util.py").write_text("VERSION = 3\n")
    new = manifest_of(src)
    other = cache.shared_archive(str(src), new, [new["lib/util.py"][3]], store)
    assert other[0] != path and other[1:] == (1, len("VERSION = 3\n"), "miss")


def test_archives_unused_for_an_hour_are_removed(tmp_path):
    src = make_tree(tmp_path / "src", APP)
    store = str(tmp_path / "cache")
    manifest = manifest_of(src)
    old = cache.shared_archive(str(src), manifest, [manifest["hello.py"][3]], store)[0]
    hour_ago = time.time() - cache.ARCHIVE_KEEP_SECONDS - 60
    os.utime(old, (hour_ago, hour_ago))
    cache.shared_archive(str(src), manifest, [manifest["lib/util.py"][3]], store)
    assert not os.path.exists(old)


def test_a_content_the_manifest_lacks_is_refused(tmp_path):
    src = make_tree(tmp_path / "src", APP)
    with pytest.raises(rel.ReleaseError, match="does not hold"):
        cache.shared_archive(str(src), manifest_of(src), ["0" * 64], str(tmp_path / "cache"))


def test_the_digest_seen_on_a_host_is_kept_per_host_and_root(tmp_path):
    cache_dir = str(tmp_path / "cache")
    digest = "a" * 64
    assert cache.recorded_digest(cache_dir, "web1", "/srv/cgi-bin") is None
    cache.record_digest(cache_dir, "web1", "/srv/cgi-bin", None, digest)
    assert cache.recorded_digest(cache_dir, "web1", "/srv/cgi-bin") == digest
    assert cache.recorded_digest(cache_dir, "web2", "/srv/cgi-bin") is None
    assert cache.recorded_digest(cache_dir, "web1", "/srv/other") is None
    assert cache.recorded_digest(cache_dir, "web1", "/srv/cgi-bin", "/srv/releases") is None
    records = os.listdir(os.path.join(cache_dir, "hosts"))
    assert len(records) == 1 and stat.S_IMODE(os.stat(os.path.join(cache_dir, "hosts", records[0])).st_mode) == 0o600
    # A damaged record is no record.
    with open(os.path.join(cache_dir, "hosts", records[0]), "w") as handle:
        handle.write("{damaged")
    assert cache.recorded_digest(cache_dir, "web1", "/srv/cgi-bin") is None
    cache.record_digest(cache_dir, "web1", "/srv/cgi-bin", None, digest)
    cache.record_digest(cache_dir, "web1", "/srv/cgi-bin", None, None)
    assert cache.recorded_digest(cache_dir, "web1", "/srv/cgi-bin") is None


def test_the_contents_of_a_digest_seen_live_give_what_the_next_push_sends(tmp_path):
    cache_dir = str(tmp_path / "cache")
    src = make_tree(tmp_path / "src", APP)
    before = manifest_of(src)
    digest = rel.manifest_digest(before)
    assert cache.expected_lacking(cache_dir, digest, before) is None
    cache.remember_contents(cache_dir, digest, before)
    assert cache.expected_lacking(cache_dir, digest, before) == []
    (src / "lib" / "util.py").write_text("VERSION = 2\n")
    (src / "new.py").write_text("NEW = 1\n")
    (src / "copy.py").write_text("VERSION = 1\n")  # content the host holds under another name
    after = manifest_of(src)
    assert cache.expected_lacking(cache_dir, digest, after) == sorted(
        hashlib.sha256(text).hexdigest() for text in (b"VERSION = 2\n", b"NEW = 1\n"))
    # A damaged or foreign record is no record: the host is asked.
    path = os.path.join(cache_dir, "contents", digest + ".json")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    with open(path, "w") as handle:
        handle.write('{"format": 2, "digest": "%s", "contents": "not a list"}' % ("b" * 64))
    assert cache.expected_lacking(cache_dir, digest, after) is None


def test_contents_unused_for_a_month_are_removed(tmp_path):
    cache_dir = str(tmp_path / "cache")
    src = make_tree(tmp_path / "src", APP)
    manifest = manifest_of(src)
    cache.remember_contents(cache_dir, "c" * 64, manifest)
    old = os.path.join(cache_dir, "contents", "c" * 64 + ".json")
    month = time.time() - cache.CONTENTS_KEEP_SECONDS - 60
    os.utime(old, (month, month))
    cache.remember_contents(cache_dir, "d" * 64, manifest)
    assert sorted(os.listdir(os.path.join(cache_dir, "contents"))) == ["d" * 64 + ".json"]
