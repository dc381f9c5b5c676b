"""The role from every state a user's server starts in, up to CGI answering over HTTP.

A bare server (the PYCGI_BARE_IMAGE image: debootstrap minbase with systemd and python3, no
Apache, no package index) converges from nothing, twice, the second run changing nothing and
neither restarting nor reloading Apache. Then the states of an existing server, on the test
image (Apache installed, stopped, no CGI module enabled): stopped; running without mod_cgid;
running with it; and the state that a graceful reload after `a2enmod cgid` leaves (mod_cgid
loaded, no CGI daemon, every CGI request a 503), which only a restart repairs.

Every run goes through site.yml with the role's defaults (pycgi_manage_httpd: true) and a smoke
URL, and the page is requested again from inside the host afterwards.
"""
import os
import re
import shutil

import pytest

from harness.podman import REPO_ROOT, Container, podman_available

APP_PATH = "/cgi-bin/hello.py"
APP_TEXT = "pycgi example application"
# Apache's line for a graceful restart (systemctl reload) in its error log.
GRACEFUL = re.compile(r"AH00493: SIGUSR1 received")


def start(image_variable, prefix):
    if not podman_available() or not os.environ.get(image_variable):
        pytest.fail("container tests need podman and %s: run them with `make container-tests`" % image_variable)
    return Container.start(image=os.environ[image_variable], prefix=prefix)


@pytest.fixture
def app(tmp_path):
    source = tmp_path / "app"
    shutil.copytree(os.path.join(REPO_ROOT, "examples", "app"), str(source))
    return str(source)


def site_vars(app):
    return {
        "pycgi_source": app,
        "pycgi_smoke_urls": [{"url": "http://localhost" + APP_PATH, "contains": APP_TEXT}],
    }


def apache_state(host):
    """(main PID, graceful restarts logged so far, CGI daemon socket listening) of the host's Apache."""
    pid = int(host.exec("systemctl", "show", "--property=MainPID", "--value", "apache2").stdout.strip() or 0)
    log = host.exec("cat", "/var/log/apache2/error.log", check=False).stdout
    sockets = host.exec("cat", "/proc/net/unix").stdout
    return pid, len(GRACEFUL.findall(log)), ("cgisock.%d\n" % pid) in sockets


def assert_serves_the_application(host):
    status, body = host.http_get(APP_PATH)
    assert status == 200 and APP_TEXT in body, (status, body[-2000:])


def test_a_bare_server_serves_cgi_after_the_first_run_and_the_second_changes_nothing(app):
    with start("PYCGI_BARE_IMAGE", "pycgi-bare") as host:
        assert host.exec("test", "-e", "/etc/apache2", check=False).returncode != 0, "the bare image has Apache"
        assert host.exec("test", "-e", "/usr/bin/curl", check=False).returncode != 0, "the bare image has curl"
        first = host.run_site(site_vars(app))
        assert first.rc == 0, first.output[-4000:]
        assert first.recap["changed"] > 0 and first.recap["failures"] == 0
        assert_serves_the_application(host)
        pid, reloads, daemon = apache_state(host)
        assert pid and daemon, "Apache runs without mod_cgid's CGI daemon"

        second = host.run_site(site_vars(app))
        assert second.rc == 0, second.output[-4000:]
        assert second.recap["changed"] == 0, second.output[-4000:]
        # Nothing changed, so Apache was neither restarted nor reloaded.
        assert apache_state(host) == (pid, reloads, True)
        assert_serves_the_application(host)
        assert host.exec("systemctl", "is-enabled", "apache2").stdout.strip() == "enabled"


def _stopped(host):
    pass


def _running_without_cgid(host):
    host.exec("systemctl", "start", "apache2")


def _running_with_cgid(host):
    host.exec("a2enmod", "-q", "cgid")
    host.exec("systemctl", "start", "apache2")


def _reloaded_after_enabling_cgid(host):
    """What the role did before: Apache running, `a2enmod cgid`, a graceful reload. The CGI
    daemon never starts and CGI answers 503 until a restart."""
    host.exec("systemctl", "start", "apache2")
    host.exec("a2enmod", "-q", "cgid")
    host.exec("systemctl", "reload", "apache2")
    host.put_file("/usr/lib/cgi-bin/probe.py", "#!/usr/bin/python3\nprint('Content-Type: text/plain\\n\\nup')\n",
                  mode=0o755)
    status, _body = host.http_get("/cgi-bin/probe.py")
    assert status == 503, "the state this test starts from should answer 503, got %d" % status


# (state, how the run must have treated the running server: start, restart, reload)
STATES = [
    (_stopped, "start"),
    (_running_without_cgid, "restart"),
    (_running_with_cgid, "reload"),
    (_reloaded_after_enabling_cgid, "restart"),
]


@pytest.mark.parametrize("prepare, expected", STATES, ids=[state.__name__.strip("_") for state, _expected in STATES])
def test_an_existing_server_serves_cgi_from_any_state(app, prepare, expected):
    with start("PYCGI_TEST_IMAGE", "pycgi-state") as host:
        prepare(host)
        running = host.exec("systemctl", "is-active", "apache2", check=False).stdout.strip() == "active"
        before = apache_state(host) if running else None

        run = host.run_site(site_vars(app))
        assert run.rc == 0, run.output[-4000:]
        assert_serves_the_application(host)
        after = apache_state(host)
        assert after[2], "Apache runs without mod_cgid's CGI daemon"
        if expected == "start":
            assert before is None and after[0]
        elif expected == "restart":
            assert after[0] != before[0], "Apache was not restarted"
        else:
            # A configuration change alone (the role's block): a graceful reload, same main process.
            assert after[0] == before[0] and after[1] == before[1] + 1, (before, after)

        again = host.run_site(site_vars(app))
        assert again.rc == 0 and again.recap["changed"] == 0, again.output[-4000:]
        assert apache_state(host) == after
