"""pycgi.hosting.httpd_pycache against a real Apache (Debian layout) in a container.

One container for the file; every test leaves the config as it found it. The blocks go
where the default placement (drop_in) puts them, unless a test sets placement=block;
tests/container/test_httpd_pycache_drop_in.py has the migration, rollback and removal of drop-ins.
"""
import re

import pytest

from harness.apache import enabled_file, stanza_file, stanza_text

MAIN = "/etc/apache2/apache2.conf"
STOCK = "/usr/lib/cgi-bin"
# A root whose name needs escaping: space, dots, brackets, plus, parentheses, dollar.
EXTRA = "/srv/py cgi [v1.2]+(x)$"

SCRIPT = """#!/usr/bin/python3
import os
import sys
print("Content-Type: text/plain")
print()
print("hello from %s" % os.path.basename(__file__))
print("PYTHONDONTWRITEBYTECODE=%s" % os.environ.get("PYTHONDONTWRITEBYTECODE"))
print("dont_write_bytecode=%d" % sys.flags.dont_write_bytecode)
"""

# The extra root: its scripts through a ScriptAlias, and the same directory as plain files
# through an Alias, where a .pyc would be handed out for download without the block.
SITE = """ScriptAlias "/extra/" "%(root)s/"
Alias "/extra-files/" "%(root)s/"
<Directory "/srv">
    Require all granted
</Directory>
""" % {"root": EXTRA}


# Lays out a CGI root in the container in one call: scripts, caches at several depths, and a
# directory whose name merely contains __pycache__.
POPULATE = r"""
import os, sys
root, script = sys.argv[1], sys.argv[2]
files = {"app.py": (script, 0o755), "x__pycache__/app.py": (script, 0o755)}
for pyc in ("__pycache__/app.cpython-311.pyc", "pkg/__pycache__/mod.cpython-311.pyc",
            "pkg/sub/__pycache__/deep.cpython-311.pyc", "__pycache__/odd/inner.pyc"):
    files[pyc] = ("compiled code stand-in\n", 0o644)
for name, (content, mode) in files.items():
    path = os.path.join(root, name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as handle:
        handle.write(content)
    os.chmod(path, mode)
"""


def populate(container, root):
    container.exec("python3", "-c", POPULATE, root, SCRIPT)


@pytest.fixture(scope="module")
def web(module_container):
    container = module_container
    populate(container, STOCK)
    populate(container, EXTRA)
    container.put_file("/etc/apache2/conf-available/extra-root.conf", SITE)
    container.exec("a2enconf", "extra-root")
    container.exec("a2enmod", "cgid")
    container.exec("systemctl", "start", "apache2")
    return container


def restart(container):
    container.exec("systemctl", "restart", "apache2")


def fingerprint(container, path):
    """Content hash, inode, mode, owner, size and mtime: what 'left as it was' means."""
    return container.exec("sh", "-c", 'sha256sum "$1"; stat -c "%i %a %U:%G %s %Y" "$1"', "sh", path).stdout


def listing(container, directory):
    return sorted(container.exec("ls", "-a", directory).stdout.split())


def quote(url):
    return url.replace(" ", "%20").replace("[", "%5B").replace("]", "%5D")


def status(container, url):
    return container.http_get(quote(url))[0]


def statuses(container, urls):
    """HTTP status of each URL, all requested by one curl in the container."""
    argv = ["curl", "-s", "-w", "%{http_code}\\n"]
    for url in urls:
        argv += ["-o", "/dev/null", "http://localhost" + quote(url)]
    codes = container.exec(*argv).stdout.split()
    return dict(zip(urls, map(int, codes)))


CACHED_URLS = ["__pycache__/app.cpython-311.pyc", "pkg/__pycache__/mod.cpython-311.pyc",
               "pkg/sub/__pycache__/deep.cpython-311.pyc", "__pycache__/odd/inner.pyc"]


def test_caches_are_refused_and_scripts_still_run(web):
    # Without the block Apache hands compiled code out as a plain file.
    assert status(web, "/extra-files/__pycache__/app.cpython-311.pyc") == 200

    stock = web.run_module("httpd_pycache", {"path": STOCK})
    extra = web.run_module("httpd_pycache", {"path": EXTRA})
    assert not stock["failed"] and stock["changed"] is True, stock
    assert not extra["failed"] and extra["changed"] is True, extra
    assert stock["dest"] == stanza_file(STOCK) and stock["main_config"] == MAIN
    assert extra["regex"] == r"^/srv/py cgi \[v1\.2\]\+\(x\)\$/(?:.+/)?__pycache__(?:/|$)"
    restart(web)

    cached = [prefix + url for prefix in ("/cgi-bin/", "/extra/", "/extra-files/") for url in CACHED_URLS]
    assert statuses(web, cached) == dict.fromkeys(cached, 403)
    # Scripts still run, also where a directory name merely contains __pycache__.
    scripts = [prefix + url for prefix in ("/cgi-bin/", "/extra/") for url in ("app.py", "x__pycache__/app.py")]
    assert statuses(web, scripts) == dict.fromkeys(scripts, 200)
    assert "hello from app.py" in web.http_get(quote("/extra/app.py"))[1]

    assert web.run_module("httpd_pycache", {"path": STOCK})["changed"] is False
    assert web.run_module("httpd_pycache", {"path": EXTRA + "/"})["changed"] is False


def test_write_bytecode_false_reaches_the_cgi_scripts(web):
    result = web.run_module("httpd_pycache", {"path": EXTRA, "write_bytecode": False})
    try:
        assert not result["failed"] and result["changed"] is True, result
        assert result["block"] in stanza_text(web, EXTRA)
        assert "    SetEnv PYTHONDONTWRITEBYTECODE 1\n" in result["block"]
        restart(web)
        body = web.http_get(quote("/extra/app.py"))[1]
        assert "PYTHONDONTWRITEBYTECODE=1" in body and "dont_write_bytecode=1" in body
        assert "PYTHONDONTWRITEBYTECODE=None" in web.http_get("/cgi-bin/app.py")[1]
        assert status(web, "/extra/__pycache__/app.cpython-311.pyc") == 403
    finally:
        web.run_module("httpd_pycache", {"path": EXTRA})
        restart(web)
    assert "PYTHONDONTWRITEBYTECODE=None" in web.http_get(quote("/extra/app.py"))[1]


def test_absent_removes_only_that_root(web):
    web.run_module("httpd_pycache", {"path": STOCK})
    web.run_module("httpd_pycache", {"path": EXTRA})
    try:
        result = web.run_module("httpd_pycache", {"path": EXTRA, "state": "absent"})
        assert not result["failed"] and result["changed"] is True, result
        assert EXTRA not in stanza_text(web, EXTRA) and "# BEGIN pycgi.hosting pycache %s\n" % STOCK in stanza_text(web, STOCK)
        assert EXTRA not in web.read_file(MAIN)
        restart(web)
        assert status(web, "/extra-files/__pycache__/app.cpython-311.pyc") == 200
        assert status(web, "/cgi-bin/__pycache__/app.cpython-311.pyc") == 403
    finally:
        web.run_module("httpd_pycache", {"path": EXTRA})
        restart(web)


def test_check_mode_writes_nothing(web):
    before = fingerprint(web, MAIN), listing(web, "/etc/apache2/conf-available"), listing(web, "/etc/apache2/conf-enabled")
    result = web.run_module("httpd_pycache", {"path": "/srv/other"}, check_mode=True)
    assert not result["failed"] and result["changed"] is True, result
    assert result["block"].startswith("# BEGIN pycgi.hosting pycache /srv/other\n")
    assert result["dest"] == stanza_file("/srv/other")
    assert (fingerprint(web, MAIN), listing(web, "/etc/apache2/conf-available"), listing(web, "/etc/apache2/conf-enabled")) == before


def test_an_already_broken_config_is_left_alone(web):
    web.put_file("/etc/apache2/conf-enabled/zz-broken.conf", "ThisIsNotADirective on\n")
    try:
        before = fingerprint(web, MAIN)
        result = web.run_module("httpd_pycache", {"path": "/srv/other"})
        assert result["failed"] is True and result["changed"] is False
        assert "already fails before any change" in result["msg"]
        assert "ThisIsNotADirective" in result["msg"]
        assert fingerprint(web, MAIN) == before
    finally:
        web.exec("rm", "/etc/apache2/conf-enabled/zz-broken.conf")


def test_a_change_that_fails_the_config_test_is_undone_byte_for_byte(web):
    # Without mod_env, the SetEnv of write_bytecode=false is an unknown directive.
    web.exec("a2dismod", "-f", "env")
    web.exec("chown", "root:www-data", MAIN)
    web.exec("chmod", "640", MAIN)
    try:
        before = fingerprint(web, MAIN)
        files = [listing(web, path) for path in ("/etc/apache2", "/etc/apache2/conf-available", "/etc/apache2/conf-enabled")]
        result = web.run_module("httpd_pycache", {"path": "/srv/other", "write_bytecode": False, "backup": True})
        assert result["failed"] is True and result["changed"] is False
        assert "fails with the block for /srv/other in place" in result["msg"]
        assert "Invalid command 'SetEnv'" in result["msg"]
        assert "backup_file" not in result
        assert fingerprint(web, MAIN) == before
        assert [listing(web, path) for path in ("/etc/apache2", "/etc/apache2/conf-available", "/etc/apache2/conf-enabled")] == files
        assert web.exec("test", "-e", enabled_file("/srv/other"), check=False).returncode != 0
    finally:
        web.exec("a2enmod", "env")
        web.exec("chown", "root:root", MAIN)
        web.exec("chmod", "644", MAIN)


def test_backup_keeps_a_timestamped_copy(web):
    # With placement=block the main config changes, and is copied.
    original = web.exec("sha256sum", MAIN).stdout.split()[0]
    result = web.run_module("httpd_pycache", {"path": "/srv/backed-up", "backup": True, "placement": "block"})
    try:
        assert not result["failed"] and result["changed"] is True, result
        assert re.match(re.escape(MAIN) + r"\.\d+\.\d{4}-\d\d-\d\d@\d\d:\d\d:\d\d~$", result["backup_file"])
        assert web.exec("sha256sum", result["backup_file"]).stdout.split()[0] == original
    finally:
        web.run_module("httpd_pycache", {"path": "/srv/backed-up", "state": "absent"})
        web.exec("rm", "-f", result.get("backup_file", "/nonexistent"))


def test_the_rhel_layout_is_preferred_when_present(web):
    web.put_file("/etc/httpd/conf/httpd.conf", "ServerRoot /etc/httpd\n")
    web.exec("mkdir", "/etc/httpd/conf.d")
    try:
        result = web.run_module("httpd_pycache", {"path": "/var/www/cgi-bin", "validate": False})
        assert result["main_config"] == "/etc/httpd/conf/httpd.conf"
        assert result["dest"] == "/etc/httpd/conf.d/pycgi-pycache-var-www-cgi-bin.conf"
        assert web.read_file(result["dest"]) == result["block"]
        assert web.read_file("/etc/httpd/conf/httpd.conf") == "ServerRoot /etc/httpd\n"
        assert "/var/www/cgi-bin" not in web.read_file(MAIN)
        block = web.run_module("httpd_pycache", {"path": "/var/www/cgi-bin", "validate": False, "placement": "block"})
        assert block["dest"] == "/etc/httpd/conf/httpd.conf"
        assert web.read_file("/etc/httpd/conf/httpd.conf") == "ServerRoot /etc/httpd\n" + result["block"]
        assert web.exec("ls", "-A", "/etc/httpd/conf.d").stdout == ""
    finally:
        web.exec("rm", "-r", "/etc/httpd")


def test_no_main_config_is_a_clear_error(web):
    web.exec("mv", MAIN, MAIN + ".away")
    try:
        result = web.run_module("httpd_pycache", {"path": STOCK})
        assert result["failed"] is True
        assert "no Apache main config found" in result["msg"]
    finally:
        web.exec("mv", MAIN + ".away", MAIN)
