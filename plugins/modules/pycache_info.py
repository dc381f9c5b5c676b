#!/usr/bin/python
# Copyright (c) 2026 pycgi.hosting contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: pycache_info
short_description: Tell why the Python CGI scripts of a tree are slow to start
version_added: 1.0.0
description:
  - Reads a CGI tree and reports, without changing anything, what makes Python recompile on
    every request and what keeps the web server from its bytecode caches.
  - For each interpreter, the C(.pyc) files that are fresh (the interpreter loads them as they
    are), stale (it recompiles the source, with the reason) and missing. The check is the one
    M(pycgi.hosting.precompile) makes, run under each interpreter itself, one process each, and
    nothing is compiled. Hash-based caches are judged in their own mode.
  - Caches whose source is gone, caches of cache tags no interpreter uses (the leftovers of a
    Python upgrade), and temporary files of interrupted writes.
  - The entry scripts Apache runs directly, with their line counts. Python never caches the
    bytecode of the script it runs, so those lines are compiled on every request.
  - What the permission bits keep the web server user from. With O(cache_mode=writable), the
    C(__pycache__) directories it cannot write in and the source directories without a
    C(__pycache__) where it cannot create one; in both modes the C(.pyc) files it cannot read,
    and the directory on the way to O(path) it cannot enter.
  - When C(matchpathcon) and an SELinux policy are installed, the SELinux types on disk against
    the ones the policy gives, for every directory of the tree and a sample of its files, and
    the types the policy gives the root and its caches.
  - Whether the Apache block that M(pycgi.hosting.httpd_pycache) writes for the root is in the
    main config.
  - A short RV(summary) of all this, one line per finding.
author: pycgi.hosting contributors (@pycgi)
extends_documentation_fragment:
  - pycgi.hosting.attributes
  - pycgi.hosting.pytree
  - pycgi.hosting.paths
attributes:
  check_mode:
    support: full
    details:
      - Runs in check mode with the same result; the module never changes anything.
  diff_mode:
    support: none
    details:
      - The module changes nothing, so it has no diff to show.
  platform:
    platforms: posix
options:
  path:
    description:
      - The CGI tree, for example C(/var/www/cgi-bin). C(/) and system directories are refused
        (see O(allow_system_path)).
      - A source that is a symbolic link to a file outside O(path) is not read, as in
        M(pycgi.hosting.precompile).
  interpreters:
    description:
      - Paths of the Python interpreters whose caches are inspected.
      - When not set, those M(pycgi.hosting.precompile) would use, the ones named by the C(#!) lines of
        the tree's entry scripts, with C(#!/usr/bin/env python3) looked up in the PATH of the managed
        host; C(/usr/bin/python3) when no entry script names one.
      - An interpreter that cannot be run is listed in RV(problems); the others are inspected.
  optimize:
    description:
      - Optimization levels whose caches are inspected. V(0) is what C(python) reads, V(1) what
        C(python -O) reads (C(.opt-1.pyc)), V(2) what C(python -OO) reads (C(.opt-2.pyc)).
  exclude:
    description:
      - Shell globs matched against paths relative to O(path); a matching directory is skipped with
        everything below it, as in M(pycgi.hosting.precompile).
  owner:
    description:
      - The user (name or numeric id) the web server runs CGI scripts as.
      - Defaults to the web server's user that exists on the host, C(apache), else C(www-data).
    type: str
  group:
    description:
      - The group (name or numeric id) of the web server. The supplementary groups of O(owner) count too.
      - Defaults to the web server's group that exists on the host, C(apache), else C(www-data).
    type: str
  cache_mode:
    description:
      - V(writable) when the web server is meant to write its caches, V(readonly) when they are
        precompiled at deploy time and never written at run time (then reading is checked, and that the
        user cannot swap a cache directory for one of its own, RV(access.cache_dirs_replaceable)).
      - V(prefix) when the caches live below O(pycache_prefix) (C(PYTHONPYCACHEPREFIX), written by
        M(pycgi.hosting.precompile) with its O(pycgi.hosting.precompile#module:pycache_prefix) option);
        freshness, leftovers, access and labels are those of the cache directories in the prefix's copy
        of the tree, and the Apache block is expected to set the variable.
    type: str
    choices: [writable, readonly, prefix]
    default: writable
  pycache_prefix:
    description:
      - The cache directory of O(cache_mode=prefix); required in that mode and only allowed in it.
      - An interpreter older than Python 3.8, which ignores it, is listed in RV(problems).
  apache_config:
    description:
      - The Apache config file to look for the block in.
      - Defaults to the main config of the host's layout, C(/etc/httpd/conf/httpd.conf), else
        C(/etc/apache2/apache2.conf), and then the root's drop-in file of the default name that
        M(pycgi.hosting.httpd_pycache) writes with its default O(pycgi.hosting.httpd_pycache#module:placement=drop_in)
        (C(conf.d/) on the RHEL family, C(conf-available/) on Debian).
    type: str
  list_limit:
    description:
      - At most this many entries in each list of the result; the counts are always complete.
    type: int
    default: 50
notes:
  - Access is judged from the owner, group and permission bits of each path; POSIX ACLs are not read.
  - SELinux types are compared, not the user, role and range parts of the contexts. Every path at and below
    the root is checked against the context the policy's rules (C(file_contexts), C(.homedirs), C(.local)) give
    it, decided as libselinux decides it; one C(matchpathcon) run confirms one path of each rule that
    decided a path (RV(selinux.method) C(every_path)). Where the rules cannot be evaluated here (an equivalence in
    C(file_contexts.subs), a rule Python's C(re) may read otherwise than PCRE, a mount point below the root, a
    name with a newline) or C(matchpathcon) disagrees, every directory holding sources or caches is checked,
    and files evenly spread over the tree up to 2000 paths in all, with C(matchpathcon)'s answers
    (RV(selinux.method) C(sample), the reason in RV(selinux.method_reason)).
  - The inspection processes run as C(INTERPRETER -I -S -B), so the C(PYTHON*) environment variables of
    the host play no part.
seealso:
  - module: pycgi.hosting.precompile
  - module: pycgi.hosting.pycache_owner
  - module: pycgi.hosting.selinux_context
  - module: pycgi.hosting.httpd_pycache
"""

EXAMPLES = r"""
- name: Find out why the CGI scripts are slow
  pycgi.hosting.pycache_info:
    path: /var/www/cgi-bin
  register: caches

- name: Show the summary
  ansible.builtin.debug:
    var: caches.summary

- name: Inspect the caches of two interpreters, precompiled read-only caches
  pycgi.hosting.pycache_info:
    path: /srv/app/cgi-bin
    interpreters:
      - /usr/bin/python3.9
      - /usr/bin/python3.12
    cache_mode: readonly
    owner: apache
  register: caches

- name: Fail when a cache would be recompiled on a request
  ansible.builtin.assert:
    that: caches.interpreters | map(attribute='stale') | sum == 0 and caches.interpreters | map(attribute='missing') | sum == 0
"""

RETURN = r"""
path:
  description: The CGI tree, absolute.
  returned: always
  type: str
  sample: /var/www/cgi-bin
sources:
  description: The Python sources in the tree (excluded ones not counted).
  returned: always
  type: int
  sample: 120
interpreters:
  description: One entry per interpreter inspected.
  returned: always
  type: list
  elements: dict
  contains:
    path:
      description: The interpreter, as listed or named by a C(#!) line (resolved through PATH for C(env)).
      type: str
      sample: /usr/bin/python3
    version:
      description: Its Python version.
      type: str
      sample: 3.11.2
    cache_tag:
      description: The tag in the names of the caches it reads.
      type: str
      sample: cpython-311
    named_by:
      description: Why it is inspected.
      type: str
      sample: named by the #! line of /var/www/cgi-bin/index.py
    fresh:
      description: Caches it loads as they are.
      type: int
      sample: 120
    stale:
      description: Caches it finds out of date, so it compiles the source again.
      type: int
      sample: 3
    missing:
      description: Caches that do not exist.
      type: int
      sample: 0
    stale_caches:
      description: The stale caches, at most O(list_limit).
      type: list
      elements: dict
      contains:
        source:
          description: The source.
          type: str
        cache:
          description: The C(.pyc) file.
          type: str
        reason:
          description: Why it is stale, for example C(source changed (modification time or size)).
          type: str
      sample:
        - source: /var/www/cgi-bin/app/models.py
          cache: /var/www/cgi-bin/app/__pycache__/models.cpython-311.pyc
          reason: source changed (modification time or size)
    missing_caches:
      description: The missing caches, at most O(list_limit), with the keys C(source) and C(cache).
      type: list
      elements: dict
      sample:
        - source: /var/www/cgi-bin/app/new.py
          cache: /var/www/cgi-bin/app/__pycache__/new.cpython-311.pyc
    errors:
      description:
        - Sources that could not be read and cache directories that cannot be used (a symbolic link or
          not a directory), at most O(list_limit), with the keys C(path) and C(msg).
        - Their caches are counted neither fresh, stale nor missing.
      type: list
      elements: dict
      sample: []
    error_count:
      description: The number of errors.
      type: int
      sample: 0
leftovers:
  description: Files in the caches that no interpreter will read.
  returned: always
  type: dict
  contains:
    orphans:
      description: C(.pyc) files whose source is gone, with C(count) and C(paths) (at most O(list_limit)).
      type: dict
      sample: {count: 1, paths: [/var/www/cgi-bin/__pycache__/old.cpython-311.pyc]}
    foreign_tags:
      description:
        - C(.pyc) files of cache tags that no inspected interpreter uses, with C(count), C(paths) (at most
          O(list_limit)) and C(tags), the count per cache tag.
      type: dict
      sample: {count: 40, paths: [/var/www/cgi-bin/__pycache__/util.cpython-39.pyc], tags: {cpython-39: 40}}
    temporary_files:
      description: Temporary files of interrupted writes, with C(count) and C(paths).
      type: dict
      sample: {count: 0, paths: []}
entry_scripts:
  description: The scripts Apache runs directly (executable, with a Python C(#!) line), whose code is compiled on every request.
  returned: always
  type: dict
  contains:
    count:
      description: How many.
      type: int
      sample: 2
    lines:
      description: Their lines in all.
      type: int
      sample: 3410
    bytes:
      description: Their size in all.
      type: int
      sample: 120400
    scripts:
      description: The scripts, most lines first, at most O(list_limit).
      type: list
      elements: dict
      contains:
        path:
          description: The script.
          type: str
        lines:
          description: Its lines.
          type: int
        bytes:
          description: Its size.
          type: int
        interpreter:
          description: The Python command of its C(#!) line.
          type: str
      sample:
        - {path: /var/www/cgi-bin/report.py, lines: 3400, bytes: 120000, interpreter: /usr/bin/python3}
access:
  description: What the permission bits keep the web server user from.
  returned: always
  type: dict
  contains:
    checked:
      description: False when no O(owner) was given and the host has no web server user.
      type: bool
      sample: true
    reason:
      description: Why access was not checked.
      type: str
      returned: when not checked
    user:
      description: The web server user.
      type: str
      sample: www-data
    group:
      description: The web server group.
      type: str
      sample: www-data
    cache_mode:
      description: O(cache_mode).
      type: str
      sample: writable
    root_blocked_by:
      description: The first directory on the way to O(path) the user cannot enter, or null.
      type: str
      sample: null
    cache_dirs_not_writable:
      description:
        - C(__pycache__) directories (with O(cache_mode=prefix), cache directories in the prefix) the user
          cannot create files in (not with O(cache_mode=readonly)), with
          C(count) and C(paths).
      type: dict
      sample: {count: 1, paths: [/var/www/cgi-bin/__pycache__]}
    pycs_not_readable:
      description:
        - C(.pyc) files of the inspected interpreters the user cannot read, or that are in a C(__pycache__) it
          cannot enter, with C(count) and C(paths).
      type: dict
      sample: {count: 0, paths: []}
    cache_dirs_not_creatable:
      description:
        - Directories with Python sources and no C(__pycache__) where the user cannot create one
          (O(cache_mode=writable) only), with C(count) and C(paths).
      type: dict
      sample: {count: 0, paths: []}
    cache_dirs_replaceable:
      description:
        - With O(cache_mode=readonly), the C(__pycache__) directories in a directory the user may write to
          (and whose sticky bit, if any, does not stop it). The user can rename the root-owned cache away
          and put a cache of its own in its place, which the scripts then import. With C(count) and C(paths).
      type: dict
      sample: {count: 1, paths: [/srv/app/cgi-bin/uploads/__pycache__]}
selinux:
  description: SELinux labels; only C(available) and C(reason) without the tools or a policy.
  returned: always
  type: dict
  contains:
    available:
      description: Whether C(matchpathcon) and an SELinux policy are installed.
      type: bool
      sample: true
    reason:
      description: Why labels were not checked.
      type: str
      returned: when not available
    status:
      description: The SELinux mode of the running kernel.
      type: str
      sample: enforcing
    policy:
      description: The policy, C(SELINUXTYPE) of C(/etc/selinux/config).
      type: str
      sample: targeted
    root:
      description: The root's C(path), its C(type) on disk (null when unlabeled) and the type the policy gives it (C(expected)).
      type: dict
      sample: {path: /var/www/cgi-bin, type: httpd_sys_script_exec_t, expected: httpd_sys_script_exec_t}
    caches:
      description:
        - C(expected), the type the policy gives a C(__pycache__) directly below the root, and C(types), how many
          cache paths (every one with C(every_path), the checked ones with C(sample)) have each type on disk
          (C(unlabeled) for none).
      type: dict
      sample: {expected: httpd_sys_rw_content_t, types: {httpd_sys_rw_content_t: 24}}
    method:
      description:
        - C(every_path), every label at and below the root compared; C(sample), a sample compared with
          C(matchpathcon)'s answers (see the notes).
      type: str
      sample: every_path
    method_reason:
      description: Why not every path was compared.
      type: str
      returned: when RV(selinux.method) is C(sample)
      sample: "the equivalence /web = /var/www applies below /web/cgi-bin"
    checked:
      description: Paths whose labels were compared.
      type: int
      sample: 240
    total:
      description:
        - Paths that could have been compared; with C(every_path) every path at and below the root (the same
          number as RV(selinux.checked)), with C(sample) the sources, caches, entry scripts and their directories.
      type: int
      sample: 240
    mismatched:
      description:
        - Checked paths labeled with another type than the policy gives, with C(count) and C(paths), a list of
          C(path), C(type) and C(expected) (at most O(list_limit)).
      type: dict
      sample: {count: 1, paths: [{path: /var/www/cgi-bin/app.py, type: user_home_t, expected: httpd_sys_script_exec_t}]}
    unlabeled:
      description: Checked paths without a label, with C(count) and C(paths).
      type: dict
      sample: {count: 0, paths: []}
apache:
  description: The Apache block of M(pycgi.hosting.httpd_pycache) for the root.
  returned: always
  type: dict
  contains:
    config:
      description: The config file read, or null when none was found.
      type: str
      sample: /etc/httpd/conf/httpd.conf
    present:
      description: Whether the block for the root is in it.
      type: bool
      sample: true
    current:
      description: Whether the block is exactly what M(pycgi.hosting.httpd_pycache) writes.
      type: bool
      sample: true
    write_bytecode:
      description: For a current block, false when it sets C(PYTHONDONTWRITEBYTECODE) for the root; otherwise null.
      type: bool
      sample: true
    error:
      description: Why the block could not be looked for (no config, an unreadable file, unpaired markers).
      type: str
      returned: when the block could not be looked for
problems:
  description:
    - What stopped part of the inspection or needs attention, one sentence each; for example an interpreter
      that cannot be run, a directory that cannot be read, or scripts run with C(-O).
  returned: always
  type: list
  elements: str
  sample: []
summary:
  description: The findings, one short line each.
  returned: always
  type: list
  elements: str
  sample:
    - "cpython-311 (/usr/bin/python3, Python 3.11.2): 120 fresh, 3 stale, 0 missing"
    - "0 caches whose source is gone, 40 of Python versions not in use (cpython-39: 40)"
    - "2 entry scripts never cached: 3,410 lines compiled per request"
    - "0 caches the web server user (apache) cannot write"
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.pycgi.hosting.plugins.module_utils._info import LIST_LIMIT, InfoError, inspect
from ansible_collections.pycgi.hosting.plugins.module_utils._paths import PathError, display, json_safe, keep_paths_literal, literal_root
from ansible_collections.pycgi.hosting.plugins.module_utils._precompile import OPTIMIZE_LEVELS


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="str", required=True),
            interpreters=dict(type="list", elements="str"),
            optimize=dict(type="list", elements="int", default=[0], choices=list(OPTIMIZE_LEVELS)),
            exclude=dict(type="list", elements="str", default=[]),
            owner=dict(type="str"),
            group=dict(type="str"),
            cache_mode=dict(type="str", default="writable", choices=["writable", "readonly", "prefix"]),
            pycache_prefix=dict(type="str"),
            apache_config=dict(type="str"),
            list_limit=dict(type="int", default=LIST_LIMIT),
            allow_system_path=dict(type="bool", default=False),
        ),
        supports_check_mode=True,
    )
    params = module.params
    keep_paths_literal(module)

    def run(argv):
        return module.run_command(argv, environ_update={"LC_ALL": "C", "LANG": "C"})

    try:
        path = literal_root(params["path"], "path", params["allow_system_path"])
    except PathError as exc:
        module.fail_json(msg=str(exc))
    try:
        result = inspect(
            path,
            interpreters=params["interpreters"],
            optimize=params["optimize"],
            exclude=params["exclude"],
            owner=params["owner"],
            group=params["group"],
            cache_mode=params["cache_mode"],
            pycache_prefix=params["pycache_prefix"],
            apache_config=params["apache_config"],
            limit=params["list_limit"],
            matchpathcon=module.get_bin_path("matchpathcon", opt_dirs=["/usr/sbin", "/sbin"]),
            run=run,
        )
    except InfoError as exc:
        module.fail_json(msg=display(str(exc)))
    # Names that are not UTF-8 are returned escaped: Ansible refuses a result holding them.
    module.exit_json(changed=False, **json_safe(result))


if __name__ == "__main__":
    main()
