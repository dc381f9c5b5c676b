"""What pycgi.hosting.httpd_cgi decides from the state it reads: plain data in, decision out.
The commands themselves run against real Apache servers in tests/container/test_first_install.py."""
import pytest

from ansible_collections.pycgi.hosting.plugins.module_utils._httpd_service import (
    DEBIAN,
    REDHAT,
    cgid_daemon_listening,
    choose_mpm_in_conf,
    decide,
    layout_of,
    loaded_modules,
    mpm_of,
    wanted_cgi_module,
)

# `apache2ctl -M` of Debian 12 with mpm_event and cgid (shortened), as Apache prints it.
DEBIAN_DUMP = """Loaded Modules:
 core_module (static)
 so_module (static)
 watchdog_module (static)
 http_module (static)
 log_config_module (static)
 mpm_event_module (shared)
 alias_module (shared)
 cgid_module (shared)
 env_module (shared)
"""

# /proc/net/unix with the CGI daemon of the Apache whose main process is 228, and a socket of
# another Apache (main process 22) whose number 228 is only a prefix of nothing.
PROC_NET_UNIX = """Num       RefCount Protocol Flags    Type St Inode Path
000000002b6a643d: 00000002 00000000 00010000 0001 01 34040 /var/run/apache2/socks/cgisock.228
00000000aa7b9f1e: 00000002 00000000 00010000 0001 01 12345 /run/systemd/private
00000000aa7b9f1f: 00000003 00000000 00000000 0001 03 12346
00000000aa7b9f20: 00000002 00000000 00010000 0001 01 12347 /run/httpd/cgisock.22
"""


def test_loaded_modules_and_mpm_are_read_from_apachectl_output():
    modules = loaded_modules(DEBIAN_DUMP)
    assert {"cgid", "mpm_event", "alias", "core"} <= modules
    assert "cgi" not in modules
    assert mpm_of(modules) == "event"
    assert mpm_of(loaded_modules(DEBIAN_DUMP.replace("mpm_event", "mpm_prefork"))) == "prefork"
    assert mpm_of({"core", "cgi"}) is None


@pytest.mark.parametrize("mpm, requested, wanted", [
    ("event", "auto", "cgid"),
    ("worker", "auto", "cgid"),
    ("prefork", "auto", "cgi"),
    (None, "auto", "cgid"),
    ("event", "cgi", "cgi"),
    ("prefork", "cgid", "cgid"),
])
def test_the_cgi_module_follows_the_mpm_unless_one_is_named(mpm, requested, wanted):
    assert wanted_cgi_module(mpm, requested) == wanted


def test_the_cgi_daemon_is_found_by_the_main_process_id_only():
    assert cgid_daemon_listening(228, PROC_NET_UNIX)
    assert cgid_daemon_listening(22, PROC_NET_UNIX)
    # A restarted server has a new main process: the old socket does not count.
    assert not cgid_daemon_listening(229, PROC_NET_UNIX)
    assert not cgid_daemon_listening(28, PROC_NET_UNIX)
    assert not cgid_daemon_listening(2, PROC_NET_UNIX)
    assert not cgid_daemon_listening(228, PROC_NET_UNIX.splitlines()[0])


@pytest.mark.parametrize("state, action", [
    # (running, modules changed, daemon missing, config changed, restart asked)
    ((False, [], False, False, False), "start"),
    ((False, ["+cgid"], False, True, False), "start"),
    ((True, ["+cgid"], False, False, False), "restart"),
    ((True, ["+cgi", "-cgid"], False, True, False), "restart"),
    # The state a reload after `a2enmod cgid` leaves: a restart, even with nothing changed now.
    ((True, [], True, False, False), "restart"),
    ((True, [], False, True, False), "reload"),
    ((True, [], False, False, True), "restart"),
    ((True, [], False, False, False), "none"),
])
def test_decide_restarts_for_modules_reloads_for_config_and_otherwise_does_nothing(state, action):
    decided, reasons = decide(*state)
    assert decided == action
    assert bool(reasons) == (action != "none")


def test_the_layout_is_recognised_by_its_main_config():
    assert layout_of({"/etc/apache2/apache2.conf"}.__contains__) is DEBIAN
    assert layout_of({"/etc/httpd/conf/httpd.conf"}.__contains__) is REDHAT
    assert layout_of(set().__contains__) is None
    assert DEBIAN.service == "apache2" and REDHAT.service == "httpd"


# CentOS Stream 9's /etc/httpd/conf.modules.d/00-mpm.conf (comments shortened).
RHEL_MPM_CONF_TEXT = """# Select the MPM module which should be used by uncommenting exactly
# one of the following LoadModule lines.  See the httpd.conf(5) man
# page for more information on changing the MPM.

# prefork MPM: Implements a non-threaded, pre-forking web server
#LoadModule mpm_prefork_module modules/mod_mpm_prefork.so

# worker MPM: Multi-Processing Module implementing a hybrid
#LoadModule mpm_worker_module modules/mod_mpm_worker.so

# event MPM: A variant of the worker MPM with the goal of consuming
LoadModule mpm_event_module modules/mod_mpm_event.so
"""


def test_the_rhel_mpm_is_chosen_by_uncommenting_one_line():
    prefork = choose_mpm_in_conf(RHEL_MPM_CONF_TEXT, "prefork")
    assert "\nLoadModule mpm_prefork_module modules/mod_mpm_prefork.so\n" in prefork
    assert "\n#LoadModule mpm_event_module modules/mod_mpm_event.so\n" in prefork
    assert "\n#LoadModule mpm_worker_module modules/mod_mpm_worker.so\n" in prefork
    # Comments and everything else stay; going back gives the original file byte for byte.
    assert prefork.count("\n") == RHEL_MPM_CONF_TEXT.count("\n")
    assert choose_mpm_in_conf(prefork, "event") == RHEL_MPM_CONF_TEXT
    assert choose_mpm_in_conf(RHEL_MPM_CONF_TEXT, "event") == RHEL_MPM_CONF_TEXT
    with pytest.raises(ValueError, match="00-mpm.conf has no LoadModule line for mpm_itk_module"):
        choose_mpm_in_conf(RHEL_MPM_CONF_TEXT, "itk")
