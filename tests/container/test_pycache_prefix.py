"""The role's prefix cache mode on a real host: the example application deployed into the stock
CGI root with `ansible-playbook site.yml` (as `make demo` does; Apache prepared by the test), its
caches below /var/cache/pycgi, none under the root, and real requests served from those caches.
"""
import json
import os
import re
import shutil

import pytest

from harness.apache import stanza_file, stanza_text
from harness.podman import REPO_ROOT, Container, require_podman

ROOT = "/usr/lib/cgi-bin"
PREFIX = "/var/cache/pycgi"
APP_URL = "/cgi-bin/hello.py"
RW_TYPE = "httpd_sys_rw_content_t"

# Runs in the container: (inode, mtime_ns, owner, mode) of every path below a directory.
STATE = r"""
import json, os, pwd, sys
found = {}
for directory, dirs, files in os.walk(sys.argv[1]):
    for name in [""] + dirs + files:
        path = os.path.join(directory, name) if name else directory
        st = os.lstat(path)
        found[path] = [st.st_ino, st.st_mtime_ns, pwd.getpwuid(st.st_uid).pw_name, oct(st.st_mode & 0o7777)]
print(json.dumps(found))
"""

LABELS = r"""
import json, os, subprocess, sys
paths = []
for directory, dirs, files in os.walk(sys.argv[1]):
    paths += [directory] + [os.path.join(directory, name) for name in files]
policy = subprocess.run(["matchpathcon"] + paths, capture_output=True, text=True, check=True).stdout
found = {}
for line in policy.splitlines():
    path, _tab, context = line.rpartition("\t")
    try:
        disk = os.getxattr(path, "security.selinux", follow_symlinks=False).decode().rstrip("\0").split(":")[2]
    except OSError:
        disk = None
    found[path] = [context.split(":")[2], disk]
print(json.dumps(found))
"""


def play(host, app, check_mode=False):
    """Runs site.yml with the prefix cache mode (in check mode when asked); returns the AnsibleRun."""
    return host.run_site({
        "pycgi_source": app,
        "pycgi_cache_mode": "prefix",
        "pycgi_manage_httpd": False,
        "pycgi_smoke_urls": [{"url": "http://localhost" + APP_URL, "contains": "pycgi example application"}],
    }, check_mode=check_mode)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The web server with the application deployed once in the prefix mode, Apache running."""
    require_podman()
    with Container.start(prefix="pycgi-prefix") as host:
        host.exec("a2enmod", "-q", "cgid")
        host.exec("systemctl", "start", "apache2")
        app = str(tmp_path_factory.mktemp("prefix") / "app")
        shutil.copytree(os.path.join(REPO_ROOT, "examples", "app"), app)
        # Check mode first, on the bare host: it predicts a change and creates nothing.
        run = play(host, app, check_mode=True)
        assert run.rc == 0 and run.recap["changed"] > 0, run.output[-3000:]
        assert host.exec("test", "-e", PREFIX, check=False).returncode != 0
        run = play(host, app)
        assert run.rc == 0, run.output[-3000:]
        yield host, app


def state(host, path):
    return json.loads(host.exec("python3", "-c", STATE, path).stdout)


def real_root(host):
    """The live release: the root is a symlink to it, and Python (which resolves a script's
    directory with realpath) keeps the caches of its imports under the prefix's copy of it."""
    return host.exec("readlink", "-e", ROOT).stdout.strip()


def test_no_pycache_under_the_root_and_caches_in_the_prefix(site):
    host, _app = site
    tree_cache = PREFIX + real_root(host)
    assert host.exec("find", ROOT + "/", "(", "-name", "__pycache__", "-o", "-name", "*.pyc", ")").stdout == ""
    caches = state(host, tree_cache)
    names = sorted(os.path.relpath(p, tree_cache) for p in caches if p.endswith(".pyc"))
    assert names == ["cgiapp/%s.cpython-311.pyc" % m for m in ("__init__", "inventory", "main", "render")] + [
        "hello.cpython-311.pyc"], names
    # The interpreter's own modules are cached there too (interpreter_modules), so that a request
    # finds the standard library's caches where PYTHONPYCACHEPREFIX sends Python to look.
    assert PREFIX + "/usr/lib/python3.11/json/decoder.cpython-311.pyc" in state(host, PREFIX)
    # The whole prefix belongs to the web server user, so Python can also add the caches of
    # modules imported from elsewhere.
    assert all(owner == "www-data" for _ino, _mtime, owner, _mode in state(host, PREFIX).values())
    prefix_state = state(host, PREFIX)[PREFIX]
    assert prefix_state[3] == "0o755"
    assert "    SetEnv PYTHONPYCACHEPREFIX %s\n" % PREFIX in stanza_text(host, ROOT)


def test_a_request_loads_the_application_from_the_prefix_and_rewrites_nothing(site):
    host, _app = site
    real = real_root(host)
    tree_cache = PREFIX + real
    everything = state(host, PREFIX)
    status, body = host.http_get(APP_URL)
    assert status == 200 and "pycgi example application" in body, body[-1000:]
    # A request writes nothing there: the standard library's caches were precompiled.
    assert state(host, PREFIX) == everything
    before = state(host, tree_cache)
    for _request in range(3):
        status, body = host.http_get(APP_URL)
        assert status == 200, body[-1000:]
        rows = re.findall(r"<tr><td>(cgiapp[\w.]*)</td><td>(\w+)</td></tr>", body)
        assert rows and all(cached == "yes" for _name, cached in rows), body
    assert state(host, tree_cache) == before
    assert host.exec("find", ROOT + "/", "-name", "__pycache__").stdout == ""

    # What the web server user's Python says about those imports, with the block's variable.
    proc = host.exec("python3", "-v", ROOT + "/hello.py", user="www-data", workdir="/",
                     env={"PYTHONPYCACHEPREFIX": PREFIX, "REQUEST_METHOD": "GET"})
    for module in ("main", "render", "inventory"):
        pyc = "%s/cgiapp/%s.cpython-311.pyc" % (tree_cache, module)
        assert "# code object from '%s'" % pyc in proc.stderr, proc.stderr[-3000:]
        assert "# %s matches %s/cgiapp/%s.py" % (pyc, real, module) in proc.stderr
    assert state(host, tree_cache) == before


def test_the_prefix_has_the_writable_cache_type(site):
    host, _app = site
    if host.exec("which", "matchpathcon", check=False).returncode != 0:
        pytest.skip("the test image has no SELinux tools")
    tree_cache = PREFIX + real_root(host)
    labels = json.loads(host.exec("python3", "-c", LABELS, PREFIX).stdout)
    # The policy gives the whole prefix the type, so what Python adds there at run time gets it
    # too (with SELinux enforcing; here the kernel's SELinux is off and new files get no label).
    assert labels and all(policy == RW_TYPE for policy, _disk in labels.values()), labels
    # What the role labeled: the prefix and the application's caches.
    labeled = {path: disk for path, (_policy, disk) in labels.items()
               if path == PREFIX or path == tree_cache or path.startswith(tree_cache + "/")}
    assert len(labeled) >= 7 and set(labeled.values()) == {RW_TYPE}, labeled


def test_a_second_run_changes_nothing(site):
    host, app = site
    run = play(host, app)
    assert run.rc == 0, run.output[-3000:]
    # The requests since the deploy wrote nothing to the prefix (the interpreter's own modules
    # were precompiled there), so nothing is left for the SELinux task to label either.
    assert run.recap["changed"] == 0, run.output[-3000:]
    # The role's report reads the prefix: every cache fresh, the block the one it expects.
    out = run.output
    assert re.search(r"cpython-311 \(/usr/bin/python3, Python 3\.11\.\d+\): 5 fresh, 0 stale, 0 missing", out), out
    assert "Apache: the pycgi __pycache__ block for %s is in %s\"" % (ROOT, stanza_file(ROOT)) in out, out
