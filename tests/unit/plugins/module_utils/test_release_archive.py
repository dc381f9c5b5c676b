"""The host's reader of archives of contents and the threaded build, on real files in tmp_path:
the strict tar reader against Python's tarfile, damaged and truncated archives, and a release
built on several threads against one built on one."""
import io
import os
import tarfile

import pytest

from ansible_collections.pycgi.hosting.plugins.module_utils import _release as rel

from test_release_utils import make_tree, manifest_of  # noqa: E402  (same directory)


def tree(root, dirs=12, per_dir=9):
    """A tree with nested packages, contents repeated across directories and an executable."""
    files = {}
    for d in range(dirs):
        base = "/".join("p%d" % i for i in range(d % 4 + 1)) + "/d%d" % d
        for f in range(per_dir):
            files["%s/m%d.py" % (base, f)] = "X = %d\n" % (f if f % 3 else d * 100 + f)
        files["%s/__init__.py" % base] = ""
    files["run.cgi"] = "#!/usr/bin/python3\nprint('ok')\n"
    return make_tree(root, files, modes={"run.cgi": 0o755})


def members_by_tarfile(path):
    with tarfile.open(path) as tar:
        return [(m.name, m.size, int(m.mtime), tar.extractfile(m).read() if m.isreg() else None) for m in tar]


def members_by_reader(path):
    with open(path, "rb") as handle:
        data = handle.read()
    return [(name, size, mtime, data[start:start + size] if kind in (b"0", b"\0") else None)
            for name, kind, start, size, mtime in rel._tar_members(path, data)]


@pytest.mark.parametrize("fmt", [tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT])
def test_the_reader_agrees_with_tarfile(tmp_path, fmt):
    """Names (long ones through a ustar prefix, a GNU long name or a pax path), sizes, mtimes
    and data read as tarfile reads them, in every format tarfile writes."""
    path = str(tmp_path / "a.tar")
    long_name = "/".join(["d" * 40] * 3) + "/" + "f" * 60
    with tarfile.open(path, "w", format=fmt) as tar:
        for name, data, mtime in [("a" * 64, b"one\n", 1700000000), ("b" * 64, b"", 0),
                                  (long_name, b"x" * 5000, 1234567890.0 if fmt == tarfile.PAX_FORMAT else 1)]:
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(data), mtime
            tar.addfile(info, io.BytesIO(data))
    assert members_by_reader(path) == members_by_tarfile(path)
    assert members_by_reader(path)[2][0] == long_name


def test_the_reader_reads_write_archive_output(tmp_path, layout):
    src = tree(tmp_path / "src")
    manifest = manifest_of(src)
    plan = rel.plan_release(layout, manifest)
    path = str(tmp_path / "push.tar")
    rel.write_archive(str(src), manifest, plan["lacking"], path)
    assert members_by_reader(path) == members_by_tarfile(path)
    assert rel.archive_contents(path) == set(plan["lacking"])


def damaged(tmp_path, layout, cut=None, flip=None, raw=None):
    src = tree(tmp_path / "src")
    manifest = manifest_of(src)
    plan = rel.plan_release(layout, manifest)
    path = str(tmp_path / "push.tar")
    rel.write_archive(str(src), manifest, plan["lacking"], path)
    with open(path, "rb") as handle:
        data = bytearray(handle.read())
    if cut is not None:
        data = data[:cut]
    if flip is not None:
        data[flip] ^= 0x01
    with open(path, "wb") as handle:
        handle.write(raw if raw is not None else bytes(data))
    return manifest, plan, path


@pytest.mark.parametrize("damage,message", [
    (dict(cut=512 + 3), "member [0-9a-f]{64} is truncated"),
    (dict(cut=512 * 2), "ends before tar's end-of-archive block"),
    (dict(cut=512 * 2 + 100), "ends inside a header"),
    (dict(flip=10), "no valid tar header at byte 0"),
    (dict(flip=124 + 3), "no valid tar header at byte 0"),
    (dict(raw=b"PK\x03\x04" + b"\0" * 2000), "no valid tar header at byte 0"),
    (dict(raw=b""), "ends before tar's end-of-archive block"),
])
def test_a_damaged_archive_is_refused_before_any_file_is_written(tmp_path, layout, monkeypatch, damage, message):
    manifest, plan, path = damaged(tmp_path, layout, **damage)
    written = []
    real = rel._write_from
    monkeypatch.setattr(rel, "_write_from", lambda *a: written.append(a[1]) or real(*a))
    with pytest.raises(rel.ReleaseError, match=message):
        rel.build_release(layout, manifest, "r1", plan["digest"], archive=path)
    assert written == []
    assert sorted(os.listdir(layout.releases)) == [".meta"]
    assert os.listdir(layout.meta) == []


def test_a_missing_archive_names_it(tmp_path, layout):
    src = tree(tmp_path / "src")
    manifest = manifest_of(src)
    plan = rel.plan_release(layout, manifest)
    with pytest.raises(rel.ReleaseError, match="archive %s cannot be read" % (tmp_path / "none.tar")):
        rel.build_release(layout, manifest, "r1", plan["digest"], archive=str(tmp_path / "none.tar"))


def snapshot(root):
    found = {}
    for top, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(top, name)
            st = os.lstat(path)
            data = open(path, "rb").read() if os.path.isfile(path) and not os.path.islink(path) else None
            found[os.path.relpath(path, root)] = (st.st_mode, st.st_mtime_ns if data is not None else None, data)
    return found


def build_twice(tmp_path, threads, monkeypatch):
    """A first push and a push with one file changed, built with ``threads`` threads; returns
    both trees, the counts of the second build and its recorded mtimes."""
    monkeypatch.setattr(rel, "BUILD_THREADS", threads)
    layout = rel.Layout(str(tmp_path / ("host%d" % threads) / "app"))
    os.makedirs(layout.meta)
    src = tree(tmp_path / ("src%d" % threads))
    for top, _dirs, files in os.walk(str(src)):
        for name in files:
            os.utime(os.path.join(top, name), (1700000000, 1700000000))
    out = []
    for step in range(2):
        if step:
            (src / "p0" / "d0" / "m1.py").write_text("X = 'changed'\n")
            os.utime(str(src / "p0" / "d0" / "m1.py"), (1700000001, 1700000001))
        manifest = manifest_of(src)
        plan = rel.plan_release(layout, manifest)
        archive = str(tmp_path / ("push%d-%d.tar" % (threads, step)))
        rel.write_archive(str(src), manifest, plan["lacking"], archive)
        counts = rel.build_release(layout, manifest, "r%d" % step, plan["digest"], archive=archive, validated=True)
        meta = rel.read_json(layout.meta_path("r%d" % step))
        out.append((snapshot(layout.release_path("r%d" % step)), counts, meta["mtimes"]))
    return out


def test_threaded_build_makes_the_same_release_as_one_thread(tmp_path, monkeypatch):
    one = build_twice(tmp_path, 1, monkeypatch)
    four = build_twice(tmp_path, 4, monkeypatch)
    assert one == four
    first, second = four
    # The first push wrote every file from the archive, the second linked all but one.
    assert first[1]["extracted"] == len([k for k, v in first[0].items() if v[2] is not None])
    assert second[1]["extracted"] == 1 and second[1]["linked"] == first[1]["extracted"] - 1
    # The recorded mtimes are the files' own.
    assert {k: v[1] for k, v in second[0].items() if v[2] is not None} == second[2]


def test_an_error_on_one_thread_removes_the_partial_release(tmp_path, layout, monkeypatch):
    src = tree(tmp_path / "src")
    manifest = manifest_of(src)
    plan = rel.plan_release(layout, manifest)
    archive = str(tmp_path / "push.tar")
    rel.write_archive(str(src), manifest, plan["lacking"], archive)
    real = rel._write_from

    def failing(data, path, *rest):
        if path.endswith("d5/m4.py"):
            raise OSError(28, "No space left on device", path)
        return real(data, path, *rest)

    monkeypatch.setattr(rel, "_write_from", failing)
    with pytest.raises(OSError, match="No space left"):
        rel.build_release(layout, manifest, "r1", plan["digest"], archive=archive)
    assert sorted(os.listdir(layout.releases)) == [".meta"]
    assert os.listdir(layout.meta) == []


def test_in_threads_keeps_the_order_and_stops_at_the_first_error():
    assert rel._in_threads(lambda x: x * x, list(range(200)), threads=4) == [x * x for x in range(200)]
    done = []

    def work(x):
        if x == 3:
            raise ValueError("item 3")
        done.append(x)

    with pytest.raises(ValueError, match="item 3"):
        rel._in_threads(work, list(range(10000)), threads=4)
    # The other threads stop taking items once one has failed.
    assert len(done) < 9999
