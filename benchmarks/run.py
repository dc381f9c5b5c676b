"""The pycgi.hosting benchmark suite (`make bench`): B0-B8, results in benchmarks/results/.

    python benchmarks/run.py [--quick] [--only B1,B2] [--python /usr/bin/python3]

Run it through `make bench`, which installs what it needs (the venv with matplotlib, the
built collection, the test image) and exports the variables it reads (ANSIBLE_COLLECTIONS_PATH,
CONTAINERS_CONF, PYCGI_TEST_IMAGE). `--only` re-measures some ids and keeps the others from
the previous results/latest.json. See benchmarks/README.md for what each id measures.
"""
import argparse
import datetime
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(REPO, "tests"))

from benchlib import container, fleet, host, releases, report, trees  # noqa: E402
from benchlib.ansible_runs import Ansible, local_inventory  # noqa: E402
from benchlib.results import Bench  # noqa: E402

ALL_IDS = ("B0", "B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8")
ROUNDS = {
    "full": {"B0": 40, "B1": 3, "B2": 7, "B3": 5, "B4": 3, "B5": 4, "B6": 3, "B7": 3, "B8": 2},
    "quick": {"B0": 12, "B1": 1, "B2": 3, "B3": 2, "B4": 1, "B5": 1, "B6": 1, "B7": 1, "B8": 1},
}
# The modules each benchmark drives (a benchmark whose module is not built yet is skipped).
NEEDS = {"B0": ("precompile", "pycache_owner"), "B1": ("precompile",), "B2": ("precompile",),
         "B3": ("precompile",), "B4": ("pycache_owner",), "B5": ("selinux_context",),
         "B6": ("precompile", "pycache_owner", "selinux_context", "httpd_pycache"),
         "B7": ("release", "precompile", "pycache_owner", "selinux_context", "httpd_pycache"),
         "B8": ("release", "precompile", "pycache_owner", "selinux_context", "httpd_pycache")}
WORK = os.path.join(HERE, ".work")
TMPFS = "/dev/shm"
DEFAULT_OUT = os.path.join(HERE, "results")


def work_dirs(out):
    """The work directory and the tmpfs scratch directory of a run writing to `out`: runs
    with different --out directories can run side by side without sharing either (the
    download cache, WORK/cache, is shared)."""
    if os.path.abspath(out) == DEFAULT_OUT:
        return WORK, os.path.join(TMPFS, "pycgi-bench")
    tag = hashlib.sha1(os.path.abspath(out).encode()).hexdigest()[:10]
    return os.path.join(WORK, "run-" + tag), os.path.join(TMPFS, "pycgi-bench-" + tag)


def command_output(argv):
    try:
        return subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              check=False).stdout.strip()
    except OSError:
        return "not installed"


def machine_facts(python):
    with open("/proc/meminfo") as handle:
        mem_kib = int(handle.readline().split()[1])
    cpu = "unknown"
    with open("/proc/cpuinfo") as handle:
        for line in handle:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    os_name = platform.platform()
    if os.path.exists("/etc/os-release"):
        with open("/etc/os-release") as handle:
            fields = dict(line.rstrip("\n").split("=", 1) for line in handle if "=" in line)
        os_name = fields.get("PRETTY_NAME", os_name).strip('"')
    import ansible.release
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": "%s, %d cores" % (cpu, os.cpu_count()),
        "memory": "%.0f GiB" % (mem_kib / 1024.0 / 1024.0),
        "os": "%s, kernel %s" % (os_name, platform.release()),
        "target interpreter": "%s (%s)" % (
            python, command_output([python, "-c", "import sys; print(sys.version.split()[0])"])),
        "controller": "Python %s, ansible-core %s" % (platform.python_version(), ansible.release.__version__),
        "podman": command_output(["podman", "--version"]),
        "test image": os.environ.get("PYCGI_TEST_IMAGE", "not set"),
        "tmpfs": TMPFS,
        "load average (1, 5, 15 min) at the end": "%.2f, %.2f, %.2f" % os.getloadavg(),
    }


def installed_collection():
    base = os.environ.get("ANSIBLE_COLLECTIONS_PATH", os.path.join(REPO, ".build", "collections")).split(os.pathsep)[0]
    path = os.path.join(base, "ansible_collections", "pycgi", "hosting")
    if not os.path.isdir(path):
        sys.exit("the collection is not installed in %s: run `make bench` (it runs `make collection`)" % base)
    return base, path


def positive_counts(text):
    """Host counts from a comma-separated option ("1,4"; "0" or "" for none), sorted, each once."""
    return sorted({int(n) for n in text.split(",") if n.strip() and int(n) > 0})


def private_collections(work, collections_path, collection_dir):
    """A collections path of this run's own: a copy of the installed pycgi.hosting (a
    `make collection` run by someone else meanwhile must not pull it away mid-benchmark) and
    links to the third-party collections."""
    private = os.path.join(work, "collections")
    source = os.path.realpath(collection_dir)
    if os.path.realpath(work).startswith(source + os.sep):
        # A source-tree link (.build/src) would be copied into itself, without end.
        sys.exit("pycgi.hosting in %s is the source tree itself (%s), which holds this run's work directory: "
                 "run `make bench`, or set ANSIBLE_COLLECTIONS_PATH to .build/collections (`make collection`)"
                 % (collections_path, source))
    shutil.rmtree(private, ignore_errors=True)
    namespaces = os.path.join(collections_path, "ansible_collections")
    for namespace in os.listdir(namespaces):
        if namespace == "pycgi" or not os.path.isdir(os.path.join(namespaces, namespace)):
            continue
        os.makedirs(os.path.join(private, "ansible_collections"), exist_ok=True)
        os.symlink(os.path.join(namespaces, namespace), os.path.join(private, "ansible_collections", namespace))
    shutil.copytree(collection_dir, os.path.join(private, "ansible_collections", "pycgi", "hosting"),
                    ignore=shutil.ignore_patterns("__pycache__"))
    return private


def module_runtime(work, collection_dir):
    """A directory with Ansible's module_utils and the installed collection: what the module
    process needs on its import path, on this machine and inside the containers."""
    import ansible
    runtime = os.path.join(work, "module-runtime")
    shutil.rmtree(runtime, ignore_errors=True)
    package = os.path.dirname(ansible.__file__)
    ignore = shutil.ignore_patterns("__pycache__")
    os.makedirs(os.path.join(runtime, "ansible"))
    for name in ("__init__.py", "release.py"):
        shutil.copy2(os.path.join(package, name), os.path.join(runtime, "ansible", name))
    for name in ("_vendor", "module_utils"):
        shutil.copytree(os.path.join(package, name), os.path.join(runtime, "ansible", name), ignore=ignore)
    # ansible.builtin.file, timed as a module process beside pycache_owner (B4).
    os.makedirs(os.path.join(runtime, "ansible", "modules"))
    for name in ("__init__.py", "file.py"):
        shutil.copy2(os.path.join(package, "modules", name), os.path.join(runtime, "ansible", "modules", name))
    shutil.copytree(collection_dir, os.path.join(runtime, "ansible_collections", "pycgi", "hosting"), ignore=ignore)
    return runtime


def available_modules(collection_dir):
    modules = os.path.join(collection_dir, "plugins", "modules")
    return {name[:-3] for name in os.listdir(modules) if name.endswith(".py")} if os.path.isdir(modules) else set()


def previous_results(path):
    if os.path.exists(path):
        with open(path) as handle:
            return json.load(handle)
    return None


def write_fleet_chart(document, out):
    """B8's curves against the number of hosts, beside the ratio chart."""
    b8 = document["benches"].get("B8")
    if b8 and not b8.get("skipped") and b8.get("times"):
        fleet.write_curve_chart(b8, os.path.join(out, "b8-fleet.png"))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (about a third of the time)")
    parser.add_argument("--only", default=",".join(ALL_IDS), help="comma-separated ids, e.g. B1,B2")
    parser.add_argument("--rounds", type=int, help="rounds of every selected id instead of the mode's")
    parser.add_argument("--python", default="/usr/bin/python3",
                        help="the interpreter the trees are compiled for (default /usr/bin/python3)")
    parser.add_argument("--out", default=DEFAULT_OUT)
    parser.add_argument("--b8-hosts", default=None,
                        help="B8's host counts, e.g. 1,4 (default 1,2,4,8,16; with --quick 1,4,16)")
    parser.add_argument("--b8-ssh-hosts", default=None,
                        help="B8's host counts over SSH, e.g. 1,4 (default 1,4; with --quick 1; 0 for none)")
    parser.add_argument("--b8-ssh-rounds", type=int, default=None,
                        help="rounds of B8's SSH part (default --rounds, else 3; with --quick 1)")
    parser.add_argument("--b8-recipe-hosts", default=None,
                        help="B8's host counts for the builtin recipe (default: those up to %d; with --quick %d)"
                        % (fleet.RECIPE_MAX["full"], fleet.RECIPE_MAX["quick"]))
    parser.add_argument("--b8-extend", action="store_true",
                        help="B8 measures only --b8-hosts (no SSH part) and adds them to the B8 results kept in "
                             "latest.json, replacing those counts")
    parser.add_argument("--report-only", action="store_true",
                        help="only write latest.md and latest.png again from latest.json")
    args = parser.parse_args(argv)
    if args.report_only:
        document = previous_results(os.path.join(args.out, "latest.json"))
        if document is None:
            parser.error("no %s/latest.json to report from" % args.out)
        report.write_markdown(document, os.path.join(args.out, "latest.md"))
        report.write_chart(document, os.path.join(args.out, "latest.png"))
        write_fleet_chart(document, args.out)
        return 0
    wanted = [i.strip().upper() for i in args.only.split(",") if i.strip()]
    unknown = set(wanted) - set(ALL_IDS)
    if unknown:
        parser.error("unknown ids: %s" % ", ".join(sorted(unknown)))
    mode = "quick" if args.quick else "full"
    rounds = dict(ROUNDS[mode])
    if args.rounds:
        rounds.update((bid, args.rounds) for bid in wanted)
    b8_counts = fleet.COUNTS[mode]
    if args.b8_hosts:
        b8_counts = tuple(sorted({int(n) for n in args.b8_hosts.split(",") if n.strip()}))
    b8_ssh_counts = fleet.SSH_COUNTS[mode]
    if args.b8_ssh_hosts is not None:
        b8_ssh_counts = tuple(positive_counts(args.b8_ssh_hosts))
    b8_ssh_rounds = args.b8_ssh_rounds or args.rounds or fleet.SSH_ROUNDS[mode]
    b8_recipe_counts = None
    if args.b8_recipe_hosts is not None:
        b8_recipe_counts = positive_counts(args.b8_recipe_hosts)
    b8_kept = None
    if args.b8_extend:
        kept_document = previous_results(os.path.join(args.out, "latest.json"))
        b8_kept = (kept_document or {}).get("benches", {}).get("B8")
        if not b8_kept or b8_kept.get("skipped") or not b8_kept.get("times"):
            parser.error("--b8-extend: no measured B8 in %s/latest.json to extend" % args.out)
        b8_ssh_counts = ()
    started = time.monotonic()
    load_at_start = "%.2f, %.2f, %.2f" % os.getloadavg()

    installed_path, installed_dir = installed_collection()
    work, scratch = work_dirs(args.out)
    os.makedirs(work, exist_ok=True)
    collections_path = private_collections(work, installed_path, installed_dir)
    collection_dir = os.path.join(collections_path, "ansible_collections", "pycgi", "hosting")
    modules = available_modules(collection_dir)
    runtime = module_runtime(work, collection_dir)
    bin_dir = os.path.dirname(sys.executable)
    ansible = Ansible(bin_dir, collections_path, [runtime])
    shutil.rmtree(scratch, ignore_errors=True)
    os.makedirs(scratch)

    tree_paths = {}
    # B0, B5 and B8 bring their own trees.
    if set(wanted) & {"B1", "B2", "B3", "B4", "B6", "B7"}:
        print("== trees", flush=True)
        tree_paths = {
            "django": trees.unpack_django(os.path.join(WORK, "cache"), os.path.join(scratch, "django")),
            "synthetic": trees.generate_synthetic(os.path.join(scratch, "synthetic")),
        }
    tree_info = {name: trees.tree_stats(path) for name, path in tree_paths.items()}
    for name, info in tree_info.items():
        print("   %s: %s" % (name, info), flush=True)

    host_ctx = host.HostContext(ansible, args.python, work,
                                local_inventory(os.path.join(work, "localhost.yml"), args.python),
                                os.path.join(HERE, "benchlib", "floor.py"),
                                os.path.join(HERE, "benchlib", "entry_point.py"), rounds)
    container_ctx = container.ContainerContext(
        ansible, work, rounds, os.path.join(REPO, "examples", "app"),
        os.path.join(HERE, "benchlib", "timer.py"), runtime, os.path.join(REPO, "site.yml"))
    runners = {
        "B0": lambda: container.b0_request(container_ctx),
        "B1": lambda: host.profile_misses(host_ctx, host.b1_cold(host_ctx, tree_paths)),
        "B2": lambda: host.profile_misses(host_ctx, host.b2_rerun(host_ctx, tree_paths)),
        "B3": lambda: host.profile_misses(host_ctx, host.b3_push(host_ctx, tree_paths)),
        "B4": lambda: host.profile_misses(host_ctx, host.b4_owner(host_ctx, tree_paths)),
        "B5": lambda: container.b5_selinux(container_ctx),
        "B6": lambda: container.b6_site(container_ctx, tree_paths["synthetic"]),
        "B7": lambda: releases.b7_releases(container_ctx, tree_paths, mode),
        "B8": lambda: fleet.b8_fleet(container_ctx, b8_counts, rounds["B8"], fleet.RECIPE_MAX[mode],
                                     b8_ssh_counts, b8_ssh_rounds, b8_recipe_counts, b8_kept),
    }
    # Host benchmarks first (B2-B4 start from the caches B1 leaves), containers after.
    order = ["B1", "B2", "B3", "B4", "B0", "B5", "B6", "B7", "B8"]
    results = {}
    for bid in order:
        if bid not in wanted:
            continue
        missing = [m for m in NEEDS[bid] if m not in modules]
        needs_podman = bid in ("B0", "B5", "B6", "B7", "B8")
        if missing:
            bench = Bench(bid, "", "", "")
            bench.skipped = "not measured: module(s) %s not in the collection yet" % ", ".join(missing)
        elif needs_podman and not (shutil.which("podman") and os.environ.get("PYCGI_TEST_IMAGE")):
            bench = Bench(bid, "", "", "")
            bench.skipped = "not measured: podman or PYCGI_TEST_IMAGE missing (run through `make bench`)"
        else:
            print("== %s" % bid, flush=True)
            t0 = time.monotonic()
            try:
                bench = runners[bid]()
            except Exception as exc:  # one broken benchmark must not lose the others' numbers
                bench = Bench(bid, "", "", "")
                bench.skipped = "failed: %s" % str(exc).splitlines()[0][:300]
                bench.note("```\n%s\n```" % traceback.format_exc()[-4000:])
            bench.facts["duration of this benchmark"] = "%.0f s" % (time.monotonic() - t0)
        print("   %s" % (bench.skipped or "; ".join("%s = %.2f%s" % (r["label"], r["value"],
              "" if r["op"] is None else (" (met)" if r["met"] else " (MISSED)")) for r in bench.ratios)), flush=True)
        results[bid] = bench.to_dict()
    shutil.rmtree(scratch, ignore_errors=True)

    os.makedirs(args.out, exist_ok=True)
    latest = os.path.join(args.out, "latest.json")
    run = {"mode": mode, "rounds": rounds, "machine": machine_facts(args.python), "trees": tree_info,
           "duration": time.monotonic() - started}
    run["machine"]["load average (1, 5, 15 min) at the start"] = load_at_start
    merged = previous_results(latest) if set(wanted) != set(ALL_IDS) else None
    if merged and not tree_info:
        # The kept results of B1-B7 refer to the trees of the run that measured them.
        run["trees"] = merged["run"].get("trees", {})
    benches = dict(merged["benches"]) if merged else {}
    for bid, data in results.items():
        data["run"] = run["machine"]["date"]
        benches[bid] = data
    document = {"run": run, "benches": {bid: benches[bid] for bid in ALL_IDS if bid in benches}}
    with open(latest, "w") as handle:
        json.dump(document, handle, indent=1)
    report.write_markdown(document, os.path.join(args.out, "latest.md"))
    report.write_chart(document, os.path.join(args.out, "latest.png"))
    write_fleet_chart(document, args.out)
    print("== results in %s (latest.md, latest.png, latest.json), %.0f s" % (args.out, run["duration"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
