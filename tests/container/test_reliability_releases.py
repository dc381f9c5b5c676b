"""Releases under live traffic: the role's pushes while a CGI application is being requested.

One container of the test image for the file (Apache with the prefork MPM and mod_cgi, started
by the test, so pycgi_manage_httpd is false), driven by `ansible-playbook site.yml`. The tests
run in file order, each starting where the one before ended: the stock root is first a plain
directory holding the application's version 0, deployed in place the way the role did before
releases; then a first push (the migration), a 1-file push, a 100-file push, a rollback and a
push that fails.

The application is written by the test on the controller: a package of MODULES modules, each
holding nothing but its own VERSION string, and a CGI script that imports every one of them and
prints each module's VERSION. The test knows every module's VERSION in every release, so a
response that imported modules of two releases is told apart from one of either release.
"""
import json
import os

import pytest

from harness import traffic
from harness.podman import Container, podman, require_podman
from harness.traffic import Traffic

ROOT = "/usr/lib/cgi-bin"
RELEASES = "/usr/lib/.cgi-bin.releases"
URL = "http://localhost/cgi-bin/versions.py"
MODULES = ["m%03d" % number for number in range(110)]
END = "end of page"
MAX_REQUESTS = 1500
MAX_SECONDS = 90
# Each thread rests this long between requests, so that the deploy is not starved of CPU.
PAUSE = 0.05
THREADS = 2
# The module that breaks the failing push, and the line of its syntax error.
BROKEN_MODULE, BROKEN_LINE = "m057", 4

# The CGI script: imports every module of the package, then prints each one's VERSION.
SCRIPT = '''#!/usr/bin/python3
"""Prints the VERSION of every module of the liveapp package."""
import importlib

NAMES = %r
modules = [importlib.import_module("liveapp." + name) for name in NAMES]
print("Content-Type: text/plain")
print()
for name, module in zip(NAMES, modules):
    print(name, module.VERSION)
print(%r)
'''

# What a response of the application says about its release: every "mNNN VERSION" line.
VERSION_LINES = r"^(m\d{3}) (\S+)$"


def signature(versions):
    """The version the load generator records for a response of a release with these versions."""
    return " ".join("%s=%s" % (name, versions[name]) for name in MODULES)


class Application:
    """The application's source on the controller, and the versions of its modules."""

    def __init__(self, path):
        self.path = path
        self.versions = {}
        os.makedirs(os.path.join(path, "liveapp"))
        with open(os.path.join(path, "liveapp", "__init__.py"), "w") as handle:
            handle.write('"""A package whose every module holds its own version."""\n')
        script = os.path.join(path, "versions.py")
        with open(script, "w") as handle:
            handle.write(SCRIPT % (MODULES, END))
        os.chmod(script, 0o755)

    def set(self, names, version, broken=None):
        """Gives the modules ``names`` this VERSION (``broken``: a syntax error at BROKEN_LINE)."""
        for name in names:
            text = '"""Module %s of the liveapp package."""\nVERSION = "%s"\n\n' % (name, version)
            if name == broken:
                text += "def broken(:\n"
            with open(os.path.join(self.path, "liveapp", name + ".py"), "w") as handle:
                handle.write(text)
            self.versions[name] = version
        return dict(self.versions)


class Host:
    """The container, the controller's application, and site.yml run against the one with the other."""

    def __init__(self, container, app):
        self.container = container
        self.app = app
        # The versions of the live release's modules, and of the release live before it.
        self.versions = self.previous = None

    def play(self, **extra):
        variables = {"pycgi_source": self.app.path, "pycgi_manage_httpd": False, "pycgi_report": False,
                     "pycgi_smoke_urls": [{"url": URL, "contains": END}]}
        variables.update(extra)
        return self.container.run_site(variables)

    def live(self):
        return self.container.exec("readlink", ROOT).stdout.strip()

    def served(self):
        status, body = self.container.http_get("/cgi-bin/versions.py")
        assert status == 200 and body.rstrip("\n").endswith(END), body[-1000:]
        return " ".join("%s=%s" % tuple(line.split(" ")) for line in body.splitlines() if line[:1] == "m")


@pytest.fixture(scope="module")
def host(tmp_path_factory):
    """Apache (prefork MPM, mod_cgi) serving version 0 of the application from the stock root, a
    plain directory the role manages in place (no source: precompiled, owned, labelled, and
    Apache's block written, as the role did before releases)."""
    require_podman()
    with Container.start(prefix="pycgi-rel-releases") as container:
        container.exec("a2dismod", "-q", "mpm_event")
        container.exec("a2enmod", "-q", "mpm_prefork")
        container.exec("a2enmod", "-q", "cgi")
        container.exec("systemctl", "start", "apache2")
        # The stock root on the server's own file system, as on a real host: the test image's
        # directory lies in a read-only layer of the container's overlayfs, which cannot rename
        # it (EXDEV), so its migration would copy it (a gap measured in docs/reliability.md's limits).
        container.exec("rmdir", ROOT)
        container.exec("mkdir", "-m", "0755", ROOT)
        app = Application(str(tmp_path_factory.mktemp("releases") / "app"))
        host = Host(container, app)
        host.versions = app.set(MODULES, "0")
        podman("cp", app.path + "/.", "%s:%s" % (container.name, ROOT))
        container.exec("chown", "-R", "root:root", ROOT)
        run = container.run_site({"pycgi_manage_httpd": False, "pycgi_report": False})
        assert run.rc == 0, run.output[-3000:]
        assert host.served() == signature(host.versions)
        yield host


def under_traffic(host, action):
    """Runs ``action()`` while the load generator requests the application from THREADS threads;
    returns (action's result, the generator's Summary, the time the action ended)."""
    load = Traffic(host.container, URL, version=VERSION_LINES, end="\n" + END, threads=THREADS, pause=PAUSE,
                   max_requests=MAX_REQUESTS, max_seconds=MAX_SECONDS)
    # A few requests against the finished deploy after it.
    return traffic.under_traffic(load, action, settle=2.0)


def judge(host, summary, ended, old, new, capsys, label):
    """Prints the numbers, then checks every response: a complete 200 page whose modules' versions
    are exactly those of the old or of the new release (never some of each), the new one for
    every request started after the run ended. Returns the number of responses of each."""
    records = summary.records
    expected = {signature(old): "old", signature(new): "new"}
    bad = summary.failed
    seen = summary.kinds(expected)
    counts = dict((kind, seen.count(kind)) for kind in sorted(set(seen)))
    with capsys.disabled():
        print("\n" + summary.describe(label, expected))
    if bad:
        # What the scripts of the failed requests wrote to stderr (Apache's AH01215 lines).
        errors = [line for line in host.container.read_file("/var/log/apache2/error.log").splitlines()
                  if "AH01215" in line or "versions.py" in line or "AH00128" in line]
        pytest.fail("%d failed responses: %s\nApache's error log: %s"
                    % (len(bad), [(r.status, r.tail[-200:]) for r in bad[:5]], "\n".join(errors[-20:])))
    assert len(records) >= 20, counts
    others = sorted(set(r.version for r, kind in zip(records, seen) if kind == "mixed or other"))
    assert others == [], "responses of neither release: %s" % others[:3]
    after = [kind for r, kind in zip(records, seen) if r.start > ended]
    assert after and set(after) == {"new"}, "responses to requests started after the run: %s" % counts
    return counts


# --- 2. live traffic: releases ---------------------------------------------------------------------

def test_first_push_migrates_the_stock_root_under_live_traffic(host, capsys):
    """The first push of the application (every module's version changes) into the stock root, a
    plain directory that the role migrates into a release and replaces by the symlink, converged
    with site.yml while a load generator on the container's loopback requests the script from two
    threads (at most 1500 requests or 90 s, 50 ms rest per request): every response is a complete
    200 page whose 110 modules' versions are exactly the old or the new release's, the new one for
    every request started after the run; the old directory is kept as a release."""
    old, new = host.versions, host.app.set(MODULES, "1")
    run, summary, ended = under_traffic(host, host.play)
    assert run.rc == 0, run.output[-3000:]
    host.versions = new
    metas = host.container.exec("find", RELEASES + "/.meta", "-name", "migrated-*.json").stdout.split()
    assert len(metas) == 1, metas
    method = json.loads(host.container.read_file(metas[0]))["method"]
    migrated = metas[0].replace("/.meta/", "/")[:-len(".json")]
    assert 'VERSION = "0"' in host.container.read_file(migrated + "/liveapp/m000.py")
    with capsys.disabled():
        print("\nmigration method: %s" % method)
    # The directory and the symlink swap names in one renameat2(RENAME_EXCHANGE).
    assert method == "exchange", method
    judge(host, summary, ended, old, new, capsys, "first push (migration of the plain directory)")
    assert host.container.exec("test", "-L", ROOT, check=False).returncode == 0
    assert host.served() == signature(new)


def test_one_file_push_under_live_traffic(host, capsys):
    """A push that changes one module: under traffic, every response is the old or the new
    release as a whole (the changed module's version never beside the other release's), the new
    one after the run."""
    before = host.live()
    old, new = host.versions, host.app.set(MODULES[:1], "2")
    run, summary, ended = under_traffic(host, host.play)
    assert run.rc == 0, run.output[-3000:]
    host.versions = new
    judge(host, summary, ended, old, new, capsys, "1-file push")
    assert host.live() != before and host.served() == signature(new)


def test_hundred_file_push_under_live_traffic(host, capsys):
    """A push that changes 100 of the 110 modules: under traffic, every response is the old or
    the new release as a whole, the new one after the run."""
    old, new = host.versions, host.app.set(MODULES[:100], "3")
    run, summary, ended = under_traffic(host, host.play)
    assert run.rc == 0, run.output[-3000:]
    host.previous, host.versions = old, new
    judge(host, summary, ended, old, new, capsys, "100-file push")
    assert host.served() == signature(new)


def test_rollback_under_live_traffic(host, capsys):
    """`pycgi_rollback: true` under traffic switches back to the release before (the 1-file
    push's): every response is one of the two releases as a whole, the earlier one after the run."""
    old, new = host.versions, host.previous
    run, summary, ended = under_traffic(host, lambda: host.play(pycgi_rollback=True))
    assert run.rc == 0, run.output[-3000:]
    host.versions = new
    judge(host, summary, ended, old, new, capsys, "rollback")
    assert host.served() == signature(new)


def test_failing_push_under_live_traffic_never_goes_live(host, capsys):
    """A push of ten changed modules, one of them with a syntax error: the play fails naming the
    file and the line; under traffic every response is a complete page of the live release, and
    only of it (the broken release never serves a request); the root's symlink is unchanged."""
    serving, before = host.versions, host.live()
    host.app.set(MODULES[50:60], "4", broken=BROKEN_MODULE)
    run, summary, ended = under_traffic(host, host.play)
    assert run.rc != 0, run.output[-3000:]
    assert "liveapp/%s.py:%d: SyntaxError" % (BROKEN_MODULE, BROKEN_LINE) in run.output, run.output[-3000:]
    counts = judge(host, summary, ended, serving, serving, capsys, "push that fails (syntax error)")
    assert set(counts) == {"new"}
    assert host.live() == before and host.served() == signature(serving)
