#!/usr/bin/python
# Copyright (c) 2026 pycgi.hosting contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: selinux_context
short_description: Give CGI trees and their Python bytecode caches their SELinux file contexts
version_added: 1.0.0
description:
  - Makes the SELinux policy label every file below each CGI root with O(script_type) and every
    C(__pycache__) directory below it, with its content, with O(cache_type), so the web server may run
    the scripts and read (or write) their bytecode caches without SELinux being disabled.
  - For the root /srv/app the rules are the tree rule /srv/app(/.*)? with O(script_type) and the cache rule
    /srv/app(/.*)?/__pycache__(/.*)? with O(cache_type); the characters of a root that mean something in a
    regular expression are escaped.
  - Adds only the rules the policy does not already give. The effective labels are checked for each root,
    local customizations included, so a tree the base policy already labels right (the stock
    C(/var/www/cgi-bin) and C(/usr/lib/cgi-bin) trees) gets only the C(__pycache__) rule, or nothing.
  - All changes, for all roots, are made in one C(semanage import) transaction (one policy rebuild,
    all or nothing), ordered so that each C(__pycache__) rule wins over its tree rule. Local rules are
    matched last-added-wins; a C(__pycache__) rule shadowed by a tree rule added after it is deleted and
    re-added after it within the same transaction. A spec the base policy defines is changed with
    C(semanage fcontext -m).
  - Then relabels the existing roots with C(setfiles -F), customizable types included, and reports the
    relabeled paths. When no rule changed (O(state=present)), the module first compares every label below
    the roots with the context the policy gives the path and hands C(setfiles) only the paths that differ,
    so a re-run where nothing changed reads the labels and runs no C(setfiles) at all; RV(relabel_method)
    tells which way was taken and RV(relabel_reason) why a full relabel was needed.
  - Never disables SELinux or changes its mode. With SELinux disabled in the kernel the rules are still
    recorded and the labels written, so enabling SELinux later needs no relabel.
author: pycgi.hosting contributors (@pycgi)
requirements:
  - C(semanage), package C(policycoreutils-python-utils) on both the RedHat and the Debian family
  - C(setfiles), package C(policycoreutils) on both families (only with O(relabel=true))
  - C(matchpathcon) (only with O(state=present)), package C(libselinux-utils) on the RedHat family, C(selinux-utils) on the Debian family
    (both are dependencies of C(policycoreutils))
  - An installed SELinux policy named by C(SELINUXTYPE) in C(/etc/selinux/config), package
    C(selinux-policy-targeted) on the RedHat family, C(selinux-policy-default) on the Debian family
  - No Python SELinux bindings; the module runs under any Python Ansible uses on the host
extends_documentation_fragment:
  - pycgi.hosting.attributes
  - pycgi.hosting.paths
attributes:
  check_mode:
    support: full
    details: Computes the same rules and the same relabeled paths (with C(setfiles -n) against the
      planned policy) and writes nothing.
  diff_mode:
    support: full
    details: The local file-context rules before and after, in match order.
  platform:
    platforms: posix
options:
  path:
    description:
      - A CGI root, or a list of them, handled together in one transaction.
      - Absolute paths. C(/), paths with C(.) or C(..) components and paths with control characters are refused,
        and so are system directories (see O(allow_system_path)) and an empty list.
      - A root that does not exist yet gets its rules; it is relabeled once it exists.
    type: list
    elements: str
    required: true
  script_type:
    description:
      - SELinux type of everything below each root, the root included, except the caches.
    type: str
    default: httpd_sys_script_exec_t
  cache_type:
    description:
      - SELinux type of every C(__pycache__) directory below each root and of its content.
      - The default lets the web server write the caches; a read-only setup passes
        V(httpd_sys_script_exec_t) or V(httpd_sys_content_t).
    type: str
    default: httpd_sys_rw_content_t
  relabel:
    description:
      - Relabel the existing roots with C(setfiles -F) after the rules are in place (customizable types and
        the user, role and range parts included), also when no rule changed.
      - When no rule changed, only the paths whose label differs from the policy's context are handed to
        C(setfiles); the whole roots are relabeled when a rule changed, with O(state=absent), and whenever
        the module cannot decide every path's context itself (see RV(relabel_reason)).
      - A root on a read-only file system then fails the task before any rule is added.
    type: bool
    default: true
  state:
    description:
      - V(present) makes the policy label the roots as wanted.
      - V(absent) deletes exactly the local rules this module adds for the roots (same spec and same type),
        leaving every other rule alone, then relabels with what the policy gives without them.
    type: str
    choices: [present, absent]
    default: present
  missing_tools:
    description:
      - What to do on a host without the SELinux tools or policy.
      - V(fail) fails naming the package to install; V(skip) returns RV(skipped=true) and changes nothing.
    type: str
    choices: [fail, skip]
    default: fail
notes:
  - Works through the command-line tools alone (C(semanage), C(matchpathcon), C(setfiles)), so it does not
    need the Python SELinux bindings in the interpreter Ansible runs it with.
  - The local rules are read from the policy store's C(file_contexts.local) file (in C(store-root) of
    C(/etc/selinux/semanage.conf), default C(/var/lib/selinux)), one file to read, where
    C(semanage fcontext -l -C) starts the whole semanage library (benchmark B5 in the collection's
    C(benchmarks/) measures the module against it); C(semanage fcontext -l -C) is only the fallback for a
    store without that layout. The effective labels come from C(matchpathcon), two calls for all roots.
  - Types are checked before anything changes. A type the policy already uses in its file contexts is a
    file type; any other is checked by a C(semanage import) that always aborts before its commit.
  - Works the same whether SELinux is enforcing, permissive or disabled in the kernel; RV(selinux_status)
    tells which.
  - Fails before any change when the new rules would not take effect, e.g. when an equivalence rule
    (C(semanage fcontext -e)) maps the root onto another path.
  - "How a run without rule changes decides the labels: C(setfiles) asks libselinux for every path and each
    lookup tries the policy's regular expressions one by one (the cost per path is measured in the collection's
    C(benchmarks/results/selinux_lookup.md)), so the module picks the few rules that can apply below each root (those whose fixed beginning agrees with
    the root, from the last rule that covers the whole root on, in libselinux's order: exact paths first,
    then the last matching rule, local rules after the policy's), decides each path's context with them,
    and compares it with the path's C(security.selinux) attribute. C(matchpathcon) confirms one path for each
    rule that decided one, and C(setfiles -F -0 -f) relabels the differing paths; it must relabel exactly
    those. The whole roots are relabeled instead when an equivalence applies below a root, a rule is a
    regular expression Python may read otherwise than libselinux's PCRE, a root is a symbolic link, a mount
    point or a file name with a newline is below it, a file system keeps no SELinux labels, a path to relabel
    has a glob character, or C(matchpathcon) or C(setfiles) disagree."
seealso:
  - name: SELinux file contexts (semanage-fcontext)
    description: The manual page of the command this module drives.
    link: https://man7.org/linux/man-pages/man8/semanage-fcontext.8.html
"""

EXAMPLES = r"""
- name: Label the stock CGI tree and its caches
  pycgi.hosting.selinux_context:
    path: /var/www/cgi-bin

- name: Label several trees in one transaction, caches read-only
  pycgi.hosting.selinux_context:
    path:
      - /srv/cgi/app1
      - /srv/cgi/app2
    cache_type: httpd_sys_script_exec_t

- name: Caches kept outside the web root (pycache_prefix) - the whole directory gets the cache type
  pycgi.hosting.selinux_context:
    path: /var/cache/pycgi
    script_type: httpd_sys_rw_content_t
    cache_type: httpd_sys_rw_content_t

- name: Leave hosts without the SELinux tools alone
  pycgi.hosting.selinux_context:
    path: /usr/lib/cgi-bin
    missing_tools: skip

- name: Remove the rules this module added for a tree
  pycgi.hosting.selinux_context:
    path: /srv/cgi/app1
    state: absent
"""

RETURN = r"""
selinux_status:
  description: The SELinux mode of the running kernel.
  returned: always
  type: str
  choices: [enforcing, permissive, disabled]
  sample: enforcing
policy:
  description: The policy changed, C(SELINUXTYPE) of C(/etc/selinux/config).
  returned: success
  type: str
  sample: targeted
roots:
  description: The roots as the rules name them (normalized, parents first).
  returned: success
  type: list
  elements: str
  sample: [/srv/cgi/app1]
rules_added:
  description:
    - Local rules added (or, in check mode, that would be), in order. A rule re-added to restore the
      order appears in both RV(rules_added) and RV(rules_removed).
  returned: success
  type: list
  elements: dict
  contains:
    target:
      description: The file-context spec (a regular expression).
      type: str
      sample: /srv/cgi/app1(/.*)?/__pycache__(/.*)?
    ftype:
      description: semanage's file type letter; V(a) is all files.
      type: str
      sample: a
    setype:
      description: The SELinux type.
      type: str
      sample: httpd_sys_rw_content_t
rules_removed:
  description: Local rules deleted (or that would be), with the same keys as RV(rules_added).
  returned: success
  type: list
  elements: dict
  sample: []
relabeled:
  description: Paths whose label changed (or would), at most the first 100.
  returned: success
  type: list
  elements: str
  sample: [/srv/cgi/app1/__pycache__, /srv/cgi/app1/__pycache__/hello.cpython-311.pyc]
relabeled_count:
  description: How many paths were relabeled (or would be).
  returned: success
  type: int
  sample: 2
relabel_method:
  description:
    - How the labels were brought in line with the policy.
    - V(compared) - no rule changed; the module compared every label below the roots with the policy's
      context and ran C(setfiles) on the differing paths only (not at all when none differed).
    - V(full) - C(setfiles -F) walked the whole roots (a rule changed, O(state=absent), or the module could
      not decide every context itself, see RV(relabel_reason)).
    - V(none) - nothing to relabel (O(relabel=false), or no root exists yet).
  returned: success
  type: str
  choices: [compared, full, none]
  sample: compared
relabel_checked:
  description: How many labels the module compared itself (0 unless RV(relabel_method=compared), or the
    comparison stopped early before a full relabel).
  returned: success
  type: int
  sample: 30551
relabel_reason:
  description: Why the whole roots were relabeled (RV(relabel_method=full)); null otherwise.
  returned: success
  type: str
  sample: the rules changed
skipped:
  description: True when the SELinux tools or policy are missing and O(missing_tools=skip).
  returned: when skipped
  type: bool
  sample: true
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.pycgi.hosting.plugins.module_utils._paths import json_safe
from ansible_collections.pycgi.hosting.plugins.module_utils._selinux_host import run

ARGUMENT_SPEC = dict(
    path=dict(type="list", elements="str", required=True),
    script_type=dict(type="str", default="httpd_sys_script_exec_t"),
    cache_type=dict(type="str", default="httpd_sys_rw_content_t"),
    relabel=dict(type="bool", default=True),
    state=dict(type="str", choices=["present", "absent"], default="present"),
    missing_tools=dict(type="str", choices=["fail", "skip"], default="fail"),
    allow_system_path=dict(type="bool", default=False),
)


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    module.exit_json(**json_safe(run(module)))


if __name__ == "__main__":
    main()
