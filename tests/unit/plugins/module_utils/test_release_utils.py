"""The release domain code on real files in tmp_path: the manifest of a source, what a host
lacks, building a release from hard links and an archive, the switch, pruning, tar safety."""
import base64
import hashlib
import json
import io
import multiprocessing
import os
import stat
import subprocess
import tarfile
import threading

import pytest

from ansible_collections.pycgi.hosting.plugins.module_utils import _release as rel
from conftest import INTERPRETERS, child_env


def make_tree(root, files, modes=None, links=None):
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
        os.chmod(path, (modes or {}).get(name, 0o644))
    for name, target in (links or {}).items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        os.symlink(target, root / name)
    return root


def manifest_of(source, exclude=()):
    return rel.build_manifest(str(source), rel.walk_source(str(source), exclude))


def push(layout, source, exclude=(), shared_paths=(), pycache_prefix=None):
    """What the controller and host do for one push, without Ansible: plan, archive, build.
    Returns (release id, plan, counts)."""
    manifest = manifest_of(source, exclude)
    plan = rel.plan_release(layout, manifest, shared_paths)
    if plan["reuse"]:
        return plan["reuse"], plan, None
    archive = None
    if plan["lacking"]:
        archive = os.path.join(os.path.dirname(layout.releases), "push.tar")
        rel.write_archive(str(source), manifest, plan["lacking"], archive)
    release_id = rel.new_release_id(plan["digest"]) + "-%d" % len(layout.releases_on_disk())
    counts = rel.build_release(layout, manifest, release_id, plan["digest"], archive=archive,
                               shared_paths=shared_paths, pycache_prefix=pycache_prefix)
    return release_id, plan, counts


APP = {"hello.py": "#!/usr/bin/python3\nimport lib.util\nprint(lib.util.VERSION)\n",
       "lib/__init__.py": "", "lib/util.py": "VERSION = 1\n", "static/readme.txt": "hi\n"}


# ----------------------------------------------------------------------------- manifest

def test_manifest_leaves_out_vcs_bytecode_and_user_patterns(tmp_path):
    src = make_tree(tmp_path / "src", dict(APP, **{".git/config": "x", "lib/__pycache__/util.cpython-311.pyc": "x",
                                                   "stray.pyc": "x", "debug.log": "x", "tests/test_a.py": "x",
                                                   "lib/notes.log": "x"}))
    manifest = manifest_of(src, exclude=["*.log", "tests"])
    assert sorted(manifest) == ["hello.py", "lib", "lib/__init__.py", "lib/util.py", "static", "static/readme.txt"]


def test_manifest_records_type_size_mode_and_sha256(tmp_path):
    src = make_tree(tmp_path / "src", APP, modes={"hello.py": 0o750})
    os.chmod(src / "static", 0o711)
    manifest = manifest_of(src)
    assert manifest["hello.py"] == ["f", len(APP["hello.py"]), 0o750,
                                    hashlib.sha256(APP["hello.py"].encode()).hexdigest()]
    assert manifest["static"] == ["d", 0, 0o711, ""]


def test_symlinks_are_kept_as_links_never_followed(tmp_path):
    src = make_tree(tmp_path / "src", APP, links={"alias.py": "hello.py", "lib/up": "../static", "dangling": "nowhere"})
    manifest = manifest_of(src)
    assert manifest["alias.py"] == ["l", 0, 0o777, "hello.py"]
    assert manifest["lib/up"] == ["l", 0, 0o777, "../static"]
    assert manifest["dangling"][3] == "nowhere"
    assert "lib/up/readme.txt" not in manifest


@pytest.mark.parametrize("name,target", [("lib/evil", "../../etc/passwd"), ("lib/evil", "/etc/passwd"),
                                         ("evil", "dl/..")])
def test_link_escaping_the_source_is_refused_by_name(tmp_path, name, target):
    """dl/.. looks inside the tree when read as text; the real path leaves it (dl is the root)."""
    src = make_tree(tmp_path / "src", APP, links={"dl": ".", name: target})
    with pytest.raises(rel.ReleaseError, match="symlink %s " % name):
        manifest_of(src)


def test_fifo_in_source_is_refused(tmp_path):
    src = make_tree(tmp_path / "src", APP)
    os.mkfifo(src / "pipe")
    with pytest.raises(rel.ReleaseError, match="pipe"):
        manifest_of(src)


def _cached(args):
    manifest, state = rel.cached_manifest(*args)
    return state


def test_manifest_is_hashed_once_for_many_processes_and_again_after_a_change(tmp_path):
    src = make_tree(tmp_path / "src", APP)
    cache = str(tmp_path / "cache")
    with multiprocessing.get_context("fork").Pool(6) as pool:
        states = pool.map(_cached, [(str(src), [], cache)] * 6)
    assert sorted(states) == ["hit"] * 5 + ["miss"]
    assert rel.cached_manifest(str(src), [], cache)[1] == "hit"
    (src / "lib" / "util.py").write_text("VERSION = 2\n")
    manifest, state = rel.cached_manifest(str(src), [], cache)
    assert state == "miss" and manifest == manifest_of(src)
    assert rel.cached_manifest(str(src), ["*.txt"], cache)[1] == "miss"


# ----------------------------------------------------------------------------- planning

def test_a_new_host_lacks_every_distinct_content(tmp_path, layout):
    src = make_tree(tmp_path / "src", dict(APP, **{"copy_of_util.py": "VERSION = 1\n"}))
    plan = rel.plan_release(layout, manifest_of(src))
    assert len(plan["lacking"]) == 4  # lib/util.py and copy_of_util.py share one content
    assert plan["reuse"] is None


def test_contents_of_any_release_are_not_lacking(tmp_path, layout):
    src = make_tree(tmp_path / "src", APP)
    push(layout, src)
    (src / "moved").mkdir()
    os.rename(src / "lib" / "util.py", src / "moved" / "util.py")  # same content, new path
    os.chmod(src / "hello.py", 0o755)                               # same content, new mode
    (src / "new.py").write_text("NEW = 1\n")
    plan = rel.plan_release(layout, manifest_of(src))
    assert plan["lacking"] == [manifest_of(src)["new.py"][3]]
    assert plan["linked"] == 3 and plan["copied"] == 1


def test_a_file_edited_in_place_on_the_host_is_not_a_link_source(tmp_path, layout):
    src = make_tree(tmp_path / "src", APP)
    first = push(layout, src)[0]
    with open(os.path.join(layout.release_path(first), "lib", "util.py"), "a") as handle:
        handle.write("# edited on the host\n")
    (src / "static" / "readme.txt").write_text("changed\n")  # a new release, not a reuse
    plan = rel.plan_release(layout, manifest_of(src))
    assert manifest_of(src)["lib/util.py"][3] in plan["lacking"]


def test_identical_source_reuses_its_release(tmp_path, layout):
    src = make_tree(tmp_path / "src", APP)
    first = push(layout, src)[0]
    again, plan, counts = push(layout, src)
    assert again == first and counts is None and plan["lacking"] == []
    (src / "lib" / "util.py").write_text("VERSION = 2\n")
    second = push(layout, src)[0]
    (src / "lib" / "util.py").write_text("VERSION = 1\n")
    assert push(layout, src)[0] == first
    assert second != first


# ----------------------------------------------------------------------------- building

def test_release_built_from_links_and_archive_with_its_pycache(tmp_path, layout, any_python):
    _version, python = any_python
    src = make_tree(tmp_path / "src", APP, modes={"hello.py": 0o755}, links={"alias.py": "hello.py"})
    first, plan, counts = push(layout, src)
    assert counts["extracted"] == 4 and counts["linked"] == 0
    first_dir = layout.release_path(first)
    subprocess.run([python, "-m", "compileall", "-q", os.path.join(first_dir, "lib")], check=True, env=child_env())
    (src / "hello.py").write_text(APP["hello.py"] + "# v2\n")
    os.chmod(src / "hello.py", 0o755)
    archive = str(tmp_path / "host" / "push.tar")
    second, plan, counts = push(layout, src)
    with tarfile.open(archive) as tar:
        assert [m.name for m in tar] == [manifest_of(src)["hello.py"][3]]
    second_dir = layout.release_path(second)
    assert counts["linked"] == 3 and counts["extracted"] == 1 and counts["pycache_copied"] == 2
    old_pyc, new_pyc = (os.path.join(d, "lib", "__pycache__", os.listdir(os.path.join(first_dir, "lib", "__pycache__"))[0])
                        for d in (first_dir, second_dir))
    assert os.stat(old_pyc).st_ino != os.stat(new_pyc).st_ino and os.stat(new_pyc).st_nlink == 1
    assert os.stat(os.path.join(second_dir, "lib", "util.py")).st_ino == os.stat(
        os.path.join(first_dir, "lib", "util.py")).st_ino
    assert os.readlink(os.path.join(second_dir, "alias.py")) == "hello.py"
    assert stat.S_IMODE(os.stat(os.path.join(second_dir, "hello.py")).st_mode) == 0o755
    assert (tmp_path / "src" / "hello.py").read_bytes() == open(os.path.join(second_dir, "hello.py"), "rb").read()
    # The linked caches are current: the interpreter imports them without compiling.
    out = subprocess.run([python, "-v", "-c", "import lib.util"], cwd=second_dir, capture_output=True, text=True,
                         env=child_env(), check=True)
    assert "matches" in out.stderr and "code object from" in out.stderr and "wrote" not in out.stderr


def test_identical_sources_each_get_their_own_caches_in_the_next_release(tmp_path, layout, any_python):
    """Identical sources (empty __init__.py and models.py side by side, as Django's test apps
    have) are hard links to one file of the earlier release: each gets caches named after
    itself, current, and building the release does not fail on a cache copied twice."""
    _version, python = any_python
    files = {"app/__init__.py": "", "app/models.py": "", "app/views.py": "VIEW = 1\n",
             "other/__init__.py": "", "other/empty.py": "", "other/data.txt": ""}
    src = make_tree(tmp_path / "src", files)
    first, _plan, _counts = push(layout, src)
    subprocess.run([python, "-m", "compileall", "-q", layout.release_path(first)], check=True, env=child_env())
    (src / "app" / "views.py").write_text("VIEW = 2\n")
    second, _plan, counts = push(layout, src)
    second_dir = layout.release_path(second)
    # The four empty .py sources, each with its own cache; the changed views.py has none yet.
    assert counts["linked"] == 5 and counts["pycache_copied"] == 4, counts
    for package, modules in (("app", ("__init__", "models")), ("other", ("__init__", "empty"))):
        cached = sorted(name.split(".")[0] for name in os.listdir(os.path.join(second_dir, package, "__pycache__")))
        assert cached == sorted(modules), (package, cached)
    out = subprocess.run([python, "-v", "-c", "import app.models, other.empty"], cwd=second_dir,
                         capture_output=True, text=True, env=child_env(), check=True)
    for module in ("app/__init__", "app/models", "other/__init__", "other/empty"):
        assert "matches %s/%s.py" % (second_dir, module) in out.stderr, out.stderr[-2000:]
    assert "# wrote" not in out.stderr and "# created" not in out.stderr


SELINUX_XATTR = "security.selinux"


def _label(path):
    try:
        return os.getxattr(str(path), SELINUX_XATTR, follow_symlinks=False)
    except OSError:
        return None


def test_a_new_release_takes_the_labels_of_the_release_it_follows(tmp_path, layout, any_python):
    """New paths of a release (its directories, changed files, links, copied caches) get the
    SELinux label of the same path in the live release, so that labelling it finds them right;
    a path new to the tree gets none (the labelling step gives it one)."""
    _version, python = any_python
    src = make_tree(tmp_path / "src", APP, modes={"hello.py": 0o755}, links={"alias.py": "hello.py"})
    first, _plan, _counts = push(layout, src)
    first_dir = layout.release_path(first)
    subprocess.run([python, "-m", "compileall", "-q", first_dir], check=True, env=child_env())
    rel.point_at(layout, first)
    labels = {}
    try:
        for directory, subdirs, files in os.walk(first_dir):
            for name in [""] + subdirs + files:
                path = os.path.join(directory, name)
                label = ("system_u:object_r:t%d_t:s0\0" % len(labels)).encode()
                os.setxattr(path, SELINUX_XATTR, label, follow_symlinks=False)
                labels[os.path.relpath(path, first_dir)] = label
    except OSError as exc:
        pytest.skip("security.selinux cannot be set here: %s" % exc)
    (src / "hello.py").write_text(APP["hello.py"] + "# v2\n")
    (src / "lib" / "new.py").write_text("NEW = 1\n")
    second, _plan, counts = push(layout, src)
    second_dir = layout.release_path(second)
    assert counts["pycache_copied"] == 2 and counts["extracted"] == 2, counts
    pycache = [os.path.join("lib", "__pycache__", name) for name in os.listdir(os.path.join(first_dir, "lib", "__pycache__"))]
    for path in [".", "lib", "static", "hello.py", "alias.py", "lib/util.py", "lib/__pycache__"] + pycache:
        assert _label(os.path.join(second_dir, path)) == labels[os.path.normpath(path)], path
    # hello.py's new content is a new inode: the label was copied, the first release keeps its own.
    assert os.stat(os.path.join(second_dir, "hello.py")).st_ino != os.stat(os.path.join(first_dir, "hello.py")).st_ino
    assert _label(os.path.join(second_dir, "lib", "new.py")) is None


def tar_with(path, members):
    with tarfile.open(path, "w") as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)


def _info(name, kind=tarfile.REGTYPE, size=0, **extra):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.size = size
    for key, value in extra.items():
        setattr(info, key, value)
    return info


@pytest.mark.parametrize("member,message", [
    (lambda sha: (_info("/" + sha, size=1), b"x"), "absolute"),
    (lambda sha: (_info("../" + sha, size=1), b"x"), r"'\.\.'"),
    (lambda sha: (_info(sha, tarfile.CHRTYPE, devmajor=1, devminor=3), None), "device"),
    (lambda sha: (_info(sha, tarfile.SYMTYPE, linkname="/etc/passwd"), None), "symlink"),
    (lambda sha: (_info("0" * 64, size=1), b"x"), "not content this release lacks"),
])
def test_unsafe_archive_members_are_refused_and_leave_nothing(tmp_path, layout, member, message):
    src = make_tree(tmp_path / "src", {"a.py": "A = 1\n"})
    manifest = manifest_of(src)
    plan = rel.plan_release(layout, manifest)
    archive = str(tmp_path / "bad.tar")
    tar_with(archive, [member(plan["lacking"][0])])
    with pytest.raises(rel.ReleaseError, match=message):
        rel.build_release(layout, manifest, "r1", plan["digest"], archive=archive)
    assert sorted(os.listdir(layout.releases)) == [".meta"]
    assert os.listdir(layout.meta) == []


def test_failure_mid_build_leaves_no_release_and_the_live_link_alone(tmp_path, layout):
    src = make_tree(tmp_path / "src", APP)
    first = push(layout, src)[0]
    rel.point_at(layout, first)
    (src / "hello.py").write_text("changed\n")
    (src / "new.py").write_text("new\n")
    manifest = manifest_of(src)
    plan = rel.plan_release(layout, manifest)
    archive = str(tmp_path / "short.tar")
    # The first lacking content is correct, the second one's bytes do not match its hash.
    first_sha, second_sha = plan["lacking"]
    by_sha = {v[3]: k for k, v in manifest.items() if v[0] == "f"}
    good = (src / by_sha[first_sha]).read_bytes()
    tar_with(archive, [(_info(first_sha, size=len(good)), good), (_info(second_sha, size=3), b"bad")])
    with pytest.raises(rel.ReleaseError, match="does not match its manifest hash"):
        rel.build_release(layout, manifest, "broken", plan["digest"], archive=archive)
    assert sorted(os.listdir(layout.releases)) == [".meta", first]
    assert os.readlink(layout.path).endswith(first)
    assert not os.path.exists(layout.meta_path("broken"))


def test_archive_never_writes_through_a_symlink(tmp_path, layout):
    """A manifest whose file sits below a symlink of the same manifest is refused."""
    manifest = {"lib": ["l", 0, 0o777, "."], "lib/x.py": ["f", 1, 0o644, "a" * 64]}
    with pytest.raises(rel.ReleaseError, match="parent lib is not a directory"):
        rel.plan_release(layout, manifest)


# ----------------------------------------------------------------------------- live link

def test_switch_is_one_rename_the_root_never_missing(tmp_path, layout):
    src = make_tree(tmp_path / "src", APP)
    first = push(layout, src)[0]
    (src / "lib" / "util.py").write_text("VERSION = 2\n")
    second = push(layout, src)[0]
    rel.point_at(layout, first)
    missing = []
    stop = threading.Event()

    def watch():
        while not stop.is_set():
            if not os.path.exists(os.path.join(layout.path, "hello.py")):
                missing.append(1)
    watcher = threading.Thread(target=watch)
    watcher.start()
    for i in range(300):
        rel.point_at(layout, second if i % 2 == 0 else first)
    stop.set()
    watcher.join()
    assert missing == []
    assert os.path.islink(layout.path) and os.readlink(layout.path) == os.path.join(".cgi-bin.releases", first)


def test_with_a_pycache_prefix_the_caches_follow_the_release_below_the_prefix(tmp_path, layout, any_python):
    """The prefix cache mode: Python keeps the caches below PYTHONPYCACHEPREFIX at the release's
    real path, so a new release gets the caches of its unchanged sources there, current, and a
    pruned release's caches go with it."""
    _version, python = any_python
    if subprocess.run([python, "-c", "import sys; sys.exit(sys.version_info < (3, 8))"], check=False).returncode:
        pytest.skip("PYTHONPYCACHEPREFIX needs Python 3.8")
    prefix = str(tmp_path / "prefix")
    src = make_tree(tmp_path / "src", APP, modes={"hello.py": 0o755})
    first, _plan, _counts = push(layout, src, pycache_prefix=prefix)
    env = dict(child_env(), PYTHONPYCACHEPREFIX=prefix)
    subprocess.run([python, "-m", "compileall", "-q", layout.release_path(first)], check=True, env=env)
    (src / "lib" / "util.py").write_text("VERSION = 2\n")
    second, _plan, counts = push(layout, src, pycache_prefix=prefix)
    second_dir = layout.release_path(second)
    # hello.py and lib/__init__.py are unchanged; util.py changed and has no cache yet.
    assert counts["pycache_copied"] == 2, counts
    assert not os.path.exists(os.path.join(second_dir, "lib", "__pycache__"))
    out = subprocess.run([python, "-v", "-c", "import lib, lib.util"], cwd=second_dir, capture_output=True,
                         text=True, env=env, check=True)
    cached = rel.prefix_cache_dir(prefix, os.path.join(second_dir, "lib"))
    assert "code object from '%s/__init__." % cached in out.stderr, out.stderr[-2000:]
    assert "matches %s/lib/__init__.py" % os.path.realpath(second_dir) in out.stderr
    # Only the changed module was compiled.
    written = [line for line in out.stderr.splitlines() if line.startswith("# created ")]
    assert len(written) == 1 and "/lib/util." in written[0], written
    assert rel.prune(layout, 1, {second}, pycache_prefix=prefix) == [first]
    assert not os.path.exists(rel.prefix_cache_dir(prefix, layout.release_path(first)))
    assert os.path.isdir(rel.prefix_cache_dir(prefix, second_dir))


def test_prune_keeps_the_newest_and_never_the_live_or_previous(tmp_path, layout):
    ids = []
    for n in range(7):
        src = make_tree(tmp_path / ("src%d" % n), {"a.py": "A = %d\n" % n})
        ids.append(push(layout, src)[0])
    assert rel.prune(layout, 3, {ids[0], ids[1]}, check_mode=True) == ids[2:6]
    assert os.path.isdir(layout.release_path(ids[2]))
    assert rel.prune(layout, 3, {ids[0], ids[1]}) == ids[2:6]
    assert layout.releases_on_disk() == [ids[0], ids[1], ids[6]]
    assert not os.path.exists(layout.meta_path(ids[2]))


def test_shared_paths_are_links_out_of_the_release(tmp_path, layout):
    src = make_tree(tmp_path / "src", APP)
    assert rel.ensure_shared(layout, ["data", "var/sessions"]) == ["data", "var/sessions"]
    release_id = push(layout, src, shared_paths=["data", "var/sessions"])[0]
    rel.point_at(layout, release_id)
    with open(os.path.join(layout.path, "var", "sessions", "s1"), "w") as handle:
        handle.write("kept")
    assert os.path.islink(os.path.join(layout.release_path(release_id), "var", "sessions"))
    assert open(os.path.join(layout.shared, "var", "sessions", "s1")).read() == "kept"
    assert rel.ensure_shared(layout, ["data", "var/sessions"]) == []


def test_source_file_at_a_shared_path_is_refused(tmp_path, layout):
    src = make_tree(tmp_path / "src", dict(APP, **{"data/seed.json": "{}"}))
    with pytest.raises(rel.ReleaseError, match="source file data/seed.json is at the shared path data"):
        rel.plan_release(layout, manifest_of(src), ["data"])


def test_migration_swaps_a_plain_directory_atomically_and_keeps_its_extra_files(tmp_path, layout):
    os.mkdir(layout.path)
    (tmp_path / "host" / "cgi-bin" / "hello.py").write_text("old\n")
    (tmp_path / "host" / "cgi-bin" / "uploaded.dat").write_text("data\n")
    src = make_tree(tmp_path / "src", APP)
    release_id = push(layout, src)[0]
    assert rel.files_not_in(layout.path, manifest_of(src)) == ["uploaded.dat"]
    inode = os.stat(layout.path).st_ino
    migrated, method = rel.migrate_directory(layout)
    assert method == "exchange"  # renameat2(RENAME_EXCHANGE) on this file system
    # The root now leads, through the link, to the same tree: a request that resolved the root
    # as a directory before the migration still finds its old files below the root's path.
    assert os.readlink(layout.path) == os.path.join(".cgi-bin.releases", migrated)
    assert os.stat(layout.path).st_ino == inode == os.stat(layout.release_path(migrated)).st_ino
    assert open(os.path.join(layout.path, "hello.py")).read() == "old\n"
    assert open(os.path.join(layout.release_path(migrated), "uploaded.dat")).read() == "data\n"
    rel.point_at(layout, release_id)
    assert os.readlink(layout.path) == os.path.join(".cgi-bin.releases", release_id)
    assert open(os.path.join(layout.path, "hello.py")).read() == APP["hello.py"]
    assert [n for n in os.listdir(os.path.dirname(layout.path)) if n.endswith(".new")] == []


def test_a_compressed_manifest_decodes_to_the_same_manifest_and_hash(tmp_path):
    manifest = manifest_of(make_tree(tmp_path / "src", APP))
    text = rel.encode_manifest(manifest)
    plain = json.dumps(manifest)
    assert text.startswith(rel.COMPRESSED_PREFIX) and len(text) < len(plain)
    assert rel.decode_manifest(text) == rel.decode_manifest(plain) == json.loads(plain)
    assert rel.manifest_digest(rel.decode_manifest(text)) == rel.manifest_digest(manifest)
    for bad in ("zlib:!!!", "zlib:" + base64.b64encode(b"plain").decode(), "{"):
        with pytest.raises(rel.ReleaseError, match="manifest is not valid JSON"):
            rel.decode_manifest(bad)


def test_release_with_digest_checks_the_record_and_the_files(tmp_path, layout):
    source = make_tree(tmp_path / "src", APP)
    first, plan, _counts = push(layout, source)
    (source / "lib" / "util.py").write_text("VERSION = 2\n")
    second, plan2, _counts = push(layout, source)
    rel.point_at(layout, second)
    found = rel.release_with_digest(layout, plan["digest"], prefer=second)
    assert found[0] == first and found[1]["lib/util.py"][1] == len("VERSION = 1\n")
    assert rel.release_with_digest(layout, plan2["digest"], prefer=second)[0] == second
    # Another launcher setting or shared path is another release.
    assert rel.release_with_digest(layout, plan2["digest"], entry_launchers=True) == (None, None)
    assert rel.release_with_digest(layout, plan2["digest"], shared_paths=["data"]) == (None, None)
    assert rel.release_with_digest(layout, "0" * 64) == (None, None)
    with pytest.raises(rel.ReleaseError, match="not a sha256"):
        rel.release_with_digest(layout, "../x")
    # A file changed on the host: that release no longer answers for its hash.
    live_file = os.path.join(layout.release_path(second), "static", "readme.txt")
    os.unlink(live_file)
    with open(live_file, "w") as handle:
        handle.write("changed\n")
    assert rel.release_with_digest(layout, plan2["digest"], prefer=second) == (None, None)
    # A record whose manifest no longer hashes to its recorded digest is not trusted.
    meta = rel.read_json(layout.meta_path(first))
    meta["manifest"]["hello.py"][3] = "0" * 64
    rel.write_json(layout.meta_path(first), meta)
    assert rel.release_with_digest(layout, plan["digest"]) == (None, None)


def test_manifest_diff():
    old = {"a": ["f", 1, 0o644, "1" * 64], "b": ["f", 1, 0o644, "2" * 64], "d": ["d", 0, 0o755, ""]}
    new = {"a": ["f", 1, 0o755, "1" * 64], "c": ["l", 0, 0o777, "a"], "d": ["d", 0, 0o700, ""]}
    assert rel.manifest_diff(old, new) == {"added": ["c"], "changed": ["a"], "removed": ["b"]}


# ----------------------------------------------------------------------------- the interpreters

@pytest.mark.parametrize("version", sorted(INTERPRETERS, key=lambda v: tuple(map(int, v.split(".")))))
def test_sys_path0_is_the_real_directory_of_the_release(tmp_path, version):
    """The documented claim: a script run through the root's symlink imports from the release
    the link pointed at when it started, since CPython resolves sys.path[0] with realpath."""
    releases = tmp_path / ".cgi-bin.releases"
    for name in ("r1", "r2"):
        make_tree(releases / name, {"run.py": "import sys, mod\nprint(sys.path[0], mod.V)\n",
                                    "mod.py": "V = %r\n" % name})
    os.symlink(".cgi-bin.releases/r1", tmp_path / "cgi-bin")
    out = subprocess.run([INTERPRETERS[version], str(tmp_path / "cgi-bin" / "run.py")], capture_output=True,
                         text=True, env=child_env(), check=True).stdout.split()
    assert out == [os.path.realpath(str(releases / "r1")), "r1"]
