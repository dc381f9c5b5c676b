"""Label lookup, inside a container of the test image: the collection's own lookup against
libselinux's `matchpathcon()` through ansible-core's `ansible.module_utils.compat.selinux`.

    python3 selinux_probe.py LIB_DIR ROUNDS

LIB_DIR holds `ansible/module_utils` and `ansible_collections/pycgi/hosting` (see
`selinux_lookup.py`, which copies them in and runs this). Prints one JSON document:

- `timings`: interleaved rounds, each variant deciding the context of every path of a tree,
  policy loading included (what one module run pays): ours reads the policy's files and picks
  the rules for each root, libselinux's `matchpathcon()` loads the policy on its first call
  (`matchpathcon_fini()` before each run makes every run load it);
- `lookups_only`: the same lookups with the policy already loaded;
- `agreement`: both asked about every path spec of the installed policy (file_contexts,
  .homedirs, .local) and paths generated from it; every disagreement is listed.
"""
import ctypes
import json
import os
import random
import re
import stat
import sys
import time

try:
    import re._parser as sre_parse  # Python 3.11+
    from re._constants import ANY, AT, BRANCH, CATEGORY, IN, LITERAL, MAX_REPEAT, MIN_REPEAT, NEGATE, \
        NOT_LITERAL, RANGE, SUBPATTERN, MAXREPEAT
except ImportError:  # pragma: no cover - older Python
    import sre_parse
    from sre_constants import ANY, AT, BRANCH, CATEGORY, IN, LITERAL, MAX_REPEAT, MIN_REPEAT, NEGATE, \
        NOT_LITERAL, RANGE, SUBPATTERN, MAXREPEAT

sys.path.insert(0, sys.argv[1])

from ansible.module_utils.compat import selinux as libselinux  # noqa: E402
from ansible_collections.pycgi.hosting.plugins.module_utils import _selinux_lookup as ours  # noqa: E402
from ansible_collections.pycgi.hosting.plugins.module_utils import _selinux_parse as parse  # noqa: E402

CONFIG = "/etc/selinux/config"
B5_ROOTS = ["/srv/cgi%d" % number for number in range(1, 6)]
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


def walk(root):
    """(path bytes, file type) of every path at and below root, as setfiles walks."""
    found = []
    for directory, dirs, files in os.walk(root):
        found.append((os.fsencode(directory), stat.S_IFDIR))
        for name in files:
            found.append((os.fsencode(os.path.join(directory, name)), stat.S_IFREG))
    return found


# --- trees ---------------------------------------------------------------------------------

def make_b5_trees():
    """The B5 trees (benchlib/container.py b5_selinux), with a compiled cache file each."""
    for root in B5_ROOTS:
        os.makedirs(root + "/app/__pycache__", exist_ok=True)
        for path, text in ((root + "/hello.py", "import app\n"), (root + "/app/__init__.py", "VALUE = 1\n"),
                           (root + "/app/__pycache__/__init__.cpython-311.pyc", "")):
            with open(path, "w") as handle:
                handle.write(text)


def make_synthetic(root, packages=100, modules=100):
    """The shape of benchlib/trees.py's synthetic tree (10,000 modules in 100 nested packages),
    each module with its cached bytecode: about 20,300 paths."""
    path = root
    for package in range(packages):
        path = os.path.join(root if package % 10 == 0 else path, "pkg%d" % package)
        os.makedirs(os.path.join(path, "__pycache__"), exist_ok=True)
        for module in ["__init__"] + ["mod%d" % number for number in range(modules - 1)]:
            open(os.path.join(path, module + ".py"), "w").close()
            open(os.path.join(path, "__pycache__", module + ".cpython-311.pyc"), "w").close()


# --- the two lookups ------------------------------------------------------------------------

def ours_contexts(roots, paths):
    """Ours, as `relabel_differing` runs it: policy read, rules picked per root, each path decided."""
    policy = load_policy()
    contexts = []
    for root in roots:
        specs, reason = ours.root_labels(root, policy)
        if reason:
            raise RuntimeError(reason)
        prefix = os.fsencode(root)
        for path, mode in paths:
            if path == prefix or path.startswith(prefix + b"/"):
                spec = ours.lookup(specs, path, mode)
                contexts.append(spec.rule.context if spec else None)
    return contexts


def lib_contexts(paths, fresh=True):
    """libselinux's matchpathcon() for each path (fresh: the policy loaded again first)."""
    if fresh:
        libselinux._selinux_lib.matchpathcon_fini()
    contexts = []
    for path, mode in paths:
        try:
            contexts.append(libselinux.matchpathcon(path, mode)[1])
        except OSError:
            contexts.append(ours.NO_CONTEXT)
    return contexts


class Selabel:
    """libselinux's selabel_lookup_raw(), what setfiles asks for each path it walks (through
    the same libselinux.so that ansible-core's compat module loaded). Unlike matchpathcon() it
    does not resolve symbolic links on the file system first."""

    def __init__(self):
        self.lib = libselinux._selinux_lib
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


SELABEL = Selabel()


def selabel_contexts(paths, fresh=True):
    if fresh or not SELABEL.handle:
        SELABEL.open()
    return [SELABEL.lookup(path, mode) for path, mode in paths]


def timed(function):
    start = time.perf_counter()
    result = function()
    return time.perf_counter() - start, result


def measure(trees, rounds):
    times, lookups_only, checks = {}, {}, {}
    policy = load_policy()
    for name, (roots, paths) in trees.items():
        variants = [("ours", lambda r=roots, p=paths: ours_contexts(r, p)),
                    ("libselinux matchpathcon", lambda p=paths: lib_contexts(p)),
                    ("libselinux selabel_lookup", lambda p=paths: selabel_contexts(p))]
        for index in range(rounds):
            shift = index % len(variants)
            for label, function in variants[shift:] + variants[:shift]:
                seconds, contexts = timed(function)
                times.setdefault(name, {}).setdefault(label, []).append(seconds)
                checks.setdefault(name, {})[label] = contexts
        # Lookups alone: the policy and the rules of each root prepared beforehand.
        prepared = [(root, ours.root_labels(root, policy)[0]) for root in roots]
        lib_contexts(paths[:1])
        selabel_contexts(paths[:1])
        for index in range(rounds):
            start = time.perf_counter()
            for root, specs in prepared:
                prefix = os.fsencode(root)
                for path, mode in paths:
                    if path == prefix or path.startswith(prefix + b"/"):
                        ours.lookup(specs, path, mode)
            lookups_only.setdefault(name, {}).setdefault("ours", []).append(time.perf_counter() - start)
            start = time.perf_counter()
            lib_contexts(paths, fresh=False)
            lookups_only[name].setdefault("libselinux matchpathcon", []).append(time.perf_counter() - start)
            start = time.perf_counter()
            selabel_contexts(paths, fresh=False)
            lookups_only[name].setdefault("libselinux selabel_lookup", []).append(time.perf_counter() - start)
        answers = checks[name]
        differing = [paths[i][0].decode("utf-8", "surrogateescape")
                     for i, (a, b, c) in enumerate(zip(answers["ours"], answers["libselinux matchpathcon"],
                                                       answers["libselinux selabel_lookup"]))
                     if not a == b == c]
        checks[name] = {"paths": len(paths), "differing": differing[:20], "differing_count": len(differing)}
    return times, lookups_only, checks


# --- the whole policy -----------------------------------------------------------------------

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
    negate = any(op is NEGATE for op, _ in items)
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
            out.extend(generate(sub, rng, extra) for _ in range(count))
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


def agreement(rng_seed=18):
    """Ours and libselinux on every generated path, each decided under its parent directory as
    root (the module's roots are directories above the paths) and under the path itself."""
    policy = load_policy()
    pairs = policy_paths(policy, random.Random(rng_seed))
    cache = {}
    compared = declined = 0
    declined_reasons = {}
    disagreements, matchpathcon_differs = [], []
    SELABEL.open()
    for path, mode_name in pairs:
        mode = MODES[mode_name]
        path_b = path.encode("utf-8", "surrogateescape")
        lib = SELABEL.lookup(path_b, mode)
        try:
            resolved = libselinux.matchpathcon(path_b, mode)[1]
        except OSError:
            resolved = ours.NO_CONTEXT
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
    rounds = int(sys.argv[2])
    make_b5_trees()
    make_synthetic("/srv/cgi-synthetic")
    make_synthetic("/usr/lib/cgi-bin/synthetic")
    b5_paths = [pair for root in B5_ROOTS for pair in walk(root)]
    trees = {
        "B5 trees (5 roots, %d paths)" % len(b5_paths): (B5_ROOTS, b5_paths),
        "synthetic tree under /srv": (["/srv/cgi-synthetic"], walk("/srv/cgi-synthetic")),
        "synthetic tree under /usr/lib/cgi-bin": (["/usr/lib/cgi-bin"], walk("/usr/lib/cgi-bin")),
    }
    times, lookups_only, checks = measure(trees, rounds)
    result = {"timings": times, "lookups_only": lookups_only, "tree_checks": checks,
              "tree_paths": dict((name, len(paths)) for name, (roots, paths) in trees.items()),
              "agreement": agreement()}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
