# Copyright (c) 2026 pycgi.hosting contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""SELinux file-context rules for CGI trees: which rules a root needs, and the plan that puts
them in place, as plain functions on plain data (nothing here reads the host or runs a command).

Two facts of the policy drive the planning:

- Local rules (`semanage fcontext -a/-m`) beat the base policy's, and among local rules the
  one added last wins. So the `__pycache__` rule of a root must come after its tree rule, and
  a rule is moved to the end by deleting and re-adding it in the same transaction.
- A spec the base policy already defines cannot be added (`-a` fails "already defined"), only
  modified (`-m`), which stores a local rule all the same.
"""

from __future__ import annotations

import collections
import re
from typing import TYPE_CHECKING, Collection, Iterable, NamedTuple, Sequence

if TYPE_CHECKING:
    from typing import Mapping, TypedDict

    class RuleDict(TypedDict):
        """A rule as the module returns it."""

        target: str
        ftype: str
        setype: str | None

    # (root, probe path, wanted type, actual type)
    Mismatch = tuple[str, str, str, "str | None"]

TREE_SUFFIX = "(/.*)?"
CACHE_SUFFIX = "(/.*)?/__pycache__(/.*)?"
ALL_FILES = "a"
PROBE_NAME = "pycgi-probe"
PROBE_PYC = "pycgi-probe.cpython-3.pyc"
RELABELED_CAP = 100

# semanage's file type letters, the file_contexts flag for each, and the names `-l` prints.
FTYPE_FLAGS = {"a": "", "f": "--", "d": "-d", "c": "-c", "b": "-b", "s": "-s", "l": "-l", "p": "-p"}
FTYPE_NAMES = {
    "a": "all files",
    "f": "regular file",
    "d": "directory",
    "c": "character device",
    "b": "block device",
    "s": "socket",
    "l": "symbolic link",
    "p": "named pipe",
}
_FLAG_FTYPES = dict((flag, ftype) for ftype, flag in FTYPE_FLAGS.items() if flag)
_NAME_FTYPES = dict((name, ftype) for ftype, name in FTYPE_NAMES.items())

# Characters with a meaning in a PCRE file-context spec; each is matched literally after a backslash.
_REGEX_SPECIAL = frozenset("\\.^$*+?()[]{}|")
# Characters semanage's `import` line parser splits on or strips: written as \xHH, which PCRE reads as the byte.
_HEX_ESCAPED = frozenset(" \"'")
_TYPE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")

PACKAGES = {
    "semanage": {"RedHat": "policycoreutils-python-utils", "Debian": "policycoreutils-python-utils"},
    "setfiles": {"RedHat": "policycoreutils", "Debian": "policycoreutils"},
    "matchpathcon": {"RedHat": "libselinux-utils", "Debian": "selinux-utils"},
    "policy": {"RedHat": "selinux-policy-targeted", "Debian": "selinux-policy-default"},
}


class Rule(NamedTuple):
    """One file-context rule: regex spec, file type letter, SELinux type, full context."""

    target: str
    ftype: str
    setype: str | None
    context: str


class Operation(NamedTuple):
    """One `semanage fcontext` step: action `add`, `modify` or `delete`, and its rule."""

    action: str
    rule: Rule


class Probe(NamedTuple):
    """A path whose label tells whether a root is right: mode `dir`/`file`, kind `tree`/`cache`."""

    path: str
    mode: str
    kind: str


class Plan(NamedTuple):
    """What to change: the ordered operations and the rules they add and remove."""

    operations: list[Operation]
    added: list[Rule]
    removed: list[Rule]


def normalize_root(path: object) -> str:
    """A CGI root as semanage stores it (no `//`, no trailing `/`); ValueError when unusable."""
    if not isinstance(path, str) or not path:
        raise ValueError("an empty path")
    if not path.startswith("/"):
        raise ValueError("%r is not an absolute path" % path)
    for char in path:
        if ord(char) < 32 or ord(char) == 127 or (char.isspace() and char != " "):
            raise ValueError("%r contains a control or non-ASCII blank character" % path)
    parts = [part for part in path.split("/") if part]
    if any(part in (".", "..") for part in parts):
        raise ValueError("%r contains a '.' or '..' component" % path)
    if not parts:
        raise ValueError("'/' would label the whole file system")
    return "/" + "/".join(parts)


def normalize_roots(paths: Iterable[object]) -> list[str]:
    """Normalized, de-duplicated roots, parents before the roots nested in them."""
    return sorted(set(normalize_root(path) for path in paths))


def escape_path(path: str) -> str:
    """The path as a file-context regex matching exactly itself.

    A non-ASCII character becomes the \\xHH escapes of its UTF-8 bytes: libselinux refuses a
    file_contexts file with non-ASCII characters (and with it every context lookup on the host),
    and matches the paths' bytes."""
    out = []
    for char in path:
        if char in _REGEX_SPECIAL:
            out.append("\\" + char)
        elif char in _HEX_ESCAPED:
            out.append("\\x%02x" % ord(char))
        elif ord(char) > 127:
            out.extend("\\x%02x" % byte for byte in char.encode("utf-8", "surrogateescape"))
        else:
            out.append(char)
    return "".join(out)


def is_type_name(name: str | None) -> bool:
    """Whether a string can be an SELinux type identifier."""
    return bool(_TYPE_NAME.match(name or ""))


def context_type(context: str | None) -> str | None:
    """The type field of `user:role:type[:range]`; `<<none>>` stays as it is; None when unreadable."""
    if context is None:
        return None
    if context.strip().lower() == "<<none>>":
        return "<<none>>"
    fields = context.strip().split(":")
    return fields[2] if len(fields) >= 3 else None


def make_context(setype: str, mls_range: str | None) -> str:
    """The context semanage writes for a new rule of this type."""
    if setype == "<<none>>":
        return setype
    return "system_u:object_r:%s%s" % (setype, ":" + mls_range if mls_range else "")


def wanted_rules(root: str, script_type: str, cache_type: str, mls_range: str | None = None) -> tuple[Rule, Rule]:
    """The two rules of a root: (tree rule, cache rule)."""
    spec = escape_path(root)
    return (
        Rule(spec + TREE_SUFFIX, ALL_FILES, script_type, make_context(script_type, mls_range)),
        Rule(spec + CACHE_SUFFIX, ALL_FILES, cache_type, make_context(cache_type, mls_range)),
    )


def probes(root: str) -> list[Probe]:
    """Paths whose effective labels show whether the policy labels the root as wanted."""
    sub = root + "/" + PROBE_NAME
    return [
        Probe(root, "dir", "tree"),
        Probe(root + "/" + PROBE_NAME + ".py", "file", "tree"),
        Probe(sub, "dir", "tree"),
        Probe(sub + "/" + PROBE_NAME + ".py", "file", "tree"),
        Probe(root + "/__pycache__", "dir", "cache"),
        Probe(root + "/__pycache__/" + PROBE_PYC, "file", "cache"),
        Probe(sub + "/__pycache__", "dir", "cache"),
        Probe(sub + "/__pycache__/" + PROBE_PYC, "file", "cache"),
    ]


def policy_facts(base_rules: Iterable[Rule]) -> tuple[set[tuple[str, str]], set[str], str | None]:
    """(specs the base policy defines as (target, ftype), types it labels files with, MLS range)."""
    specs = set()
    types = set()
    mls_range = None
    for rule in base_rules:
        specs.add((rule.target, rule.ftype))
        if rule.setype and rule.setype != "<<none>>":
            types.add(rule.setype)
            if mls_range is None:
                fields = rule.context.split(":")
                mls_range = ":".join(fields[3:]).partition("-")[0] if len(fields) > 3 else ""
    return specs, types, mls_range or None


def mismatches(
    roots: Iterable[str], effective: Mapping[tuple[str, str], str | None], script_type: str, cache_type: str
) -> list[Mismatch]:
    """(root, path, wanted type, actual type) for every probe the policy labels wrong."""
    wrong = []
    for root in roots:
        for probe in probes(root):
            wanted = script_type if probe.kind == "tree" else cache_type
            actual = effective.get((probe.path, probe.mode))
            if actual != wanted:
                wrong.append((root, probe.path, wanted, actual))
    return wrong


def ineffective_message(wrong: Iterable[Mismatch]) -> str:
    """Why the planned rules are refused: which roots they would not label, with an example each."""
    first: collections.OrderedDict[str, tuple[str, str, str | None]] = collections.OrderedDict()
    for root, path, wanted, actual in wrong:
        first.setdefault(root, (path, wanted, actual))
    return (
        "path: the rules for %s would not take effect, another rule takes precedence (an equivalence "
        "rule, semanage fcontext -e, or an exact-path rule); the policy is unchanged (%s)"
        % (
            ", ".join(first),
            "; ".join("%s would be %s, not %s" % (path, actual, wanted) for path, wanted, actual in first.values()),
        )
    )


def _key(rule: Rule) -> tuple[str, str]:
    return (rule.target, rule.ftype)


def _readd(
    rule: Rule, local_by_key: Mapping[tuple[str, str], Rule], base_specs: Collection[tuple[str, str]]
) -> list[Operation]:
    """Operations that put a rule last among the local rules (the local one of its spec deleted first)."""
    ops = []
    if _key(rule) in local_by_key:
        ops.append(Operation("delete", local_by_key[_key(rule)]))
    ops.append(Operation("modify" if _key(rule) in base_specs else "add", rule))
    return ops


def plan_present(
    roots: Sequence[str],
    local_rules: Iterable[Rule],
    base_specs: Collection[tuple[str, str]],
    effective: Mapping[tuple[str, str], str | None],
    script_type: str,
    cache_type: str,
    mls_range: str | None = None,
) -> Plan:
    """The operations that make the policy label every root as wanted, and nothing more.

    `roots` are normalized and sorted (parents first); `effective` maps (probe path, mode) to the
    type the policy gives now. A root whose probes are right gets nothing. A wrong tree gets
    its tree rule (re-)added last, then its cache rule after it (a local tree rule shadows
    every rule before it); a wrong cache alone gets its cache rule (re-)added last, which also
    repairs a tree rule that was added after it. Rules re-added for a root cover the roots
    nested in it: below a re-added tree rule nothing more is needed, below a re-added cache
    rule only a wrong tree (and then its cache rule after it).
    """
    local_by_key = dict((_key(rule), rule) for rule in local_rules)
    operations: list[Operation]
    added: list[Rule]
    removed: list[Rule]
    readded_tree: list[str]
    readded_cache: list[str]
    operations, added, removed = [], [], []
    readded_tree, readded_cache = [], []
    for root in roots:

        def below(parents: Iterable[str], root: str = root) -> bool:
            return any(root.startswith(parent + "/") for parent in parents)

        if below(readded_tree):
            continue
        tree, cache = wanted_rules(root, script_type, cache_type, mls_range)
        root_probes = probes(root)
        tree_ok = all(effective.get((p.path, p.mode)) == script_type for p in root_probes if p.kind == "tree")
        cache_ok = below(readded_cache) or all(
            effective.get((p.path, p.mode)) == cache_type for p in root_probes if p.kind == "cache"
        )
        readd_tree = not tree_ok
        readd_cache = cache_type != script_type if readd_tree else not cache_ok
        for rule, needed in ((tree, readd_tree), (cache, readd_cache)):
            if not needed:
                continue
            ops = _readd(rule, local_by_key, base_specs)
            operations.extend(ops)
            removed.extend(op.rule for op in ops if op.action == "delete")
            added.append(rule)
        if readd_tree:
            readded_tree.append(root)
        if readd_cache:
            readded_cache.append(root)
    return Plan(operations, added, removed)


def plan_absent(roots: Iterable[str], local_rules: Iterable[Rule], script_type: str, cache_type: str) -> Plan:
    """Deletions of exactly the local rules this module adds for these roots (same spec and type)."""
    local_by_key = dict((_key(rule), rule) for rule in local_rules)
    operations, removed = [], []
    for root in roots:
        for rule in wanted_rules(root, script_type, cache_type):
            existing = local_by_key.get(_key(rule))
            if existing is not None and existing.setype == rule.setype:
                operations.append(Operation("delete", existing))
                removed.append(existing)
    return Plan(operations, [], removed)


def apply_operations(local_rules: Iterable[Rule], operations: Iterable[Operation]) -> list[Rule]:
    """The local rules, in match order, after the operations (as libsemanage stores them)."""
    rules = list(local_rules)
    for op in operations:
        index = next((i for i, rule in enumerate(rules) if _key(rule) == _key(op.rule)), None)
        if op.action == "delete":
            if index is not None:
                del rules[index]
        elif index is not None:
            rules[index] = op.rule
        else:
            rules.append(op.rule)
    return rules


def import_script(operations: Iterable[Operation]) -> str:
    """The `semanage import` input performing the operations in one transaction."""
    lines = []
    for op in operations:
        rule = op.rule
        if op.action == "delete":
            lines.append("fcontext -d -f %s %s" % (rule.ftype, rule.target))
        else:
            flag = "-a" if op.action == "add" else "-m"
            lines.append("fcontext %s -f %s -t %s %s" % (flag, rule.ftype, rule.setype, rule.target))
    return "".join(line + "\n" for line in lines)


def type_check_script(types: Iterable[str]) -> str:
    """`semanage import` input that validates types and then always fails, so nothing is committed.

    The last line lacks an argument: semanage's parser exits before the transaction commits.
    """
    lines = ["fcontext -a -f a -t %s /pycgi-hosting-type-check-%d" % (setype, i) for i, setype in enumerate(types)]
    lines.append("fcontext -a -f a -t")
    return "".join(line + "\n" for line in lines)


def outermost(roots: Sequence[str]) -> list[str]:
    """The roots not nested in another one (what a recursive relabel needs to visit)."""
    return [root for root in roots if not any(root.startswith(other + "/") for other in roots)]


def invalid_types_message(invalid: Iterable[tuple[str, str]], policy: str) -> str:
    """The error for types semanage refused, naming each setting ('' when there are none)."""
    return "; ".join("%s: %r is not a file type of the %s policy" % (name, value, policy) for name, value in invalid)


def render_rules(rules: Iterable[Rule]) -> str:
    """The local rules as `semanage fcontext -l -C` lists them (the diff's before and after)."""
    return "".join(
        "%s    %s    %s\n" % (rule.target, FTYPE_NAMES.get(rule.ftype, rule.ftype), rule.context) for rule in rules
    )


def render_file_contexts(rules: Iterable[Rule]) -> str:
    """The local rules in file_contexts syntax, for simulating the policy after a change."""
    lines = []
    for rule in rules:
        flag = FTYPE_FLAGS.get(rule.ftype, "")
        lines.append("%s    %s%s" % (rule.target, flag + " " if flag else "", rule.context))
    return "".join(line + "\n" for line in lines)


def rule_dicts(rules: Iterable[Rule]) -> list[RuleDict]:
    """Rules as the module returns them."""
    return [{"target": rule.target, "ftype": rule.ftype, "setype": rule.setype} for rule in rules]


def required_tools(state: str, relabel: bool) -> list[str]:
    """The commands a run needs."""
    tools = ["semanage"]
    if state == "present":
        tools.append("matchpathcon")
    if relabel:
        tools.append("setfiles")
    return tools


def missing_message(missing: Iterable[str], family: str | None) -> str:
    """What to install, naming the package of the host's family (or of both families)."""
    parts = []
    for item in missing:
        packages = PACKAGES[item]
        what = "an SELinux policy" if item == "policy" else "'%s'" % item
        if family in packages:
            parts.append(
                "%s is missing: install the package %s (%s family; %s on the %s family)"
                % (
                    what,
                    packages[family],
                    family,
                    packages["Debian" if family == "RedHat" else "RedHat"],
                    "Debian" if family == "RedHat" else "RedHat",
                )
            )
        else:
            parts.append(
                "%s is missing: install the package %s (RedHat family) or %s (Debian family)"
                % (what, packages["RedHat"], packages["Debian"])
            )
    return "; ".join(parts)
