"""pycgi.hosting.httpd_cgi against a real Apache (the test image: Apache installed, stopped, no
CGI module enabled): check and diff mode, a configuration that fails Apache's test, the CGI
module chosen by hand, and a server that does not answer in time."""
import pytest

PROBE = "/usr/lib/cgi-bin/probe.py"
PROBE_SCRIPT = "#!/usr/bin/python3\nprint('Content-Type: text/plain\\n\\nup')\n"


def enabled(host, module):
    return host.exec("test", "-e", "/etc/apache2/mods-enabled/%s.load" % module, check=False).returncode == 0


def active(host):
    return host.exec("systemctl", "is-active", "apache2", check=False).stdout.strip() == "active"


def test_check_mode_predicts_the_start_and_the_module_and_changes_nothing(container):
    result = container.run_module("httpd_cgi", {}, check_mode=True, diff=True)
    assert not result["failed"], result
    assert result["changed"] and result["action"] == "start" and result["modules_changed"] == ["+cgid"]
    assert result["mpm"] == "event" and result["cgi_module"] == "cgid"
    assert result["diff"]["before"]["running"] is False and result["diff"]["after"]["running"] is True
    assert result["diff"]["before"]["cgi_module"] == [] and result["diff"]["after"]["cgi_module"] == ["cgid"]
    assert not enabled(container, "cgid") and not active(container)

    result = container.run_module("httpd_cgi", {})
    assert result["changed"] and result["action"] == "start" and not result["failed"], result
    container.put_file(PROBE, PROBE_SCRIPT, mode=0o755)
    assert container.http_get("/cgi-bin/probe.py") == (200, "up\n")

    again = container.run_module("httpd_cgi", {}, check_mode=True)
    assert not again["changed"] and again["action"] == "none", again
    again = container.run_module("httpd_cgi", {"config_changed": True}, check_mode=True)
    assert again["changed"] and again["action"] == "reload", again


def test_a_config_that_fails_the_test_starts_nothing_and_undoes_the_module(container):
    container.exec("systemctl", "start", "apache2")
    pid = container.exec("systemctl", "show", "--property=MainPID", "--value", "apache2").stdout
    container.put_file("/etc/apache2/conf-enabled/zz-broken.conf", "NoSuchDirective on\n")
    result = container.run_module("httpd_cgi", {})
    assert result["failed"], result
    assert "zz-broken.conf" in result["msg"] and "NoSuchDirective" in result["msg"], result["msg"]
    # The module it enabled is disabled again, and the running server was left alone.
    assert not enabled(container, "cgid")
    assert container.exec("systemctl", "show", "--property=MainPID", "--value", "apache2").stdout == pid


def test_a_named_cgi_module_replaces_the_other_with_a_restart(container):
    # Apache's prefork MPM, whose CGI module is mod_cgi; the server runs with mod_cgid enabled.
    container.exec("a2dismod", "-q", "mpm_event")
    container.exec("a2enmod", "-q", "mpm_prefork", "cgid")
    container.exec("systemctl", "start", "apache2")
    container.put_file(PROBE, PROBE_SCRIPT, mode=0o755)
    result = container.run_module("httpd_cgi", {"cgi_module": "cgi"}, diff=True)
    assert result["changed"] and result["action"] == "restart" and result["mpm"] == "prefork", result
    assert result["modules_changed"] == ["-cgid", "+cgi"]
    assert enabled(container, "cgi") and not enabled(container, "cgid")
    assert container.http_get("/cgi-bin/probe.py") == (200, "up\n")
    again = container.run_module("httpd_cgi", {"cgi_module": "cgi"})
    assert not again["changed"] and again["action"] == "none", again


def test_mod_cgi_with_a_threaded_mpm_is_refused_naming_the_mpm(container):
    result = container.run_module("httpd_cgi", {"cgi_module": "cgi"})
    assert result["failed"] and "prefork" in result["msg"] and "event" in result["msg"], result
    assert not enabled(container, "cgi") and not enabled(container, "cgid") and not active(container)


def test_a_server_that_does_not_answer_fails_naming_the_url(container):
    result = container.run_module("httpd_cgi", {"wait_url": "http://127.0.0.1:9/", "wait_timeout": 2})
    assert result["failed"] and "http://127.0.0.1:9/" in result["msg"] and "within 2 s" in result["msg"], result


@pytest.mark.parametrize("args, words", [
    ({"cgi_module": "fastcgi"}, ["cgi_module", "fastcgi"]),
    ({"wait_timeout": 0}, ["wait_timeout"]),
])
def test_bad_input_is_refused_naming_the_option(container, args, words):
    result = container.run_module("httpd_cgi", args)
    assert result["failed"] and all(word in result["msg"] for word in words), result
    assert not active(container) and not enabled(container, "cgid")


def test_the_prefork_mpm_brings_mod_cgi_with_one_restart(container):
    container.exec("a2enmod", "-q", "cgid")
    container.exec("systemctl", "start", "apache2")
    container.put_file(PROBE, PROBE_SCRIPT, mode=0o755)
    result = container.run_module("httpd_cgi", {"mpm": "prefork"}, check_mode=True)
    assert result["changed"] and result["action"] == "restart" and enabled(container, "mpm_event"), result
    result = container.run_module("httpd_cgi", {"mpm": "prefork"})
    assert result["changed"] and result["action"] == "restart", result
    assert result["modules_changed"] == ["-mpm_event", "+mpm_prefork", "-cgid", "+cgi"]
    assert enabled(container, "mpm_prefork") and enabled(container, "cgi")
    assert not enabled(container, "mpm_event") and not enabled(container, "cgid")
    assert "mpm_prefork_module" in container.exec("apache2ctl", "-M").stdout
    assert container.http_get("/cgi-bin/probe.py") == (200, "up\n")
    again = container.run_module("httpd_cgi", {"mpm": "prefork"})
    assert not again["changed"] and again["action"] == "none", again
