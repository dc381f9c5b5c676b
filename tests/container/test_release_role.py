"""The role's releases on a real host: site.yml pushes the example application into the stock
CGI root as releases, Apache serves them, a broken push never goes live, rollback goes back one
step. One container for the whole story, since each step starts where the one before ended."""
import json
import os
import re
import shutil

import pytest

from harness.podman import REPO_ROOT, Container, podman_available

ROOT = "/usr/lib/cgi-bin"
RELEASES = "/usr/lib/.cgi-bin.releases"
URL = "http://localhost/cgi-bin/hello.py"


def set_version(app, version):
    with open(os.path.join(app, "cgiapp", "__init__.py"), "w") as handle:
        handle.write('"""The example application."""\n__version__ = "%s"\n' % version)


def play(host, app, **extra):
    variables = {"pycgi_source": app, "pycgi_manage_httpd": False, "pycgi_report": False,
                 "pycgi_shared_paths": ["data"],
                 "pycgi_smoke_urls": [{"url": URL, "contains": "pycgi example application"}]}
    variables.update(extra)
    return host.run_site(variables)


def live(host):
    return os.path.basename(host.exec("readlink", ROOT).stdout.strip())


def served_version(host):
    status, body = host.http_get("/cgi-bin/hello.py")
    assert status == 200, body
    return body.split("pycgi example application ")[1].split(" ")[0]


@pytest.fixture(scope="module")
def host(tmp_path_factory):
    if not podman_available():
        pytest.fail("container tests need podman and PYCGI_TEST_IMAGE: run them with `make container-tests`")
    container = Container.start(prefix="pycgi-release-role")
    try:
        container.exec("a2enmod", "-q", "cgid")
        container.exec("systemctl", "start", "apache2")
        app = str(tmp_path_factory.mktemp("release-role") / "app")
        shutil.copytree(os.path.join(REPO_ROOT, "examples", "app"), app)
        yield container, app
    finally:
        container.remove()


def test_first_push_migrates_the_stock_root_and_a_rerun_changes_nothing(host):
    container, app = host
    with open(os.path.join(app, "extra.py"), "w") as handle:
        handle.write("#!/usr/bin/python3\nprint('Content-Type: text/plain')\nprint()\nprint('extra')\n")
    os.chmod(os.path.join(app, "extra.py"), 0o755)
    run = play(container, app)
    assert run.rc == 0, run.output[-3000:]
    assert container.exec("test", "-L", ROOT, check=False).returncode == 0
    assert served_version(container) == "1.0"
    assert container.http_get("/cgi-bin/extra.py") == (200, "extra\n")
    # The caches were compiled in the release before it went live, and the shared path exists.
    release = live(container)
    container.exec("test", "-s", "%s/%s/cgiapp/__pycache__/main.cpython-311.pyc" % (RELEASES, release))
    assert container.exec("stat", "-c", "%U", ROOT + "/data/").stdout.strip() == "www-data"
    # The data the application writes there is web-writable content for SELinux (labels on disk).
    label = container.exec("python3", "-c", "import os, sys; print(os.getxattr(sys.argv[1], 'security.selinux'))",
                           "/usr/lib/.cgi-bin.shared/data").stdout
    assert ":httpd_sys_rw_content_t:" in label
    again = play(container, app)
    assert again.rc == 0 and again.recap["changed"] == 0, again.output[-3000:]


def test_one_file_push_links_the_rest_and_a_deleted_script_answers_404(host):
    container, app = host
    before = live(container)
    set_version(app, "2.0")
    os.unlink(os.path.join(app, "extra.py"))
    run = play(container, app)
    assert run.rc == 0, run.output[-3000:]
    after = live(container)
    assert after != before and served_version(container) == "2.0"
    assert container.http_get("/cgi-bin/extra.py")[0] == 404
    # The unchanged module is a hard link into the previous release; its cache was copied with
    # it (same mtime), not compiled again; the changed module's cache is new.
    inode_mtime = ["stat", "-c", "%i %Y"]
    old, new = ("%s/%s/cgiapp/render.py" % (RELEASES, r) for r in (before, after))
    assert container.exec(*inode_mtime + [old]).stdout == container.exec(*inode_mtime + [new]).stdout
    old, new = ("%s/%s/cgiapp/__pycache__/render.cpython-311.pyc" % (RELEASES, r) for r in (before, after))
    assert container.exec("stat", "-c", "%Y", old).stdout == container.exec("stat", "-c", "%Y", new).stdout
    assert container.exec("stat", "-c", "%i", old).stdout != container.exec("stat", "-c", "%i", new).stdout


def test_a_broken_push_never_goes_live(host):
    container, app = host
    serving = live(container)
    with open(os.path.join(app, "cgiapp", "render.py"), "a") as handle:
        handle.write("\ndef broken(:\n")
    run = play(container, app)
    assert run.rc != 0 and "render.py" in run.output
    assert live(container) == serving and served_version(container) == "2.0"
    with open(os.path.join(app, "cgiapp", "render.py")) as handle:
        text = handle.read()
    with open(os.path.join(app, "cgiapp", "render.py"), "w") as handle:
        handle.write(text.replace("\ndef broken(:\n", ""))


def test_a_broken_push_is_discarded_and_its_step_reported(host):
    """The role's rescue: the release prepared by the broken push is removed (it never went live),
    the failure is logged on the host with the failing step's message, and the play's last line
    names the host, the step, the root and the reason."""
    container, app = host
    serving = live(container)
    before = sorted(name for name in container.exec("ls", "-A", RELEASES).stdout.split() if not name.startswith("."))
    path = os.path.join(app, "cgiapp", "render.py")
    with open(path) as handle:
        text = handle.read()
    with open(path, "a") as handle:
        handle.write("\ndef broken(:\n")
    try:
        run = play(container, app)
    finally:
        with open(path, "w") as handle:
            handle.write(text)
    assert run.rc != 0, run.output[-3000:]
    step = "Precompile the CGI trees with the interpreters that run them"
    line = re.search(r"pycgi\.hosting\.cgi_host failed on %s at step '%s' \(root %s\): [^\n]*render\.py"
                     % (re.escape(container.name), step, ROOT), run.output)
    assert line, run.output[-3000:]
    after = sorted(name for name in container.exec("ls", "-A", RELEASES).stdout.split() if not name.startswith("."))
    assert after == before and live(container) == serving and served_version(container) == "2.0"
    failure = json.loads(container.read_file(RELEASES + "/.meta/failures.json"))[-1]
    assert failure["outcome"] == "removed" and failure["id"] not in before, failure
    assert failure["reason"].startswith(step + ": ") and "render.py" in failure["reason"], failure


def test_rollback_goes_back_one_step_and_a_push_comes_forward_again(host):
    container, app = host
    current = live(container)
    run = play(container, app, pycgi_rollback=True)
    assert run.rc == 0, run.output[-3000:]
    assert live(container) != current and served_version(container) == "1.0"
    again = play(container, app, pycgi_rollback=True)
    assert again.rc == 0 and again.recap["changed"] == 0, again.output[-3000:]
    assert served_version(container) == "1.0"
    forward = play(container, app)
    assert forward.rc == 0 and live(container) == current and served_version(container) == "2.0"
    history = json.loads(container.read_file(RELEASES + "/.meta/history.json"))
    assert [entry["how"] for entry in history][-3:] == ["switch", "rollback", "switch"]
