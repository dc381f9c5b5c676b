# Copyright (c) 2026 pycgi.hosting contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""What a person debugging a slow CGI host wants to know about one CGI root: the domain code
of the read-only ``pycgi.hosting.pycache_info`` module, plain functions on plain data.

:func:`inspect` is the entry point. It walks the tree once (``_pytree.walk``), resolves the
interpreters as ``precompile`` does, and starts under each of them one process that reads the
``.pyc`` headers with the compile program's own freshness check (``_compile_worker.plan``),
without compiling anything. The rest is read in this process: orphans and foreign cache tags
(``_precompile.prune_candidates``), entry scripts and their sizes, what the web server user's
permission bits allow, SELinux labels against the policy (its rules, or ``matchpathcon``), and the Apache
block (``_apache``). Nothing on the host is changed.
"""

from __future__ import annotations

import collections
import errno
import json
import os
import pwd
import shutil
import stat
from typing import TYPE_CHECKING, Any, Callable, Collection, NamedTuple, Sequence, cast

from ansible_collections.pycgi.hosting.plugins.module_utils import _precompile
from ansible_collections.pycgi.hosting.plugins.module_utils._apache import (
    ApacheConfigError,
    current_block,
    default_config_path,
    drop_in_layout,
    drop_in_name,
    normalize_root,
    render_block,
)
from ansible_collections.pycgi.hosting.plugins.module_utils._compile_worker import TMP_SUFFIX
from ansible_collections.pycgi.hosting.plugins.module_utils._ownership import (
    OwnershipError,
    default_web_group,
    default_web_user,
    resolve_group,
    resolve_user,
)
from ansible_collections.pycgi.hosting.plugins.module_utils._precompile import (
    PrecompileError,
    check_interpreters,
    interpreter_requests,
    prune_candidates,
    worker_source,
)
from ansible_collections.pycgi.hosting.plugins.module_utils._pytree import PYCACHE, parse_pyc_name, walk
from ansible_collections.pycgi.hosting.plugins.module_utils._selinux import (
    NO_CONTEXT,
    context_type,
    file_contexts_path,
    parse_file_contexts,
    parse_key_values,
    parse_matchpathcon,
    path_bytes,
    path_text,
    probes,
    read_policy_rules,
    root_labels,
    scan_labels,
    selinux_status,
)

if TYPE_CHECKING:
    from ansible_collections.pycgi.hosting.plugins.module_utils._precompile import Interpreter, _Worker
    from ansible_collections.pycgi.hosting.plugins.module_utils._pytree import Tree
    from ansible_collections.pycgi.hosting.plugins.module_utils._selinux_lookup import LookupSpec

    # A part of the report (see the module's RETURN): JSON, as the module returns it.
    Report = dict[str, Any]
    # run(argv) -> (rc, stdout, stderr)
    Run = Callable[[list[str]], tuple[int, str, str]]
    # read_text(path) -> the file's text, or None
    ReadText = Callable[[str], "str | None"]

CACHE_MODES = ("writable", "readonly", "prefix")
LIST_LIMIT = 50
# Paths whose labels are compared with the policy when the contexts cannot be decided from the
# policy's rules here: every directory, then files evenly spread. Each matchpathcon run loads
# the whole policy before it answers for its paths, so paths are asked in large batches.
SELINUX_SAMPLE = 2000
MATCHPATHCON_BATCH = 2000
SELINUX_CONFIG = "/etc/selinux/config"
ENFORCE_FILE = "/sys/fs/selinux/enforce"
SELINUX_XATTR = "security.selinux"
READ, WRITE, SEARCH = 4, 2, 1

# Runs under each target interpreter (Python 3.6 and later, standard library only) after a
# line ``WORKER = <the compile program's source>``: loads the compile program as a module,
# answers its probe like the compile program does, then reads the job and judges every
# cache with the program's own ``plan`` (what ``precompile`` would find not current), and
# says why a cache is stale. Nothing is compiled or written.
_INSPECTOR = r'''
import json
import os
import struct
import sys

W = {"__name__": "_compile_worker"}
exec(compile(WORKER, "_compile_worker.py", "exec"), W)
HASH_MODES = {1: "unchecked_hash", 3: "checked_hash"}


def header_of(path):
    try:
        fd = os.open(path, W["READ_FLAGS"])
    except OSError as exc:
        if os.path.islink(path):
            return None, "a symbolic link, which precompile replaces"
        return None, "cannot be read: %s" % (exc.strerror or exc)
    try:
        return os.read(fd, W["HEADER_LEN"] + 1), None
    finally:
        os.close(fd)


def judge(job, directory, name, level, pyc):
    """(state, reason) of a .pyc that the timestamp check found stale."""
    data, problem = header_of(pyc)
    if problem:
        return "stale", problem
    if len(data) <= W["HEADER_LEN"]:
        return "stale", "truncated"
    if data[:4] != W["MAGIC"]:
        return "stale", "written by another Python release (magic number %s)" % data[:4].hex()
    flags = struct.unpack("<I", data[4:8])[0] if W["HASH_PYC"] else 0
    if flags in HASH_MODES:
        mode = HASH_MODES[flags]
        again = W["plan"](dict(job, invalidation_mode=mode, optimize=[level]), [[directory, [name]]])
        if again["fresh"]:
            return "current", None
        if mode == "unchecked_hash":
            return "stale", "source changed (unchecked hash: Python runs the old code)"
        return "stale", "source changed (checked hash)"
    if flags:
        return "stale", "unknown flags %d" % flags
    return "stale", "source changed (modification time or size)"


def inspect(job):
    limit = job["limit"]
    job = dict(job, invalidation_mode="timestamp", check=True, pycache_prefix=job.get("pycache_prefix"))
    dirs = job["dirs"]
    workers = W["cpu_count"]()
    if workers > 1 and sum(len(names) for _d, names in dirs) >= W["PARALLEL_MIN_SOURCES"]:
        parts = W["in_parallel"](W["plan"], job, W["split"]([(len(d[1]), d) for d in dirs], workers))
    else:
        parts = [W["plan"](job, dirs)]
    result = {"fresh": 0, "stale": 0, "missing": 0, "stale_caches": [], "missing_caches": [], "errors": []}
    for part in parts:
        result["fresh"] += part["fresh"] * len(job["optimize"])
        result["errors"] += part["errors"]
        for directory, cache_dir, name, _meta, caches in part["items"]:
            source = os.path.join(directory, name)
            for level, pyc_name, state in caches:
                pyc = os.path.join(cache_dir, pyc_name)
                if state == "stale":
                    state, reason = judge(job, directory, name, level, pyc)
                    if state == "stale" and result["stale"] < limit:
                        result["stale_caches"].append({"source": source, "cache": pyc, "reason": reason})
                elif result["missing"] < limit:
                    result["missing_caches"].append({"source": source, "cache": pyc})
                result["fresh" if state == "current" else state] += 1
    return result


sys.stdout.write(json.dumps(W["probe"]()) + "\n")
sys.stdout.flush()
RAW = sys.stdin.buffer.read()
if RAW.strip():
    sys.stdout.write(json.dumps(inspect(json.loads(RAW.decode("utf-8")))))
    sys.stdout.flush()
'''


class InfoError(Exception):
    """A request that cannot be answered at all (bad path or option)."""


class Identity(NamedTuple):
    user: str
    group: str
    uid: int
    gids: frozenset[int]


def capped(items: Sequence[Any], limit: int) -> Report:
    """``{"count": n, "paths": first limit items}``."""
    return {"count": len(items), "paths": items[:limit]}


def inspector_program() -> str:
    """The program each interpreter runs: the compile program's source, then the inspector."""
    return "WORKER = %r\n%s" % (worker_source(), _INSPECTOR)


def resolve_interpreters(
    tree: Tree, interpreters: Sequence[str] | None = None, search_path: str | None = None
) -> tuple[list[tuple[str, str]], list[str]]:
    """``([(path, named_by)], problems)``: the interpreters ``precompile`` would use.

    Where a ``#!/usr/bin/env NAME`` names a command that is not on PATH, ``precompile`` stops;
    here that is one of the problems found and the other scripts' interpreters are inspected.
    """
    try:
        return interpreter_requests(tree, interpreters, search_path), []
    except PrecompileError as exc:
        path = os.environ.get("PATH", os.defpath) if search_path is None else search_path
        runnable = [
            script
            for script in tree.entry_scripts
            if os.path.isabs(script.command) or shutil.which(script.command, path=path)
        ]
        return interpreter_requests(tree._replace(entry_scripts=runnable), None, path), [str(exc)]


def start_inspectors(
    requests: Sequence[tuple[str, str]],
) -> tuple[list[tuple[Interpreter, _Worker]], list[str]]:
    """``([(Interpreter, worker)], problems)``: the inspector started and probed under each
    requested interpreter that works, one per executable."""
    program = inspector_program()
    chosen: list[tuple[Interpreter, _Worker]] = []
    problems: list[str] = []
    seen: set[str] = set()
    executables: set[str] = set()
    try:
        for path, named_by in requests:
            real = os.path.realpath(path)
            if real in seen:
                continue
            seen.add(real)
            try:
                # One interpreter at a time: a broken one is reported, the others inspected.
                worker = _precompile._Worker(path, named_by, program)  # pylint: disable=protected-access
                interp, worker = check_interpreters([worker])[0]
            except PrecompileError as exc:
                problems.append(str(exc))
                continue
            executable = os.path.realpath(interp.probe["executable"] or path)
            if executable in executables:
                worker.stop()
                continue
            executables.add(executable)
            chosen.append((interp, worker))
    except BaseException:
        _precompile.stop(worker for _interp, worker in chosen)
        raise
    return chosen, problems


def freshness(
    tree: Tree,
    chosen: list[tuple[Interpreter, _Worker]],
    optimize: Sequence[int],
    limit: int,
    pycache_prefix: str | None = None,
) -> tuple[list[Report], list[str]]:
    """``(reports, problems)``: per interpreter, counts of fresh, stale and missing caches
    (in the ``pycache_prefix`` tree when given) and capped lists of the stale and missing
    ones. Every inspector is ended."""
    job = json.dumps(
        {"dirs": tree.sources, "optimize": list(optimize), "limit": limit, "pycache_prefix": pycache_prefix}
    ).encode("ascii")
    reports: list[Report] = []
    problems: list[str] = []
    given = 0
    try:
        for index, (interp, worker) in enumerate(chosen):
            given = index + 1
            try:
                result: Report = worker.run(job)  # type: ignore[assignment]  # the inspector's result
            except PrecompileError as exc:
                problems.append(str(exc))
                continue
            errors = [
                {"path": path, "msg": msg if line is None else "line %d: %s" % (line, msg)}
                for path, line, msg in result.pop("errors")
            ]
            reports.append(
                dict(
                    result,
                    path=interp.path,
                    version=interp.probe["version"],
                    cache_tag=interp.probe["cache_tag"],
                    named_by=interp.named_by,
                    errors=errors[:limit],
                    error_count=len(errors),
                )
            )
    finally:
        _precompile.stop(worker for _interp, worker in chosen[given:])
    return reports, problems


def leftovers(tree: Tree, cache_tags: Collection[str], limit: int, pycache_prefix: str | None = None) -> Report:
    """Orphans (source gone), caches of tags no interpreter uses, temporary files."""
    present_tags = set(cache_tags)
    for _cache_dir, names in tree.pycache:
        for name in names:
            parsed = parse_pyc_name(name)
            if parsed is not None:
                present_tags.add(parsed[1])
    # With every tag present accepted, prune_candidates names only orphans and temporary files.
    gone = set(path for path, _reason in prune_candidates(tree, present_tags, pycache_prefix))
    temporary = sorted(path for path in gone if path.endswith(TMP_SUFFIX))
    orphans = sorted(path for path in gone if not path.endswith(TMP_SUFFIX))
    foreign = sorted(
        path for path, _reason in prune_candidates(tree, set(cache_tags), pycache_prefix) if path not in gone
    )
    by_tag = collections.Counter(parse_pyc_name(os.path.basename(path))[1] for path in foreign)  # type: ignore[index]
    return {
        "orphans": capped(orphans, limit),
        "foreign_tags": dict(capped(foreign, limit), tags=dict(sorted(by_tag.items()))),
        "temporary_files": capped(temporary, limit),
    }


def count_lines(data: bytes) -> int:
    """Lines of a file's content, a last line without a newline included."""
    return data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0)


def entry_script_report(tree: Tree, limit: int) -> Report:
    """The scripts Python compiles on every request, largest first, with their sizes."""
    scripts: list[Report] = []
    for script in tree.entry_scripts:
        try:
            with open(script.path, "rb") as handle:
                data = handle.read()
        except OSError:
            continue
        scripts.append(
            {"path": script.path, "lines": count_lines(data), "bytes": len(data), "interpreter": script.command}
        )
    scripts.sort(key=lambda item: (-item["lines"], item["path"]))
    return {
        "count": len(scripts),
        "lines": sum(item["lines"] for item in scripts),
        "bytes": sum(item["bytes"] for item in scripts),
        "scripts": scripts[:limit],
    }


def web_identity(owner: str | None = None, group: str | None = None) -> Identity | None:
    """The web server user as an :class:`Identity` (its supplementary groups included), or
    None when no owner is given and the host has no web server user."""
    owner = owner or default_web_user()
    if owner is None:
        return None
    try:
        uid = resolve_user(owner)
        entry = pwd.getpwuid(uid)
    except KeyError:
        entry = None
    except OwnershipError as exc:
        raise InfoError(str(exc))
    group = group or default_web_group() or (str(entry.pw_gid) if entry else None)
    if group is None:
        raise InfoError("owner %s: no group given and the host has no web server group" % owner)
    try:
        gid = resolve_group(group)
    except OwnershipError as exc:
        raise InfoError(str(exc))
    gids = {gid}
    if entry is not None:
        # Apache sets the supplementary groups of its user (initgroups) as well as Group.
        gids.update(os.getgrouplist(entry.pw_name, gid))
    return Identity(owner, group, uid, frozenset(gids))


def allows(st: os.stat_result, identity: Identity, wanted: int) -> bool:
    """Whether the permission bits of ``st`` give ``identity`` every access in ``wanted``
    (READ|WRITE|SEARCH bits). ACLs and capabilities other than root's are not considered."""
    if identity.uid == 0:
        return not wanted & SEARCH or stat.S_ISDIR(st.st_mode) or bool(st.st_mode & 0o111)
    if st.st_uid == identity.uid:
        bits = (st.st_mode >> 6) & 7
    elif st.st_gid in identity.gids:
        bits = (st.st_mode >> 3) & 7
    else:
        bits = st.st_mode & 7
    return bits & wanted == wanted


def blocked_ancestor(root: str, identity: Identity) -> str | None:
    """The first directory from ``/`` down to ``root`` that the user cannot search, or None."""
    parts = [part for part in root.split(os.sep) if part]
    path = os.sep
    for part in [None, *parts]:
        if part is not None:
            path = os.path.join(path, part)
        try:
            st = os.stat(path)
        except OSError:
            return path
        if not allows(st, identity, SEARCH):
            return path
    return None


def access_report(
    tree: Tree, identity: Identity | None, cache_tags: Collection[str], cache_mode: str, limit: int
) -> Report:
    """What the permission bits keep the web server user from: caches it cannot write
    (writable mode), ``.pyc`` files it cannot read, source directories without a
    ``__pycache__`` where it cannot create one (writable mode), and (readonly mode) caches in
    a directory it may write to, where it can rename the root-owned cache away and put its own
    in its place."""
    if identity is None:
        return {"checked": False, "reason": "no owner given and neither apache nor www-data exists on this host"}
    not_writable: list[str] = []
    not_readable: list[str] = []
    not_creatable: list[str] = []
    replaceable: list[str] = []
    writable = cache_mode != "readonly"
    cache_dirs = set()
    for cache_dir, names in tree.pycache:
        cache_dirs.add(cache_dir)
        try:
            dir_st = os.lstat(cache_dir)
        except OSError:
            continue
        if writable and not allows(dir_st, identity, WRITE | SEARCH):
            not_writable.append(cache_dir)
        if not writable and _replaceable(cache_dir, dir_st, identity):
            replaceable.append(cache_dir)
        enterable = allows(dir_st, identity, SEARCH)
        for name in names:
            parsed = parse_pyc_name(name)
            if parsed is None or parsed[1] not in cache_tags:
                continue
            path = os.path.join(cache_dir, name)
            if not enterable:
                not_readable.append(path)
                continue
            try:
                st = os.stat(path)
            except OSError:
                continue
            if not allows(st, identity, READ):
                not_readable.append(path)
    if cache_mode == "writable":
        for directory, _names in tree.sources:
            if os.path.join(directory, PYCACHE) in cache_dirs or os.path.lexists(os.path.join(directory, PYCACHE)):
                continue
            try:
                st = os.stat(directory)
            except OSError:
                continue
            if not allows(st, identity, WRITE | SEARCH):
                not_creatable.append(directory)
    not_readable.sort()
    return {
        "checked": True,
        "user": identity.user,
        "group": identity.group,
        "cache_mode": cache_mode,
        "root_blocked_by": blocked_ancestor(tree.root, identity),
        "cache_dirs_not_writable": capped(sorted(not_writable), limit),
        "pycs_not_readable": capped(not_readable, limit),
        "cache_dirs_not_creatable": capped(sorted(not_creatable), limit),
        "cache_dirs_replaceable": capped(sorted(replaceable), limit),
    }


def _replaceable(cache_dir: str, cache_st: os.stat_result, identity: Identity) -> bool:
    """Whether ``identity`` may rename the cache directory away (and make its own in its place):
    it may write to the directory above it, and that directory's sticky bit, if any, does not
    stop it (the user owns the cache or the directory)."""
    if identity.uid == 0:
        return False
    try:
        parent_st = os.stat(os.path.dirname(cache_dir))
    except OSError:
        return False
    if not allows(parent_st, identity, WRITE | SEARCH):
        return False
    if parent_st.st_mode & stat.S_ISVTX:
        return identity.uid in (cache_st.st_uid, parent_st.st_uid)
    return True


def selinux_policy(read_text: ReadText) -> str | None:
    """The SELINUXTYPE whose file contexts are installed, or None."""
    policy = parse_key_values(read_text(SELINUX_CONFIG) or "").get("SELINUXTYPE")
    if policy and os.path.exists(file_contexts_path(policy)):
        return policy
    return None


def disk_label(path: str) -> str | None:
    """The ``security.selinux`` attribute of ``path`` (not followed), None when it has none."""
    try:
        value = os.getxattr(path, SELINUX_XATTR, follow_symlinks=False)
    except OSError as exc:
        if exc.errno in (errno.ENODATA, errno.ENOTSUP, errno.EOPNOTSUPP):
            return None
        raise
    return value.rstrip(b"\0").decode("utf-8", "replace")


def sample_paths(tree: Tree, size: int) -> tuple[list[str], int]:
    """``(sampled paths, total)``: every directory of the tree (root, source directories,
    caches), then files evenly spread, at most ``size`` in all."""
    directories = [tree.root] + [d for d, _n in tree.sources if d != tree.root] + [c for c, _n in tree.pycache]
    files = [os.path.join(d, n) for d, names in tree.sources for n in names]
    files += [os.path.join(c, n) for c, names in tree.pycache for n in names]
    files += [s.path for s in tree.entry_scripts if not s.path.endswith(".py")]
    directories = list(collections.OrderedDict.fromkeys(directories))
    total = len(directories) + len(files)
    chosen = directories[:size]
    room = size - len(chosen)
    if room > 0 and files:
        step = max(1, -(-len(files) // room))
        chosen += files[::step][:room]
    # matchpathcon prints one path per line, tab-separated from the context.
    return [path for path in chosen if "\n" not in path and "\t" not in path], total


def policy_labels(matchpathcon: str, run: Run, paths: list[str], mode: str | None = None) -> dict[str, str]:
    """{path: context} the policy gives, from ``matchpathcon`` in batches."""
    found: dict[str, str] = {}
    for start in range(0, len(paths), MATCHPATHCON_BATCH):
        argv = [matchpathcon] + (["-m", mode] if mode else []) + paths[start : start + MATCHPATHCON_BATCH]
        _rc, out, _err = run(argv)
        found.update(parse_matchpathcon(out))
    return found


def label_scan(
    root: str, policy: str, read_text: ReadText, observe: Callable[..., None] | None = None
) -> tuple[Any, str | None]:
    """``(scan, None)``: every label at and below ``root`` compared with the context the
    policy's rules give it (``_selinux.root_labels`` and ``scan_labels``, as selinux_context
    does before a relabel; ``observe`` as there); or ``(None, reason)`` when the contexts
    there cannot be decided here."""
    base = file_contexts_path(policy)
    text = read_text(base)
    if text is None:
        return None, "cannot read %s" % base
    specs, reason = root_labels(root, read_policy_rules(base, parse_file_contexts(text), read_text))
    if reason:
        return None, reason
    scan = scan_labels(root, cast("list[LookupSpec]", specs), observe)  # a list when there is no reason
    if scan.reason:
        return None, scan.reason
    return scan, None


class _LabelTally:
    """What a label scan found, judged by type as the sampled check judges (a label that
    differs in its user, role or range only is no finding): the root's type, how many cache
    paths (a __pycache__ directory or below one) have each type, the paths labeled with
    another type (``{path, type, expected}``) and those without a label."""

    def __init__(self, root: str) -> None:
        self.root = path_bytes(root)
        self.root_type: str | None = None
        self.cache_types: collections.Counter[str] = collections.Counter()
        self.mismatched: list[dict[str, Any]] = []
        self.unlabeled: list[str] = []
        self.marker = path_bytes(os.sep + PYCACHE + os.sep)

    def __call__(self, path: bytes, label: bytes | None, context: Any) -> None:
        kind = context_type(path_text(label)) if label is not None else None
        if path == self.root:
            self.root_type = kind
        if self.marker in path + b"/":
            self.cache_types[kind or "unlabeled"] += 1
        if context == NO_CONTEXT:
            return
        if label is None:
            self.unlabeled.append(path_text(path))
        elif kind != context_type(context):
            self.mismatched.append({"path": path_text(path), "type": kind, "expected": context_type(context)})


def selinux_report(
    tree: Tree,
    matchpathcon: str | None,
    run: Run | None,
    read_text: ReadText,
    limit: int,
    sample: int = SELINUX_SAMPLE,
) -> Report:
    """Labels on disk against the policy's, and the types of the root and its caches.
    ``run(argv)`` returns ``(rc, stdout, stderr)``.

    Every label at and below the root is compared with the context the policy's rules give it,
    and one ``matchpathcon`` run confirms the rule that decided each kind of path (the same run
    answers for the root and its cache). Where the rules cannot be evaluated here, or
    matchpathcon disagrees, a sample of the tree is compared with matchpathcon's answers."""
    if not matchpathcon:
        return {
            "available": False,
            "reason": "matchpathcon not found (package selinux-utils on Debian, libselinux-utils on RedHat)",
        }
    policy = selinux_policy(read_text)
    if policy is None:
        return {"available": False, "reason": "no SELinux policy installed (SELINUXTYPE in %s)" % SELINUX_CONFIG}
    run = cast("Run", run)  # given with matchpathcon
    tally = _LabelTally(tree.root)
    scan, method_reason = label_scan(tree.root, policy, read_text, tally)
    cache_probes = [probe.path for probe in probes(tree.root) if probe.kind == "cache" and probe.mode == "dir"]
    expected: dict[str, str] = {}
    method: Report
    if scan:
        # matchpathcon for the root, its cache and one path of each rule that decided a path.
        confirm = [(path_text(path), path_text(context)) for path, context in scan.samples.values()]
        asked = [tree.root] + ([cache_probes[0]] if os.path.isdir(cache_probes[0]) else [])
        asked += [path for path, _context in confirm]
        expected = policy_labels(matchpathcon, run, list(collections.OrderedDict.fromkeys(asked)))
        for path, context in confirm:
            if context_type(expected.get(path)) != context_type(context):
                scan, method_reason = (
                    None,
                    "matchpathcon gives %s the type %s, not %s"
                    % (path, context_type(expected.get(path)), context_type(context)),
                )
                break
    if scan:
        root_type, cache_types = tally.root_type, tally.cache_types
        mismatched = sorted(tally.mismatched, key=lambda item: item["path"])
        unlabeled = sorted(tally.unlabeled)
        checked = total = scan.checked
        method = {"method": "every_path"}
    else:
        paths, total = sample_paths(tree, sample)
        expected.update(policy_labels(matchpathcon, run, [p for p in paths if p not in expected]))
        root_type, cache_types, checked, mismatched, unlabeled = _sample_findings(tree.root, paths, expected)
        method = {"method": "sample", "method_reason": method_reason}
    if cache_probes[0] in expected and os.path.isdir(cache_probes[0]):
        # The root's own __pycache__ exists and was asked about: the policy's answer for it is
        # already known (one matchpathcon run fewer, each loads the whole policy).
        probe_labels = {cache_probes[0]: expected[cache_probes[0]]}
    else:
        probe_labels = policy_labels(matchpathcon, run, cache_probes, mode="dir")
    return dict(
        {
            "available": True,
            "status": selinux_status(read_text(ENFORCE_FILE)),
            "policy": policy,
            "root": {"path": tree.root, "type": root_type, "expected": context_type(expected.get(tree.root))},
            "caches": {
                "expected": context_type(probe_labels.get(cache_probes[0])),
                "types": dict(sorted(cache_types.items())),
            },
            "checked": checked,
            "total": total,
            "mismatched": {"count": len(mismatched), "paths": mismatched[:limit]},
            "unlabeled": capped(unlabeled, limit),
        },
        **method,
    )


def _sample_findings(
    root: str, paths: list[str], expected: dict[str, str]
) -> tuple[str | None, collections.Counter[str], int, list[dict[str, Any]], list[str]]:
    """``(root type, cache types, checked, mismatched, unlabeled)`` of the sampled ``paths``
    against matchpathcon's answers ``expected``."""
    mismatched: list[dict[str, Any]] = []
    unlabeled: list[str] = []
    cache_types: collections.Counter[str] = collections.Counter()
    root_type = None
    checked = 0
    for path in paths:
        wanted = context_type(expected.get(path))
        try:
            actual = disk_label(path)
        except OSError:
            continue
        checked += 1
        actual_type = context_type(actual)
        if path == root:
            root_type = actual_type
        if (os.sep + PYCACHE + os.sep) in path + os.sep:
            cache_types[actual_type or "unlabeled"] += 1
        if wanted is None or wanted == NO_CONTEXT:
            continue
        if actual is None:
            unlabeled.append(path)
        elif actual_type != wanted:
            mismatched.append({"path": path, "type": actual_type, "expected": wanted})
    return root_type, cache_types, checked, mismatched, unlabeled


def apache_report(
    path: str,
    config: str | None = None,
    exists: Callable[[str], bool] = os.path.exists,
    pycache_prefix: str | None = None,
) -> Report:
    """Whether the pycgi ``__pycache__`` block for the root is in the Apache config, and
    whether it is the one ``httpd_pycache`` writes (with or without bytecode writes).

    Without ``config``: the main config of the host's layout, then the root's drop-in file of
    the default name (``httpd_pycache``'s default placement), where the block is found."""
    report: Report = {"config": None, "present": False, "current": False, "write_bytecode": None}
    try:
        root = normalize_root(path)
    except ApacheConfigError as exc:
        return dict(report, error=str(exc))
    explicit = bool(config)
    config = config or default_config_path(exists)
    if not config:
        return dict(report, error="no Apache main config found")
    report["config"] = config
    try:
        block = _block_in(config, root)
    except (OSError, ApacheConfigError) as exc:
        return dict(report, error="%s: %s" % (config, getattr(exc, "strerror", None) or exc))
    if block is None and not explicit:
        try:
            drop_in = drop_in_layout(os.path.realpath(config), drop_in_name(root)).file
        except ApacheConfigError:
            drop_in = None
        if drop_in and exists(drop_in):
            try:
                block = _block_in(drop_in, root)
            except (OSError, ApacheConfigError) as exc:
                return dict(report, error="%s: %s" % (drop_in, getattr(exc, "strerror", None) or exc))
            if block is not None:
                report["config"] = drop_in
    if block is None:
        return report
    report["present"] = True
    prefix = [("PYTHONPYCACHEPREFIX", pycache_prefix)] if pycache_prefix else []
    for write_bytecode, environment in ((True, prefix), (False, [("PYTHONDONTWRITEBYTECODE", "1")] + prefix)):
        if block == render_block(root, environment):
            report["current"], report["write_bytecode"] = True, write_bytecode
    return report


def _block_in(config: str, root: str) -> str | None:
    """The root's block in the file ``config``, or None."""
    with open(config, "rb") as handle:
        text = handle.read().decode("utf-8", "surrogateescape")
    return current_block(text, root)


def _number(value: int) -> str:
    return "{:,}".format(value)


def _plural(count: int, singular: str, plural: str | None = None) -> str:
    return "%s %s" % (_number(count), singular if count == 1 else (plural or singular + "s"))


def summary_lines(report: Report) -> list[str]:
    """A few lines a person reads first."""
    lines = []
    for interp in report["interpreters"]:
        line = "%s (%s, Python %s): %s fresh, %s stale, %s missing" % (
            interp["cache_tag"],
            interp["path"],
            interp["version"],
            _number(interp["fresh"]),
            _number(interp["stale"]),
            _number(interp["missing"]),
        )
        if interp["error_count"]:
            line += ", %s" % _plural(interp["error_count"], "error")
        lines.append(line)
    left = report["leftovers"]
    foreign = left["foreign_tags"]
    line = "%s whose source is gone, %s of Python versions not in use" % (
        _plural(left["orphans"]["count"], "cache"),
        _number(foreign["count"]),
    )
    if foreign["tags"]:
        line += " (%s)" % ", ".join("%s: %s" % (tag, _number(n)) for tag, n in foreign["tags"].items())
    lines.append(line)
    scripts = report["entry_scripts"]
    lines.append(
        "%s never cached: %s compiled per request"
        % (_plural(scripts["count"], "entry script"), _plural(scripts["lines"], "line"))
    )
    access = report["access"]
    if access["checked"]:
        who = "the web server user (%s)" % access["user"]
        if access["root_blocked_by"]:
            lines.append("%s cannot reach %s: blocked at %s" % (who, report["path"], access["root_blocked_by"]))
        if access["cache_mode"] != "readonly":
            lines.append("%s %s cannot write" % (_plural(access["cache_dirs_not_writable"]["count"], "cache"), who))
        if access["cache_mode"] == "writable":
            lines.append(
                "%s without __pycache__ where it cannot create one"
                % (_plural(access["cache_dirs_not_creatable"]["count"], "source directory", "source directories"))
            )
        lines.append("%s it cannot read" % _plural(access["pycs_not_readable"]["count"], ".pyc file"))
        if access["cache_mode"] == "readonly":
            lines.append(
                "%s in a directory it can write to, so it can swap in a cache of its own"
                % (_plural(access["cache_dirs_replaceable"]["count"], "cache"))
            )
    else:
        lines.append("web server access not checked: %s" % access["reason"])
    sel = report["selinux"]
    if sel["available"]:
        lines.append(
            "SELinux (%s, policy %s): root %s, caches %s by policy; %s of %s checked paths labeled "
            "otherwise, %s unlabeled%s"
            % (
                sel["status"],
                sel["policy"],
                sel["root"]["expected"],
                sel["caches"]["expected"],
                _number(sel["mismatched"]["count"]),
                _number(sel["checked"]),
                _number(sel["unlabeled"]["count"]),
                " (every path)" if sel["method"] == "every_path" else " (a sample: %s)" % sel["method_reason"],
            )
        )
    else:
        lines.append("SELinux labels not checked: %s" % sel["reason"])
    apache = report["apache"]
    if apache.get("error"):
        lines.append("Apache block not checked: %s" % apache["error"])
    elif apache["present"]:
        lines.append(
            "Apache: the pycgi __pycache__ block for %s is in %s%s"
            % (report["path"], apache["config"], "" if apache["current"] else " (edited by hand)")
        )
    else:
        lines.append("Apache: no pycgi __pycache__ block for %s in %s" % (report["path"], apache["config"]))
    for problem in report["problems"]:
        lines.append("problem: %s" % problem)
    return lines


def inspect(
    path: str,
    interpreters: Sequence[str] | None = None,
    optimize: Collection[int] = (0,),
    exclude: Sequence[str] = (),
    owner: str | None = None,
    group: str | None = None,
    cache_mode: str = "writable",
    apache_config: str | None = None,
    limit: int = LIST_LIMIT,
    matchpathcon: str | None = None,
    run: Run | None = None,
    read_text: ReadText | None = None,
    search_path: str | None = None,
    pycache_prefix: str | None = None,
) -> Report:
    """The whole report for the CGI root ``path`` (see the module's RETURN).

    ``matchpathcon`` is the path of that program or None; ``run(argv)`` runs a command and
    returns ``(rc, stdout, stderr)``; ``read_text(path)`` returns a file's text or None.
    Raises InfoError when the request cannot be answered at all.
    """
    if not os.path.isdir(path):
        raise InfoError("path %s is not a directory" % path)
    if cache_mode not in CACHE_MODES:
        raise InfoError("cache_mode must be one of %s, not %r" % (", ".join(CACHE_MODES), cache_mode))
    if (cache_mode == "prefix") != bool(pycache_prefix):
        raise InfoError(
            "cache_mode prefix and pycache_prefix go together: the caches are read from"
            " pycache_prefix in that mode only"
        )
    if pycache_prefix:
        if not os.path.isabs(pycache_prefix):
            raise InfoError("pycache_prefix %s must be an absolute path" % pycache_prefix)
        pycache_prefix = os.path.normpath(pycache_prefix)
    levels = sorted(set(optimize))
    if not levels or any(level not in _precompile.OPTIMIZE_LEVELS for level in levels):
        raise InfoError("optimize must list levels among 0, 1, 2, not %r" % (list(optimize),))
    if limit < 0:
        raise InfoError("list_limit must be 0 or more, not %d" % limit)
    identity = web_identity(owner, group)

    # A root reached through a symlink (a release of pycgi.hosting.release) is looked at where it
    # is: Python resolves a script's directory with realpath (sys.path[0]), so the prefix holds
    # its caches under the real path, and the SELinux labels are those of the real files.
    tree = walk(os.path.realpath(path), exclude)
    if pycache_prefix:
        # The caches Python reads are those in the prefix's copy of the tree.
        tree = tree._replace(
            pycache=[
                (cache_dir, names) for cache_dir, _source_dir, names in _precompile.prefix_listing(tree, pycache_prefix)
            ]
        )
    requests, problems = resolve_interpreters(tree, interpreters, search_path)
    chosen, failed = start_inspectors(requests)
    problems += failed
    problems += ["%s: %s" % (err_path, message) for err_path, message in tree.errors]
    problems += [
        "%s: a symbolic link to %s, outside the tree: not read here, and precompile does not compile it"
        % (link, os.path.realpath(link))
        for link in tree.outside_links
    ]
    cache_tags = set(interp.probe["cache_tag"] for interp, _w in chosen)
    if pycache_prefix:
        problems += [
            "%s (%s) is Python %s: it ignores pycache_prefix (Python 3.8 or later reads it)"
            % (interp.path, interp.named_by, interp.probe["version"])
            for interp, _w in chosen
            if not interp.probe.get("pycache_prefix")
        ]
    reports, failed = freshness(tree, chosen, levels, limit, pycache_prefix)
    problems += failed
    report: Report = {
        "path": os.path.abspath(path),
        "sources": sum(len(names) for _d, names in tree.sources),
        "interpreters": reports,
        "leftovers": leftovers(tree, cache_tags, limit, pycache_prefix),
        "entry_scripts": entry_script_report(tree, limit),
        "access": access_report(tree, identity, cache_tags, cache_mode, limit),
        "selinux": selinux_report(tree, matchpathcon, run, read_text or _read_text, limit),
        "apache": apache_report(path, apache_config, pycache_prefix=pycache_prefix),
        "problems": problems + _precompile.optimize_warnings(tree, levels),
    }
    report["summary"] = summary_lines(report)
    return report


def _read_text(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as handle:
            return handle.read()
    except OSError:
        return None
