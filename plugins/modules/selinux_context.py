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
    C(/etc/selinux/semanage.conf), default C(/var/lib/selinux)), which takes a millisecond where
    C(semanage fcontext -l -C) takes about 0.4 seconds; C(semanage fcontext -l -C) is only the fallback for a
    store without that layout. The effective labels come from C(matchpathcon), two calls for all roots.
  - Types are checked before anything changes. A type the policy already uses in its file contexts is a
    file type; any other is checked by a C(semanage import) that always aborts before its commit.
  - Works the same whether SELinux is enforcing, permissive or disabled in the kernel; RV(selinux_status)
    tells which.
  - Fails before any change when the new rules would not take effect, e.g. when an equivalence rule
    (C(semanage fcontext -e)) maps the root onto another path.
  - "How a run without rule changes decides the labels: C(setfiles) asks libselinux for every path and each
    lookup tries the policy's regular expressions one by one (about 0.3 ms a path with the reference policy),
    so the module picks the few rules that can apply below each root (those whose fixed beginning agrees with
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

import os
import shutil
import tempfile

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.pycgi.hosting.plugins.module_utils import _selinux as sel
from ansible_collections.pycgi.hosting.plugins.module_utils._paths import PathError, display, json_safe, literal_root

SELINUX_CONFIG = "/etc/selinux/config"
SEMANAGE_CONF = "/etc/selinux/semanage.conf"
ENFORCE_FILE = "/sys/fs/selinux/enforce"
# Companions of file_contexts that libselinux loads from beside the path it is given.
FC_COMPANIONS = (".bin", ".homedirs", ".homedirs.bin", ".subs", ".subs_dist")


def read_text(path):
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as handle:
            return handle.read()
    except (IOError, OSError):
        return None


class Host:
    """The SELinux userland of the managed host: its files and its three commands."""

    def __init__(self, module, tools, policy):
        self.module = module
        self.tools = tools
        self.policy = policy
        self.file_contexts = sel.file_contexts_path(policy)
        self._base_rules = None

    def run(self, argv, data=None, check_rc=True, what=None):
        rc, out, err = self.module.run_command(argv, data=data, environ_update={"LC_ALL": "C", "LANG": "C"})
        if check_rc and rc != 0:
            self.module.fail_json(msg="%s failed (rc=%d): %s" % (what or argv[0], rc, (err or out).strip()),
                                  rc=rc, stdout=out, stderr=err)
        return rc, out, err

    def local_rules(self):
        """The local rules in match order, read once: from the store file, else from semanage."""
        store_root = sel.parse_key_values(read_text(SEMANAGE_CONF) or "").get("store-root", sel.DEFAULT_STORE_ROOT)
        active = os.path.join(store_root, self.policy, "active")
        if os.path.isdir(active):
            return sel.parse_file_contexts(read_text(os.path.join(active, "file_contexts.local")) or "")
        out = self.run([self.tools["semanage"], "fcontext", "-l", "-C"], what="semanage fcontext -l -C")[1]
        return sel.parse_semanage_list(out)

    def base_rules(self):
        if self._base_rules is None:
            text = read_text(self.file_contexts)
            if text is None:
                self.module.fail_json(msg="cannot read %s, the file contexts of the %s policy" % (
                    self.file_contexts, self.policy))
            self._base_rules = sel.parse_file_contexts(text)
        return self._base_rules

    def policy_rules(self):
        """The rules and equivalences libselinux reads for this policy, as it orders them."""
        return sel.read_policy_rules(self.file_contexts, self.base_rules(), read_text)

    def effective(self, paths_by_mode, file_contexts=None):
        """{(path, mode): type} the policy (or the one at `file_contexts`) gives these paths."""
        outputs = {}
        for mode in ("dir", "file"):
            argv = [self.tools["matchpathcon"], "-m", mode]
            if file_contexts:
                argv += ["-f", file_contexts]
            outputs[mode] = self.run(argv + paths_by_mode[mode], what="matchpathcon")[1]
        return sel.effective_types(outputs["dir"], outputs["file"])

    def check_types(self, settings):
        """Fails naming the setting when semanage would refuse a type; commits nothing."""
        rc, out, err = self.run([self.tools["semanage"], "import"],
                                data=sel.type_check_script([value for _name, value in settings]), check_rc=False)
        bad = sel.invalid_types(err, settings)
        if bad:
            self.module.fail_json(msg=sel.invalid_types_message(bad, self.policy), stderr=err)
        if "expected one argument" not in err:
            self.module.fail_json(msg="checking the types with semanage failed (rc=%d): %s" % (rc, (err or out).strip()),
                                  stderr=err)

    def simulate(self, tmpdir, rules):
        """A file_contexts path that libselinux reads as the policy with these local rules."""
        simulated = os.path.join(tmpdir, "file_contexts")
        for suffix in ("",) + FC_COMPANIONS:
            if os.path.exists(self.file_contexts + suffix):
                os.symlink(self.file_contexts + suffix, simulated + suffix)
        with open(simulated + ".local", "w", encoding="utf-8", errors="surrogateescape") as handle:
            handle.write(sel.render_file_contexts(rules))
        return simulated

    def commit(self, operations, settings):
        rc, out, err = self.run([self.tools["semanage"], "import"], data=sel.import_script(operations), check_rc=False)
        if rc != 0:
            detail = sel.invalid_types_message(sel.invalid_types(err, settings), self.policy) or (err or out).strip()
            self.module.fail_json(msg="semanage import failed, the policy is unchanged: %s" % detail, rc=rc, stderr=err)

    def confirm(self, samples):
        """Why libselinux (matchpathcon) disagrees with the contexts decided here for these
        (path, context) samples; None when it agrees on each."""
        paths = [sel.path_text(path) for path, _context in samples]
        out = self.run([self.tools["matchpathcon"], "-N"] + paths, check_rc=False)[1]
        found = sel.parse_matchpathcon(out)
        for path, context in zip(paths, (context for _path, context in samples)):
            if found.get(path) != context:
                return "matchpathcon gives %s the context %s, not %s" % (path, found.get(path), context)
        return None

    def relabel_differing(self, roots, dry_run, tmpdir):
        """Relabels (dry_run: would relabel) only the paths below `roots` whose label differs from
        the context the policy gives them, the contexts decided without setfiles.

        Returns (relabeled, checked, reason): the paths setfiles relabeled, how many labels were
        compared, and why the roots still need a full `setfiles -F` (None when they do not). The
        contexts are decided with the few rules that can apply below each root (see
        `_selinux.root_labels()`); matchpathcon then confirms one path for every rule and file type
        that decided one, and setfiles must relabel exactly the paths found to differ. Anything else
        (a rule or path this module cannot decide, an equivalence, a file system without labels,
        libselinux deciding otherwise) leaves the decision to the full relabel.
        """
        policy = self.policy_rules()
        wrong, samples, checked = [], [], 0
        for root in roots:
            specs, reason = sel.root_labels(root, policy)
            if reason:
                return [], checked, reason
            scan = sel.scan_labels(root, specs)
            checked += scan.checked
            if scan.reason:
                return [], checked, scan.reason
            wrong.extend(scan.wrong)
            samples.extend(scan.samples.values())
        reason = self.confirm(samples) if samples else None
        if reason or not wrong:
            return [], checked, reason
        listed = sel.relabel_list(wrong)
        if listed is None:
            return [], checked, "a path to relabel holds a character setfiles would read as a glob pattern"
        list_file = os.path.join(tmpdir, "relabel.list")
        with open(list_file, "wb") as handle:
            handle.write(sel.nul_list(listed))
        argv = [self.tools["setfiles"], "-F", "-v"] + (["-n"] if dry_run else []) + [
            "-0", "-f", list_file, self.file_contexts]
        rc, out, err = self.run(argv, check_rc=False)
        relabeled = sel.parse_setfiles(out)
        if rc != 0:
            return relabeled, checked, "setfiles on the %d differing paths failed (rc=%d): %s" % (
                len(wrong), rc, (err or out).strip())
        if set(sel.path_bytes(path) for path in relabeled) != set(path for path, _mode in wrong):
            return relabeled, checked, "setfiles relabeled other paths than the %d found to differ" % len(wrong)
        return relabeled, checked, None

    def relabel(self, roots, file_contexts, dry_run, committed=False):
        """The relabeled paths; a failure after rules were committed reports the change."""
        argv = [self.tools["setfiles"], "-F", "-v"] + (["-n"] if dry_run else []) + [file_contexts] + roots
        rc, out, err = self.run(argv, check_rc=False)
        if rc != 0:
            self.module.fail_json(msg="setfiles (relabeling after the rules are in place) failed (rc=%d): %s%s" % (
                rc, (err or out).strip(), " (the rules were added)" if committed else ""),
                changed=committed, rc=rc, stdout=out, stderr=err)
        return sel.parse_setfiles(out)


def read_only(path):
    """Whether ``path`` is on a file system mounted read-only."""
    return bool(os.statvfs(path).f_flag & os.ST_RDONLY)


def find_host(module, state, relabel):
    """The Host, or the reason it cannot be managed: (host, missing items)."""
    tools = dict((name, module.get_bin_path(name)) for name in sel.required_tools(state, relabel))
    missing = [name for name, path in tools.items() if not path]
    policy = sel.parse_key_values(read_text(SELINUX_CONFIG) or "").get("SELINUXTYPE")
    if not policy or not os.path.exists(sel.file_contexts_path(policy)):
        missing.append("policy")
    return Host(module, tools, policy), missing


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="list", elements="str", required=True),
            script_type=dict(type="str", default="httpd_sys_script_exec_t"),
            cache_type=dict(type="str", default="httpd_sys_rw_content_t"),
            relabel=dict(type="bool", default=True),
            state=dict(type="str", choices=["present", "absent"], default="present"),
            missing_tools=dict(type="str", choices=["fail", "skip"], default="fail"),
            allow_system_path=dict(type="bool", default=False),
        ),
        supports_check_mode=True,
    )
    params = module.params
    state, relabel = params["state"], params["relabel"]
    status = sel.selinux_status(read_text(ENFORCE_FILE))
    if not params["path"]:
        module.fail_json(msg="path is an empty list: name at least one CGI root", selinux_status=status)
    try:
        roots = sel.normalize_roots(params["path"])
        for root in roots:
            literal_root(root, "path", params["allow_system_path"])
    except PathError as exc:
        module.fail_json(msg=display(str(exc)), selinux_status=status)
    except ValueError as exc:
        module.fail_json(msg=display("path: %s" % exc), selinux_status=status)
    settings = [("script_type", params["script_type"]), ("cache_type", params["cache_type"])]
    for name, value in settings:
        if not sel.is_type_name(value):
            module.fail_json(msg="%s: %r is not an SELinux type name" % (name, value), selinux_status=status)
    script_type, cache_type = params["script_type"], params["cache_type"]

    host, missing = find_host(module, state, relabel)
    if missing:
        msg = sel.missing_message(missing, sel.os_family(read_text("/etc/os-release")))
        if params["missing_tools"] == "skip":
            module.exit_json(changed=False, skipped=True, msg=msg, selinux_status=status)
        module.fail_json(msg=msg, selinux_status=status)

    if relabel:
        # setfiles would fail there after the commit: refuse before anything changes.
        frozen = [root for root in sel.outermost(roots) if os.path.isdir(root) and read_only(root)]
        if frozen:
            module.fail_json(msg="path: %s is on a read-only file system, so its labels cannot be written; nothing was"
                                 " changed (relabel=false records the rules alone)" % ", ".join(frozen),
                             selinux_status=status)

    local_rules = host.local_rules()
    tmpdir = tempfile.mkdtemp(prefix="pycgi-selinux-")
    try:
        if state == "present":
            base_specs, policy_types, mls_range = sel.policy_facts(host.base_rules())
            known = policy_types | set(rule.setype for rule in local_rules)
            unknown = [(name, value) for name, value in settings if value not in known]
            if unknown:
                host.check_types(unknown)
            all_probes = [probe for root in roots for probe in sel.probes(root)]
            by_mode = dict((mode, [p.path for p in all_probes if p.mode == mode]) for mode in ("dir", "file"))
            plan = sel.plan_present(roots, local_rules, base_specs, host.effective(by_mode),
                                    script_type, cache_type, mls_range)
        else:
            plan = sel.plan_absent(roots, local_rules, script_type, cache_type)
        after = sel.apply_operations(local_rules, plan.operations)

        file_contexts = host.file_contexts
        if plan.operations and (state == "present" or module.check_mode):
            simulated = host.simulate(tmpdir, after)
            if state == "present":
                wrong = sel.mismatches(roots, host.effective(by_mode, simulated), script_type, cache_type)
                if wrong:
                    module.fail_json(msg=sel.ineffective_message(wrong), selinux_status=status)
            if module.check_mode:
                file_contexts = simulated
        if plan.operations and not module.check_mode:
            host.commit(plan.operations, settings)

        relabeled, method, checked, reason = [], "none", 0, None
        existing = [root for root in sel.outermost(roots) if os.path.lexists(root)] if relabel else []
        if existing:
            # A rule change or a removal can change any label: setfiles checks every path. Otherwise
            # the labels on disk are compared here and setfiles gets the differing paths alone.
            if plan.operations:
                reason = "the rules changed"
            elif state == "absent":
                reason = "state=absent"
            else:
                relabeled, checked, reason = host.relabel_differing(existing, module.check_mode, tmpdir)
            method = "full" if reason else "compared"
            if reason:
                full = host.relabel(existing, file_contexts, module.check_mode,
                                    committed=bool(plan.operations) and not module.check_mode)
                # In check mode nothing was relabeled before: the dry run lists every path.
                done = set() if module.check_mode else set(relabeled)
                relabeled = ([] if module.check_mode else relabeled) + [path for path in full if path not in done]
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)

    result = dict(
        changed=bool(plan.operations or relabeled),
        selinux_status=status,
        policy=host.policy,
        roots=roots,
        rules_added=sel.rule_dicts(plan.added),
        rules_removed=sel.rule_dicts(plan.removed),
        relabeled=relabeled[:sel.RELABELED_CAP],
        relabeled_count=len(relabeled),
        relabel_method=method,
        relabel_checked=checked,
        relabel_reason=reason,
    )
    if module._diff:
        result["diff"] = dict(before=sel.render_rules(local_rules), after=sel.render_rules(after),
                              before_header="SELinux local file contexts", after_header="SELinux local file contexts")
    module.exit_json(**json_safe(result))


if __name__ == "__main__":
    main()
