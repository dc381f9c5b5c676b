"""Label lookup, inside a container of the test image: the collection's own lookup against
libselinux's `matchpathcon()` through ansible-core's `ansible.module_utils.compat.selinux`.

    python3 selinux_probe.py LIB_DIR ROUNDS    (selinux_lookup_check.py beside it)

LIB_DIR holds `ansible/module_utils` and `ansible_collections/pycgi/hosting` (see
`selinux_lookup.py`, which copies them in and runs this). Prints one JSON document:

- `timings`: interleaved rounds, each variant deciding the context of every path of a tree,
  policy loading included (what one module run pays): ours reads the policy's files and picks
  the rules for each root, libselinux's `matchpathcon()` loads the policy on its first call
  (`matchpathcon_fini()` before each run makes every run load it);
- `lookups_only`: the same lookups with the policy already loaded;
- `agreement`: ours and libselinux's `selabel_lookup_raw()` asked about every path spec of the
  installed policy and paths generated from it (tests/container/selinux_lookup_check.py, also
  run by test_selinux_lookup_policy.py); every disagreement is listed, and every path on
  which `matchpathcon()` answers otherwise than `selabel_lookup_raw()`.
"""
import json
import os
import stat
import subprocess
import sys
import time

sys.path.insert(0, sys.argv[1])
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from ansible.module_utils.compat import selinux as libselinux  # noqa: E402
from ansible_collections.pycgi.hosting.plugins.module_utils import _selinux_lookup as ours  # noqa: E402
from selinux_lookup_check import Selabel, agreement, load_policy  # noqa: E402

B5_ROOTS = ["/srv/cgi%d" % number for number in range(1, 6)]


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
    """The B5 trees (benchlib/container.py b5_selinux), with a compiled cache file each, and the
    rules selinux_context gives them (local rules, as after the module's run)."""
    rules = "".join("fcontext -a -f a -t httpd_sys_script_exec_t %s(/.*)?\n"
                    "fcontext -a -f a -t httpd_sys_rw_content_t %s(/.*)?/__pycache__(/.*)?\n" % (root, root)
                    for root in B5_ROOTS)
    subprocess.run(["semanage", "import"], input=rules, text=True, check=True, capture_output=True)
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


SELABEL = Selabel()


def selabel_contexts(paths, fresh=True):
    if fresh or not SELABEL.handle:
        SELABEL.open()
    return [SELABEL.lookup(path, mode) for path, mode in paths]


def matchpathcon(path, mode):
    try:
        return libselinux.matchpathcon(path, mode)[1]
    except OSError:
        return ours.NO_CONTEXT


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
              "agreement": agreement(matchpathcon)}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
