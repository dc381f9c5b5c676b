# Copyright (c) 2026 pycgi.hosting contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""SELinux on the managed host: the labels on disk compared with the ones the policy gives
(`scan_labels()`), the host's files and commands (`Host`), and what `selinux_context` does
with them (`run()`: validate, plan, check the plan takes effect, commit, relabel)."""

from __future__ import annotations

import collections
import errno
import os
import shutil
import stat
import tempfile
from typing import TYPE_CHECKING, Any, Callable, Iterable, NamedTuple, Sequence, cast

from ansible_collections.pycgi.hosting.plugins.module_utils._paths import PathError, display, literal_root
from ansible_collections.pycgi.hosting.plugins.module_utils._selinux_lookup import (
    NO_CONTEXT,
    _bytes,
    _text,
    entry_specs,
    file_contexts_path,
    lookup,
    read_policy_rules,
    root_labels,
)
from ansible_collections.pycgi.hosting.plugins.module_utils._selinux_parse import (
    effective_types,
    invalid_types,
    os_family,
    parse_file_contexts,
    parse_key_values,
    parse_matchpathcon,
    parse_semanage_list,
    parse_setfiles,
    selinux_status,
)
from ansible_collections.pycgi.hosting.plugins.module_utils._selinux_rules import (
    RELABELED_CAP,
    apply_operations,
    import_script,
    ineffective_message,
    invalid_types_message,
    is_type_name,
    mismatches,
    missing_message,
    normalize_roots,
    outermost,
    plan_absent,
    plan_present,
    policy_facts,
    probes,
    render_file_contexts,
    render_rules,
    required_tools,
    rule_dicts,
    type_check_script,
)

if TYPE_CHECKING:
    from typing import Mapping

    from ansible_collections.pycgi.hosting.plugins.module_utils._selinux_lookup import LookupSpec, PolicyRules
    from ansible_collections.pycgi.hosting.plugins.module_utils._selinux_rules import Operation, Plan, Rule

    # A (setting name, SELinux type) pair of the module's parameters.
    Setting = tuple[str, str]

DEFAULT_STORE_ROOT = "/var/lib/selinux"


XATTR = "security.selinux"
# Characters of a path that setfiles' glob(3) (GLOB_BRACE) would not read literally.
_GLOB_SPECIAL = frozenset(b"*?[{\\")


class LabelScan(NamedTuple):
    """The labels of a tree against the policy: how many paths were compared, the
    (path, mode) of those whose label differs, one (path, context) for each rule that decided a path
    and file type (for checking the decisions against matchpathcon), and why the tree could not be
    compared (None when it was)."""

    checked: int
    wrong: list[tuple[bytes, int]]
    samples: collections.OrderedDict[tuple[int, int], tuple[bytes, str]]
    reason: str | None


def read_label(path: str | bytes) -> bytes | None:
    """The security.selinux attribute of a path (not following a symlink) without its NUL; None
    when it has none. OSError when the file system keeps no such attribute."""
    try:
        value = os.getxattr(path, XATTR, follow_symlinks=False)
    except OSError as exc:
        if exc.errno == errno.ENODATA:
            return None
        raise
    return value.rstrip(b"\0")


def _file_type(entry: os.DirEntry[bytes]) -> int:
    if entry.is_file(follow_symlinks=False):
        return stat.S_IFREG
    if entry.is_dir(follow_symlinks=False):
        return stat.S_IFDIR
    if entry.is_symlink():
        return stat.S_IFLNK
    return stat.S_IFMT(entry.stat(follow_symlinks=False).st_mode)


def scan_labels(
    root: str,
    specs: Sequence[LookupSpec],
    observe: Callable[[bytes, bytes | None, str], object] | None = None,
) -> LabelScan:
    """Compares the label of every path at and below `root` with the context `specs` give it;
    `observe(path, label, context)`, when given, sees each path compared (bytes), its label
    (bytes, None for none) and the context decided for it (text, maybe NO_CONTEXT).

    Walks as `setfiles` does (no symlink followed); a path without a label differs. Gives up
    (LabelScan.reason) where setfiles would not do the same as a relabel of the differing paths:
    a root that is a symlink, a mount point below the root, a name with a newline (setfiles'
    output is one line a path), a path no spec decides, a file system without SELinux labels
    (ENOTSUP), a directory that cannot be read.
    """
    root_b = _bytes(root)
    state = {"checked": 0}
    wrong: list[tuple[bytes, int]]
    samples: collections.OrderedDict[tuple[int, int], tuple[bytes, str]]
    wrong, samples = [], collections.OrderedDict()
    wanted = dict((spec.index, _bytes(spec.rule.context)) for spec in specs)

    def give_up(reason: str) -> LabelScan:
        return LabelScan(state["checked"], wrong, samples, reason)

    def compare(
        path: bytes, mode: int, candidates: Sequence[LookupSpec], decider: LookupSpec | None = None
    ) -> str | None:
        """None, or why the path cannot be compared."""
        try:
            label = read_label(path)
        except OSError as exc:
            if exc.errno == errno.ENOENT:
                return None
            return "%s has no SELinux label to compare (%s)" % (_text(path), exc.strerror)
        spec = lookup(candidates, path, mode) or decider
        if spec is None:
            return "no rule decides the context of %s" % _text(path)
        if observe is not None:
            observe(path, label, spec.rule.context)
        state["checked"] += 1
        key = (spec.index, mode)
        if key not in samples:
            samples[key] = (path, spec.rule.context)
        if label != wanted[spec.index] and spec.rule.context != NO_CONTEXT:
            wrong.append((path, mode))
        return None

    try:
        top = os.lstat(root_b)
    except OSError as exc:
        return give_up("%s: %s" % (root, exc.strerror))
    if stat.S_ISLNK(top.st_mode):
        return give_up("%s is a symbolic link" % root)
    reason = compare(root_b, stat.S_IFMT(top.st_mode), specs)
    if reason:
        return give_up(reason)
    directories = [root_b] if stat.S_ISDIR(top.st_mode) else []
    while directories:
        directory = directories.pop()
        candidates, decider = entry_specs(specs, directory)
        try:
            with os.scandir(directory) as listing:
                entries = list(listing)
        except OSError as exc:
            if exc.errno == errno.ENOENT:
                continue  # removed meanwhile: nothing left to label
            return give_up("%s: %s" % (_text(directory), exc.strerror))
        for entry in entries:
            if b"\n" in entry.name:
                return give_up("%s holds a name with a newline" % _text(directory))
            try:
                mode = _file_type(entry)
                if mode == stat.S_IFDIR and entry.stat(follow_symlinks=False).st_dev != top.st_dev:
                    return give_up("%s is a mount point" % _text(entry.path))
            except OSError as exc:
                if exc.errno == errno.ENOENT:
                    continue
                return give_up("%s: %s" % (_text(entry.path), exc.strerror))
            if mode == stat.S_IFDIR:
                directories.append(entry.path)
            reason = compare(entry.path, mode, candidates, decider)
            if reason:
                return give_up(reason)
    return LabelScan(state["checked"], wrong, samples, None)


def relabel_list(wrong: Iterable[tuple[bytes, int]]) -> list[bytes] | None:
    """The paths to hand `setfiles -f`, sorted: the differing ones, less those below a differing
    directory (setfiles relabels a directory's whole subtree). None if a path holds a character
    setfiles' glob(3) would not read literally."""
    directories = set(path for path, mode in wrong if mode == stat.S_IFDIR)
    listed = []
    for path, _mode in sorted(wrong):
        if any(char in _GLOB_SPECIAL for char in path):
            return None
        parent = path
        while True:
            parent = parent.rpartition(b"/")[0]
            if not parent or parent in directories:
                break
        if not parent:
            listed.append(path)
    return listed


def nul_list(paths: Iterable[str | bytes]) -> bytes:
    """The input of `setfiles -0 -f`: each path ended by a NUL byte."""
    return b"".join(_bytes(path) + b"\0" for path in paths)


def path_text(path: str | bytes) -> str:
    """A path's bytes as the text run_command passes and prints (UTF-8, other bytes kept)."""
    return _text(path) if isinstance(path, bytes) else path


def path_bytes(path: str | bytes) -> bytes:
    """The bytes of a path as run_command's output holds it."""
    return _bytes(path)


SELINUX_CONFIG = "/etc/selinux/config"
SEMANAGE_CONF = "/etc/selinux/semanage.conf"
ENFORCE_FILE = "/sys/fs/selinux/enforce"
OS_RELEASE = "/etc/os-release"
# Companions of file_contexts that libselinux loads from beside the path it is given.
FC_COMPANIONS = (".bin", ".homedirs", ".homedirs.bin", ".subs", ".subs_dist")


def read_text(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as handle:
            return handle.read()
    except OSError:
        return None


class Host:
    """The SELinux userland of the managed host: its files and its three commands."""

    def __init__(self, module: Any, tools: Mapping[str, str], policy: str) -> None:
        self.module = module
        self.tools = tools
        self.policy = policy
        self.file_contexts = file_contexts_path(policy)
        self._base_rules: list[Rule] | None = None

    def run(
        self, argv: list[str], data: str | None = None, check_rc: bool = True, what: str | None = None
    ) -> tuple[int, str, str]:
        rc, out, err = self.module.run_command(argv, data=data, environ_update={"LC_ALL": "C", "LANG": "C"})
        if check_rc and rc != 0:
            self.module.fail_json(
                msg="%s failed (rc=%d): %s" % (what or argv[0], rc, (err or out).strip()), rc=rc, stdout=out, stderr=err
            )
        return rc, out, err

    def local_rules(self) -> list[Rule]:
        """The local rules in match order, read once: from the store file, else from semanage."""
        store_root = parse_key_values(read_text(SEMANAGE_CONF) or "").get("store-root", DEFAULT_STORE_ROOT)
        active = os.path.join(store_root, self.policy, "active")
        if os.path.isdir(active):
            return parse_file_contexts(read_text(os.path.join(active, "file_contexts.local")) or "")
        out = self.run([self.tools["semanage"], "fcontext", "-l", "-C"], what="semanage fcontext -l -C")[1]
        return parse_semanage_list(out)

    def base_rules(self) -> list[Rule]:
        if self._base_rules is None:
            text = read_text(self.file_contexts)
            if text is None:
                self.module.fail_json(
                    msg="cannot read %s, the file contexts of the %s policy" % (self.file_contexts, self.policy)
                )
            self._base_rules = parse_file_contexts(cast(str, text))  # fail_json exits when it is None
        return self._base_rules

    def policy_rules(self) -> PolicyRules:
        """The rules and equivalences libselinux reads for this policy, as it orders them."""
        return read_policy_rules(self.file_contexts, self.base_rules(), read_text)

    def effective(
        self, paths_by_mode: Mapping[str, list[str]], file_contexts: str | None = None
    ) -> dict[tuple[str, str], str | None]:
        """{(path, mode): type} the policy (or the one at `file_contexts`) gives these paths."""
        outputs = {}
        for mode in ("dir", "file"):
            argv = [self.tools["matchpathcon"], "-m", mode]
            if file_contexts:
                argv += ["-f", file_contexts]
            outputs[mode] = self.run(argv + paths_by_mode[mode], what="matchpathcon")[1]
        return effective_types(outputs["dir"], outputs["file"])

    def check_types(self, settings: Sequence[Setting]) -> None:
        """Fails naming the setting when semanage would refuse a type; commits nothing."""
        rc, out, err = self.run(
            [self.tools["semanage"], "import"],
            data=type_check_script([value for _name, value in settings]),
            check_rc=False,
        )
        bad = invalid_types(err, settings)
        if bad:
            self.module.fail_json(msg=invalid_types_message(bad, self.policy), stderr=err)
        if "expected one argument" not in err:
            self.module.fail_json(
                msg="checking the types with semanage failed (rc=%d): %s" % (rc, (err or out).strip()), stderr=err
            )

    def simulate(self, tmpdir: str, rules: Iterable[Rule]) -> str:
        """A file_contexts path that libselinux reads as the policy with these local rules."""
        simulated = os.path.join(tmpdir, "file_contexts")
        for suffix in ("",) + FC_COMPANIONS:
            if os.path.exists(self.file_contexts + suffix):
                os.symlink(self.file_contexts + suffix, simulated + suffix)
        with open(simulated + ".local", "w", encoding="utf-8", errors="surrogateescape") as handle:
            handle.write(render_file_contexts(rules))
        return simulated

    def commit(self, operations: Iterable[Operation], settings: Iterable[Setting]) -> None:
        rc, out, err = self.run([self.tools["semanage"], "import"], data=import_script(operations), check_rc=False)
        if rc != 0:
            detail = invalid_types_message(invalid_types(err, settings), self.policy) or (err or out).strip()
            self.module.fail_json(msg="semanage import failed, the policy is unchanged: %s" % detail, rc=rc, stderr=err)

    def confirm(self, samples: Sequence[tuple[bytes, str]]) -> str | None:
        """Why libselinux (matchpathcon) disagrees with the contexts decided here for these
        (path, context) samples; None when it agrees on each."""
        paths = [path_text(path) for path, _context in samples]
        out = self.run([self.tools["matchpathcon"], "-N"] + paths, check_rc=False)[1]
        found = parse_matchpathcon(out)
        for path, context in zip(paths, (context for _path, context in samples)):
            if found.get(path) != context:
                return "matchpathcon gives %s the context %s, not %s" % (path, found.get(path), context)
        return None

    def relabel_differing(self, roots: Iterable[str], dry_run: bool, tmpdir: str) -> tuple[list[str], int, str | None]:
        """Relabels (dry_run: would relabel) only the paths below `roots` whose label differs from
        the context the policy gives them, the contexts decided without setfiles.

        Returns (relabeled, checked, reason): the paths setfiles relabeled, how many labels were
        compared, and why the roots still need a full `setfiles -F` (None when they do not). The
        contexts are decided with the few rules that can apply below each root (see
        `_selinux_lookup.root_labels()`); matchpathcon then confirms one path for every rule and file type
        that decided one, and setfiles must relabel exactly the paths found to differ. Anything else
        (a rule or path this module cannot decide, an equivalence, a file system without labels,
        libselinux deciding otherwise) leaves the decision to the full relabel.
        """
        policy = self.policy_rules()
        wrong: list[tuple[bytes, int]]
        samples: list[tuple[bytes, str]]
        wrong, samples, checked = [], [], 0
        for root in roots:
            specs, reason = root_labels(root, policy)
            if reason:
                return [], checked, reason
            scan = scan_labels(root, cast("list[LookupSpec]", specs))  # a list when there is no reason
            checked += scan.checked
            if scan.reason:
                return [], checked, scan.reason
            wrong.extend(scan.wrong)
            samples.extend(scan.samples.values())
        reason = self.confirm(samples) if samples else None
        if reason or not wrong:
            return [], checked, reason
        listed = relabel_list(wrong)
        if listed is None:
            return [], checked, "a path to relabel holds a character setfiles would read as a glob pattern"
        list_file = os.path.join(tmpdir, "relabel.list")
        with open(list_file, "wb") as handle:
            handle.write(nul_list(listed))
        argv = (
            [self.tools["setfiles"], "-F", "-v"]
            + (["-n"] if dry_run else [])
            + ["-0", "-f", list_file, self.file_contexts]
        )
        rc, out, err = self.run(argv, check_rc=False)
        relabeled = parse_setfiles(out)
        if rc != 0:
            return (
                relabeled,
                checked,
                "setfiles on the %d differing paths failed (rc=%d): %s" % (len(wrong), rc, (err or out).strip()),
            )
        if set(path_bytes(path) for path in relabeled) != set(path for path, _mode in wrong):
            return relabeled, checked, "setfiles relabeled other paths than the %d found to differ" % len(wrong)
        return relabeled, checked, None

    def relabel(self, roots: list[str], file_contexts: str, dry_run: bool, committed: bool = False) -> list[str]:
        """The relabeled paths; a failure after rules were committed reports the change."""
        argv = [self.tools["setfiles"], "-F", "-v"] + (["-n"] if dry_run else []) + [file_contexts] + roots
        rc, out, err = self.run(argv, check_rc=False)
        if rc != 0:
            self.module.fail_json(
                msg="setfiles (relabeling after the rules are in place) failed (rc=%d): %s%s"
                % (rc, (err or out).strip(), " (the rules were added)" if committed else ""),
                changed=committed,
                rc=rc,
                stdout=out,
                stderr=err,
            )
        return parse_setfiles(out)


def read_only(path: str) -> bool:
    """Whether ``path`` is on a file system mounted read-only."""
    return bool(os.statvfs(path).f_flag & os.ST_RDONLY)


def find_host(module: Any, state: str, relabel: bool) -> tuple[Host, list[str]]:
    """The Host, or the reason it cannot be managed: (host, missing items)."""
    tools = dict((name, module.get_bin_path(name)) for name in required_tools(state, relabel))
    missing = [name for name, path in tools.items() if not path]
    policy = parse_key_values(read_text(SELINUX_CONFIG) or "").get("SELINUXTYPE")
    if not policy or not os.path.exists(file_contexts_path(policy)):
        missing.append("policy")
    # policy is None only with "policy" in missing, and the caller then stops.
    return Host(module, tools, cast(str, policy)), missing


def validated_roots(params: Mapping[str, Any]) -> tuple[list[str], list[Setting]]:
    """(roots, settings) of the module's parameters, or ValueError with the message to fail with."""
    if not params["path"]:
        raise ValueError("path is an empty list: name at least one CGI root")
    try:
        roots = normalize_roots(params["path"])
        for root in roots:
            literal_root(root, "path", params["allow_system_path"])
    except PathError as exc:
        raise ValueError(display(str(exc))) from None
    except ValueError as exc:
        raise ValueError(display("path: %s" % exc)) from None
    settings = [("script_type", params["script_type"]), ("cache_type", params["cache_type"])]
    for name, value in settings:
        if not is_type_name(value):
            raise ValueError("%s: %r is not an SELinux type name" % (name, value))
    return roots, settings


def plan(
    host: Host, state: str, roots: list[str], local_rules: list[Rule], settings: Sequence[Setting]
) -> tuple[Plan, dict[str, list[str]] | None]:
    """(plan, probe paths by mode) for the roots: the rules to add or delete (types checked first
    for state=present)."""
    script_type, cache_type = settings[0][1], settings[1][1]
    if state != "present":
        return plan_absent(roots, local_rules, script_type, cache_type), None
    base_specs, policy_types, mls_range = policy_facts(host.base_rules())
    known = policy_types | set(rule.setype for rule in local_rules)
    unknown = [(name, value) for name, value in settings if value not in known]
    if unknown:
        host.check_types(unknown)
    all_probes = [probe for root in roots for probe in probes(root)]
    by_mode = dict((mode, [p.path for p in all_probes if p.mode == mode]) for mode in ("dir", "file"))
    return plan_present(
        roots, local_rules, base_specs, host.effective(by_mode), script_type, cache_type, mls_range
    ), by_mode


def relabel_roots(
    host: Host,
    roots: list[str],
    state: str,
    changed_rules: bool,
    file_contexts: str,
    check_mode: bool,
    committed: bool,
    tmpdir: str,
) -> tuple[list[str], str, int, str | None]:
    """(relabeled paths, method, labels compared, reason for a full relabel) for the existing roots.

    A rule change or a removal can change any label: setfiles checks every path. Otherwise the
    labels on disk are compared here and setfiles gets the differing paths alone."""
    existing = [root for root in outermost(roots) if os.path.lexists(root)]
    if not existing:
        return [], "none", 0, None
    relabeled: list[str]
    reason: str | None
    relabeled, checked = [], 0
    if changed_rules:
        reason = "the rules changed"
    elif state == "absent":
        reason = "state=absent"
    else:
        relabeled, checked, reason = host.relabel_differing(existing, check_mode, tmpdir)
    if not reason:
        return relabeled, "compared", checked, None
    full = host.relabel(existing, file_contexts, check_mode, committed=committed)
    # In check mode nothing was relabeled before: the dry run lists every path.
    done: set[str] = set() if check_mode else set(relabeled)
    relabeled = ([] if check_mode else relabeled) + [path for path in full if path not in done]
    return relabeled, "full", checked, reason


def run(module: Any) -> dict[str, Any]:
    """What selinux_context does for the parameters of `module` (an AnsibleModule with its
    argument spec): the result to exit with. Fails (module.fail_json) on bad input or a failed
    command, exits early (module.exit_json) when the tools are missing and missing_tools=skip."""
    params = module.params
    state, relabel = params["state"], params["relabel"]
    status = selinux_status(read_text(ENFORCE_FILE))
    try:
        roots, settings = validated_roots(params)
    except ValueError as exc:
        module.fail_json(msg=str(exc), selinux_status=status)

    host, missing = find_host(module, state, relabel)
    if missing:
        msg = missing_message(missing, os_family(read_text(OS_RELEASE)))
        if params["missing_tools"] == "skip":
            module.exit_json(changed=False, skipped=True, msg=msg, selinux_status=status)
        module.fail_json(msg=msg, selinux_status=status)

    if relabel:
        # setfiles would fail there after the commit: refuse before anything changes.
        frozen = [root for root in outermost(roots) if os.path.isdir(root) and read_only(root)]
        if frozen:
            module.fail_json(
                msg="path: %s is on a read-only file system, so its labels cannot be written; nothing was"
                " changed (relabel=false records the rules alone)" % ", ".join(frozen),
                selinux_status=status,
            )

    local_rules = host.local_rules()
    tmpdir = tempfile.mkdtemp(prefix="pycgi-selinux-")
    try:
        changes, by_mode = plan(host, state, roots, local_rules, settings)
        after = apply_operations(local_rules, changes.operations)

        file_contexts = host.file_contexts
        if changes.operations and (state == "present" or module.check_mode):
            simulated = host.simulate(tmpdir, after)
            if state == "present":
                # by_mode is the probes' paths for state=present.
                by_mode = cast("dict[str, list[str]]", by_mode)
                wrong = mismatches(roots, host.effective(by_mode, simulated), settings[0][1], settings[1][1])
                if wrong:
                    module.fail_json(msg=ineffective_message(wrong), selinux_status=status)
            if module.check_mode:
                file_contexts = simulated
        if changes.operations and not module.check_mode:
            host.commit(changes.operations, settings)

        relabeled: list[str]
        reason: str | None
        relabeled, method, checked, reason = [], "none", 0, None
        if relabel:
            relabeled, method, checked, reason = relabel_roots(
                host,
                roots,
                state,
                bool(changes.operations),
                file_contexts,
                module.check_mode,
                bool(changes.operations) and not module.check_mode,
                tmpdir,
            )
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)

    result = dict(
        changed=bool(changes.operations or relabeled),
        selinux_status=status,
        policy=host.policy,
        roots=roots,
        rules_added=rule_dicts(changes.added),
        rules_removed=rule_dicts(changes.removed),
        relabeled=relabeled[:RELABELED_CAP],
        relabeled_count=len(relabeled),
        relabel_method=method,
        relabel_checked=checked,
        relabel_reason=reason,
    )
    if module._diff:
        result["diff"] = dict(
            before=render_rules(local_rules),
            after=render_rules(after),
            before_header="SELinux local file contexts",
            after_header="SELinux local file contexts",
        )
    return result
