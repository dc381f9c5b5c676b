"""pycgi.hosting.httpd_pycache with placement=drop_in (the default) against a real Apache of the
Debian layout: conf-available/ + a2enconf. A fresh install, the migration of a block from the
main config, a config test that fails (every file back byte for byte, a2enconf's records
included), a second run with no change, and removal (the file deleted, the conf disabled).

One container for the file; every test leaves the config as it found it.
"""
import pytest

from harness.apache import MAIN_CONFIG, enabled_file, stanza_file

ROOT = "/srv/cgi"
NAME = "pycgi-pycache-srv-cgi"
DROP_IN = stanza_file(ROOT)
ENABLED = enabled_file(ROOT)
PYC_URL = "/files/__pycache__/app.cpython-311.pyc"
# The root's files served as plain files: without the block a .pyc is handed out.
SITE = """Alias "/files/" "%s/"
<Directory "%s">
    Require all granted
</Directory>
""" % (ROOT, ROOT)

# Every file, symlink and directory the module or a2enconf/a2disconf may touch, and the content
# hash of every file: what "byte for byte as before" means. Directory times are left out (a
# rollback that removes what it made changes them); the inodes of the two files the module
# writes itself are in `files()`.
STATE = r"""
find /etc/apache2 /var/lib/apache2/conf \( -type f -printf '%p f %m %u:%g %s %T@\n' \) \
    -o \( -type l -printf '%p l %l\n' \) -o \( -type d -printf '%p d %m %u:%g\n' \) | sort
find /etc/apache2 /var/lib/apache2/conf -type f -exec sha256sum {} + | sort
"""


@pytest.fixture(scope="module")
def web(module_container):
    container = module_container
    container.exec("mkdir", "-p", ROOT + "/__pycache__")
    container.put_file(ROOT + "/__pycache__/app.cpython-311.pyc", "compiled code stand-in\n")
    container.put_file("/etc/apache2/conf-available/files.conf", SITE)
    container.exec("a2enconf", "-q", "files")
    container.exec("systemctl", "start", "apache2")
    return container


def state(host):
    return host.exec("sh", "-c", STATE).stdout


def files(host):
    """Inode, mode, owner and content hash of the main config and the drop-in."""
    return host.exec("sh", "-c", 'for f in "$@"; do [ -e "$f" ] && stat -c "%n %i %a %U:%G" "$f" && sha256sum "$f"; done; true',
                     "sh", MAIN_CONFIG, DROP_IN).stdout


def enabled(host):
    """a2query's answer: whether Debian's tools see the conf as enabled."""
    return host.exec("a2query", "-c", NAME, check=False).returncode == 0


def reload_status(host):
    host.exec("systemctl", "reload", "apache2")
    return host.http_get(PYC_URL)[0]


def clean(host):
    host.run_module("httpd_pycache", {"path": ROOT, "state": "absent"})
    host.exec("rm", "-rf", "/var/lib/apache2/conf/disabled_by_admin/" + NAME)


def test_fresh_install_then_a_second_run_changes_nothing(web):
    assert reload_status(web) == 200
    try:
        result = web.run_module("httpd_pycache", {"path": ROOT}, diff=True)
        assert not result["failed"] and result["changed"] is True, result
        assert (result["dest"], result["main_config"], result["placement"]) == (DROP_IN, MAIN_CONFIG, "drop_in")
        assert web.read_file(DROP_IN) == result["block"]
        assert web.exec("readlink", ENABLED).stdout.strip() == "../conf-available/%s.conf" % NAME
        assert enabled(web)
        assert ROOT not in web.read_file(MAIN_CONFIG)
        assert result["diff"]["after"] == result["block"] and result["diff"]["before"] == ""
        assert reload_status(web) == 403

        before = state(web), files(web)
        again = web.run_module("httpd_pycache", {"path": ROOT})
        assert not again["failed"] and again["changed"] is False, again
        assert (state(web), files(web)) == before
    finally:
        clean(web)


def test_migration_moves_the_block_out_of_the_main_config(web):
    original = web.read_file(MAIN_CONFIG)
    try:
        block = web.run_module("httpd_pycache", {"path": ROOT, "placement": "block"})
        assert not block["failed"] and web.read_file(MAIN_CONFIG) == original + block["block"], block

        checked = web.run_module("httpd_pycache", {"path": ROOT}, check_mode=True, diff=True)
        assert checked["changed"] is True and web.read_file(MAIN_CONFIG) == original + block["block"], checked
        assert [(d["before"], d["after"]) for d in checked["diff"]] == [(block["block"], ""), ("", block["block"])]
        assert web.exec("test", "-e", DROP_IN, check=False).returncode != 0

        moved = web.run_module("httpd_pycache", {"path": ROOT})
        assert not moved["failed"] and moved["changed"] is True, moved
        assert web.read_file(MAIN_CONFIG) == original
        assert web.read_file(DROP_IN) == block["block"] and enabled(web)
        assert reload_status(web) == 403
        assert web.run_module("httpd_pycache", {"path": ROOT})["changed"] is False
    finally:
        clean(web)
        web.put_file(MAIN_CONFIG, original)


def test_a_failed_config_test_restores_every_file_byte_for_byte(web):
    original = web.read_file(MAIN_CONFIG)
    # Without mod_env, the SetEnv of write_bytecode=false is an unknown directive.
    web.exec("a2dismod", "-q", "-f", "env")
    try:
        assert not web.run_module("httpd_pycache", {"path": ROOT, "placement": "block"})["failed"]
        for attempt in ("migration", "rewrite"):
            before = state(web), files(web)
            result = web.run_module("httpd_pycache", {"path": ROOT, "write_bytecode": False, "backup": True})
            assert result["failed"] is True and result["changed"] is False, result
            assert "fails with the block for %s in place" % ROOT in result["msg"], result["msg"]
            assert "Invalid command 'SetEnv'" in result["msg"] and "restored byte for byte" in result["msg"]
            assert "backup_file" not in result and "backup_files" not in result
            assert (state(web), files(web)) == before, attempt
            if attempt == "migration":
                assert not enabled(web) and ROOT in web.read_file(MAIN_CONFIG)
                # Now from a drop-in that is in place: the rewrite is undone the same way.
                assert web.run_module("httpd_pycache", {"path": ROOT})["changed"] is True
                assert web.read_file(MAIN_CONFIG) == original and enabled(web)
        assert reload_status(web) == 403
    finally:
        web.exec("a2enmod", "-q", "env")
        clean(web)
        web.put_file(MAIN_CONFIG, original)


def test_a_drop_in_that_apache_does_not_read_is_undone(web):
    original = web.read_file(MAIN_CONFIG)
    web.put_file(MAIN_CONFIG, original.replace("IncludeOptional conf-enabled/*.conf", "# conf-enabled is not read"))
    try:
        before = state(web), files(web)
        result = web.run_module("httpd_pycache", {"path": ROOT})
        assert result["failed"] is True and result["changed"] is False, result
        assert "Apache does not read %s" % ENABLED in result["msg"], result["msg"]
        assert (state(web), files(web)) == before
    finally:
        web.put_file(MAIN_CONFIG, original)


def test_removal_deletes_the_file_and_disables_the_conf(web):
    try:
        assert web.run_module("httpd_pycache", {"path": ROOT})["changed"] is True
        assert reload_status(web) == 403
        main = files(web).split("\n")[:2]
        removed = web.run_module("httpd_pycache", {"path": ROOT, "state": "absent"}, diff=True)
        assert not removed["failed"] and removed["changed"] is True, removed
        assert removed["dest"] == DROP_IN and removed["diff"]["after"] == ""
        for path in (DROP_IN, ENABLED):
            assert web.exec("test", "-e", path, check=False).returncode != 0, path
        assert not enabled(web)
        assert web.exec("test", "-f", "/var/lib/apache2/conf/disabled_by_admin/" + NAME, check=False).returncode == 0
        assert files(web).split("\n")[:2] == main
        assert web.run_module("httpd_pycache", {"path": ROOT, "state": "absent"})["changed"] is False
        assert reload_status(web) == 200
    finally:
        clean(web)
