"""The collection's label lookup (`_selinux_lookup`) against libselinux's `matchpathcon()`
through ansible-core's `ansible.module_utils.compat.selinux`, in the same run.

    python benchmarks/selinux_lookup.py [--rounds N]

Run it with the project venv (it copies that ansible-core's module_utils and this collection
into a container of the test image, which has the reference policy, and runs
`benchlib/selinux_probe.py` there with the image's /usr/bin/python3). Writes
`results/selinux_lookup.md` and `results/selinux_lookup.json`: the time both take to decide
the context of every path of the B5 trees (and of a 10,000-module tree), their ratio, and
every path of the reference policy on which the two disagree.
"""
import argparse
import datetime
import json
import os
import shutil
import statistics
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(REPO, "tests"))

from benchlib.container import _copy_tree, start_container  # noqa: E402

LIB_DIR = "/root/bench/lib"
PROBE = os.path.join(HERE, "benchlib", "selinux_probe.py")
CHECK = os.path.join(REPO, "tests", "container", "selinux_lookup_check.py")
RESULTS = os.path.join(HERE, "results")


def module_runtime(work):
    """ansible-core's module_utils (the venv's) and this collection's plugins, for the container."""
    import ansible
    runtime = os.path.join(work, "runtime")
    package = os.path.dirname(ansible.__file__)
    ignore = shutil.ignore_patterns("__pycache__")
    os.makedirs(os.path.join(runtime, "ansible"))
    for name in ("__init__.py", "release.py"):
        shutil.copy2(os.path.join(package, name), os.path.join(runtime, "ansible", name))
    for name in ("_vendor", "module_utils"):
        shutil.copytree(os.path.join(package, name), os.path.join(runtime, "ansible", name), ignore=ignore)
    collection = os.path.join(runtime, "ansible_collections", "pycgi", "hosting")
    shutil.copytree(os.path.join(REPO, "plugins"), os.path.join(collection, "plugins"), ignore=ignore)
    for path in (os.path.join(runtime, "ansible_collections"), os.path.dirname(collection), collection):
        open(os.path.join(path, "__init__.py"), "a").close()
    return runtime


class _Ctx:
    def __init__(self, workdir):
        self.workdir = workdir


def run(rounds):
    work = tempfile.mkdtemp(prefix="pycgi-selinux-lookup-")
    container = start_container()
    try:
        runtime = module_runtime(work)
        _copy_tree(_Ctx(work), container, runtime, LIB_DIR)
        container.copy_in(PROBE, "/root/bench/selinux_probe.py")
        container.copy_in(CHECK, "/root/bench/selinux_lookup_check.py")
        load = container.exec("cat", "/proc/loadavg").stdout.split()[:3]
        proc = container.exec("/usr/bin/python3", "/root/bench/selinux_probe.py", LIB_DIR, str(rounds),
                              timeout=3600)
        result = json.loads(proc.stdout)
        result["load_before"] = load
        result["load_after"] = container.exec("cat", "/proc/loadavg").stdout.split()[:3]
        result["python"] = container.exec("/usr/bin/python3", "-V").stdout.strip()
        result["policy_package"] = container.exec(
            "dpkg-query", "-W", "-f", "${Package} ${Version}", "selinux-policy-default").stdout.strip()
        result["rounds"] = rounds
        result["date"] = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        return result
    finally:
        container.remove()
        shutil.rmtree(work, ignore_errors=True)


def _ms(values):
    return "%.1f ms (min %.1f, max %.1f, n=%d)" % (statistics.median(values) * 1e3, min(values) * 1e3,
                                                   max(values) * 1e3, len(values))


def report(result):
    lines = ["# Label lookup: the collection's own against libselinux's matchpathcon()", "",
             "Written by `benchmarks/selinux_lookup.py` on %s, inside a container of the test image "
             "(%s, %s), %d interleaved rounds; load average %s before, %s after." % (
                 result["date"], result["python"], result["policy_package"], result["rounds"],
                 " ".join(result["load_before"]), " ".join(result["load_after"])), "",
             "Each variant decides the context of every path of the tree, the way a module run "
             "does it: ours reads the policy's files and picks the rules for each root "
             "(`_selinux_lookup.read_policy_rules`, `root_labels`, `lookup`); libselinux loads the "
             "policy on its first `matchpathcon()` call (`matchpathcon_fini()` before every run), then "
             "answers each path (ansible-core's `ansible.module_utils.compat.selinux`). \"Lookups "
             "only\" times the same lookups with the policy already loaded.", "",
             "`selabel_lookup_raw()` is the call setfiles makes for each path; ansible-core wraps only "
             "`matchpathcon()`, which first resolves symbolic links on the file system (realpath), so it "
             "answers for the link's target, not for the path setfiles labels.", "",
             "| tree | paths | ours | libselinux matchpathcon | matchpathcon / ours | selabel_lookup | "
             "selabel_lookup / ours | lookups only: ours | lookups only: matchpathcon | lookups only: "
             "selabel_lookup | contexts differing |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, times in result["timings"].items():
        mine, lib, selabel = times["ours"], times["libselinux matchpathcon"], times["libselinux selabel_lookup"]
        only = result["lookups_only"][name]
        checks = result["tree_checks"][name]
        lines.append("| %s | %d | %s | %s | **%.2f×** | %s | **%.2f×** | %s | %s | %s | %d |" % (
            name, checks["paths"], _ms(mine), _ms(lib), statistics.median(lib) / statistics.median(mine),
            _ms(selabel), statistics.median(selabel) / statistics.median(mine),
            _ms(only["ours"]), _ms(only["libselinux matchpathcon"]), _ms(only["libselinux selabel_lookup"]),
            checks["differing_count"]))
    agreement = result["agreement"]
    lines += ["", "## The whole reference policy", "",
              "Every rule of the installed policy (file_contexts, .homedirs, .local: %d rules, %d "
              "equivalences) gives paths: an exact path itself, strings each regular expression matches "
              "(generated from Python's reading of it), and paths below each (a file, a directory, a "
              "`__pycache__` file); %d (path, file type) pairs. Each is decided by ours under its parent "
              "directory as root and under the path itself as root, and by libselinux's "
              "`selabel_lookup_raw()` (what setfiles does)." % (
                  agreement["rules"], agreement["subs"], agreement["paths"]), "",
              "- compared: %d decisions" % agreement["compared"],
              "- declined by ours (the module then lets setfiles decide the whole root): %d" % agreement["declined"],
              "- disagreements: %d" % len(agreement["disagreements"]), ""]
    differs = agreement["matchpathcon_differs"]
    lines += ["libselinux's own `matchpathcon()` (ansible-core's wrapper) answers otherwise than "
              "`selabel_lookup_raw()` for %d of the pairs: it resolves symbolic links of the container's "
              "file system first (e.g. %s)." % (
                  len(differs), ", ".join("`%s` %s: %s, not %s" % (d["path"], d["mode"], d["matchpathcon"],
                                                                   d["selabel_lookup"]) for d in differs[:3])), ""]
    if agreement["declined_reasons"]:
        lines += ["Declined, by the start of the reason:", ""]
        lines += ["- %s…: %d" % (reason, count) for reason, count in
                  sorted(agreement["declined_reasons"].items(), key=lambda item: -item[1])]
        lines.append("")
    if agreement["disagreements"]:
        lines += ["| path | file type | root | ours | libselinux | rule ours used |", "|---|---|---|---|---|---|"]
        for item in agreement["disagreements"][:200]:
            lines.append("| `%s` | %s | `%s` | %s | %s | `%s` |" % (
                item["path"], item["mode"], item["root"], item["ours"], item["libselinux"], item["rule"]))
        lines.append("")
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    result = run(args.rounds)
    os.makedirs(RESULTS, exist_ok=True)
    with open(os.path.join(RESULTS, "selinux_lookup.json"), "w") as handle:
        json.dump(result, handle, indent=1)
    with open(os.path.join(RESULTS, "selinux_lookup.md"), "w") as handle:
        handle.write(report(result))
    print(report(result))


if __name__ == "__main__":
    main()
