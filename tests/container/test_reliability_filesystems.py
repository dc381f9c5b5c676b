"""Full and read-only file systems, in a container of its own: a small tmpfs that fills up during
the compile, and a tree bind-mounted read-only (the same directory is also mounted writable
elsewhere, so the test can prepare it and change it behind the read-only view).
"""
import json
import os
import shutil
import tempfile
import uuid

import pytest

from harness.podman import Container, podman, podman_available
from harness.podman import test_image as image_name

SMALL = "/mnt/small"
SMALL_SIZE_KB = 2048
RO, RW = "/srv/ro", "/srv/rw"

# Every cache of this interpreter's tag below a root either loads completely or is named; the
# sources' sha256 and any temporary files are reported too.
CHECK = r"""
import hashlib, importlib.util, json, marshal, os, sys
tag, report = sys.implementation.cache_tag, {"loaded": 0, "bad": [], "tmp": [], "sources": {}}
for directory, _dirs, files in os.walk(sys.argv[1]):
    for name in files:
        path = os.path.join(directory, name)
        if name.endswith(".pycgi-tmp"):
            report["tmp"].append(path)
        elif name.endswith(".py"):
            with open(path, "rb") as handle:
                report["sources"][path] = hashlib.sha256(handle.read()).hexdigest()
        elif name.endswith(".%s.pyc" % tag):
            with open(path, "rb") as handle:
                data = handle.read()
            try:
                assert data[:4] == importlib.util.MAGIC_NUMBER
                marshal.loads(data[16:])
                report["loaded"] += 1
            except Exception as exc:
                report["bad"].append("%s: %r" % (path, exc))
print(json.dumps(report))
"""

# Every path below a root with its owner, mode, inode and content hash.
STATE = r"""
import hashlib, json, os, stat, sys
found = {}
for directory, dirs, files in os.walk(sys.argv[1]):
    for path in [directory] + [os.path.join(directory, name) for name in files]:
        st = os.lstat(path)
        digest = None
        if stat.S_ISREG(st.st_mode):
            with open(path, "rb") as handle:
                digest = hashlib.sha256(handle.read()).hexdigest()
        found[path] = [st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode), st.st_ino, digest]
print(json.dumps(found))
"""

# Fills a file system up, then frees ``keep`` KiB of it again.
FILL = r"""
import os, sys
path, keep = sys.argv[1], int(sys.argv[2])
fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
try:
    while True:
        os.write(fd, b"\0" * 4096)
except OSError:
    pass
os.ftruncate(fd, max(0, os.fstat(fd).st_size - keep * 1024))
os.close(fd)
"""

# Writes ``count`` modules of about 6 KB (whose caches are about as big) below a root.
MODULES = r"""
import os, sys
root, count = sys.argv[1], int(sys.argv[2])
body = "".join("def f%d(x):\n    return [x * %d + i for i in range(%d)]\n\n" % (i, i, i) for i in range(80))
for index in range(count):
    directory = os.path.join(root, "pkg%d" % (index % 4))
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, "mod%02d.py" % index), "w") as handle:
        handle.write("N = %d\n%s" % (index, body))
"""


class Host(Container):
    def check(self, root):
        return json.loads(self.exec("python3", "-c", CHECK, root).stdout)

    def state(self, root):
        return json.loads(self.exec("python3", "-c", STATE, root).stdout)


@pytest.fixture(scope="module")
def shared_dir():
    path = tempfile.mkdtemp(prefix="pycgi-rel-ro-")
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path)


@pytest.fixture(scope="module")
def host(shared_dir):
    """A container with a small tmpfs and one host directory mounted writable and read-only."""
    if not podman_available():
        pytest.fail("container tests need podman and PYCGI_TEST_IMAGE: run them with `make container-tests`")
    name = "pycgi-rel-fs-%s" % uuid.uuid4().hex[:8]
    podman("run", "-d", "--name", name, "--hostname", name, "--systemd=always", "--tmpfs", "/run",
           "--tmpfs", "/tmp:exec", "--tmpfs", "%s:rw,size=%dk,mode=0755" % (SMALL, SMALL_SIZE_KB),
           "-v", "%s:%s" % (shared_dir, RW), "-v", "%s:%s:ro" % (shared_dir, RO), image_name(), "/sbin/init")
    container = Host(name)
    try:
        container.wait_for_systemd()
        yield container
    finally:
        container.remove()


# --- 1. bad input: full and read-only file systems ------------------------------------------------

def test_full_file_system_during_the_compile_leaves_no_torn_cache(host):
    """The tmpfs holding the tree fills up while the caches are written: the task fails naming
    the caches it could not write (no space left on device); every cache that is there loads,
    no temporary file is left, the sources are intact. Once space is freed the next run reports
    changed=true, the one after it changed=false."""
    root = SMALL + "/cgi"
    host.exec("python3", "-c", MODULES, root, "40")
    filler = SMALL + "/filler"
    host.exec("python3", "-c", FILL, filler, "64")
    sources = host.check(root)["sources"]

    full = host.run_module("precompile", {"path": root})
    assert full["failed"] is True, full
    assert full["errors"] and all("No space left on device" in e["msg"] for e in full["errors"]), full["errors"]
    assert all(e["path"].startswith(root + "/") for e in full["errors"])
    report = host.check(root)
    assert report["bad"] == [] and report["tmp"] == [] and report["sources"] == sources, report
    assert 0 < report["loaded"] < 40, "the file system should fill up part way (%d written)" % report["loaded"]

    host.exec("rm", filler)
    resumed = host.run_module("precompile", {"path": root})
    assert not resumed["failed"] and resumed["changed"] is True, json.dumps(resumed["errors"])[:2000]
    report = host.check(root)
    assert (report["loaded"], report["bad"], report["tmp"]) == (40, [], [])
    again = host.run_module("precompile", {"path": root})
    assert not again["failed"] and again["changed"] is False, again


def test_read_only_file_system(host):
    """A tree on a read-only mount: with current caches precompile reports no change and no
    error (what a read-only image wants); after a source changes behind it (and an orphan cache
    appears) it fails naming the cache it cannot write and the orphan it cannot remove (read-only
    file system); pycache_owner fails naming the path; selinux_context fails naming it before it
    adds any rule; httpd_pycache with its config on the read-only mount fails naming it. Nothing
    on the mount changes, nor the SELinux policy."""
    host.put_file(RW + "/app.py", "A = 1\n")
    host.put_file(RW + "/pkg/__init__.py", "")
    host.put_file(RW + "/pkg/util.py", "U = 1\n")
    prepared = host.run_module("precompile", {"path": RW})
    assert not prepared["failed"] and prepared["changed"] is True, prepared

    fresh = host.run_module("precompile", {"path": RO})
    assert not fresh["failed"] and fresh["changed"] is False, fresh

    host.put_file(RW + "/pkg/util.py", "U = 2  # changed behind the read-only view\n")
    host.put_file(RW + "/pkg/__pycache__/gone.cpython-311.pyc", "orphan\n")
    before = host.state(RO)
    stale = host.run_module("precompile", {"path": RO})
    assert stale["failed"] is True, stale
    errors = {e["path"]: e["msg"] for e in stale["errors"]}
    assert sorted(errors) == [RO + "/pkg/__pycache__/gone.cpython-311.pyc",
                              RO + "/pkg/__pycache__/util.cpython-311.pyc"], errors
    assert all("Read-only file system" in msg for msg in errors.values()), errors
    assert host.state(RO) == before

    owner = host.run_module("pycache_owner", {"path": RO})
    assert owner["failed"] is True and "Read-only file system" in owner["msg"] and RO in owner["msg"], owner
    assert host.state(RO) == before

    policy = host.exec("semanage", "fcontext", "-l", "-C").stdout
    labels = host.run_module("selinux_context", {"path": [RO]})
    assert labels["failed"] is True and RO in labels["msg"] and "read-only" in labels["msg"].lower(), labels
    assert host.exec("semanage", "fcontext", "-l", "-C").stdout == policy
    assert host.state(RO) == before

    host.exec("cp", "/etc/apache2/apache2.conf", RW + "/apache2.conf")
    before = host.state(RO)
    config = host.run_module("httpd_pycache", {"path": "/usr/lib/cgi-bin", "dest": RO + "/apache2.conf", "placement": "block",
                                               "validate": False})
    assert config["failed"] is True and RO + "/apache2.conf" in config["msg"], config
    assert "Read-only file system" in config["msg"], config["msg"]
    assert host.state(RO) == before
