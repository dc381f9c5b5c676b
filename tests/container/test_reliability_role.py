"""The role under load and from outside: live traffic during code pushes, what HTTP and the web
server user can reach in both cache modes, SELinux labels, and no reload with a failing config.

One container for the file, driven by `ansible-playbook site.yml` as `make demo` drives it (the
podman connection; Apache prepared by the test, so pycgi_manage_httpd is false and no package
index is fetched). The tests run in file order on one host, each deploy building on the last:
writable deploy, code push under traffic, checks, switch to readonly with a push under traffic
(a reload), checks, a run against a config broken beforehand.
"""
import json
import os
import re
import shutil

import pytest

from harness import traffic
from harness.podman import REPO_ROOT, Container, require_podman
from harness.traffic import Traffic

ROOT = "/usr/lib/cgi-bin"
MAIN_CONFIG = "/etc/apache2/apache2.conf"
APP_URL = "http://localhost/cgi-bin/hello.py"
RW_TYPE = "httpd_sys_rw_content_t"
SCRIPT_TYPE = "httpd_sys_script_exec_t"
# The same root as plain files: without the role's block a .pyc would be handed out here (200).
FILES_ALIAS = """Alias "/cgi-files/" "%s/"
""" % ROOT
MAX_REQUESTS = 2000
MAX_SECONDS = 120
# Each thread rests this long between requests, so that the deploy is not starved of CPU.
PAUSE = 0.05

# The version a page of the example application prints.
APP_VERSION = r"pycgi example application (\S+) on Python"


# Runs in the container as the web server user: tries to create a file and a directory in every
# directory below the root and to open every file for writing; prints what succeeded.
WRITE_PROBE = r"""
import json, os, sys
root, done = sys.argv[1], []
for directory, dirs, files in os.walk(root):
    probe = os.path.join(directory, ".pycgi-write-probe")
    try:
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        os.unlink(probe)
        done.append(("create file in", directory))
    except OSError:
        pass
    try:
        os.mkdir(probe)
        os.rmdir(probe)
        done.append(("create directory in", directory))
    except OSError:
        pass
    for name in files:
        path = os.path.join(directory, name)
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW))
            done.append(("open for writing", path))
        except OSError:
            pass
print(json.dumps(done))
"""

# Every path below the root with its SELinux type: what the policy says (matchpathcon) and the
# label on disk.
LABELS = r"""
import json, os, subprocess, sys
root = sys.argv[1]
paths = [root]
for directory, dirs, files in os.walk(root):
    paths += [os.path.join(directory, name) for name in dirs + files]
policy = subprocess.run(["matchpathcon"] + paths, capture_output=True, text=True, check=True).stdout
found = {}
for line in policy.splitlines():
    path, _tab, context = line.rpartition("\t")
    disk = os.getxattr(path, "security.selinux", follow_symlinks=False).decode().rstrip("\0")
    found[path] = [context.split(":")[2], disk.split(":")[2]]
print(json.dumps(found))
"""


class Site:
    """site.yml against the container, with a controller-side copy of the example application."""

    def __init__(self, host, workdir):
        self.host = host
        self.app = os.path.join(workdir, "app")
        shutil.copytree(os.path.join(REPO_ROOT, "examples", "app"), self.app)

    def push_version(self, version):
        """A code push on the controller: a new version string and a changed renderer."""
        init = os.path.join(self.app, "cgiapp", "__init__.py")
        with open(init) as handle:
            text = handle.read()
        with open(init, "w") as handle:
            handle.write(re.sub(r'__version__ = "[^"]*"', '__version__ = "%s"' % version, text))
        with open(os.path.join(self.app, "cgiapp", "render.py"), "a") as handle:
            handle.write("\nPUSHED = %r\n" % version)

    def play(self, cache_mode):
        """Runs site.yml; returns the AnsibleRun."""
        return self.host.run_site({
            "pycgi_source": self.app,
            "pycgi_cache_mode": cache_mode,
            "pycgi_manage_httpd": False,
            "pycgi_smoke_urls": [{"url": APP_URL, "contains": "pycgi example application"}],
        })


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The web server with the application deployed once (writable caches), Apache running."""
    require_podman()
    with Container.start(prefix="pycgi-rel-role") as host:
        # The prefork MPM with mod_cgi: the setup in which a graceful reload under CGI traffic fails
        # no request (docs/reload-under-traffic.md; with mod_cgid a request that meets its CGI daemon
        # while a reload replaces it gets a 503, see tests/container/test_reload_under_traffic.py).
        host.exec("a2dismod", "-q", "mpm_event")
        host.exec("a2enmod", "-q", "mpm_prefork")
        host.exec("a2enmod", "-q", "cgi")
        host.put_file("/etc/apache2/conf-enabled/cgi-files.conf", FILES_ALIAS)
        host.exec("systemctl", "start", "apache2")
        deploy = Site(host, str(tmp_path_factory.mktemp("site")))
        run = deploy.play("writable")
        assert run.rc == 0, run.output[-3000:]
        yield deploy


def under_traffic(site, action):
    """Runs ``action()`` while the load generator requests the application from two threads;
    returns (action's result, the generator's Summary, the time the action ended)."""
    load = Traffic(site.host, APP_URL, version=APP_VERSION, end="</html>", threads=2, pause=PAUSE,
                   max_requests=MAX_REQUESTS, max_seconds=MAX_SECONDS)
    # A few requests against the finished deploy (seconds, on a loaded 2-core machine).
    return traffic.under_traffic(load, action, settle=3.0)


def report(capsys, label, summary):
    """Prints the numbers to the terminal, also when pytest captures the output."""
    with capsys.disabled():
        print("\n" + summary.describe(label))


def task_sections(output):
    """[(task name, its output)] of an ansible-playbook run."""
    parts = re.split(r"^(?:TASK|RUNNING HANDLER) \[(.*?)\] \**$", output, flags=re.M)
    return list(zip(parts[1::2], parts[2::2]))


def graceful_restarts(host):
    """How many times Apache has reloaded (graceful restarts in its error log)."""
    log = host.exec("cat", "/var/log/apache2/error.log").stdout
    # The event MPM's line, and the prefork MPM's.
    return len(re.findall(r"AH00493: SIGUSR1 received|AH00171: Graceful restart requested", log))


def apache_identity(host):
    """Main PID, start time and the last reload of the Apache service."""
    return host.exec("systemctl", "show", "apache2", "-p", "MainPID", "-p", "ExecMainStartTimestamp",
                     "-p", "ExecReload").stdout


def cache_urls(host):
    """URL paths (below /cgi-bin/ and /cgi-files/) of every .pyc and __pycache__ below the root."""
    # The root is a symlink to the live release: find follows it with the trailing slash.
    found = host.exec("find", ROOT + "/", "(", "-name", "*.pyc", "-o", "-name", "__pycache__", ")").stdout.split()
    assert any(p.endswith(".pyc") for p in found), "no caches to request"
    return [prefix + p[len(ROOT) + 1:] + ("/" if p.endswith("__pycache__") else "")
            for p in found for prefix in ("/cgi-bin/", "/cgi-files/")]


def assert_caches_never_served(host):
    # The plain-file alias does serve the tree (so a 403 below is the role's block at work).
    status, body = host.http_get("/cgi-files/cgiapp/render.py")
    assert status == 200 and "def table" in body
    statuses = {url: host.http_get(url)[0] for url in cache_urls(host)}
    assert set(statuses.values()) == {403}, statuses


def world_writable(host):
    """Paths below the root and in Apache's config that anyone may write (links aside)."""
    return host.exec("find", ROOT + "/", "/etc/apache2", "!", "-type", "l", "-perm", "-0002").stdout.split("\n")[:-1]


def live_release(host):
    """The directory the root's symlink points at: what Apache serves, what the labels are on."""
    return host.exec("readlink", "-e", ROOT).stdout.strip()


def web_user_writes(host):
    return [tuple(item) for item in json.loads(host.exec("runuser", "-u", "www-data", "--", "python3", "-c",
                                                         WRITE_PROBE, live_release(host)).stdout)]


def labels(host):
    return json.loads(host.exec("python3", "-c", LABELS, live_release(host)).stdout)


def assert_traffic_clean(summary, ended, old, new):
    """Every response a complete page of the old or new version, the new one after the deploy."""
    failures = summary.failed
    assert failures == [], failures[:5]
    assert summary.served >= 20, summary.describe("traffic")
    versions = dict(summary.versions)
    assert {v for v, n in versions.items() if n} <= {old, new}, summary.versions
    after = [r.version for r in summary.ended_after(ended + 0.2)]
    assert after and set(after) == {new}, "responses after the deploy ended: %s" % after


# --- 2. live traffic -----------------------------------------------------------------------------

def test_code_push_under_live_traffic_drops_no_request(site, capsys):
    """A code push (two modules changed: a new version string and a changed renderer) converged
    with site.yml while a load generator on the container's loopback requests the application
    from two threads (at most 2000 requests or 120 s): every response is a complete 200 page of
    the old or the new version, the new one once the deploy has ended."""
    site.push_version("1.1")
    run, summary, ended = under_traffic(site, lambda: site.play("writable"))
    report(capsys, "code push, writable caches", summary)
    assert run.rc == 0, run.output[-3000:]
    assert_traffic_clean(summary, ended, "1.0", "1.1")


# --- 5. security properties, writable mode -------------------------------------------------------

def test_writable_mode_serves_no_cache_and_lets_the_web_user_write_only_caches(site):
    """Writable mode, checked from outside: every .pyc and __pycache__ answers 403 through the
    CGI alias and through a plain-file alias of the same root; www-data can create or write files
    only inside __pycache__ directories (tried as www-data in every directory and on every file),
    and nothing there or in Apache's config is world-writable; SELinux (policy and labels on
    disk) gives the writable type to __pycache__ paths only, and the script type to every
    script and module."""
    host = site.host
    assert_caches_never_served(host)

    writes = web_user_writes(host)
    assert writes, "www-data should be able to write its caches in writable mode"
    outside_caches = [w for w in writes if "/__pycache__" not in w[1]]
    assert outside_caches == []
    assert world_writable(host) == []

    found = labels(host)
    for path, (policy, disk) in found.items():
        if "/__pycache__" in path:
            assert (policy, disk) == (RW_TYPE, RW_TYPE), path
        else:
            assert (policy, disk) == (SCRIPT_TYPE, SCRIPT_TYPE), path
    assert any(p.endswith(".py") for p in found) and any(p.endswith(".pyc") for p in found)


# --- 2. live traffic: switch to readonly, with a reload -------------------------------------------

def test_switch_to_readonly_with_a_push_under_live_traffic_drops_no_request(site, capsys):
    """The same deploy switched to readonly caches with another code push, under traffic: the
    Apache block changes, so the handler tests the config and Apache reloads gracefully (once)
    while requests keep coming; with the prefork MPM and mod_cgi (pycgi_apache_mpm: prefork) not
    one request fails or answers wrong across the reload."""
    host = site.host
    reloads = graceful_restarts(host)
    site.push_version("1.2")
    run, summary, ended = under_traffic(site, lambda: site.play("readonly"))
    report(capsys, "code push + switch to readonly (with an Apache reload)", summary)
    assert run.rc == 0, run.output[-3000:]
    assert graceful_restarts(host) == reloads + 1
    assert_traffic_clean(summary, ended, "1.1", "1.2")


# --- 5. security properties, readonly mode --------------------------------------------------------

def test_readonly_mode_serves_no_cache_and_the_web_user_can_write_nothing(site):
    """Readonly mode, checked from outside: every .pyc and __pycache__ answers 403; www-data can
    create, write or open for writing nothing anywhere below the root, nothing is world-writable;
    SELinux gives no path the writable type; the application still answers, its modules' caches
    in place."""
    host = site.host
    assert_caches_never_served(host)
    assert web_user_writes(host) == []
    assert world_writable(host) == []
    found = labels(host)
    assert [p for p, types in found.items() if RW_TYPE in types] == []
    status, body = host.http_get("/cgi-bin/hello.py")
    assert status == 200 and "application 1.2" in body
    assert re.search(r"<td>cgiapp\.main</td><td>yes</td>", body), body


# --- 5. no reload with a failing config -----------------------------------------------------------

def test_no_reload_when_the_config_was_already_broken(site):
    """An Apache config broken before the run (a bad directive in conf-enabled) while the run
    would change the role's block (switching back to writable): the play fails at that task,
    naming the broken file and line, before any handler; the config files are byte-identical,
    Apache is not reloaded (same main PID, start and reload times, no graceful restart logged)
    and keeps serving the old config with 200s."""
    host = site.host
    broken = "/etc/apache2/conf-enabled/zz-broken.conf"
    host.put_file(broken, "# left behind by someone\nThisIsNotAnApacheDirective on\n")
    try:
        before = (host.exec("sha256sum", MAIN_CONFIG, broken).stdout, apache_identity(host), graceful_restarts(host))
        run = site.play("writable")
        out = run.output
        assert run.rc != 0, out[-3000:]
        failed = [task for task, text in task_sections(out) if "fatal:" in text or "failed:" in text]
        stanza_task = "pycgi.hosting.cgi_host : Deny web access to the caches in the Apache configuration"
        assert failed == [stanza_task], out[-3000:]
        assert "zz-broken.conf" in out and "line 2" in out, out[-3000:]
        assert "RUNNING HANDLER" not in out
        after = (host.exec("sha256sum", MAIN_CONFIG, broken).stdout, apache_identity(host), graceful_restarts(host))
        assert after == before
        status, body = host.http_get("/cgi-bin/hello.py")
        assert status == 200 and "application 1.2" in body
    finally:
        host.exec("rm", "-f", broken)
