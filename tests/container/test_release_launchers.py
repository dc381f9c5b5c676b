"""pycgi_entry_launchers through site.yml on a real host: a root whose source holds a large
entry script is pushed as a release, then pushed again with launchers on. The page is the same
byte for byte (Apache's framing headers aside), the new release holds the launcher, the module
and its cache, the controller's source and the release that was live are untouched, a re-run
changes nothing, and the role's report line names what happened. One container for the story."""
import hashlib
import os
import re

import pytest

from harness.podman import Container, podman_available
from test_entry_launcher import entry_script, requests

ROOT = "/usr/lib/cgi-bin"
RELEASES = "/usr/lib/.cgi-bin.releases"
HELPERS = "SITE = 'reports'\n"


def play(container, app, **extra):
    variables = {"pycgi_source": app, "pycgi_manage_httpd": False, "pycgi_report": True}
    variables.update(extra)
    return container.run_site(variables)


def live(container):
    return os.path.basename(container.exec("readlink", ROOT).stdout.strip())


def report_line(run):
    """The role's one line for the root, from the play's output."""
    found = re.findall(r'"msg": "(%s: [^"]*)"' % re.escape(ROOT), run.output)
    assert len(found) == 1, run.output[-4000:]
    return found[0]


def tree_state(container, path):
    """Every entry below ``path`` with its inode, size, mode, mtime and, for files, sha256."""
    listing = container.exec("find", path, "-printf", "%P %y %i %s %m %T@\n").stdout
    sums = container.exec("sh", "-c", 'cd "$1" && find . -type f -exec sha256sum {} +', "sh", path).stdout
    return sorted(listing.splitlines()), sorted(sums.splitlines())


def source_state(app):
    state = {}
    for base, _dirs, files in os.walk(app):
        for name in files:
            path = os.path.join(base, name)
            with open(path, "rb") as handle:
                state[os.path.relpath(path, app)] = (hashlib.sha256(handle.read()).hexdigest(),
                                                     os.stat(path).st_mode, os.stat(path).st_mtime_ns)
    return state


@pytest.fixture(scope="module")
def host(tmp_path_factory):
    if not podman_available():
        pytest.fail("container tests need podman and PYCGI_TEST_IMAGE: run them with `make container-tests`")
    container = Container.start(prefix="pycgi-release-launchers")
    try:
        container.exec("a2enmod", "-q", "cgid")
        container.exec("systemctl", "start", "apache2")
        app = tmp_path_factory.mktemp("release-launchers") / "app"
        app.mkdir()
        (app / "report.py").write_text(entry_script())
        os.chmod(app / "report.py", 0o755)
        (app / "helpers.py").write_text(HELPERS)
        yield container, str(app)
    finally:
        container.remove()


def test_launchers_split_only_the_new_release_and_serve_the_same_page(host):
    container, app = host
    plain = play(container, app)
    assert plain.rc == 0, plain.output[-3000:]
    first = live(container)
    assert "entry launchers" not in report_line(plain)
    before = requests(container)
    assert before[0][0][0] == b"HTTP/1.1 200 OK", before[0][0]
    live_before = tree_state(container, "%s/%s" % (RELEASES, first))
    source_before = source_state(app)

    run = play(container, app, pycgi_entry_launchers=True)
    assert run.rc == 0, run.output[-3000:]
    second = live(container)
    assert second != first
    release = "%s/%s" % (RELEASES, second)
    launcher = container.read_file(release + "/report.py")
    assert "pycgi.hosting entry launcher" in launcher and len(launcher) < 2000
    assert container.read_file(release + "/_report_main.py").startswith(entry_script())
    container.exec("test", "-s", release + "/__pycache__/_report_main.cpython-311.pyc")
    assert requests(container) == before
    # Only the new release was written: the one live before the switch and the controller's
    # source are as they were, inode for inode.
    assert tree_state(container, "%s/%s" % (RELEASES, first)) == live_before
    assert source_state(app) == source_before
    line = report_line(run)
    assert line.startswith("%s: live %s (previous %s), 0 files transferred (0 B), " % (ROOT, second, first)), line
    assert re.search(r", \d+ of \d+ sources compiled, entry launchers: report.py; steps: release [0-9.]+ s, "
                     r"precompile [0-9.]+ s, owner [0-9.]+ s, selinux [0-9.]+ s, switch [0-9.]+ s$", line), line

    again = play(container, app, pycgi_entry_launchers=True)
    assert again.rc == 0 and again.recap["changed"] == 0, again.output[-3000:]
    assert live(container) == second
    assert "live %s (previous %s), unchanged, 0 files transferred" % (second, first) in report_line(again)


def test_a_one_file_push_sends_that_file_and_splits_the_script_again(host):
    container, app = host
    serving = live(container)
    before = requests(container)
    with open(os.path.join(app, "helpers.py"), "a") as handle:
        handle.write("VERSION = 2\n")
    run = play(container, app, pycgi_entry_launchers=True)
    assert run.rc == 0, run.output[-3000:]
    line = report_line(run)
    print(line)
    # The script's content comes from the original the earlier release kept, not over the wire.
    assert ", 1 file transferred (" in line and "entry launchers: report.py" in line, line
    assert live(container) != serving and requests(container) == before
