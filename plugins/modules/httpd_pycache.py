#!/usr/bin/python
# Copyright (c) 2026 pycgi.hosting contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: httpd_pycache
short_description: Deny web access to the Python bytecode caches of a CGI root in Apache
version_added: 1.0.0
description:
  - Writes one marker-delimited block per CGI root. The block
    holds a C(<DirectoryMatch>) that covers the root's C(__pycache__) and the C(__pycache__) of every
    package below it, denies all web access to them (C(Require all denied)) and runs nothing from
    them (C(Options None), C(AllowOverride None)).
  - With O(placement=drop_in) (the default) the block is a file of its own, the way the distribution
    packages configure Apache; C(conf.d/NAME.conf) on the RHEL family, C(conf-available/NAME.conf)
    enabled with C(a2enconf) on Debian. Removing it deletes the file (after C(a2disconf)), and runs for
    different roots never edit the same file. With O(placement=block) the block goes into O(dest)
    itself.
  - A root's block is kept in one place only. A run with O(placement=drop_in) takes an older block for the
    root out of O(dest), a run with O(placement=block) removes the root's drop-in, and O(state=absent)
    removes both. Such a move is one change for the config test and for rollback.
  - The regular expression is built from the root with every character that is special to PCRE
    escaped, so roots with spaces, dots, C(+), parentheses or C($) are matched literally.
  - Several roots give several independent blocks; O(state=absent) removes exactly one root's block.
  - With O(validate=true) the host's config test (C(apachectl -t) on the RHEL family,
    C(apache2ctl -t) on Debian) runs with the change in place; if it fails, every file the run touched
    (O(dest), the drop-in, and what C(a2enconf)/C(a2disconf) changed) is put back byte for byte
    (content, mode, owner) and the task fails with the test's output.
  - When it writes a drop-in, the test also lists the files Apache reads (C(-D DUMP_INCLUDES), through
    C(apache2ctl) on Debian, through the C(httpd) binary itself on the RHEL family, whose C(apachectl)
    takes no further arguments) and fails, with the same rollback, when the drop-in is not among them,
    for a block that Apache never reads would protect nothing.
  - The module never reloads Apache; notify a handler when it reports a change.
  - Runs on one host for the same O(dest) at the same time (two deploys at once) take turns. Each
    holds an exclusive lock (C(flock)) on the directory of O(dest) from reading the files to the end of the
    config test and of any rollback, so no run loses another's block and a config test never sees
    another run's half-done change.
  - Apache directives do not grant file-system access; the block's job is that compiled code is
    never served or executed over HTTP.
author: pycgi.hosting contributors (@pycgi)
extends_documentation_fragment:
  - pycgi.hosting.attributes
  - pycgi.hosting.paths
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details:
      - The diff shows the root's block before and after, one entry per file that changes (a list
        when a block moves between O(dest) and the drop-in).
  platform:
    platforms: posix
options:
  path:
    description:
      - The CGI root, an absolute directory path as Apache sees it (the target of a C(ScriptAlias)).
      - It does not need to exist yet. C(/) and system directories are refused (see O(allow_system_path));
        use O(server_wide) for a block that covers every C(__pycache__) of the server.
      - Required unless O(server_wide=true).
    type: str
  dest:
    description:
      - The main Apache configuration file.
      - Defaults to the main config of the host's layout, C(/etc/httpd/conf/httpd.conf) if it exists,
        else C(/etc/apache2/apache2.conf).
      - The file must exist (for O(state=present)). A symlink is followed.
      - With O(placement=block) it holds the block (the file a symlink points to is edited). The config
        test checks the configuration Apache loads; a O(dest) that Apache does not include is not checked by it.
      - With O(placement=drop_in) the drop-in directory is found from it (C(conf-available/) beside it on
        Debian, C(conf.d/) in the parent of its directory on the RHEL family, or C(conf.d/) beside it), and
        a block for the root that it still holds is removed from it.
    type: str
  placement:
    description:
      - Where the block goes.
      - V(drop_in) writes it to a file of its own in the layout's drop-in directory (see O(dest)),
        enabled with C(a2enconf) on Debian. The task fails, naming the directories it looked for, on
        a host that has none of them.
      - V(block) writes it between markers into O(dest), as the module did before it offered drop-ins.
    type: str
    choices: [drop_in, block]
    default: drop_in
    version_added: 1.1.0
  drop_in_name:
    description:
      - The name of the drop-in file, without C(.conf) (a trailing C(.conf) is accepted). Letters, digits,
        C(.), C(_) and C(-) only.
      - Defaults to C(pycgi-pycache-) followed by the root's path with C(/) as C(-)
        (C(pycgi-pycache-usr-lib-cgi-bin) for C(/usr/lib/cgi-bin)), C(pycgi-pycache-server) with
        O(server_wide=true).
      - An existing file of this name that does not hold the block for O(path) is never overwritten;
        the task fails and asks for another name.
      - Give the same name for O(state=absent) and when switching O(placement) back to V(block).
    type: str
    version_added: 1.1.0
  state:
    description:
      - Whether the block for O(path) is present or absent.
    type: str
    choices: [present, absent]
    default: present
  write_bytecode:
    description:
      - When V(false), the block also sets C(PYTHONDONTWRITEBYTECODE=1) for the CGI scripts of the
        root (C(SetEnv), needs mod_env), for hosts whose caches are built at deploy time and must not
        be written by the web server.
    type: bool
    default: true
  pycache_prefix:
    description:
      - When set, the block also sets C(PYTHONPYCACHEPREFIX) to this directory for the CGI scripts
        of the root (C(SetEnv), needs mod_env), so that Python 3.8 and later read and write their
        caches below it instead of in C(__pycache__) directories of the root.
      - Use the directory given to the O(pycgi.hosting.precompile#module:pycache_prefix) option of
        M(pycgi.hosting.precompile). Must be an absolute path.
    type: str
  server_wide:
    description:
      - Write (or with O(state=absent) remove) one block that denies web access to every C(__pycache__)
        directory of the server, wherever it is (for example one a developer made under
        C(/var/www/html)), instead of a block for one root. Its markers name C(/).
      - Cannot be combined with O(path), O(write_bytecode=false) or O(pycache_prefix), which concern one root.
    type: bool
    default: false
  validate:
    description:
      - Run the host's Apache config test before and after the change.
      - If the test already fails before the change, the task fails and nothing is changed.
      - If it fails with the change in place, every file the run touched is restored and the task fails.
      - Nothing is tested when nothing changes.
    type: bool
    default: true
  backup:
    description:
      - Keep a timestamped copy of each existing file from before the change (O(dest), the drop-in),
        beside it, only when it changes.
      - On Debian a copy in C(conf-available/) does not end in C(.conf), so Apache does not read it.
    type: bool
    default: false
notes:
  - Drop-ins are the default because removal is deleting one file and runs for different roots
    never edit one file. A drop-in is read where the main config includes its directory, at the end on the stock
    layouts of both families (the same place the appended block had, before the virtual hosts on Debian).
    Server-level C(<DirectoryMatch>) sections are applied in the order Apache reads them, so a later
    section of your own that grants access to the same caches would override the denial wherever the block is.
  - M(pycgi.hosting.pycache_info) looks for the block in the file named by its
    O(pycgi.hosting.pycache_info#module:apache_config) option; give it RV(dest) of this module for a drop-in.
  - Apache 2.4 applies a C(<DirectoryMatch>) only to paths its regex matches, not to the
    subdirectories of a matching directory; the regex therefore names every depth explicitly.
  - A C(<Location>) or C(<Files>) section that grants access to the same URLs is merged after
    C(<DirectoryMatch>) and would override the denial.
seealso:
  - module: pycgi.hosting.pycache_owner
  - name: Apache DirectoryMatch directive
    description: How Apache matches directory sections against regular expressions.
    link: https://httpd.apache.org/docs/2.4/mod/core.html#directorymatch
"""

EXAMPLES = r"""
- name: Deny web access to the caches of the stock CGI directory
  pycgi.hosting.httpd_pycache:
    path: /var/www/cgi-bin
  notify: Reload Apache

- name: Caches built at deploy time only; the web server must not write bytecode
  pycgi.hosting.httpd_pycache:
    path: /srv/app/cgi-bin
    write_bytecode: false
    backup: true
  notify: Reload Apache

- name: Caches outside the web root, below /var/cache/pycgi (Python 3.8+)
  pycgi.hosting.httpd_pycache:
    path: /usr/lib/cgi-bin
    pycache_prefix: /var/cache/pycgi
  notify: Reload Apache

- name: Deny web access to every __pycache__ of the server, wherever it is
  pycgi.hosting.httpd_pycache:
    server_wide: true
  notify: Reload Apache

- name: Keep the block in the main config instead of a drop-in file
  pycgi.hosting.httpd_pycache:
    path: /srv/legacy/cgi-bin
    placement: block
  notify: Reload Apache

- name: Remove the block of a retired CGI root
  pycgi.hosting.httpd_pycache:
    path: /srv/old/cgi-bin
    state: absent
  notify: Reload Apache
"""

RETURN = r"""
dest:
  description:
    - The file that holds the root's block (or held it, for O(state=absent)); the drop-in for
      O(placement=drop_in), else the main config (symlinks resolved).
  returned: always
  type: str
  sample: /etc/apache2/conf-available/pycgi-pycache-usr-lib-cgi-bin.conf
main_config:
  description: The main Apache config (symlinks resolved).
  returned: always
  type: str
  sample: /etc/apache2/apache2.conf
  version_added: 1.1.0
placement:
  description: The placement used, O(placement).
  returned: always
  type: str
  sample: drop_in
  version_added: 1.1.0
block:
  description: The block for the root as the task leaves it; empty for O(state=absent).
  returned: always
  type: str
  sample: |
    # BEGIN pycgi.hosting pycache /var/www/cgi-bin
    # Managed by pycgi.hosting.httpd_pycache: Python bytecode caches below this CGI root
    # are never served or run over HTTP.
    <DirectoryMatch "^/var/www/cgi-bin/(?:.+/)?__pycache__(?:/|$)">
        Require all denied
        Options None
        AllowOverride None
    </DirectoryMatch>
    # END pycgi.hosting pycache /var/www/cgi-bin
regex:
  description: The regular expression of the C(<DirectoryMatch>), as written in the config.
  returned: always
  type: str
  sample: ^/var/www/cgi-bin/(?:.+/)?__pycache__(?:/|$)
backup_file:
  description: The copy of the first file that changed, from before the change.
  returned: when O(backup=true) and an existing file changed
  type: str
  sample: /etc/apache2/apache2.conf.2412.2026-01-31@10:12:03~
backup_files:
  description: The copies of every existing file that changed (the main config first when a block moves).
  returned: when O(backup=true) and an existing file changed
  type: list
  elements: str
  sample: [/etc/apache2/apache2.conf.2412.2026-01-31@10:12:03~]
  version_added: 1.1.0
"""

import fcntl
import os
import time

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_native

from ansible_collections.pycgi.hosting.plugins.module_utils._apache import (
    ApacheConfigError,
    check_drop_in_name,
    default_config_path,
    drop_in_layout,
    drop_in_name,
    normalize_root,
    pycache_regex,
    render_block,
)
from ansible_collections.pycgi.hosting.plugins.module_utils._apache_change import PLACEMENTS, Host, Request, converge
from ansible_collections.pycgi.hosting.plugins.module_utils._paths import PathError, display, keep_paths_literal, literal_root

# How long a run waits for another run editing the same config to finish.
LOCK_TIMEOUT = 600


class ModuleHost(Host):
    """The host as AnsibleModule reaches it."""

    def __init__(self, module):
        self.module = module
        self.check_mode = module.check_mode
        self.diff = module._diff

    def run(self, argv, environ):
        return self.module.run_command(argv, environ_update=environ)

    def find_program(self, name, dirs):
        return self.module.get_bin_path(name, opt_dirs=dirs)

    def move(self, src, dest):
        self.module.atomic_move(src, dest)

    def backup(self, path):
        return self.module.backup_local(path)


def lock_config_dir(module, dest):
    """Holds an exclusive lock on the directory of ``dest`` until the module exits.

    The directory, not the file: the file is replaced by a rename, and a lock on the old inode
    would not stop a run that opened the new one. Nothing is created for it."""
    directory = os.path.dirname(dest)
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        module.fail_json(msg="cannot open %s to lock it: %s" % (directory, to_native(exc)))
    deadline = time.monotonic() + LOCK_TIMEOUT
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            if time.monotonic() > deadline:
                module.fail_json(msg="another run has held the lock on %s for %d s; nothing was changed" % (directory, LOCK_TIMEOUT))
            time.sleep(0.05)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="str"),
            dest=dict(type="str"),
            state=dict(type="str", choices=["present", "absent"], default="present"),
            placement=dict(type="str", choices=list(PLACEMENTS), default="drop_in"),
            drop_in_name=dict(type="str"),
            write_bytecode=dict(type="bool", default=True),
            pycache_prefix=dict(type="str"),
            validate=dict(type="bool", default=True),
            backup=dict(type="bool", default=False),
            server_wide=dict(type="bool", default=False),
            allow_system_path=dict(type="bool", default=False),
        ),
        supports_check_mode=True,
    )
    params = module.params
    keep_paths_literal(module)
    if params["server_wide"]:
        if params["path"] is not None or params["pycache_prefix"] or not params["write_bytecode"]:
            module.fail_json(msg="server_wide=true writes one block for every __pycache__ of the server; it cannot be "
                                 "combined with path, pycache_prefix or write_bytecode=false, which concern one root")
        root = "/"
    else:
        if params["path"] is None:
            module.fail_json(msg="path is required (the CGI root), unless server_wide=true")
        try:
            root = normalize_root(literal_root(params["path"], "path", params["allow_system_path"]))
        except (PathError, ApacheConfigError) as exc:
            module.fail_json(msg=display(to_native(exc)))

    dest = params["dest"] or default_config_path()
    if not dest:
        module.fail_json(msg="no Apache main config found (neither /etc/httpd/conf/httpd.conf nor /etc/apache2/apache2.conf "
                             "exists); install Apache or set dest")
    dest = os.path.realpath(dest)

    environment = []
    if not params["write_bytecode"]:
        environment.append(("PYTHONDONTWRITEBYTECODE", "1"))
    if params["pycache_prefix"]:
        if not os.path.isabs(params["pycache_prefix"]):
            module.fail_json(msg="pycache_prefix %s must be an absolute path" % params["pycache_prefix"])
        environment.append(("PYTHONPYCACHEPREFIX", os.path.normpath(params["pycache_prefix"])))
    try:
        block = render_block(root, environment) if params["state"] == "present" else None
    except ApacheConfigError as exc:
        module.fail_json(msg="pycache_prefix: %s" % to_native(exc))
    result = dict(changed=False, dest=dest, main_config=dest, placement=params["placement"],
                  block=block or "", regex=pycache_regex(root))

    if not os.path.exists(dest):
        if block is None:
            module.exit_json(**result)
        module.fail_json(msg="%s does not exist; dest must name an existing Apache config file" % dest, **result)
    if not os.path.isfile(dest):
        module.fail_json(msg="%s is not a regular file" % dest, **result)
    try:
        name = check_drop_in_name(params["drop_in_name"]) if params["drop_in_name"] else drop_in_name(root)
    except ApacheConfigError as exc:
        module.fail_json(msg=to_native(exc), **result)
    try:
        layout = drop_in_layout(dest, name)
    except ApacheConfigError as exc:
        if params["placement"] == "drop_in" and block is not None:
            module.fail_json(msg=to_native(exc), **result)
        # A host without a drop-in directory has no drop-in to remove.
        layout = None

    # Held until the module exits: through the config test and any rollback.
    lock_config_dir(module, dest)
    request = Request(root=root, block=block, placement=params["placement"], main_config=dest, layout=layout,
                      validate=params["validate"], backup=params["backup"])
    result.update(converge(ModuleHost(module), request))
    if result.get("failed"):
        result.pop("failed")
        module.fail_json(**result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
