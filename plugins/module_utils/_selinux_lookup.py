# Copyright (c) 2026 pycgi.hosting contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""How libselinux chooses a file's context, for the paths below a CGI root.

This is the collection's own reading of libselinux's label lookup (`sort_specs()`, stems,
PCRE read with Python's `re`, equivalences). `root_labels()` is its one entry point: it either
returns the few rules that decide the paths below a root, ready for `lookup()` and
`entry_specs()`, or says why it cannot decide them, and the caller then lets libselinux
(`setfiles`) decide every path. Where it would decide differently from libselinux that is a
bug here: `tests/container/test_selinux_lookup_policy.py` asks libselinux
(`selabel_lookup_raw()`, what setfiles and the `matchpathcon` command call) about every spec of
the installed reference policy, local rules included, and compares.

Why not ask libselinux itself for every path (ansible-core's
`ansible.module_utils.compat.selinux.matchpathcon`)? `benchmarks/selinux_lookup.py` measures both
(results in `benchmarks/results/selinux_lookup.md`). On a handful of paths (the B5 trees)
libselinux is faster: it loads a compiled policy, where this reads and sorts the text one. On a
real tree it is many times slower, and the more so below a directory the policy has many rules
for (each lookup tries the regular expressions one after the other), while this tries the few
rules that can apply below the root. The comparison of labels runs only on a re-run that changes
no rule, which is where the cost of a large tree is paid every time. Besides, the wrapper offers
only `matchpathcon()`, which resolves symbolic links on the file system first and so answers
for another path than the one setfiles labels, and it only knows the policy in force: the
check of rules not committed yet (`matchpathcon -f`, `setfiles -n` against a simulated
file_contexts) stays with the command-line tools either way.
libselinux keeps the last word: matchpathcon confirms one path for every rule that decided one
(`_selinux_host.Host.confirm`), and any disagreement relabels the whole roots with setfiles.
"""

from __future__ import annotations

import re
import stat
import warnings
from typing import TYPE_CHECKING, Callable, Iterable, NamedTuple, cast

from ansible_collections.pycgi.hosting.plugins.module_utils._selinux_parse import parse_file_contexts, parse_subs
from ansible_collections.pycgi.hosting.plugins.module_utils._selinux_rules import ALL_FILES, Rule

if TYPE_CHECKING:
    # The match function of a compiled spec: a match object, or None.
    Matcher = Callable[[bytes], "re.Match[bytes] | None"]

# --- the labels a tree has, and the ones the policy gives it ------------------------------------
#
# `setfiles -F` over a tree asks libselinux for the context of every path, and each lookup tries
# the policy's regular expressions one after the other, seconds for a tree of 10,000 modules
# with their caches also when every label is right (benchmarks/results/selinux_lookup.md). Yet
# below a CGI root only a handful of rules can decide a path. So on a run that changes no rule
# the module decides each path's context here with those rules alone (the way libselinux does,
# see `root_labels()`), compares it with the label on disk (the
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

NO_CONTEXT = "<<none>>"
# libselinux's meta characters (spec_hasMetaChars(), get_stem_from_spec()): a spec without any,
# outside a backslash escape, is an exact path and is tried before every regular expression.
_META = frozenset(b".^$?*+|[({")
# What a backslash may escape in a spec for Python's re to read it as PCRE does (bytes, no UTF).
_ESCAPED_PUNCTUATION = frozenset(b".^$?*+|[](){}\\/-_,:;=!@#%&~'\"<> ")
_ESCAPED_CLASSES = frozenset(b"dDsSwW")
_HEX = frozenset(b"0123456789abcdefABCDEF")
_ANY_ESCAPE = re.compile(rb"\\.", re.DOTALL)
_META_CHAR = re.compile(rb"[.^$?*+|\[({]")
# A run of literal bytes at the start of a spec: plain characters and the escapes read literally.
_LITERAL_RUN = re.compile(rb"(?:[^\\.^$?*+|\[({)\]}]|\\[.^$?*+|\[\](){}\\/\-_,:;=!@#%&~'\"<> ]|\\x[0-9a-fA-F]{2})*")
_LITERAL_ESCAPE = re.compile(rb"\\x([0-9a-fA-F]{2})|\\(.)", re.DOTALL)
FTYPE_MODES = {
    "f": stat.S_IFREG,
    "d": stat.S_IFDIR,
    "c": stat.S_IFCHR,
    "b": stat.S_IFBLK,
    "s": stat.S_IFSOCK,
    "l": stat.S_IFLNK,
    "p": stat.S_IFIFO,
}


class LookupSpec(NamedTuple):
    """A rule ready for lookups: its place in lookup order, the literal bytes every
    path it matches starts with, libselinux's stem (or None), the file type it wants (0: any), the
    match function for the path (after the stem), and for a spec of the form P(/.*)? or P/.* the
    match function of P (None otherwise): it matches every path below one that P matches."""

    # The field shadows tuple.index(), as it did in the collections.namedtuple this was.
    index: int  # type: ignore[assignment]
    rule: Rule
    head: bytes
    stem: bytes | None
    mode: int
    match: Matcher
    parent: Matcher | None


def _bytes(text: str | bytes) -> bytes:
    return text if isinstance(text, bytes) else text.encode("utf-8", "surrogateescape")


def _text(data: bytes) -> str:
    return data.decode("utf-8", "surrogateescape")


def has_meta_chars(target: str | bytes) -> bool:
    """Whether libselinux treats a spec as a regular expression (False: an exact path)."""
    return bool(_META_CHAR.search(_ANY_ESCAPE.sub(b"", _bytes(target))))


def lookup_order(*rule_lists: Iterable[Rule]) -> list[Rule]:
    """Rules of file_contexts, .homedirs and .local in libselinux's order (sort_specs()): the regular
    expressions in file order, then the exact paths in file order. A lookup takes the last match."""
    return _sorted_specs(rule_lists)[0]


def _sorted_specs(rule_lists: Iterable[Iterable[Rule]]) -> tuple[list[Rule], int]:
    """(rules in lookup order, how many of them are regular expressions: those come first)."""
    rules = [rule for rules in rule_lists for rule in rules]
    meta = [has_meta_chars(rule.target) for rule in rules]
    regexes = [rule for rule, is_regex in zip(rules, meta) if is_regex]
    return regexes + [rule for rule, is_regex in zip(rules, meta) if not is_regex], len(regexes)


def _class_end(data: bytes, i: int) -> int:
    """The index after the bracket expression starting at data[i] == '['."""
    j = i + 1
    if j < len(data) and data[j] == 0x5E:  # ^
        j += 1
    if j < len(data) and data[j] == 0x5D:  # a leading ] is literal
        j += 1
    while j < len(data) and data[j] != 0x5D:
        j += 2 if data[j] == 0x5C else 1
    return j + 1


def _top_level_alternation(data: bytes) -> bool:
    """Whether a spec has a `|` outside every group: libselinux anchors it as ^spec$, so each
    alternative is anchored at one end only."""
    depth, i = 0, 0
    while i < len(data):
        char = data[i]
        if char == 0x5C:
            i += 2
            continue
        if char == 0x5B:
            i = _class_end(data, i)
            continue
        if char == 0x28:
            depth += 1
        elif char == 0x29:
            depth -= 1
        elif char == 0x7C and depth == 0:
            return True
        i += 1
    return False


def _escape_at(data: bytes, i: int) -> tuple[bytes | None, int]:
    """(literal bytes, length) of the backslash escape at data[i], or (None, 0) if it is not a literal."""
    following = data[i + 1 : i + 2]
    if following and following[0] in _ESCAPED_PUNCTUATION:
        return following, 2
    if following == b"x" and len(data) >= i + 4 and all(c in _HEX for c in data[i + 2 : i + 4]):
        return bytes([int(data[i + 2 : i + 4], 16)]), 4
    return None, 0


def _unescape(match: re.Match[bytes]) -> bytes:
    return bytes([int(match.group(1), 16)]) if match.group(1) else match.group(2)


def literal_head(target: str | bytes) -> bytes:
    """The bytes every path a spec matches starts with (b"" when it cannot be told)."""
    data = _bytes(target)
    if b"|" in data and _top_level_alternation(data):
        return b""
    run = cast("re.Match[bytes]", _LITERAL_RUN.match(data)).group(0)  # it matches the empty string
    head = _LITERAL_ESCAPE.sub(_unescape, run) if b"\\" in run else run
    if head and data[len(run) : len(run) + 1] in (b"?", b"*", b"{"):
        head = head[:-1]  # the last literal (one byte, escaped or not) is optional
    return head


def plain_literal(target: str | bytes) -> bytes | None:
    """The path an exact spec stands for (escapes resolved), or None if it is not one."""
    data = _bytes(target)
    run = cast("re.Match[bytes]", _LITERAL_RUN.match(data)).group(0)  # it matches the empty string
    if len(run) != len(data):
        return None
    return _LITERAL_ESCAPE.sub(_unescape, run) if b"\\" in run else run


def covers(target: str | bytes, root: str | bytes) -> bool:
    """Whether a spec matches every path at and below `root` (the forms X(/.*)? and X/.*)."""
    data, root = _bytes(target), _bytes(root)
    for suffix, strict in ((b"(/.*)?", False), (b"/.*", True)):
        if data.endswith(suffix):
            base = plain_literal(data[: -len(suffix)])
            if base is not None and (root.startswith(base + b"/") or (root == base and not strict)):
                return True
    return False


def spec_stem(target: str | bytes) -> bytes | None:
    """libselinux's stem of a spec (its first path component, as written), or None."""
    data = _bytes(target)
    end = data.find(b"/", 1)
    if end < 0 or any(char in _META for char in data[:end]):
        return None
    return data[:end]


def python_readable(target: str | bytes) -> bool:
    """Whether Python's re reads the spec as libselinux's PCRE does (no POSIX classes, no (?
    constructs, no possessive quantifiers, no {,n}, only escapes both read alike)."""
    data = _bytes(target)
    if b"[:" in data or b"{," in data or re.search(rb"\(\?(?!:)|[?*+}]\+", data.replace(b"\\\\", b"")):
        return False
    i = 0
    while i < len(data):
        if data[i] == 0x5C:
            literal, size = _escape_at(data, i)
            following = data[i + 1 : i + 2]
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


def _matcher(data: bytes) -> Matcher:
    """The match function libselinux's anchored ^spec$ amounts to."""
    # libselinux compiles with PCRE2_DOTALL.
    if _top_level_alternation(data):
        return re.compile(b"^" + data + b"$", re.DOTALL).search
    return re.compile(b"(?:" + data + b")", re.DOTALL).fullmatch


class PolicyRules(NamedTuple):
    """The rules libselinux reads, in `lookup_order()`, with the literal head of each, the path
    of each exact one (None for a regular expression or an exact spec with an unusual escape), and
    the equivalences (subs)."""

    rules: list[Rule]
    heads: list[bytes]
    exact: list[bytes | None]
    subs: list[tuple[str, str]]


def policy_rules(rule_lists: Iterable[Iterable[Rule]], subs: Iterable[tuple[str, str]] = ()) -> PolicyRules:
    """The PolicyRules of file_contexts, .homedirs and .local (in that order) and of the subs files."""
    rules, regexes = _sorted_specs(rule_lists)
    return PolicyRules(
        rules,
        [literal_head(rule.target) for rule in rules],
        cast("list[bytes | None]", [None] * regexes) + [plain_literal(rule.target) for rule in rules[regexes:]],
        list(subs),
    )


def file_contexts_path(policy: str) -> str:
    """The file_contexts of an installed policy (SELINUXTYPE)."""
    return "/etc/selinux/%s/contexts/files/file_contexts" % policy


def read_policy_rules(
    file_contexts: str, base_rules: list[Rule], read_text: Callable[[str], str | None]
) -> PolicyRules:
    """The PolicyRules libselinux reads for the policy at `file_contexts`: `base_rules` (the
    parsed file itself) and, from beside it, .homedirs, .local and the subs files (those
    missing count as empty). `read_text(path)` returns a file's text or None."""
    companions = [parse_file_contexts(read_text(file_contexts + suffix) or "") for suffix in (".homedirs", ".local")]
    subs = parse_subs("\n".join(read_text(file_contexts + suffix) or "" for suffix in (".subs_dist", ".subs")))
    return policy_rules([base_rules] + companions, subs)


def root_labels(root: str, policy: PolicyRules) -> tuple[list[LookupSpec] | None, str | None]:
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
        rest = data[len(stem) :] if stem is not None else data
        specs.append(
            LookupSpec(
                index,
                rule,
                policy.heads[index],
                stem,
                FTYPE_MODES.get(rule.ftype, 0),
                _matcher(rest),
                _parent_matcher(rest),
            )
        )
    return specs, None


def _parent_matcher(data: bytes) -> Matcher | None:
    """For a spec P(/.*)? or P/.*: the match function of P, which then matches each path below a
    path P matches. None for any other spec."""
    if _top_level_alternation(data):
        return None
    for suffix in (b"(/.*)?", b"/.*"):
        if data.endswith(suffix) and not _top_level_alternation(data[: -len(suffix)]):
            try:
                return re.compile(b"(?:" + data[: -len(suffix)] + b")", re.DOTALL).fullmatch
            except re.error:
                return None
    return None


def lookup(specs: Iterable[LookupSpec], path: bytes, mode: int) -> LookupSpec | None:
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
        elif spec.stem == stem and spec.match(path[len(stem) :]):
            return spec
    return None


def specs_below(specs: Iterable[LookupSpec], directory: bytes) -> list[LookupSpec]:
    """The specs that can match a path directly in `directory` (bytes): those whose literal head
    agrees with the directory's path."""
    prefix = directory + b"/"
    return [spec for spec in specs if prefix.startswith(spec.head) or spec.head.startswith(prefix)]


def _decides_below(spec: LookupSpec, directory: bytes) -> bool:
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
            ancestor[len(spec.stem) :]
        ):
            return True
        ancestor = ancestor.rpartition(b"/")[0]
    return False


def entry_specs(specs: Iterable[LookupSpec], directory: bytes) -> tuple[list[LookupSpec], LookupSpec | None]:
    """(specs to try, spec that decides the rest) for the paths directly in `directory`: the
    specs that can match there up to the first one that matches every path there, which decides
    each path none of the earlier ones matches (None when no spec matches all)."""
    below = specs_below(specs, directory)
    for position, spec in enumerate(below):
        if _decides_below(spec, directory):
            return below[:position], spec
    return below, None
