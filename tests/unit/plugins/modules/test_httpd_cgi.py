"""pycgi.hosting.httpd_cgi's choice of the CGI module on the RHEL family's layout, where the
package's conf.modules.d files load it. No RHEL host runs here: a stand-in Host answers what
`httpd -M` would (the Debian family's whole path runs against real Apache servers in
tests/container/test_httpd_cgi.py and test_first_install.py)."""
import pytest

from ansible_collections.pycgi.hosting.plugins.module_utils._httpd_service import DEBIAN, REDHAT
from ansible_collections.pycgi.hosting.plugins.modules.httpd_cgi import plan_modules


class Failed(Exception):
    pass


class StandInHost:
    """The answers plan_modules asks a host for; fail() raises as fail_json ends a module."""

    def __init__(self, layout, enabled):
        self.layout = layout
        self.enabled = set(enabled)

    def enabled_modules(self, loaded):
        return set(self.enabled)

    def fail(self, msg, **extra):
        raise Failed(msg)


@pytest.mark.parametrize("loaded, requested, expected", [
    ({"mpm_event", "cgid"}, "auto", ("event", "cgid", [])),
    ({"mpm_prefork", "cgi"}, "auto", ("prefork", "cgi", [])),
    ({"mpm_event", "cgid"}, "cgid", ("event", "cgid", [])),
])
def test_redhat_takes_the_module_the_package_loads(loaded, requested, expected):
    host = StandInHost(REDHAT, loaded & {"cgi", "cgid"})
    assert plan_modules(host, loaded, requested) == expected


@pytest.mark.parametrize("loaded, requested, words", [
    # 01-cgi.conf removed: nothing loads a CGI module.
    ({"mpm_event"}, "auto", ["01-cgi.conf", "no CGI module", "mod_cgid", "event"]),
    # The MPM is prefork, so the package loads mod_cgi; mod_cgid cannot be had by this module.
    ({"mpm_prefork", "cgi"}, "cgid", ["01-cgi.conf", "mod_cgi,", "mod_cgid", "prefork"]),
    ({"mpm_event", "cgid"}, "cgi", ["prefork", "event"]),
])
def test_redhat_without_the_wanted_module_fails_naming_the_file(loaded, requested, words):
    host = StandInHost(REDHAT, loaded & {"cgi", "cgid"})
    with pytest.raises(Failed) as failure:
        plan_modules(host, loaded, requested)
    assert all(word in str(failure.value) for word in words), str(failure.value)


@pytest.mark.parametrize("enabled, loaded, requested, expected", [
    (set(), {"mpm_event"}, "auto", ("event", "cgid", ["+cgid"])),
    (set(), {"mpm_prefork"}, "auto", ("prefork", "cgi", ["+cgi"])),
    ({"cgid"}, {"mpm_prefork", "cgid"}, "auto", ("prefork", "cgid", [])),
    ({"cgid"}, {"mpm_prefork", "cgid"}, "cgi", ("prefork", "cgi", ["-cgid", "+cgi"])),
    ({"cgi", "cgid"}, {"mpm_prefork", "cgi", "cgid"}, "cgid", ("prefork", "cgid", ["-cgi"])),
])
def test_debian_enables_and_disables_with_a2enmod(enabled, loaded, requested, expected):
    assert plan_modules(StandInHost(DEBIAN, enabled), loaded, requested) == expected


class StandInMpmHost(StandInHost):
    def __init__(self, layout, enabled, mpms):
        super().__init__(layout, enabled)
        self.mpms = mpms

    def enabled_mpms(self, loaded_mpm):
        return self.mpms


@pytest.mark.parametrize("layout, enabled, loaded, mpm, expected", [
    # Debian: the MPM first (a2enmod refuses a second MPM), then the CGI module of the new MPM.
    (DEBIAN, {"cgid"}, {"mpm_event", "cgid"}, "prefork",
     ("prefork", "cgi", ["-mpm_event", "+mpm_prefork", "-cgid", "+cgi"])),
    (DEBIAN, {"cgi"}, {"mpm_prefork", "cgi"}, "event", ("event", "cgid", ["-mpm_prefork", "+mpm_event", "-cgi", "+cgid"])),
    (DEBIAN, {"cgid"}, {"mpm_event", "cgid"}, "event", ("event", "cgid", [])),
    # RHEL: only the MPM line changes; 01-cgi.conf then loads mod_cgi by itself.
    (REDHAT, {"cgid"}, {"mpm_event", "cgid"}, "prefork", ("prefork", "cgi", ["-mpm_event", "+mpm_prefork"])),
    (REDHAT, {"cgid"}, {"mpm_event", "cgid"}, "keep", ("event", "cgid", [])),
])
def test_a_chosen_mpm_brings_its_cgi_module(layout, enabled, loaded, mpm, expected):
    host = StandInMpmHost(layout, enabled, sorted(name[4:] for name in loaded if name.startswith("mpm_")))
    assert plan_modules(host, loaded, "auto", mpm) == expected
