#!/usr/bin/python
# Copyright (c) 2026 pycgi.hosting contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: httpd_cgi
short_description: Keep Apache running with the CGI module its MPM needs, restarted or reloaded only as changes need
version_added: 1.1.0
description:
  - Makes an installed Apache serve CGI scripts from any starting state (stopped, running without a
    CGI module, running with it), and brings a configuration change into effect the cheapest safe
    way.
  - Enables the CGI module the MPM needs when none is enabled (Debian family, with C(a2enmod));
    C(cgid) for the threaded MPMs (event, worker), C(cgi) for prefork. On the RHEL family the
    package's C(/etc/httpd/conf.modules.d/01-cgi.conf) loads the right one; the module checks that
    one is loaded and fails naming that file if not.
  - Then, after Apache's config test passes, it starts a stopped server; restarts a running one
    when a module was enabled or disabled, or when mod_cgid is loaded but the running server has
    no CGI daemon (mod_cgid starts its daemon only when Apache starts, so a graceful reload after
    enabling it leaves every CGI request answering 503); reloads gracefully when only the
    configuration changed (O(config_changed)); and does nothing otherwise.
  - After a start, restart or reload it waits (bounded by O(wait_timeout)) until Apache answers an
    HTTP request at O(wait_url) with any status and, with mod_cgid, until its CGI daemon listens,
    so that a smoke test after it checks the application rather than Apache's start-up.
  - If the config test fails, nothing is started, restarted or reloaded, a module enabled by this
    task is disabled again, and the task fails with the test's output.
  - The server is also enabled at boot (O(enabled)).
author: pycgi.hosting contributors (@pycgi)
extends_documentation_fragment:
  - pycgi.hosting.attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details:
      - The diff shows the CGI module, whether the server runs, whether it has its CGI daemon and
        whether it starts at boot, before and after.
  platform:
    platforms: posix
options:
  cgi_module:
    description:
      - The CGI module to have enabled.
      - V(auto) enables the one the MPM needs (V(cgid) for event and worker, V(cgi) for prefork)
        when neither is enabled, and leaves an enabled one as it is.
      - V(cgi) or V(cgid) enables that one and disables the other (Debian family). On the RHEL
        family, where the MPM decides which one the package's configuration loads, a value that
        differs from the loaded module is an error.
      - V(cgi) needs the prefork MPM (mod_cgi forks the script from the serving process, which the
        threaded MPMs must not do); with another MPM it is an error.
    type: str
    choices: [auto, cgi, cgid]
    default: auto
  mpm:
    description:
      - The MPM Apache runs with. V(keep) leaves the distribution's (or the user's) choice.
      - V(prefork) with mod_cgi is the setup in which a graceful reload under CGI traffic fails no
        request, because mod_cgid's CGI daemon (which the threaded MPMs need) is replaced by every reload,
        and a request that meets it then gets Apache's own 503. It costs CGI throughput; the
        collection's C(docs/reload-under-traffic.md) has the measurements.
      - On the Debian family the MPM modules are switched with C(a2dismod)/C(a2enmod); on the RHEL
        family only the chosen MPM's C(LoadModule) line of C(/etc/httpd/conf.modules.d/00-mpm.conf)
        is left uncommented. With O(cgi_module=auto) the CGI module follows the MPM. A change
        restarts Apache.
    type: str
    choices: [keep, event, worker, prefork]
    default: keep
  config_changed:
    description:
      - Whether the configuration changed since Apache last read it (for example a
        M(pycgi.hosting.httpd_pycache) task reported a change). A running server is then
        reloaded gracefully, unless it needs a restart anyway.
    type: bool
    default: false
  restart:
    description:
      - Restart a running server even if nothing calls for it.
    type: bool
    default: false
  enabled:
    description:
      - Whether Apache starts at boot. V(null) leaves it as it is.
    type: bool
    default: true
  wait_url:
    description:
      - The URL requested after a start, restart or reload until Apache answers it with any HTTP
        status (an error page counts, since only an answer is waited for).
    type: str
    default: http://localhost/
  wait_timeout:
    description:
      - Seconds to wait for that answer (and for the CGI daemon) before the task fails.
    type: int
    default: 30
notes:
  - In check mode on a host without Apache (a play whose install task was only predicted) it
    reports the start it would do instead of failing.
  - Needs systemd (C(systemctl)) and an installed Apache (C(apache2) on the Debian family, C(httpd)
    on the RHEL family); the role C(pycgi.hosting.cgi_host) installs it first.
  - A graceful reload with mod_cgid replaces the CGI daemon; see the collection's
    C(docs/reload-under-traffic.md) for what that means for requests during a reload.
seealso:
  - module: pycgi.hosting.httpd_pycache
  - name: mod_cgid
    description: The CGI module of the threaded MPMs and its daemon.
    link: https://httpd.apache.org/docs/2.4/mod/mod_cgid.html
"""

EXAMPLES = r"""
- name: Write the block that refuses __pycache__ over HTTP
  pycgi.hosting.httpd_pycache:
    path: /usr/lib/cgi-bin
  register: pycache_block

- name: Serve CGI, reloading Apache only if the block changed
  pycgi.hosting.httpd_cgi:
    config_changed: "{{ pycache_block is changed }}"

- name: No failed request during configuration reloads, at the cost of CGI throughput
  pycgi.hosting.httpd_cgi:
    mpm: prefork
    config_changed: "{{ pycache_block is changed }}"

- name: Apache listens on another port only
  pycgi.hosting.httpd_cgi:
    wait_url: http://127.0.0.1:8080/
"""

RETURN = r"""
action:
  description: What was done to the service (or would be, in check mode).
  returned: always
  type: str
  choices: [none, start, restart, reload]
  sample: restart
reasons:
  description: Why that action was needed.
  returned: always
  type: list
  elements: str
  sample: ["Apache modules changed: +cgid"]
cgi_module:
  description: The CGI module enabled after the task (V(cgi) or V(cgid)); null in check mode without Apache.
  returned: always
  type: str
  sample: cgid
mpm:
  description: The MPM Apache loads (V(event), V(worker), V(prefork)); null in check mode without Apache.
  returned: always
  type: str
  sample: event
modules_changed:
  description: The modules enabled (C(+name)) or disabled (C(-name)) by the task, in the order they were changed.
  returned: always
  type: list
  elements: str
  sample: ["-mpm_event", "+mpm_prefork", "-cgid", "+cgi"]
service:
  description: The systemd service of Apache; null in check mode without Apache.
  returned: always
  type: str
  sample: apache2
waited:
  description: Seconds spent waiting for Apache to answer after the action.
  returned: always
  type: float
  sample: 0.12
"""

import os
import tempfile
import time
import urllib.error

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.urls import open_url

from ansible_collections.pycgi.hosting.plugins.module_utils._httpd_service import (
    RHEL_MPM_CONF,
    cgid_daemon_listening,
    choose_mpm_in_conf,
    decide,
    layout_of,
    loaded_modules,
    mpm_of,
    wanted_cgi_module,
)

_PROGRAM_DIRS = ["/usr/sbin", "/sbin", "/usr/bin", "/bin"]


class Host:
    """The commands this module runs on the host, all as argument lists."""

    def __init__(self, module, layout):
        self.module = module
        self.layout = layout

    def run(self, argv, check=True):
        program = self.module.get_bin_path(argv[0], required=True, opt_dirs=_PROGRAM_DIRS)
        rc, out, err = self.module.run_command([program] + list(argv[1:]), environ_update={"LC_ALL": "C"})
        if check and rc != 0:
            self.fail("%s failed (rc=%d): %s" % (" ".join(argv), rc, (out + err).strip()))
        return rc, out, err

    def fail(self, msg, **extra):
        self.module.fail_json(msg=msg, **extra)

    def systemctl(self, *args, check=True):
        return self.run(["systemctl"] + list(args), check=check)

    def running(self):
        rc, out, _err = self.systemctl("is-active", self.layout.service, check=False)
        return rc == 0 and out.strip() in ("active", "reloading")

    def main_pid(self):
        _rc, out, _err = self.systemctl("show", "--property=MainPID", "--value", self.layout.service)
        try:
            return int(out.strip() or 0)
        except ValueError:
            return 0

    def enabled_at_boot(self):
        rc, _out, _err = self.systemctl("is-enabled", "--quiet", self.layout.service, check=False)
        return rc == 0

    def config_test(self):
        """(passed, output) of Apache's config test."""
        rc, out, err = self.run(self.layout.config_test, check=False)
        return rc == 0, "\n".join(part.strip() for part in (out, err) if part.strip())

    def modules(self):
        """The names of the modules the configuration on disk loads."""
        rc, out, err = self.run(self.layout.modules_cmd, check=False)
        if rc != 0:
            passed, output = self.config_test()
            self.fail("Apache's configuration does not load (%s -M failed): %s"
                      % (self.layout.modules_cmd[0], output if not passed else (out + err).strip()))
        return loaded_modules(out)

    def enabled_modules(self, loaded):
        """The CGI modules enabled on disk."""
        if self.layout.mods_enabled:
            return set(name for name in ("cgi", "cgid")
                       if os.path.exists(os.path.join(self.layout.mods_enabled, name + ".load")))
        return set(name for name in ("cgi", "cgid") if name in loaded)

    def enabled_mpms(self, loaded_mpm):
        """The MPMs enabled on disk: mods-enabled's on the Debian family, the loaded one else."""
        if not self.layout.mods_enabled:
            return [loaded_mpm] if loaded_mpm else []
        return sorted(name[len("mpm_"):-len(".load")] for name in os.listdir(self.layout.mods_enabled)
                      if name.startswith("mpm_") and name.endswith(".load"))

    def choose_rhel_mpm(self, mpm):
        """Leaves only ``mpm``'s LoadModule line of 00-mpm.conf uncommented (atomically)."""
        try:
            with open(RHEL_MPM_CONF) as handle:
                text = handle.read()
            updated = choose_mpm_in_conf(text, mpm)
        except (OSError, ValueError) as exc:
            self.fail("cannot choose the %s MPM: %s" % (mpm, exc))
        if updated != text:
            fd, tmp = tempfile.mkstemp(dir=os.path.dirname(RHEL_MPM_CONF), prefix=".00-mpm.conf.")
            with os.fdopen(fd, "w") as handle:
                handle.write(updated)
            self.module.atomic_move(tmp, RHEL_MPM_CONF)

    def daemon_listening(self, main_pid):
        with open("/proc/net/unix") as handle:
            return cgid_daemon_listening(main_pid, handle.read())


def plan_modules(host, loaded, requested, requested_mpm="keep"):
    """(MPM, CGI module, changes): the MPM and CGI module to end with and the changes that get
    there, ``+name``/``-name`` for a module enabled or disabled, MPM changes first."""
    current_mpm = mpm_of(loaded)
    mpm = current_mpm if requested_mpm == "keep" else requested_mpm
    changes = []
    enabled = host.enabled_modules(loaded)
    if mpm != current_mpm:
        changes.extend("-mpm_" + name for name in host.enabled_mpms(current_mpm) if name != mpm)
        changes.append("+mpm_" + mpm)
        if not host.layout.mods_enabled:
            # 01-cgi.conf of the RHEL family loads the CGI module of the MPM it finds.
            enabled = {wanted_cgi_module(mpm)}
    wanted = wanted_cgi_module(mpm, requested)
    if wanted == "cgi" and mpm != "prefork":
        # a2enmod itself would pick mod_cgid instead, and the package configuration of the RHEL
        # family loads mod_cgi only with prefork.
        host.fail("cgi_module=cgi needs the prefork MPM, and Apache runs the %s MPM: use cgi_module=cgid (or auto), "
                  "or mpm=prefork" % mpm)
    if requested == "auto" and enabled and mpm == current_mpm:
        # One is enabled already: left as it is (the user's choice, or the package's).
        return mpm, wanted if wanted in enabled else sorted(enabled)[0], changes
    if not host.layout.mods_enabled:
        if wanted not in enabled:
            host.fail("Apache's configuration loads %s, not mod_%s (the MPM is %s): /etc/httpd/conf.modules.d/01-cgi.conf "
                      "(package httpd) loads the CGI module the MPM in 00-mpm.conf needs; restore it, or choose the MPM "
                      "there" % ("mod_" + " and mod_".join(sorted(enabled)) if enabled else "no CGI module", wanted, mpm))
        return mpm, wanted, changes
    changes.extend("-" + name for name in sorted(enabled) if name != wanted)
    if wanted not in enabled:
        changes.append("+" + wanted)
    return mpm, wanted, changes


def apply_module_changes(host, changes, undo=False):
    """Carries out the changes of plan_modules (in reverse, undoing them, when ``undo``):
    a2enmod/a2dismod on the Debian family; on the RHEL family the MPM's line of 00-mpm.conf."""
    for change in (reversed(changes) if undo else changes):
        enable = change.startswith("+") != undo
        name = change[1:]
        if host.layout.mods_enabled:
            host.run(["a2enmod" if enable else "a2dismod", "-q", name], check=not undo)
        elif enable:
            host.choose_rhel_mpm(name[len("mpm_"):])


def wait_until_serving(host, action, url, timeout, cgid):
    """Waits until Apache answers ``url`` (any HTTP status) and, with mod_cgid, its daemon
    listens; returns the seconds waited, fails the task at ``timeout``."""
    start = time.monotonic()
    deadline = start + timeout
    last_error = "no attempt"
    while True:
        try:
            open_url(url, timeout=max(0.5, min(5.0, deadline - time.monotonic())), follow_redirects="none").close()
            answered = True
        except urllib.error.HTTPError:
            answered = True
        except (urllib.error.URLError, OSError) as exc:
            answered = False
            last_error = str(getattr(exc, "reason", exc))
        if answered:
            if not cgid or host.daemon_listening(host.main_pid()):
                return round(time.monotonic() - start, 3)
            last_error = "Apache answers but mod_cgid's daemon does not listen"
        if time.monotonic() >= deadline:
            host.fail("Apache did not answer %s within %d s after the %s: %s" % (url, timeout, action, last_error))
        time.sleep(0.1)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            cgi_module=dict(type="str", choices=["auto", "cgi", "cgid"], default="auto"),
            mpm=dict(type="str", choices=["keep", "event", "worker", "prefork"], default="keep"),
            config_changed=dict(type="bool", default=False),
            restart=dict(type="bool", default=False),
            enabled=dict(type="bool", default=True),
            wait_url=dict(type="str", default="http://localhost/"),
            wait_timeout=dict(type="int", default=30),
        ),
        supports_check_mode=True,
    )
    params = module.params
    layout = layout_of(os.path.exists)
    if layout is None and module.check_mode:
        # A check run of a play that installs Apache first: the install was only predicted.
        module.exit_json(changed=True, action="start", reasons=["Apache is not installed yet"], cgi_module=None, mpm=None,
                         modules_changed=[], service=None, waited=0.0)
    if layout is None:
        module.fail_json(msg="Apache is not installed: neither /etc/httpd/conf/httpd.conf nor /etc/apache2/apache2.conf "
                             "exists (the role pycgi.hosting.cgi_host installs it)")
    if params["wait_timeout"] < 1:
        module.fail_json(msg="wait_timeout must be at least 1 second, got %d" % params["wait_timeout"])
    host = Host(module, layout)

    loaded = host.modules()
    mpm, cgi_module, changes = plan_modules(host, loaded, params["cgi_module"], params["mpm"])
    running = host.running()
    main_pid = host.main_pid() if running else 0
    cgid_loaded_now = "cgid" in loaded
    daemon_missing = running and cgid_loaded_now and not host.daemon_listening(main_pid)
    action, reasons = decide(running, changes, daemon_missing, params["config_changed"], params["restart"])
    boot = host.enabled_at_boot()
    boot_change = params["enabled"] is not None and boot != params["enabled"]

    result = dict(changed=bool(changes) or action != "none" or boot_change, action=action, reasons=reasons,
                  cgi_module=cgi_module, mpm=mpm, modules_changed=changes, service=layout.service, waited=0.0)
    if module._diff:
        before = dict(cgi_module=sorted(host.enabled_modules(loaded)), running=running,
                      cgi_daemon=None if not cgid_loaded_now else not daemon_missing, enabled=boot)
        after = dict(cgi_module=[cgi_module], running=True, cgi_daemon=True if cgi_module == "cgid" else None,
                     enabled=boot if params["enabled"] is None else params["enabled"])
        result["diff"] = dict(before=before, after=after)
    if module.check_mode:
        module.exit_json(**result)

    apply_module_changes(host, changes)
    if action != "none":
        passed, output = host.config_test()
        if not passed:
            apply_module_changes(host, changes, undo=True)
            result.update(changed=False, action="none", modules_changed=[])
            result.pop("diff", None)
            module.fail_json(msg="Apache's config test failed, so Apache was not %s%s: %s"
                                 % ({"start": "started", "restart": "restarted", "reload": "reloaded"}[action],
                                    " and the module changes were undone" if changes else "", output), **result)
        host.systemctl(action, layout.service)
    if boot_change:
        host.systemctl("enable" if params["enabled"] else "disable", layout.service)
    if action != "none":
        result["waited"] = wait_until_serving(host, action, params["wait_url"], params["wait_timeout"], cgi_module == "cgid")
    module.exit_json(**result)


if __name__ == "__main__":
    main()
