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
  - Writes one marker-delimited block per CGI root into the main Apache configuration. The block
    holds a C(<DirectoryMatch>) that covers the root's C(__pycache__) and the C(__pycache__) of every
    package below it, denies all web access to them (C(Require all denied)) and runs nothing from
    them (C(Options None), C(AllowOverride None)).
  - The regular expression is built from the root with every character that is special to PCRE
    escaped, so roots with spaces, dots, C(+), parentheses or C($) are matched literally.
  - Several roots give several independent blocks; O(state=absent) removes exactly one root's block.
  - With O(validate=true) the host's config test (C(apachectl -t) on the RHEL family,
    C(apache2ctl -t) on Debian) runs with the change in place; if it fails, the original file is put
    back byte for byte (content, mode, owner) and the task fails with the test's output.
  - The module never reloads Apache; notify a handler when it reports a change.
  - Runs on one host that edit the same O(dest) at the same time (two deploys at once) take turns. Each
    holds an exclusive lock (C(flock)) on the directory of O(dest) from reading the file to the end of the
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
      - The diff shows the root's block before and after.
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
      - The Apache configuration file that holds the block.
      - Defaults to the main config of the host's layout, C(/etc/httpd/conf/httpd.conf) if it exists,
        else C(/etc/apache2/apache2.conf).
      - The file must exist (for O(state=present)). A symlink is followed and the file it points to
        is edited.
      - The config test checks the configuration Apache loads; a O(dest) that Apache does not
        include is not checked by it.
    type: str
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
      - If it fails with the change in place, the original file is restored and the task fails.
      - Nothing is tested when nothing changes.
    type: bool
    default: true
  backup:
    description:
      - Keep a timestamped copy of O(dest) from before the change (only when it changes).
    type: bool
    default: false
notes:
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

- name: Remove the block of a retired CGI root
  pycgi.hosting.httpd_pycache:
    path: /srv/old/cgi-bin
    state: absent
  notify: Reload Apache
"""

RETURN = r"""
dest:
  description: The configuration file that was edited (symlinks resolved).
  returned: always
  type: str
  sample: /etc/apache2/apache2.conf
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
  description: The copy of O(dest) from before the change.
  returned: when O(backup=true) and the file changed
  type: str
  sample: /etc/apache2/apache2.conf.2412.2026-01-31@10:12:03~
"""

import fcntl
import os
import tempfile
import time

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_native

from ansible_collections.pycgi.hosting.plugins.module_utils._apache import (
    CONFIG_TEST_DIRS,
    ApacheConfigError,
    config_test_programs,
    current_block,
    default_config_path,
    normalize_root,
    pycache_regex,
    render_block,
    set_block,
)
from ansible_collections.pycgi.hosting.plugins.module_utils._paths import PathError, display, keep_paths_literal, literal_root

# How long a run waits for another run editing the same config to finish.
LOCK_TIMEOUT = 600


def find_config_test(module, dest):
    for name in config_test_programs(dest):
        path = module.get_bin_path(name, opt_dirs=CONFIG_TEST_DIRS)
        if path:
            return path
    module.fail_json(msg="validate=true needs Apache's config test program (%s) and none was found in PATH or %s; "
                         "install Apache or set validate=false" % (" or ".join(config_test_programs(dest)),
                                                                   ", ".join(CONFIG_TEST_DIRS)))


def run_config_test(module, program):
    """(passed, output) of the host's Apache config test."""
    rc, out, err = module.run_command([program, "-t"], environ_update={"LC_ALL": "C"})
    return rc == 0, "\n".join(part.strip() for part in (out, err) if part.strip())


def write_with_config_test(module, dest, content, program):
    """Puts ``content`` in place atomically and, with a config test ``program``, runs it.

    Returns None when the new file stands, or the test's output after the original inode
    (content, mode, owner, label, times) was put back because the test failed."""
    directory, name = os.path.split(dest)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".%s." % name)
    # A second name for the original inode: renaming it back restores everything about it.
    kept = tmp + ".original"
    moved = False
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
        if program:
            os.link(dest, kept)
        module.atomic_move(tmp, dest)
        moved = True
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if not moved and os.path.lexists(kept):
            os.unlink(kept)
    if not program:
        return None
    passed, output = run_config_test(module, program)
    if passed:
        os.unlink(kept)
        return None
    os.rename(kept, dest)
    return output


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
    result = dict(changed=False, dest=dest, block=block or "", regex=pycache_regex(root))

    if not os.path.exists(dest):
        if block is None:
            module.exit_json(**result)
        module.fail_json(msg="%s does not exist; dest must name an existing Apache config file" % dest, **result)
    if not os.path.isfile(dest):
        module.fail_json(msg="%s is not a regular file" % dest, **result)

    # Held until the module exits: through the config test and any rollback.
    lock_config_dir(module, dest)
    with open(dest, "rb") as handle:
        original = handle.read()
    text = original.decode("utf-8", "surrogateescape")
    try:
        before_block = current_block(text, root)
        updated = set_block(text, root, block).encode("utf-8", "surrogateescape")
    except ApacheConfigError as exc:
        module.fail_json(msg="%s: %s" % (dest, to_native(exc)), **result)
    if updated == original:
        module.exit_json(**result)

    result["changed"] = True
    if module._diff:
        result["diff"] = dict(before=before_block or "", after=block or "",
                              before_header="%s (block for %s)" % (dest, root),
                              after_header="%s (block for %s)" % (dest, root))

    program = None
    if params["validate"]:
        program = find_config_test(module, dest)
        passed, output = run_config_test(module, program)
        if not passed:
            result["changed"] = False
            result.pop("diff", None)
            module.fail_json(msg="Apache's config test (%s -t) already fails before any change, so %s was left as it is: %s"
                                 % (program, dest, output), **result)
    if module.check_mode:
        module.exit_json(**result)

    if params["backup"]:
        result["backup_file"] = module.backup_local(dest)
    try:
        failure = write_with_config_test(module, dest, updated, program)
    except OSError as exc:
        module.fail_json(msg="cannot write %s: %s" % (dest, to_native(exc)), **result)
    if failure is not None:
        if "backup_file" in result:
            os.unlink(result.pop("backup_file"))
        result["changed"] = False
        result.pop("diff", None)
        module.fail_json(msg="Apache's config test (%s -t) fails with the block for %s in place, so %s was restored byte for "
                             "byte: %s" % (program, root, dest, failure), **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
