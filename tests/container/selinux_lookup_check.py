"""The collection's label lookup against libselinux on the whole installed policy.

    python3 selinux_lookup_check.py LIB_DIR

Runs where a policy is installed (inside a container of the test image: see
test_selinux_lookup_policy.py, and benchmarks/selinux_lookup.py, which reports the same
comparison). LIB_DIR holds `ansible_collections/pycgi/hosting`. Every rule of the policy
(file_contexts, .homedirs, .local) gives (path, file type) pairs: an exact path itself, strings
each regular expression matches (generated from Python's reading of it, optional parts taken 0,
1 and 2 times), and paths below each (a file, a directory, a `__pycache__` file). Each path is
decided by `_selinux_lookup` under its parent directory as root and under the path itself as
root, and by libselinux's `selabel_lookup_raw()` (the call setfiles makes for each path it
walks). Prints JSON: how many were compared, declined (ours then leaves the root to setfiles),
and every disagreement.
"""
import ctypes
import json
import random
import re
import stat
import sys

try:
    import re._parser as sre_parse  # Python 3.11+
    from re._constants import ANY, AT, BRANCH, CATEGORY, IN, LITERAL, MAX_REPEAT, MIN_REPEAT, NEGATE, \
        NOT_LITERAL, RANGE, SUBPATTERN, MAXREPEAT
except ImportError:  # pragma: no cover - older Python
    import sre_parse
    from sre_constants import ANY, AT, BRANCH, CATEGORY, IN, LITERAL, MAX_REPEAT, MIN_REPEAT, NEGATE, \
        NOT_LITERAL, RANGE, SUBPATTERN, MAXREPEAT

if __name__ == "__main__":
    sys.path.insert(0, sys.argv[1])

from ansible_collections.pycgi.hosting.plugins.module_utils import _selinux_lookup as ours  # noqa: E402
from ansible_collections.pycgi.hosting.plugins.module_utils import _selinux_parse as parse  # noqa: E402

CONFIG = "/etc/selinux/config"
MODES = {"dir": stat.S_IFDIR, "file": stat.S_IFREG, "lnk": stat.S_IFLNK, "chr": stat.S_IFCHR,
         "blk": stat.S_IFBLK, "sock": stat.S_IFSOCK, "fifo": stat.S_IFIFO}


def read_text(path):
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as handle:
            return handle.read()
    except OSError:
        return None


def file_contexts():
    policy = parse.parse_key_values(read_text(CONFIG) or "").get("SELINUXTYPE")
    return ours.file_contexts_path(policy)


def load_policy():
    """What the module reads: the policy's rules in libselinux's order, with subs."""
    path = file_contexts()
    return ours.read_policy_rules(path, parse.parse_file_contexts(read_text(path)), read_text)


class Selabel:
    """libselinux's selabel_lookup_raw(), what setfiles asks for each path it walks. Unlike
    matchpathcon() it does not resolve symbolic links on the file system first."""

    def __init__(self):
        self.lib = ctypes.CDLL("libselinux.so.1", use_errno=True)
        self.lib.selabel_open.restype = ctypes.c_void_p
        self.lib.selabel_open.argtypes = [ctypes.c_uint, ctypes.c_void_p, ctypes.c_uint]
        self.lib.selabel_lookup_raw.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_char_p),
                                                ctypes.c_char_p, ctypes.c_int]
        self.lib.selabel_lookup_raw.restype = ctypes.c_int
        self.lib.selabel_close.argtypes = [ctypes.c_void_p]
        self.handle = None

    def open(self):
        if self.handle:
            self.lib.selabel_close(self.handle)
        self.handle = self.lib.selabel_open(0, None, 0)  # SELABEL_CTX_FILE, the policy in force
        if not self.handle:
            raise OSError(ctypes.get_errno(), "selabel_open failed")

    def lookup(self, path, mode):
        con = ctypes.c_char_p()
        if self.lib.selabel_lookup_raw(self.handle, ctypes.byref(con), path, mode) < 0:
            return ours.NO_CONTEXT
        try:
            return con.value.decode()
        finally:
            self.lib.freecon(con)


def _category_char(category):
    name = str(category).upper()
    if "NOT_SPACE" in name or "WORD" in name and "NOT" not in name or "NOT_DIGIT" in name:
        return "a"
    if "DIGIT" in name:
        return "1"
    if "SPACE" in name:
        return " "
    return "-"


def _class_char(items, rng):
    negate = any(op is NEGATE for op, _value in items)
    allowed = []
    for op, value in items:
        if op is LITERAL:
            allowed.append(chr(value))
        elif op is RANGE:
            allowed.append(chr(value[0]))
        elif op is CATEGORY:
            allowed.append(_category_char(value))
    if negate:
        for char in "xq9_":
            if char not in allowed:
                return char
        return "z"
    candidates = [c for c in allowed if c != "/"] or allowed or ["x"]
    return rng.choice(candidates)


def generate(parsed, rng, extra):
    """One string the parsed expression matches (extra: repeat optional parts that often)."""
    out = []
    for op, value in parsed:
        if op is LITERAL:
            out.append(chr(value))
        elif op is NOT_LITERAL:
            out.append("x" if chr(value) != "x" else "y")
        elif op is ANY:
            out.append(rng.choice("xk9"))
        elif op is IN:
            out.append(_class_char(value, rng))
        elif op is CATEGORY:
            out.append(_category_char(value))
        elif op in (MAX_REPEAT, MIN_REPEAT):
            low, high, sub = value
            count = low + extra if high is MAXREPEAT or high >= low + extra else high
            out.extend(generate(sub, rng, extra) for _count in range(count))
        elif op is SUBPATTERN:
            out.append(generate(value[-1], rng, extra))
        elif op is BRANCH:
            out.append(generate(rng.choice(value[1]), rng, extra))
        elif op is AT:
            continue
        else:
            raise ValueError("unsupported %s" % op)
    return "".join(out)


def policy_paths(policy, rng):
    """(path, mode) pairs from every spec: each exact path, strings each regular expression
    matches, and paths below them (a file, a directory, a __pycache__ file)."""
    pairs = set()
    modes = {"a": ("file", "dir"), "f": ("file",), "d": ("dir",), "l": ("lnk",), "c": ("chr",),
             "b": ("blk",), "s": ("sock",), "p": ("fifo",)}
    for rule in policy.rules:
        bases = []
        literal = ours.plain_literal(rule.target) if not ours.has_meta_chars(rule.target) else None
        if literal is not None:
            bases.append(literal.decode("utf-8", "surrogateescape"))
        else:
            try:
                parsed = sre_parse.parse(rule.target)
            except Exception:  # noqa: BLE001 - a spec Python cannot read is listed, not generated
                continue
            for extra in (0, 1, 2):
                try:
                    bases.append(generate(parsed, rng, extra))
                except ValueError:
                    break
        for base in bases:
            if not base.startswith("/") or "\n" in base:
                continue
            base = re.sub("/+", "/", base).rstrip("/")  # as the module's roots and walked paths are
            if not base:
                continue
            for mode in modes.get(rule.ftype, ("file",)):
                pairs.add((base, mode))
            for child in ("/x", "/sub/file.py", "/__pycache__/m.cpython-311.pyc"):
                pairs.add((base + child, "file"))
            pairs.add((base + "/sub", "dir"))
    return sorted(pairs)


def agreement(other=None, rng_seed=18):
    """Ours and libselinux's selabel_lookup_raw() on every generated path, each decided under its
    parent directory as root (the module's roots are directories above the paths) and under the
    path itself; `other(path, mode)`, when given, is another lookup whose answers are compared
    with libselinux's too (listed, not counted as disagreements of ours)."""
    policy = load_policy()
    pairs = policy_paths(policy, random.Random(rng_seed))
    cache = {}
    compared = declined = 0
    declined_reasons = {}
    disagreements, matchpathcon_differs = [], []
    selabel = Selabel()
    selabel.open()
    for path, mode_name in pairs:
        mode = MODES[mode_name]
        path_b = path.encode("utf-8", "surrogateescape")
        lib = selabel.lookup(path_b, mode)
        resolved = other(path_b, mode) if other else lib
        if resolved != lib:
            matchpathcon_differs.append({"path": path, "mode": mode_name, "selabel_lookup": lib,
                                         "matchpathcon": resolved})
        for root in (path.rpartition("/")[0], path):
            if root.count("/") < 1 or root == "/" or not root:
                continue
            if root not in cache:
                try:
                    cache[root] = ours.root_labels(root, policy)
                except Exception as exc:  # noqa: BLE001 - listed as a disagreement below
                    cache[root] = (None, "error: %r" % exc)
            specs, reason = cache[root]
            if reason:
                declined += 1
                key = reason.split(" ")[0:3]
                declined_reasons[" ".join(key)] = declined_reasons.get(" ".join(key), 0) + 1
                continue
            compared += 1
            spec = ours.lookup(specs, path_b, mode)
            mine = spec.rule.context if spec else None
            if mine != lib:
                disagreements.append({"path": path, "mode": mode_name, "root": root, "ours": mine,
                                      "libselinux": lib, "rule": spec.rule.target if spec else None})
        if len(cache) > 20000:
            cache.clear()
    return {"rules": len(policy.rules), "subs": len(policy.subs), "paths": len(pairs), "compared": compared,
            "declined": declined, "declined_reasons": declined_reasons,
            "disagreements": disagreements, "matchpathcon_differs": matchpathcon_differs}


def main():
    print(json.dumps(agreement()))


if __name__ == "__main__":
    main()
