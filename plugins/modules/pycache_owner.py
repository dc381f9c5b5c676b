#!/usr/bin/python
# Copyright (c) 2026 pycgi.hosting contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: pycache_owner
short_description: Give the Python bytecode caches of a CGI tree the web server's owner and modes
version_added: 1.0.0
description:
  - Sets the owner, group and modes of the C(__pycache__) directories below O(path) and of their
    files (O(scope=pycache)), or the owner and group of everything below O(path) plus the modes of
    the caches (O(scope=tree)), in one walk of the tree, changing only what differs.
  - With O(create=true), makes a C(__pycache__) in every directory that holds Python sources, so
    that the web server can write its caches even where nothing was precompiled.
  - Symlinks are never followed and never changed, and nothing outside O(path) is touched, even
    when a symlink is planted in a cache directory the web server can write to.
  - A file with more than one hard link is left alone with a warning, since it may be a file from
    outside the tree linked in by whoever can write to the caches.
  - The walk is one C(os.scandir) pass with C(lstat) and no subprocess per file, so large trees
    stay fast. Run as root, with C(fs.protected_hardlinks=1), a file in a directory that only root
    may write to is changed by its name without following symlinks, one system call; any other
    file is opened without following symlinks and changed only if it is still the file that was
    examined. A FIFO, socket or device node gets its owner, never a mode, through a
    descriptor that does not open it for I/O (C(O_PATH)), with the same check. A directory is changed
    after its contents, so that it stays root's alone meanwhile.
  - A C(.pyc) gets O(file_mode) without the read bits that its source (the C(.py) of the same
    name in the directory above the cache) lacks, so a cache is never easier to read than its source.
  - When the task fails after it changed something, the result still lists those changes
    (RV(changed_paths), RV(stats)) and the message says how many there were.
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
      - The diff lists C(owner:group mode) of each changed path before and after, capped at 100 paths.
  platform:
    platforms: posix
options:
  path:
    description:
      - The CGI root. It must be a directory, not a symlink to one, and not C(/) or another
        system directory (see O(allow_system_path)).
    type: str
    required: true
  owner:
    description:
      - The user (name or numeric id) that owns the caches.
      - Defaults to the web server's user that exists on the host, C(apache), else C(www-data).
      - A user name that does not exist is an error before anything changes.
    type: str
  group:
    description:
      - The group (name or numeric id) of the caches.
      - Defaults to the web server's group that exists on the host, C(apache), else C(www-data).
      - A group name that does not exist is an error before anything changes.
    type: str
  scope:
    description:
      - V(pycache) handles the C(__pycache__) directories and the files in them.
      - V(tree) also gives every other file and directory below O(path) (and O(path) itself) the
        owner and group; their modes are kept, so the executable bits of CGI scripts survive.
    type: str
    choices: [pycache, tree]
    default: pycache
  dir_mode:
    description:
      - The mode of the C(__pycache__) directories, an octal string such as V('0755').
      - World-writable modes are refused.
    type: raw
    default: '0755'
  file_mode:
    description:
      - The mode of the C(.pyc) files in the C(__pycache__) directories, an octal string such as V('0644'),
        without the read bits their source lacks.
      - World-writable modes are refused.
    type: raw
    default: '0644'
  create:
    description:
      - Create a C(__pycache__) with O(owner), O(group) and O(dir_mode) in every directory that holds
        C(*.py) files and has none (not inside caches, not behind symlinks).
    type: bool
    default: true
notes:
  - Changing the owner of a file clears its set-user-ID and set-group-ID bits (the kernel does that).
seealso:
  - module: pycgi.hosting.httpd_pycache
  - module: ansible.builtin.file
"""

EXAMPLES = r"""
- name: Let the web server read and write the caches of the CGI tree
  pycgi.hosting.pycache_owner:
    path: /var/www/cgi-bin

- name: Everything under the CGI root owned by the web server, as the notes recommend
  pycgi.hosting.pycache_owner:
    path: /var/www/cgi-bin
    owner: apache
    group: apache
    scope: tree

- name: Caches kept outside the web root (precompile and httpd_pycache with pycache_prefix)
  pycgi.hosting.pycache_owner:
    path: /var/cache/pycgi
    owner: www-data
    group: www-data
    scope: tree
    create: false

- name: Read-only caches built at deploy time, owned by root
  pycgi.hosting.pycache_owner:
    path: /srv/app/cgi-bin
    owner: root
    group: root
    create: false
"""

RETURN = r"""
owner:
  description: The owner the paths were given.
  returned: always
  type: str
  sample: www-data
group:
  description: The group the paths were given.
  returned: always
  type: str
  sample: www-data
changed_paths:
  description: The paths that were changed or created (in check mode, would be), at most the first 100.
  returned: always
  type: list
  elements: str
  sample: [/var/www/cgi-bin/__pycache__, /var/www/cgi-bin/__pycache__/util.cpython-311.pyc]
skipped_symlinks:
  description: Symlinks met in the walk, neither followed nor changed, at most the first 100.
  returned: always
  type: list
  elements: str
  sample: [/var/www/cgi-bin/__pycache__/evil.pyc]
stats:
  description: Counts of the walk.
  returned: always
  type: dict
  contains:
    examined:
      description: Paths whose owner and mode were checked.
      type: int
    changed:
      description: Paths changed or created.
      type: int
    created:
      description: C(__pycache__) directories created.
      type: int
    symlinks:
      description: Symlinks met and left alone.
      type: int
  sample: {examined: 120, changed: 4, created: 1, symlinks: 0}
"""

import grp
import pwd

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_native

from ansible_collections.pycgi.hosting.plugins.module_utils._ownership import (
    SCOPES,
    OwnershipError,
    default_web_group,
    default_web_user,
    fix_ownership,
    parse_mode,
    resolve_group,
    resolve_user,
)
from ansible_collections.pycgi.hosting.plugins.module_utils._paths import PathError, display, json_safe, literal_root

REPORT_LIMIT = 100


class IdNames:
    """Names of uids and gids for the diff, looked up once each."""

    def __init__(self):
        self.users = {}
        self.groups = {}

    def user(self, uid):
        if uid not in self.users:
            try:
                self.users[uid] = pwd.getpwuid(uid).pw_name
            except KeyError:
                self.users[uid] = str(uid)
        return self.users[uid]

    def group(self, gid):
        if gid not in self.groups:
            try:
                self.groups[gid] = grp.getgrgid(gid).gr_name
            except KeyError:
                self.groups[gid] = str(gid)
        return self.groups[gid]

    def describe(self, attributes):
        if attributes is None:
            return "(absent)"
        uid, gid, mode = attributes
        return "%s:%s %04o" % (self.user(uid), self.group(gid), mode)


def diff_of(report):
    names = IdNames()
    before, after = [], []
    for path, old, new in report.first_changes(REPORT_LIMIT):
        before.append("%s %s\n" % (path, names.describe(old)))
        after.append("%s %s\n" % (path, names.describe(new)))
    if report.changed > REPORT_LIMIT:
        more = "... and %d more paths\n" % (report.changed - REPORT_LIMIT)
        before.append(more)
        after.append(more)
    return dict(before="".join(before), after="".join(after))


def report_result(report, owner, group):
    return dict(
        changed=report.changed > 0,
        owner=owner,
        group=group,
        changed_paths=[change[0] for change in report.first_changes(REPORT_LIMIT)],
        skipped_symlinks=report.symlinks[:REPORT_LIMIT],
        stats=dict(examined=report.examined, changed=report.changed, created=report.created,
                   symlinks=len(report.symlinks)),
    )


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="str", required=True),
            owner=dict(type="str"),
            group=dict(type="str"),
            scope=dict(type="str", choices=list(SCOPES), default="pycache"),
            dir_mode=dict(type="raw", default="0755"),
            file_mode=dict(type="raw", default="0644"),
            create=dict(type="bool", default=True),
            allow_system_path=dict(type="bool", default=False),
        ),
        supports_check_mode=True,
    )
    params = module.params
    owner = params["owner"] or default_web_user()
    group = params["group"] or default_web_group()
    if not owner:
        module.fail_json(msg="no web server user on this host (neither apache nor www-data exists); set owner")
    if not group:
        module.fail_json(msg="no web server group on this host (neither apache nor www-data exists); set group")
    try:
        path = literal_root(params["path"], "path", params["allow_system_path"])
    except PathError as exc:
        module.fail_json(msg=str(exc))
    try:
        uid = resolve_user(owner)
        gid = resolve_group(group)
        dir_mode = parse_mode(params["dir_mode"], "dir_mode")
        file_mode = parse_mode(params["file_mode"], "file_mode")
        report = fix_ownership(path, uid, gid, scope=params["scope"], dir_mode=dir_mode,
                               file_mode=file_mode, create=params["create"], check_mode=module.check_mode)
    except OwnershipError as exc:
        partial = report_result(exc.report, owner, group) if exc.report else {}
        msg = to_native(exc)
        if partial.get("changed"):
            msg += " (after %d change(s) %s, listed in changed_paths)" % (
                exc.report.changed, "that would be made" if module.check_mode else "made")
        # Names that are not UTF-8 are returned escaped: Ansible refuses a result holding them.
        module.fail_json(msg=display(msg), **json_safe(partial))

    result = json_safe(report_result(report, owner, group))
    if module._diff and report.changed:
        result["diff"] = json_safe(diff_of(report))
    for problem in report.problems:
        module.warn(display(problem))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
