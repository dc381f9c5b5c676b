# Copyright (c) 2026 pycgi.hosting contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""SELinux file contexts for CGI trees, as plain functions on plain data.

The module `selinux_context` reads the host (files and command output), hands the text to the
parsers here, asks `plan_present()` / `plan_absent()` what to change, and feeds
`import_script()` to `semanage import`. Nothing here runs a command or changes the host;
`scan_labels()` alone reads the file system (the labels of a tree, see the last section).

Two facts of the policy drive the planning:

- Local rules (`semanage fcontext -a/-m`) beat the base policy's, and among local rules the
  one added last wins. So the `__pycache__` rule of a root must come after its tree rule, and
  a rule is moved to the end by deleting and re-adding it in the same transaction.
- A spec the base policy already defines cannot be added (`-a` fails "already defined"), only
  modified (`-m`), which stores a local rule all the same.
"""

from __future__ import annotations

import collections
import errno
import os
import re
import stat
import warnings

TREE_SUFFIX = "(/.*)?"
CACHE_SUFFIX = "(/.*)?/__pycache__(/.*)?"
ALL_FILES = "a"
PROBE_NAME = "pycgi-probe"
PROBE_PYC = "pycgi-probe.cpython-3.pyc"
DEFAULT_STORE_ROOT = "/var/lib/selinux"
RELABELED_CAP = 100

# semanage's file type letters, the file_contexts flag for each, and the names `-l` prints.
FTYPE_FLAGS = {"a": "", "f": "--", "d": "-d", "c": "-c", "b": "-b", "s": "-s", "l": "-l", "p": "-p"}
FTYPE_NAMES = {
    "a": "all files", "f": "regular file", "d": "directory", "c": "character device",
    "b": "block device", "s": "socket", "l": "symbolic link", "p": "named pipe",
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

Rule = collections.namedtuple("Rule", ["target", "ftype", "setype", "context"])
Rule.__doc__ = """One file-context rule: regex spec, file type letter, SELinux type, full context."""

Operation = collections.namedtuple("Operation", ["action", "rule"])
Operation.__doc__ = """One `semanage fcontext` step: action `add`, `modify` or `delete`, and its rule."""

Probe = collections.namedtuple("Probe", ["path", "mode", "kind"])
Probe.__doc__ = """A path whose label tells whether a root is right: mode `dir`/`file`, kind `tree`/`cache`."""

Plan = collections.namedtuple("Plan", ["operations", "added", "removed"])
Plan.__doc__ = """What to change: the ordered operations and the rules they add and remove."""


def normalize_root(path):
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


def normalize_roots(paths):
    """Normalized, de-duplicated roots, parents before the roots nested in them."""
    return sorted(set(normalize_root(path) for path in paths))


def escape_path(path):
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


def is_type_name(name):
    """Whether a string can be an SELinux type identifier."""
    return bool(_TYPE_NAME.match(name or ""))


def context_type(context):
    """The type field of `user:role:type[:range]`; `<<none>>` stays as it is; None when unreadable."""
    if context is None:
        return None
    if context.strip().lower() == "<<none>>":
        return "<<none>>"
    fields = context.strip().split(":")
    return fields[2] if len(fields) >= 3 else None


def make_context(setype, mls_range):
    """The context semanage writes for a new rule of this type."""
    if setype == "<<none>>":
        return setype
    return "system_u:object_r:%s%s" % (setype, ":" + mls_range if mls_range else "")


def wanted_rules(root, script_type, cache_type, mls_range=None):
    """The two rules of a root: (tree rule, cache rule)."""
    spec = escape_path(root)
    return (Rule(spec + TREE_SUFFIX, ALL_FILES, script_type, make_context(script_type, mls_range)),
            Rule(spec + CACHE_SUFFIX, ALL_FILES, cache_type, make_context(cache_type, mls_range)))


def probes(root):
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


def parse_file_contexts(text):
    """Rules of a file_contexts file (the base policy's or the local store's), in file order."""
    rules = []
    for line in text.splitlines():
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        if len(fields) == 2:
            target, ftype, context = fields[0], ALL_FILES, fields[1]
        elif len(fields) == 3 and fields[1] in _FLAG_FTYPES:
            target, ftype, context = fields[0], _FLAG_FTYPES[fields[1]], fields[2]
        else:
            continue
        rules.append(Rule(target, ftype, context_type(context), context))
    return rules


def parse_semanage_list(text):
    """Rules printed by `semanage fcontext -l -C`, in the order listed (equivalences skipped)."""
    rules = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 3 or not fields[0].startswith("/"):
            continue
        ftype = _NAME_FTYPES.get(" ".join(fields[1:-1]))
        if ftype is None:
            continue
        context = fields[-1]
        if context.lower() == "<<none>>":
            context = "<<none>>"
        rules.append(Rule(fields[0], ftype, context_type(context), context))
    return rules


def policy_facts(base_rules):
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


def parse_matchpathcon(text):
    """{path: context} from `matchpathcon` output (`path<TAB>context` lines)."""
    found = {}
    for line in text.splitlines():
        path, sep, context = line.rpartition("\t")
        if sep:
            found[path] = context.strip()
    return found


def effective_types(dir_output, file_output):
    """{(path, mode): type} from the output of `matchpathcon -m dir` and `-m file`."""
    types = {}
    for mode, output in (("dir", dir_output), ("file", file_output)):
        for path, context in parse_matchpathcon(output).items():
            types[(path, mode)] = context_type(context)
    return types


def mismatches(roots, effective, script_type, cache_type):
    """(root, path, wanted type, actual type) for every probe the policy labels wrong."""
    wrong = []
    for root in roots:
        for probe in probes(root):
            wanted = script_type if probe.kind == "tree" else cache_type
            actual = effective.get((probe.path, probe.mode))
            if actual != wanted:
                wrong.append((root, probe.path, wanted, actual))
    return wrong


def ineffective_message(wrong):
    """Why the planned rules are refused: which roots they would not label, with an example each."""
    first = collections.OrderedDict()
    for root, path, wanted, actual in wrong:
        first.setdefault(root, (path, wanted, actual))
    return ("path: the rules for %s would not take effect, another rule takes precedence (an equivalence "
            "rule, semanage fcontext -e, or an exact-path rule); the policy is unchanged (%s)" % (
                ", ".join(first), "; ".join("%s would be %s, not %s" % (path, actual, wanted)
                                            for path, wanted, actual in first.values())))


def _key(rule):
    return (rule.target, rule.ftype)


def _readd(rule, local_by_key, base_specs):
    """Operations that put a rule last among the local rules (the local one of its spec deleted first)."""
    ops = []
    if _key(rule) in local_by_key:
        ops.append(Operation("delete", local_by_key[_key(rule)]))
    ops.append(Operation("modify" if _key(rule) in base_specs else "add", rule))
    return ops


def plan_present(roots, local_rules, base_specs, effective, script_type, cache_type, mls_range=None):
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
    operations, added, removed = [], [], []
    readded_tree, readded_cache = [], []
    for root in roots:
        def below(parents):
            return any(root.startswith(parent + "/") for parent in parents)

        if below(readded_tree):
            continue
        tree, cache = wanted_rules(root, script_type, cache_type, mls_range)
        root_probes = probes(root)
        tree_ok = all(effective.get((p.path, p.mode)) == script_type for p in root_probes if p.kind == "tree")
        cache_ok = below(readded_cache) or all(
            effective.get((p.path, p.mode)) == cache_type for p in root_probes if p.kind == "cache")
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


def plan_absent(roots, local_rules, script_type, cache_type):
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


def apply_operations(local_rules, operations):
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


def import_script(operations):
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


def type_check_script(types):
    """`semanage import` input that validates types and then always fails, so nothing is committed.

    The last line lacks an argument: semanage's parser exits before the transaction commits.
    """
    lines = ["fcontext -a -f a -t %s /pycgi-hosting-type-check-%d" % (setype, i) for i, setype in enumerate(types)]
    lines.append("fcontext -a -f a -t")
    return "".join(line + "\n" for line in lines)


def invalid_types(stderr, settings):
    """The (setting, type) pairs semanage rejected as not a file type, from its stderr."""
    return [(name, value) for name, value in settings
            if re.search(r"\bType %s is invalid\b" % re.escape(value), stderr)]


def outermost(roots):
    """The roots not nested in another one (what a recursive relabel needs to visit)."""
    return [root for root in roots if not any(root.startswith(other + "/") for other in roots)]


def invalid_types_message(invalid, policy):
    """The error for types semanage refused, naming each setting ('' when there are none)."""
    return "; ".join("%s: %r is not a file type of the %s policy" % (name, value, policy) for name, value in invalid)


def render_rules(rules):
    """The local rules as `semanage fcontext -l -C` lists them (the diff's before and after)."""
    return "".join("%s    %s    %s\n" % (rule.target, FTYPE_NAMES.get(rule.ftype, rule.ftype), rule.context)
                   for rule in rules)


def render_file_contexts(rules):
    """The local rules in file_contexts syntax, for simulating the policy after a change."""
    lines = []
    for rule in rules:
        flag = FTYPE_FLAGS.get(rule.ftype, "")
        lines.append("%s    %s%s" % (rule.target, flag + " " if flag else "", rule.context))
    return "".join(line + "\n" for line in lines)


def rule_dicts(rules):
    """Rules as the module returns them."""
    return [{"target": rule.target, "ftype": rule.ftype, "setype": rule.setype} for rule in rules]


def parse_setfiles(text):
    """Paths `setfiles -v` relabeled (or, with -n, would relabel), in its order."""
    paths = []
    for line in text.splitlines():
        for prefix in ("Relabeled ", "Would relabel "):
            if line.startswith(prefix):
                head = line[len(prefix):].rpartition(" to ")[0].rpartition(" from ")[0]
                if head:
                    paths.append(head)
                break
    return paths


def parse_key_values(text):
    """KEY=value lines (/etc/selinux/config, /etc/os-release, semanage.conf), quotes removed."""
    values = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, value = line.split("=", 1)
        values[key.strip()] = value.strip().strip("\"'")
    return values


def selinux_status(enforce_text):
    """`enforcing`, `permissive` or `disabled` from /sys/fs/selinux/enforce (None: not mounted)."""
    if enforce_text is None:
        return "disabled"
    return "enforcing" if enforce_text.strip() == "1" else "permissive"


def os_family(os_release_text):
    """`RedHat`, `Debian` or None from /etc/os-release."""
    values = parse_key_values(os_release_text or "")
    ids = (values.get("ID", "") + " " + values.get("ID_LIKE", "")).lower().split()
    if any(i in ("rhel", "fedora", "centos", "rocky", "almalinux") for i in ids):
        return "RedHat"
    if any(i in ("debian", "ubuntu") for i in ids):
        return "Debian"
    return None


def required_tools(state, relabel):
    """The commands a run needs."""
    tools = ["semanage"]
    if state == "present":
        tools.append("matchpathcon")
    if relabel:
        tools.append("setfiles")
    return tools


def missing_message(missing, family):
    """What to install, naming the package of the host's family (or of both families)."""
    parts = []
    for item in missing:
        packages = PACKAGES[item]
        what = "an SELinux policy" if item == "policy" else "'%s'" % item
        if family in packages:
            parts.append("%s is missing: install the package %s (%s family; %s on the %s family)" % (
                what, packages[family], family,
                packages["Debian" if family == "RedHat" else "RedHat"], "Debian" if family == "RedHat" else "RedHat"))
        else:
            parts.append("%s is missing: install the package %s (RedHat family) or %s (Debian family)" % (
                what, packages["RedHat"], packages["Debian"]))
    return "; ".join(parts)


# --- the labels a tree has, and the ones the policy gives it ------------------------------------
#
# `setfiles -F` over a tree asks libselinux for the context of every path, and each lookup tries
# the policy's regular expressions one after the other: about 0.3 ms a path with the reference
# policy, 5 to 10 seconds for a tree of 10,000 modules with their caches, also when every label
# is right. Yet below a CGI root only a handful of rules can decide a path. So on a run that
# changes no rule the module decides each path's context here with those rules alone (the way
# libselinux does, see `root_labels()`), compares it with the label on disk (the
# security.selinux attribute, one getxattr a path) and hands setfiles only the paths that
# differ. Whatever cannot be decided with confidence makes the caller relabel the whole roots
# with setfiles as before; `scan_labels()` and `root_labels()` say why.
#
# Asking matchpathcon for a few representative paths and accepting every label equal to one of
# its answers would not do: below /usr/lib/cgi-bin the policy gives nagios/ a type of its own, so
# a file there labeled by hand with the tree's type carries a representative answer and is wrong.
# Each path is decided by the rules themselves; matchpathcon then confirms one path for every rule
# that decided one (its answer for that rule must be the same), and setfiles must relabel exactly
# the paths found to differ.

XATTR = "security.selinux"
NO_CONTEXT = "<<none>>"
# libselinux's meta characters (spec_hasMetaChars(), get_stem_from_spec()): a spec without any,
# outside a backslash escape, is an exact path and is tried before every regular expression.
_META = frozenset(b".^$?*+|[({")
# What a backslash may escape in a spec for Python's re to read it as PCRE does (bytes, no UTF).
_ESCAPED_PUNCTUATION = frozenset(b".^$?*+|[](){}\\/-_,:;=!@#%&~'\"<> ")
_ESCAPED_CLASSES = frozenset(b"dDsSwW")
_HEX = frozenset(b"0123456789abcdefABCDEF")
# Characters of a path that setfiles' glob(3) (GLOB_BRACE) would not read literally.
_GLOB_SPECIAL = frozenset(b"*?[{\\")
_ANY_ESCAPE = re.compile(rb"\\.", re.DOTALL)
_META_CHAR = re.compile(rb"[.^$?*+|\[({]")
# A run of literal bytes at the start of a spec: plain characters and the escapes read literally.
_LITERAL_RUN = re.compile(rb"(?:[^\\.^$?*+|\[({)\]}]|\\[.^$?*+|\[\](){}\\/\-_,:;=!@#%&~'\"<> ]|\\x[0-9a-fA-F]{2})*")
_LITERAL_ESCAPE = re.compile(rb"\\x([0-9a-fA-F]{2})|\\(.)", re.DOTALL)
FTYPE_MODES = {"f": stat.S_IFREG, "d": stat.S_IFDIR, "c": stat.S_IFCHR, "b": stat.S_IFBLK,
               "s": stat.S_IFSOCK, "l": stat.S_IFLNK, "p": stat.S_IFIFO}

LookupSpec = collections.namedtuple("LookupSpec", ["index", "rule", "head", "stem", "mode", "match", "parent"])
LookupSpec.__doc__ = """A rule ready for lookups: its place in lookup order, the literal bytes every
path it matches starts with, libselinux's stem (or None), the file type it wants (0: any), the
match function for the path (after the stem), and for a spec of the form P(/.*)? or P/.* the
match function of P (None otherwise): it matches every path below one that P matches."""

LabelScan = collections.namedtuple("LabelScan", ["checked", "wrong", "samples", "reason"])
LabelScan.__doc__ = """The labels of a tree against the policy: how many paths were compared, the
(path, mode) of those whose label differs, one (path, context) for each rule that decided a path
and file type (for checking the decisions against matchpathcon), and why the tree could not be
compared (None when it was)."""


def _bytes(text):
    return text if isinstance(text, bytes) else text.encode("utf-8", "surrogateescape")


def _text(data):
    return data.decode("utf-8", "surrogateescape")


def has_meta_chars(target):
    """Whether libselinux treats a spec as a regular expression (False: an exact path)."""
    return bool(_META_CHAR.search(_ANY_ESCAPE.sub(b"", _bytes(target))))


def lookup_order(*rule_lists):
    """Rules of file_contexts, .homedirs and .local in libselinux's order (sort_specs()): the regular
    expressions in file order, then the exact paths in file order. A lookup takes the last match."""
    rules = [rule for rules in rule_lists for rule in rules]
    return [rule for rule in rules if has_meta_chars(rule.target)] + [
        rule for rule in rules if not has_meta_chars(rule.target)]


def _class_end(data, i):
    """The index after the bracket expression starting at data[i] == '['."""
    j = i + 1
    if j < len(data) and data[j] == 0x5e:  # ^
        j += 1
    if j < len(data) and data[j] == 0x5d:  # a leading ] is literal
        j += 1
    while j < len(data) and data[j] != 0x5d:
        j += 2 if data[j] == 0x5c else 1
    return j + 1


def _top_level_alternation(data):
    """Whether a spec has a `|` outside every group: libselinux anchors it as ^spec$, so each
    alternative is anchored at one end only."""
    depth, i = 0, 0
    while i < len(data):
        char = data[i]
        if char == 0x5c:
            i += 2
            continue
        if char == 0x5b:
            i = _class_end(data, i)
            continue
        if char == 0x28:
            depth += 1
        elif char == 0x29:
            depth -= 1
        elif char == 0x7c and depth == 0:
            return True
        i += 1
    return False


def _escape_at(data, i):
    """(literal bytes, length) of the backslash escape at data[i], or (None, 0) if it is not a literal."""
    following = data[i + 1:i + 2]
    if following and following[0] in _ESCAPED_PUNCTUATION:
        return following, 2
    if following == b"x" and len(data) >= i + 4 and all(c in _HEX for c in data[i + 2:i + 4]):
        return bytes([int(data[i + 2:i + 4], 16)]), 4
    return None, 0


def _unescape(match):
    return bytes([int(match.group(1), 16)]) if match.group(1) else match.group(2)


def literal_head(target):
    """The bytes every path a spec matches starts with (b"" when it cannot be told)."""
    data = _bytes(target)
    if b"|" in data and _top_level_alternation(data):
        return b""
    run = _LITERAL_RUN.match(data).group(0)
    head = _LITERAL_ESCAPE.sub(_unescape, run) if b"\\" in run else run
    if head and data[len(run):len(run) + 1] in (b"?", b"*", b"{"):
        head = head[:-1]  # the last literal (one byte, escaped or not) is optional
    return head


def plain_literal(target):
    """The path an exact spec stands for (escapes resolved), or None if it is not one."""
    data = _bytes(target)
    run = _LITERAL_RUN.match(data).group(0)
    if len(run) != len(data):
        return None
    return _LITERAL_ESCAPE.sub(_unescape, run) if b"\\" in run else run


def covers(target, root):
    """Whether a spec matches every path at and below `root` (the forms X(/.*)? and X/.*)."""
    data, root = _bytes(target), _bytes(root)
    for suffix, strict in ((b"(/.*)?", False), (b"/.*", True)):
        if data.endswith(suffix):
            base = plain_literal(data[:-len(suffix)])
            if base is not None and (root.startswith(base + b"/") or (root == base and not strict)):
                return True
    return False


def spec_stem(target):
    """libselinux's stem of a spec (its first path component, as written), or None."""
    data = _bytes(target)
    end = data.find(b"/", 1)
    if end < 0 or any(char in _META for char in data[:end]):
        return None
    return data[:end]


def python_readable(target):
    """Whether Python's re reads the spec as libselinux's PCRE does (no POSIX classes, no (?
    constructs, no possessive quantifiers, no {,n}, only escapes both read alike)."""
    data = _bytes(target)
    if b"[:" in data or b"{," in data or re.search(rb"\(\?(?!:)|[?*+}]\+", data.replace(b"\\\\", b"")):
        return False
    i = 0
    while i < len(data):
        if data[i] == 0x5c:
            literal, size = _escape_at(data, i)
            following = data[i + 1:i + 2]
            if literal is None and not (following and following[0] in _ESCAPED_CLASSES):
                return False
            i += size or 2
        else:
            i += 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. FutureWarning "possible nested set": read otherwise later
        try:
            re.compile(data)
        except (re.error, FutureWarning):
            return False
    return True


def _matcher(data):
    """The match function libselinux's anchored ^spec$ amounts to."""
    # libselinux compiles with PCRE2_DOTALL.
    if _top_level_alternation(data):
        return re.compile(b"^" + data + b"$", re.DOTALL).search
    return re.compile(b"(?:" + data + b")", re.DOTALL).fullmatch


def parse_subs(text):
    """(alias, original) path pairs of file_contexts.subs_dist and .subs (equivalences)."""
    pairs = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) == 2 and not fields[0].startswith("#"):
            pairs.append((fields[0], fields[1]))
    return pairs


PolicyRules = collections.namedtuple("PolicyRules", ["rules", "heads", "exact", "subs"])
PolicyRules.__doc__ = """The rules libselinux reads, in `lookup_order()`, with the literal head of each, the path
of each exact one (None for a regular expression or an exact spec with an unusual escape), and
the equivalences (subs)."""


def policy_rules(rule_lists, subs=()):
    """The PolicyRules of file_contexts, .homedirs and .local (in that order) and of the subs files."""
    rules = lookup_order(*rule_lists)
    return PolicyRules(rules, [literal_head(rule.target) for rule in rules],
                       [None if has_meta_chars(rule.target) else plain_literal(rule.target) for rule in rules],
                       list(subs))


def file_contexts_path(policy):
    """The file_contexts of an installed policy (SELINUXTYPE)."""
    return "/etc/selinux/%s/contexts/files/file_contexts" % policy


def read_policy_rules(file_contexts, base_rules, read_text):
    """The PolicyRules libselinux reads for the policy at `file_contexts`: `base_rules` (the
    parsed file itself) and, from beside it, .homedirs, .local and the subs files (those
    missing count as empty). `read_text(path)` returns a file's text or None."""
    companions = [parse_file_contexts(read_text(file_contexts + suffix) or "") for suffix in (".homedirs", ".local")]
    subs = parse_subs("\n".join(read_text(file_contexts + suffix) or "" for suffix in (".subs_dist", ".subs")))
    return policy_rules([base_rules] + companions, subs)


def root_labels(root, policy):
    """The rules that can decide a path at or below `root`, ready for `lookup()`: (specs, None),
    or (None, reason) when the contexts there cannot be decided here.

    A regular expression can match a path below the root only if its literal head and the root
    agree (one starts with the other), an exact path only if it is the root or below it; a rule
    that matches every path below the root shadows every regular expression before it. What
    remains is that rule and the few after it (for the stock /usr/lib/cgi-bin: the tree rule,
    nagios, mailman and the like, the cache rule, a few exact paths), tried last first as
    libselinux tries them. An equivalence (subs) for a path at, above or below the root, or a rule
    whose regular expression Python might read otherwise than PCRE, leaves it undecided.
    """
    root_b = _bytes(root)
    for alias, original in policy.subs:
        alias_b = _bytes(alias).rstrip(b"/") or b"/"
        if alias_b == root_b or root_b.startswith(alias_b + b"/") or alias_b.startswith(root_b + b"/"):
            return None, "the equivalence %s = %s applies below %s" % (alias, original, root)
    kept = []
    below = root_b + b"/"
    for index, rule in enumerate(policy.rules):
        exact = policy.exact[index]
        if exact is not None:
            if exact == root_b or exact.startswith(below):
                kept.append(index)
            continue
        head = policy.heads[index]
        if not (head.startswith(below) or head == root_b or below.startswith(head)):
            continue
        if rule.ftype == ALL_FILES and has_meta_chars(rule.target) and covers(rule.target, root_b):
            kept = []
        kept.append(index)
    if not kept:
        return None, "no rule of the policy covers %s" % root
    specs = []
    for index in reversed(kept):
        rule = policy.rules[index]
        if rule.ftype not in FTYPE_MODES and rule.ftype != ALL_FILES:
            return None, "the rule %s has a file type this module does not know" % rule.target
        if not python_readable(rule.target):
            return None, "the rule %s is a regular expression this module does not evaluate" % rule.target
        stem = spec_stem(rule.target)
        data = _bytes(rule.target)
        rest = data[len(stem):] if stem is not None else data
        specs.append(LookupSpec(index, rule, policy.heads[index], stem, FTYPE_MODES.get(rule.ftype, 0),
                                _matcher(rest), _parent_matcher(rest)))
    return specs, None


def _parent_matcher(data):
    """For a spec P(/.*)? or P/.*: the match function of P, which then matches each path below a
    path P matches. None for any other spec."""
    if _top_level_alternation(data):
        return None
    for suffix in (b"(/.*)?", b"/.*"):
        if data.endswith(suffix) and not _top_level_alternation(data[:-len(suffix)]):
            try:
                return re.compile(b"(?:" + data[:-len(suffix)] + b")", re.DOTALL).fullmatch
            except re.error:
                return None
    return None


def lookup(specs, path, mode):
    """The spec that gives `path` (bytes, file type `mode`) its context, as libselinux's
    lookup_common() picks it; None if none of `specs` matches."""
    end = path.find(b"/", 1)
    stem = path[:end] if end > 0 else None
    for spec in specs:
        if (spec.mode and spec.mode != mode) or not path.startswith(spec.head):
            continue
        if spec.stem is None:
            if spec.match(path):
                return spec
        elif spec.stem == stem and spec.match(path[len(stem):]):
            return spec
    return None


def read_label(path):
    """The security.selinux attribute of a path (not following a symlink) without its NUL; None
    when it has none. OSError when the file system keeps no such attribute."""
    try:
        value = os.getxattr(path, XATTR, follow_symlinks=False)
    except OSError as exc:
        if exc.errno == errno.ENODATA:
            return None
        raise
    return value.rstrip(b"\0")


def _file_type(entry):
    if entry.is_file(follow_symlinks=False):
        return stat.S_IFREG
    if entry.is_dir(follow_symlinks=False):
        return stat.S_IFDIR
    if entry.is_symlink():
        return stat.S_IFLNK
    return stat.S_IFMT(entry.stat(follow_symlinks=False).st_mode)


def specs_below(specs, directory):
    """The specs that can match a path directly in `directory` (bytes): those whose literal head
    agrees with the directory's path."""
    prefix = directory + b"/"
    return [spec for spec in specs if prefix.startswith(spec.head) or spec.head.startswith(prefix)]


def _decides_below(spec, directory):
    """Whether `spec` matches every path directly in `directory` (whatever its file type)."""
    if spec.parent is None or spec.mode:
        return False
    ancestor = directory
    while ancestor:
        if spec.stem is None:
            if spec.parent(ancestor):
                return True
        # The paths below the ancestor must have the spec's stem as theirs.
        elif (ancestor == spec.stem or ancestor.startswith(spec.stem + b"/")) and spec.parent(
                ancestor[len(spec.stem):]):
            return True
        ancestor = ancestor.rpartition(b"/")[0]
    return False


def entry_specs(specs, directory):
    """(specs to try, spec that decides the rest) for the paths directly in `directory`: the
    specs that can match there up to the first one that matches every path there, which decides
    each path none of the earlier ones matches (None when no spec matches all)."""
    below = specs_below(specs, directory)
    for position, spec in enumerate(below):
        if _decides_below(spec, directory):
            return below[:position], spec
    return below, None


def scan_labels(root, specs, observe=None):
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
    wrong, samples = [], collections.OrderedDict()
    wanted = dict((spec.index, _bytes(spec.rule.context)) for spec in specs)

    def give_up(reason):
        return LabelScan(state["checked"], wrong, samples, reason)

    def compare(path, mode, candidates, decider=None):
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


def relabel_list(wrong):
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


def nul_list(paths):
    """The input of `setfiles -0 -f`: each path ended by a NUL byte."""
    return b"".join(_bytes(path) + b"\0" for path in paths)


def path_text(path):
    """A path's bytes as the text run_command passes and prints (UTF-8, other bytes kept)."""
    return _text(path) if isinstance(path, bytes) else path


def path_bytes(path):
    """The bytes of a path as run_command's output holds it."""
    return _bytes(path)
