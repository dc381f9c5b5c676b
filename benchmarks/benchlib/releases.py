"""B7: code pushes with pycgi.hosting.release, against what a push costs at least and what
users write today.

For each tree (Django's sdist, the synthetic tree) one container of the test image, reached
from this machine through the podman connection with Ansible's default connection settings,
and in the same interleaved rounds:

- the floor: `tar -c | podman exec -i CONTAINER tar -x` of the same files (the whole tree, or
  only the changed files) and a no-op play (one `ansible.builtin.ping`) on the same host; the
  floor of a push by Ansible is their sum, taken round by round;
- `pycgi.hosting.release` (one task): first push (a fresh root and an empty manifest cache on
  the controller), 1% of the Python sources changed, nothing changed, and a rollback;
- `ansible.builtin.unarchive` of a tarball of the tree (first push, and again after the 1%
  change);
- `site.yml` (the role, whole run) with nothing changed and after a 1-file push.

`ansible.builtin.copy` makes one round trip per file (minutes for these trees): it is timed
once per tree on a subset of the files, and its time for the whole tree is extrapolated from
the time per file over the no-op play (the report says so).
"""
import json
import os
import shutil
import subprocess
import tarfile
import time
import traceback

from benchlib import trees
from benchlib.ansible_runs import write_yaml
from benchlib.container import _install_module_runtime, _module_once, _read_task_log, _task_log, start_container
from benchlib.results import Bench
from benchlib.timer import interleave

from harness.site import CALLBACK_PLUGINS, podman_env

PYTHON = "/usr/bin/python3"
BASE = "/srv/b7"
STOCK_ROOT = "/usr/lib/cgi-bin"
# Django's test file with a deliberate syntax error: the role's precompile fails on it (its
# default on_error), so site.yml leaves it out, as a user would.
EXCLUDE = ["tests_syntax_error.py"]
# Files that ansible.builtin.copy pushes for real; the rest is extrapolated.
COPY_SUBSET = {"full": 20, "quick": 10}

FIRST = "first push"
ONE_PCT = "1% changed"
SAME = "nothing changed"
ROLLBACK = "rollback"
NOOP = "no-op play"
SITE_SAME = "site.yml, nothing changed"
SITE_ONE = "site.yml after a 1-file push"


class FilePush(trees.CodePush):
    """trees.CodePush limited to `count` sources (the one in the middle of the sorted list first)."""

    def __init__(self, tree, count):
        super().__init__(tree)
        sources = trees.python_sources(tree)
        middle = len(sources) // 2
        self.targets = sources[middle:middle + count]
        self.originals = {path: self.originals.get(path) or _read(path) for path in self.targets}


def _say(group, text):
    print("   %s %s: %s" % (time.strftime("%H:%M:%S"), group, text), flush=True)


def _read(path):
    with open(path, "rb") as handle:
        return handle.read()


def clean_copy(src, dest):
    """`src` without caches (the trees of B1-B4 hold them by now), as `dest`."""
    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(src, dest, symlinks=True, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return dest


def files_of(tree):
    found = []
    for directory, subdirs, files in os.walk(tree):
        subdirs.sort()
        found.extend(os.path.relpath(os.path.join(directory, name), tree) for name in sorted(files))
    return found


def tar_pipe(container, tree, dest, members=None):
    """`tar -c -C tree MEMBERS | podman exec -i CONTAINER tar -x -C dest`: the floor of a
    transfer (no manifest, no check, no release)."""
    producer = subprocess.Popen(["tar", "-c", "-C", tree, "--"] + (members or ["."]), stdout=subprocess.PIPE)
    consumer = subprocess.run(["podman", "exec", "-i", container.name, "tar", "-x", "-C", dest,
                               "--no-same-owner"], stdin=producer.stdout, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, env=podman_env(), check=False)
    producer.stdout.close()
    if producer.wait() != 0 or consumer.returncode != 0:
        raise RuntimeError("tar pipe into %s failed: %s" % (dest, consumer.stdout[-2000:]))


class Pushes:
    """The plays and the untimed steps of one tree's container."""

    def __init__(self, ctx, container, group, workdir):
        self.ctx = ctx
        self.container = container
        self.group = group
        self.workdir = workdir
        self.recaps = {}
        self.results = {}
        self.cache = os.path.join(workdir, "manifest-cache")
        host = {"ansible_connection": "containers.podman.podman", "ansible_python_interpreter": PYTHON,
                # podman exec is root already; the image has no sudo.
                "ansible_become": False,
                # Ansible's default, whatever the project's ansible.cfg says.
                "ansible_pipelining": False}
        self.inventory = write_yaml(os.path.join(workdir, "inventory.yml"),
                                    {"webservers": {"hosts": {container.name: host}}})

    def playbook(self, name, tasks, **play):
        entry = {"name": name, "hosts": "webservers", "gather_facts": False}
        entry.update(play)
        entry["tasks"] = tasks
        return write_yaml(os.path.join(self.workdir, name + ".yml"), [entry])

    def run(self, name, playbook, extra=None, env=None, keep=False):
        """Runs a playbook; records its recap (and, with `keep`, the last task's result)."""
        run_env = {"PYCGI_RELEASE_CACHE": self.cache}
        run_env.update(env or {})
        results = None
        if keep:
            results = os.path.join(self.workdir, "results.json")
            run_env.update({"ANSIBLE_CALLBACK_PLUGINS": CALLBACK_PLUGINS, "ANSIBLE_CALLBACKS_ENABLED": "json_results",
                            "PYCGI_RESULTS_FILE": results})
        summary = self.ctx.ansible.run_playbook(playbook, self.inventory, extra, run_env)[0]
        self.recaps.setdefault(name, []).append(summary)
        if keep:
            with open(results) as handle:
                self.results[name] = json.load(handle)["results"][self.container.name]
        return summary

    def runner(self, name, playbook, extra=None, env=None, setup=None, keep=False):
        return {"name": name, "setup": setup,
                "run": lambda: self.run(name, playbook, extra, env() if callable(env) else env, keep) and None}

    def fresh(self, *paths):
        """Untimed: removes paths in the container and creates the last one empty."""
        def setup():
            self.container.exec("rm", "-rf", *paths)
            self.container.exec("mkdir", "-p", paths[-1])
        return setup


def _release_task(path, source, **extra):
    args = {"path": path, "source": source}
    args.update(extra)
    return [{"name": "push", "pycgi.hosting.release": args}]


def _sum_series(bench, name, parts):
    """A variant whose times are the round-by-round sums of `parts` (the floor of a push)."""
    series = [bench.times[p] for p in parts]
    bench.times[name] = [sum(values) for values in zip(*series)]


def _min_ratio(bench, numerator, denominator):
    return min(bench.times[numerator]) / min(bench.times[denominator])


def _tree_benchmarks(ctx, bench, group, tree, rounds, subset_size):
    """The push measurements of one tree, in one container."""
    workdir = os.path.join(ctx.workdir, "b7-" + group)
    shutil.rmtree(workdir, ignore_errors=True)
    os.makedirs(workdir)
    stable = clean_copy(tree, os.path.join(workdir, "stable"))
    changing = clean_copy(tree, os.path.join(workdir, "changing"))
    site_src = clean_copy(tree, os.path.join(workdir, "site"))
    all_files = files_of(stable)
    tree_dirs = sum(1 for _walked in os.walk(stable))
    push = trees.CodePush(changing)
    changed_members = [os.path.relpath(p, changing) for p in push.targets]
    bench.facts["%s: files in the tree" % group] = "%d files (%d Python sources), %d bytes" % (
        len(all_files), len(trees.python_sources(stable)),
        sum(os.path.getsize(os.path.join(stable, f)) for f in all_files))
    bench.facts["%s: files changed by the 1%% push" % group] = "%d (every 100th Python source, a new last line)" % (
        len(push.targets))
    tarball = os.path.join(workdir, "tree.tar.gz")

    def make_tarball(source):
        with tarfile.open(tarball, "w:gz") as archive:
            archive.add(source, arcname=".")

    make_tarball(stable)
    container = start_container()
    try:
        _install_module_runtime(ctx, container)
        p = Pushes(ctx, container, group, workdir)
        g = group + ": "
        noop = p.playbook("noop", [{"name": "no-op", "ansible.builtin.ping": {}}])
        first_play = p.playbook("first", _release_task(BASE + "/first", stable))
        push_play = p.playbook("push", _release_task(BASE + "/push", changing))
        same_play = p.playbook("same", _release_task(BASE + "/same", stable))
        rollback_play = p.playbook("rollback", [{"name": "rollback", "pycgi.hosting.release": {
            "path": BASE + "/rb", "state": "rolled_back"}}])
        unarchive_first = p.playbook("unarchive-first", [{"name": "unarchive", "ansible.builtin.unarchive": {
            "src": tarball, "dest": BASE + "/unarchive-first"}}])
        unarchive_push = p.playbook("unarchive-push", [{"name": "unarchive", "ansible.builtin.unarchive": {
            "src": tarball, "dest": BASE + "/unarchive-push"}}])

        _say(group, "starting points")
        # Untimed starting points: a live release for the 1% pushes and for the re-run with
        # nothing changed; two releases for the rollback (stable, then the changing tree).
        container.exec("mkdir", "-p", BASE + "/pipe-first", BASE + "/pipe-push", BASE + "/unarchive-push")
        p.run("setup", push_play)
        p.run("setup", same_play)
        p.run("setup", same_play)
        rb_first = p.playbook("rb-first", _release_task(BASE + "/rb", stable))
        p.run("setup", rb_first)
        push()
        p.run("rollback setup", p.playbook("rb-second", _release_task(BASE + "/rb", changing)), keep=True)
        forward = p.results["rollback setup"]["release"]
        tar_pipe(container, changing, BASE + "/pipe-push")
        p.run("setup", unarchive_push)

        def first_setup():
            container.exec("rm", "-rf", BASE + "/first", BASE + "/.first.releases", BASE + "/.first.shared")
            # An empty manifest cache: a first push hashes the tree on the controller.
            shutil.rmtree(p.cache + "-first", ignore_errors=True)

        def push_setup_unarchive():
            push()
            make_tarball(changing)

        def rollback_setup():
            # A recorded switch to the newer release (the module run in the container, no
            # controller), so that every timed run is a real rollback.
            _module_once(container, "release", {"path": BASE + "/rb", "release": forward, "state": "switched"})

        variants = [
            p.runner(g + NOOP, noop),
            p.runner(g + FIRST + ": release", first_play, env={"PYCGI_RELEASE_CACHE": p.cache + "-first"},
                     setup=first_setup, keep=True),
            {"name": g + FIRST + ": tar pipe of the tree", "setup": p.fresh(BASE + "/pipe-first"),
             "run": lambda: tar_pipe(container, stable, BASE + "/pipe-first")},
            p.runner(g + FIRST + ": unarchive of a tarball", unarchive_first, setup=p.fresh(BASE + "/unarchive-first")),
            p.runner(g + ONE_PCT + ": release", push_play, setup=push, keep=True),
            {"name": g + ONE_PCT + ": tar pipe of the changed files", "setup": push,
             "run": lambda: tar_pipe(container, changing, BASE + "/pipe-push", changed_members)},
            p.runner(g + ONE_PCT + ": unarchive of a tarball", unarchive_push, setup=push_setup_unarchive),
            p.runner(g + SAME + ": release", same_play, keep=True),
            p.runner(g + ROLLBACK + ": release", rollback_play, setup=rollback_setup, keep=True),
        ]
        make_tarball(stable)
        _say(group, "pushes, %d round(s)" % rounds)
        bench.add("", interleave(variants, rounds))
        _sum_series(bench, g + FIRST + ": floor (no-op play + tar pipe of the tree)",
                    [g + NOOP, g + FIRST + ": tar pipe of the tree"])
        _sum_series(bench, g + ONE_PCT + ": floor (no-op play + tar pipe of the changed files)",
                    [g + NOOP, g + ONE_PCT + ": tar pipe of the changed files"])

        recaps = p.recaps
        for key in (FIRST, ONE_PCT, SAME, ROLLBACK):
            name = g + key + ": release"
            last = p.results.get(name, {})
            bench.facts[name + ", last run"] = "recap changed=%s; release %s; transferred %s; linked %s; module calls %s; manifest cache %s" % (
                ",".join(str(r["changed"]) for r in recaps[name]), last.get("release"), last.get("transferred"),
                last.get("linked"), last.get("module_calls"), last.get("manifest_cache"))
        same_changed = [r["changed"] for r in recaps[g + SAME + ": release"]]
        bench.checks.append({"label": "%s: nothing changed reports changed=0" % group,
                             "value": "changed=%s" % ",".join(map(str, same_changed)), "met": not any(same_changed)})
        rb_changed = [r["changed"] for r in recaps[g + ROLLBACK + ": release"]]
        if not all(rb_changed):
            raise RuntimeError("a timed rollback changed nothing: %s" % rb_changed)

        _say(group, "the archive of a 1-file change")
        # The archive sent for a 1-file change, inspected in the container (kept there by
        # ANSIBLE_KEEP_REMOTE_FILES) and as the action plugin counted it.
        # The timed rounds left the pushed copy ahead of the live release (the setups of the
        # other 1% variants edit it too): bring the host up to date first.
        p.run("setup", push_play)
        FilePush(changing, 1)()
        container.exec("rm", "-rf", "/root/.ansible/tmp")
        p.run("archive check", push_play, env={"ANSIBLE_KEEP_REMOTE_FILES": "1"}, keep=True)
        found = container.exec("find", "/root/.ansible/tmp", "-name", "release.tar").stdout.split()
        members = container.exec("tar", "-tf", found[0]).stdout.split() if len(found) == 1 else None
        container.exec("rm", "-rf", "/root/.ansible/tmp")
        sent = p.results["archive check"].get("transferred", {})
        bench.checks.append({
            "label": "%s: archive sent for a 1-file change holds that one file" % group,
            "value": "%s member(s) in the release.tar found on the host (%d archive(s) found); the task reports %s" % (
                len(members) if members is not None else "?", len(found), sent),
            "met": members is not None and len(members) == 1 and sent.get("files") == 1})

        # ansible.builtin.copy on a subset, timed once: first push, then again with 1% of
        # the subset's files changed (at least one).
        subset = os.path.join(workdir, "copy-subset")
        # A contiguous run of files in sorted order, from the middle of the tree: its files per
        # directory are like the tree's (copy also makes a round trip per directory).
        middle = len(all_files) // 2
        chosen = all_files[middle:middle + subset_size]
        subset_dirs = len({os.path.dirname(rel) for rel in chosen})
        for rel in chosen:
            os.makedirs(os.path.dirname(os.path.join(subset, rel)), exist_ok=True)
            shutil.copy2(os.path.join(stable, rel), os.path.join(subset, rel))
        copy_play = p.playbook("copy", [{"name": "copy", "ansible.builtin.copy": {
            "src": subset + "/", "dest": BASE + "/copy/"}}])
        container.exec("mkdir", "-p", BASE + "/copy")
        _say(group, "ansible.builtin.copy of %d files" % len(chosen))
        copy_times = interleave([p.runner(g + "copy of %d files: first push" % len(chosen), copy_play)], 1)
        edited = chosen[::100]
        for rel in edited:
            with open(os.path.join(subset, rel), "ab") as handle:
                handle.write(b"# edited\n")
        copy_times.update(interleave([p.runner(g + "copy of %d files: 1%% changed (%d edited)" % (
            len(chosen), len(edited)), copy_play)], 1))
        bench.add("", copy_times)
        noop_median = bench.median(g + NOOP)
        for (name, values), label in zip(copy_times.items(), (FIRST, ONE_PCT)):
            per_file = (values[0] - noop_median) / len(chosen)
            bench.times[g + label + ": copy, whole tree (extrapolated)"] = [noop_median + per_file * len(all_files)]
        bench.facts["%s: ansible.builtin.copy" % group] = (
            "timed once on %d of the %d files (a contiguous run in sorted order, in %d directories; the tree has "
            "%d); the whole tree's time is extrapolated, not measured: the no-op play plus the time per file "
            "over it times %d. %s" % (
                len(chosen), len(all_files), subset_dirs, tree_dirs, len(all_files),
                "; ".join("%s %.1f s (%.2f s per file)" % (n, v[0], (v[0] - noop_median) / len(chosen))
                          for n, v in copy_times.items())))

        # site.yml, whole runs: with nothing changed and after a 1-file push.
        site_vars = write_yaml(os.path.join(workdir, "site-vars.yml"), {
            "pycgi_source": site_src, "pycgi_exclude": EXCLUDE,
            # Django's templates run `env python`, which the image lacks: the interpreter is named.
            "pycgi_interpreters": [PYTHON]})
        _say(group, "site.yml")
        container.exec("a2enmod", "-q", "cgid")
        first_site = p.run("site.yml first run", ctx.site, site_vars, env=_task_log(ctx, "b7-%s-site-first" % group)[0])
        bench.facts["%s: site.yml first run" % group] = "ok=%(ok)d changed=%(changed)d skipped=%(skipped)d" % first_site
        p.run("site.yml settling run", ctx.site, site_vars)
        one_file = FilePush(site_src, 1)
        logs = {}

        def site_runner(name, setup=None):
            def env():
                run_env, logs[name] = _task_log(ctx, "b7-%s-%s" % (group, "one" if setup else "same"))
                return run_env
            return p.runner(g + name, ctx.site, site_vars, env=env, setup=setup)
        bench.add("", interleave([site_runner(SITE_SAME), site_runner(SITE_ONE, one_file)], rounds))
        for name in (SITE_SAME, SITE_ONE):
            bench.facts["%s%s: recaps" % (g, name)] = "; ".join(
                "ok=%(ok)d changed=%(changed)d" % r for r in recaps[g + name])
            records = _read_task_log(logs[name])
            ranked = sorted(records, key=lambda r: -r["seconds"])[:6]
            bench.facts["%s%s: slowest tasks (last run)" % (g, name)] = ", ".join(
                "%s %.1f s" % (r["name"], r["seconds"]) for r in ranked)
    finally:
        container.remove()


def b7_releases(ctx, tree_paths, mode):
    bench = Bench("B7", "code pushes with pycgi.hosting.release (Django's sdist, the synthetic tree)",
                  "the floor: `tar -c | podman exec -i CONTAINER tar -x` of the same files plus a no-op play "
                  "(one ping) on the same host; ansible.builtin.unarchive of a tarball; ansible.builtin.copy "
                  "(timed once on a subset, extrapolated); site.yml with nothing changed",
                  "first push <= 1.5x (no-op + tar pipe of the tree); 1% changed <= 1.5x (no-op + tar pipe of the "
                  "changed files) and >= 50x faster than copy; nothing changed <= 1.3x the no-op play, changed=0; "
                  "site.yml after a 1-file push <= 1.5x site.yml with nothing changed; rollback <= 1.3x the no-op "
                  "play; the archive of a 1-file change holds that one file")
    rounds = ctx.rounds["B7"]
    bench.facts["connection"] = ("containers.podman.podman from this machine, Ansible's default settings "
                                 "(no pipelining), as root in the container (no become)")
    measured = []
    for group in ("django", "synthetic"):
        print("   B7 %s" % group, flush=True)
        try:
            _tree_benchmarks(ctx, bench, group, tree_paths[group], rounds, COPY_SUBSET[mode])
            measured.append(group)
        except Exception as exc:  # the other tree's numbers are kept
            bench.note("%s: not measured, failed: %s\n\n```\n%s\n```" % (
                group, str(exc).splitlines()[0][:300], traceback.format_exc()[-4000:]))
    if not measured:
        raise RuntimeError("B7 failed on both trees (see the notes)")
    for group in measured:
        g = group + ": "
        targets = [
            (FIRST + ": release / floor", g + FIRST + ": release",
             g + FIRST + ": floor (no-op play + tar pipe of the tree)", "<=", 1.5),
            (ONE_PCT + ": release / floor", g + ONE_PCT + ": release",
             g + ONE_PCT + ": floor (no-op play + tar pipe of the changed files)", "<=", 1.5),
            (ONE_PCT + ": copy (extrapolated) / release", g + ONE_PCT + ": copy, whole tree (extrapolated)",
             g + ONE_PCT + ": release", ">=", 50.0),
            (SAME + ": release / no-op play", g + SAME + ": release", g + NOOP, "<=", 1.3),
            (SITE_ONE + " / " + SITE_SAME, g + SITE_ONE, g + SITE_SAME, "<=", 1.5),
            (ROLLBACK + ": release / no-op play", g + ROLLBACK + ": release", g + NOOP, "<=", 1.3),
        ]
        for label, numerator, denominator, op, target in targets:
            bench.ratio(g + label, numerator, denominator, op, target)
        informative = [
            (FIRST + ": unarchive / release", g + FIRST + ": unarchive of a tarball", g + FIRST + ": release"),
            (ONE_PCT + ": unarchive / release", g + ONE_PCT + ": unarchive of a tarball", g + ONE_PCT + ": release"),
            (FIRST + ": copy (extrapolated) / release", g + FIRST + ": copy, whole tree (extrapolated)",
             g + FIRST + ": release"),
        ]
        for label, numerator, denominator in informative:
            bench.ratio(g + label, numerator, denominator, "<=", 1.0, scope=False)
        bench.facts[g + "the same ratios of the minima"] = ", ".join(
            "%s %.2f×" % (label, _min_ratio(bench, numerator, denominator))
            for label, numerator, denominator, _op, _target in targets if "extrapolated" not in numerator)
    return bench
