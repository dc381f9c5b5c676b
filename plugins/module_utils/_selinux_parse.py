# Copyright (c) 2026 pycgi.hosting contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The text of SELinux files and tools read into plain data: file_contexts and its .subs files,
`semanage fcontext -l -C`, `matchpathcon`, `setfiles -v`, `semanage import` errors and
KEY=value files (/etc/selinux/config, semanage.conf, /etc/os-release)."""

from __future__ import annotations

import re
from typing import Iterable

from ansible_collections.pycgi.hosting.plugins.module_utils._selinux_rules import (
    _FLAG_FTYPES,
    _NAME_FTYPES,
    ALL_FILES,
    Rule,
    context_type,
)


def parse_file_contexts(text: str) -> list[Rule]:
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


def parse_semanage_list(text: str) -> list[Rule]:
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


def parse_matchpathcon(text: str) -> dict[str, str]:
    """{path: context} from `matchpathcon` output (`path<TAB>context` lines)."""
    found = {}
    for line in text.splitlines():
        path, sep, context = line.rpartition("\t")
        if sep:
            found[path] = context.strip()
    return found


def effective_types(dir_output: str, file_output: str) -> dict[tuple[str, str], str | None]:
    """{(path, mode): type} from the output of `matchpathcon -m dir` and `-m file`."""
    types = {}
    for mode, output in (("dir", dir_output), ("file", file_output)):
        for path, context in parse_matchpathcon(output).items():
            types[(path, mode)] = context_type(context)
    return types


def invalid_types(stderr: str, settings: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """The (setting, type) pairs semanage rejected as not a file type, from its stderr."""
    return [
        (name, value) for name, value in settings if re.search(r"\bType %s is invalid\b" % re.escape(value), stderr)
    ]


def parse_setfiles(text: str) -> list[str]:
    """Paths `setfiles -v` relabeled (or, with -n, would relabel), in its order."""
    paths = []
    for line in text.splitlines():
        for prefix in ("Relabeled ", "Would relabel "):
            if line.startswith(prefix):
                head = line[len(prefix) :].rpartition(" to ")[0].rpartition(" from ")[0]
                if head:
                    paths.append(head)
                break
    return paths


def parse_key_values(text: str) -> dict[str, str]:
    """KEY=value lines (/etc/selinux/config, /etc/os-release, semanage.conf), quotes removed."""
    values = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, value = line.split("=", 1)
        values[key.strip()] = value.strip().strip("\"'")
    return values


def selinux_status(enforce_text: str | None) -> str:
    """`enforcing`, `permissive` or `disabled` from /sys/fs/selinux/enforce (None: not mounted)."""
    if enforce_text is None:
        return "disabled"
    return "enforcing" if enforce_text.strip() == "1" else "permissive"


def os_family(os_release_text: str | None) -> str | None:
    """`RedHat`, `Debian` or None from /etc/os-release."""
    values = parse_key_values(os_release_text or "")
    ids = (values.get("ID", "") + " " + values.get("ID_LIKE", "")).lower().split()
    if any(i in ("rhel", "fedora", "centos", "rocky", "almalinux") for i in ids):
        return "RedHat"
    if any(i in ("debian", "ubuntu") for i in ids):
        return "Debian"
    return None


def parse_subs(text: str) -> list[tuple[str, str]]:
    """(alias, original) path pairs of file_contexts.subs_dist and .subs (equivalences)."""
    pairs = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) == 2 and not fields[0].startswith("#"):
            pairs.append((fields[0], fields[1]))
    return pairs
