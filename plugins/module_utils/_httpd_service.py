# Copyright (c) 2026 pycgi.hosting contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Apache as a CGI server: which CGI module its MPM needs, whether the running server can
serve CGI with the configuration on disk, and what to do about it (start, restart, graceful
reload or nothing).

Plain functions on plain data; the module pycgi.hosting.httpd_cgi runs the commands.

mod_cgid starts its CGI daemon only when Apache starts: a graceful reload after the module
was enabled leaves the server without one, and every CGI request then answers 503
("unable to connect to cgi daemon"). So a module enabled or disabled means a restart, and a
running server whose configuration loads mod_cgid but which has no daemon listening is
restarted too, whatever made it so (a run that failed between enabling the module and the
restart, or a reload by hand).
"""

from __future__ import annotations

import re
from typing import Callable, Collection, NamedTuple

# The two layouts: the service, the config test and the program that lists loaded modules.
# mods_enabled: the directory of enabled modules where modules are enabled with a2enmod
# (Debian); None where the package's own conf.modules.d files load them (RHEL family).


class Layout(NamedTuple):
    family: str
    config: str
    service: str
    config_test: list[str]
    modules_cmd: list[str]
    mods_enabled: str | None


DEBIAN = Layout(
    "Debian",
    "/etc/apache2/apache2.conf",
    "apache2",
    ["apache2ctl", "-t"],
    ["apache2ctl", "-M"],
    "/etc/apache2/mods-enabled",
)
REDHAT = Layout("RedHat", "/etc/httpd/conf/httpd.conf", "httpd", ["apachectl", "-t"], ["httpd", "-M"], None)

CGI_MODULES = ("cgi", "cgid")
# The Apache module identifiers that `-M` lists for them and for the MPMs.
_LOADED_RE = re.compile(r"^\s*(\w+)_module\b", re.MULTILINE)


def layout_of(exists: Callable[[str], bool]) -> Layout | None:
    """The layout whose main config exists (RHEL family first), or None."""
    for layout in (REDHAT, DEBIAN):
        if exists(layout.config):
            return layout
    return None


def loaded_modules(dump: str) -> set[str]:
    """The module names (``cgid``, ``mpm_event``...) in the output of ``apachectl -M``."""
    return set(_LOADED_RE.findall(dump))


def mpm_of(modules: Collection[str]) -> str | None:
    """The MPM among loaded module names: ``event``, ``worker``, ``prefork``, or None."""
    for name in sorted(modules):
        if name.startswith("mpm_"):
            return name[len("mpm_") :]
    return None


def wanted_cgi_module(mpm: str | None, requested: str = "auto") -> str:
    """The CGI module to run: mod_cgi forks the script from the serving process, which the
    threaded MPMs must not do, so they get mod_cgid and its daemon; prefork gets mod_cgi."""
    if requested != "auto":
        return requested
    return "cgi" if mpm == "prefork" else "cgid"


def cgid_daemon_listening(main_pid: int, proc_net_unix: str) -> bool:
    """Whether a CGI daemon of the Apache whose main process is ``main_pid`` listens: mod_cgid
    names its socket after the ScriptSock path plus ``.<main pid>`` (``/proc/net/unix`` lists
    every bound Unix socket with its path last)."""
    suffix = "cgisock.%d" % main_pid
    for line in proc_net_unix.splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 8 and fields[-1].endswith(suffix):
            return True
    return False


def decide(
    running: bool, modules_changed: list[str], daemon_missing: bool, config_changed: bool, restart: bool = False
) -> tuple[str, list[str]]:
    """What to do with the service, and why: ``(action, reasons)`` with action one of
    ``start``, ``restart``, ``reload``, ``none``.

    A stopped server is started (it reads everything on disk); a module enabled or disabled,
    or a running mod_cgid server without its daemon, needs a full restart; a configuration
    change alone needs only a graceful reload; nothing changed, nothing is done."""
    if not running:
        return "start", ["Apache is not running"]
    reasons = []
    if modules_changed:
        reasons.append("Apache modules changed: %s" % ", ".join(modules_changed))
    if daemon_missing:
        reasons.append("mod_cgid is loaded but the running server has no CGI daemon (a reload does not start one)")
    if restart:
        reasons.append("a restart was asked for")
    if reasons:
        return "restart", reasons
    if config_changed:
        return "reload", ["the configuration changed"]
    return "none", []


# The RHEL family's httpd chooses its MPM with one uncommented LoadModule line in this file.
RHEL_MPM_CONF = "/etc/httpd/conf.modules.d/00-mpm.conf"
_MPM_LINE_RE = re.compile(r"^(\s*#\s*)?(\s*LoadModule\s+mpm_(\w+)_module\s+\S+.*)$")


def choose_mpm_in_conf(text: str, mpm: str) -> str:
    """``text`` of 00-mpm.conf with only ``mpm``'s LoadModule line uncommented and the other
    MPMs' lines commented out; every other line kept as it is. Raises ValueError when the file
    has no line for ``mpm``."""
    lines = text.splitlines(True)
    found = False
    for index, line in enumerate(lines):
        match = _MPM_LINE_RE.match(line.rstrip("\r\n"))
        if not match:
            continue
        ending = line[len(line.rstrip("\r\n")) :]
        commented, directive, name = match.group(1), match.group(2).lstrip(), match.group(3)
        if name == mpm:
            found = True
            lines[index] = directive + ending
        elif not commented:
            lines[index] = "#" + directive + ending
    if not found:
        raise ValueError("%s has no LoadModule line for mpm_%s_module" % (RHEL_MPM_CONF, mpm))
    return "".join(lines)
