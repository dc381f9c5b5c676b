"""B1-B4: the precompile and pycache_owner modules on this machine, on tmpfs.

Every tree lives under /dev/shm (file creation on the ext4 disk drifts by a factor of two
from one minute to the next; tmpfs measures the compile work itself). Each module is timed
twice: as the module process alone (the target is checked on this one) and through
`ansible-playbook` on localhost (Ansible's own start-up, about 0.9 s, included).
"""
import functools
import json
import os

from benchlib import trees
from benchlib.ansible_runs import play, write_yaml
from benchlib.results import Bench
from benchlib.timer import interleave, run_argv

WEB_USER = "www-data"


class HostContext:
    def __init__(self, ansible, python, workdir, inventory, floor_script, entry_script, rounds):
        self.ansible = ansible
        self.entry_script = entry_script
        self.python = python
        self.workdir = workdir
        self.inventory = inventory
        self.floor_script = floor_script
        self.rounds = rounds
        self.env = ansible.env
        self.profilable = {}

    def cmd(self, name, argv, setup=None, ok_codes=(0,)):
        return {"name": name, "setup": setup,
                "run": lambda: run_argv(argv, env=self.env, ok_codes=ok_codes)}

    def floor(self, name, argv, setup=None):
        """A variant running floor.py: its wall time, and its own in-process time as
        "<name> (in-process)"."""
        def run():
            out = run_argv(argv, env=self.env).stdout.decode()
            inner = [line.split()[1] for line in out.splitlines() if line.startswith("in-process ")]
            return {name + " (in-process)": float(inner[0])}
        return {"name": name, "setup": setup, "run": run}

    def entry_point(self, name, module, args, setup=None):
        """A variant timing the module's module_utils entry point in-process (entry_point.py)."""
        argv = [self.python, self.entry_script, self.ansible.module_pythonpath[0], module, json.dumps(args)]

        def run():
            out = run_argv(argv, env=self.env).stdout.decode()
            return {name: json.loads(out.strip().splitlines()[-1])["seconds"]}
        return {"name": name, "setup": setup, "run": run}

    def module_startup(self, name):
        """What every module process pays before its own work: the interpreter starting and
        importing ansible.module_utils.basic (AnsibleModule)."""
        argv = [self.python, "-c", "import ansible.module_utils.basic"]
        env = self.ansible.module_env()
        return {"name": name, "run": lambda: run_argv(argv, env=env)}

    def module(self, name, module, args, setup=None, seen=None, group=None):
        """A variant that runs the module process; `seen` collects its last result."""
        self.profilable[(group, name)] = (module, args, setup)

        def run():
            result = self.ansible.run_module(self.python, module, args)
            if seen is not None:
                seen[name] = result
        return {"name": name, "setup": setup, "run": run}

    def playbook(self, name, tag, tasks, setup=None, seen=None):
        """A variant that runs a one-play playbook on localhost; `seen` collects its recap."""
        path = write_yaml(os.path.join(self.workdir, "%s.yml" % tag), [play(name, tasks)])

        def run():
            summary = self.ansible.run_playbook(path, self.inventory)[0]
            if seen is not None:
                seen[name] = summary
        return {"name": name, "setup": setup, "run": run}


def precompile_args(tree, python):
    # on_error warn: Django's sources hold one file with a deliberate syntax error.
    return {"path": tree, "interpreters": [python], "on_error": "warn"}


PROFILE_LINES = 18


def profile_misses(ctx, bench):
    """For each missed target whose numerator is a module process: one more run of that
    process under cProfile, the top of the profile (by cumulative time) kept as a note.
    The compile workers are other processes: their time shows as the parent's wait (poll)."""
    done = set()
    for ratio in bench.ratios:
        if ratio["op"] is None or ratio["met"]:
            continue
        ours = [key for key in (ratio["numerator"], ratio["denominator"])
                if tuple(key.split(": ", 1)) in ctx.profilable
                and not ctx.profilable[tuple(key.split(": ", 1))][0].startswith("ansible.")]
        if not ours or ours[0] in done:
            continue
        done.add(ours[0])
        group, name = ours[0].split(": ", 1)
        module, args, setup = ctx.profilable[(group, name)]
        if setup:
            setup()
        out = os.path.join(ctx.workdir, "profile.out")
        argv = ctx.ansible.module_argv(ctx.python, module, args)
        run_argv(argv[:1] + ["-m", "cProfile", "-o", out] + argv[1:], env=ctx.ansible.module_env())
        code = ("import pstats, io, sys; buf = io.StringIO(); "
                "pstats.Stats(sys.argv[1], stream=buf).sort_stats('cumulative').print_stats(80); "
                "print(buf.getvalue())")
        text = run_argv([ctx.python, "-c", code, out]).stdout.decode()
        lines = text[text.find("   ncalls"):].rstrip().splitlines()
        # The import machinery and the runpy frames say nothing about the module's work.
        noise = ("<frozen", "builtins.exec", "<string>:1", "builtins.__import__")
        table = "\n".join(lines[:1] + [line for line in lines[1:] if not any(n in line for n in noise)][:PROFILE_LINES])
        for prefix in ctx.ansible.module_pythonpath + ["/usr/lib/python3"]:
            table = table.replace(prefix + "/", "")
        bench.note("Profile of `%s` (missed: %s = %.2f×), cProfile, top %d by cumulative time:\n\n```\n%s\n```"
                   % (ours[0], ratio["label"], ratio["value"], PROFILE_LINES, table))
    return bench


def _module_facts(bench, group, seen):
    """What the last timed run of each module variant reported (proof of what was timed)."""
    for name, result in seen.items():
        if "skipped" in result and "ok" in result:
            text = "play recap: ok=%(ok)d changed=%(changed)d skipped=%(skipped)d" % result
        else:
            text = "changed=%s" % result.get("changed")
            if "stats" in result:
                text += ", stats %s" % result["stats"]
        bench.facts["%s: %s" % (group, name)] = text


def b1_cold(ctx, tree_paths):
    bench = Bench("B1", "cold precompile of each tree",
                  "python3 -m compileall -q -j0 (and -j1) with the same interpreter",
                  "precompile <= 1.10x the better compileall")
    for group, tree in tree_paths.items():
        seen = {}
        cold = functools.partial(trees.remove_caches, tree)
        args = precompile_args(tree, ctx.python)
        times = interleave([
            ctx.cmd("compileall -j0", [ctx.python, "-m", "compileall", "-q", "-j0", tree], cold, (0, 1)),
            ctx.cmd("compileall -j1", [ctx.python, "-m", "compileall", "-q", "-j1", tree], cold, (0, 1)),
            ctx.module("precompile (module)", "precompile", args, cold, seen, group=group),
            ctx.playbook("precompile (ansible-playbook)", "b1-%s" % group,
                         [{"name": "precompile", "pycgi.hosting.precompile": args}], cold, seen),
        ], ctx.rounds["B1"])
        bench.add(group, times)
        _module_facts(bench, group, seen)
        best = ["%s: compileall -j0" % group, "%s: compileall -j1" % group]
        bench.ratio("%s: module / best compileall" % group, "%s: precompile (module)" % group, best, "<=", 1.10)
        bench.ratio("%s: ansible-playbook / best compileall" % group,
                    "%s: precompile (ansible-playbook)" % group, best, "<=", 1.10, scope=False)
    return bench


def _precompile_against_floor(ctx, bench, group, tree, with_compile, setup=None, others=()):
    """Times precompile on a tree whose caches are in place (the module process, its entry point
    in-process, and through ansible-playbook) interleaved with the floor walk (`with_compile`:
    plus compiling what changed) and the `others` variants, each run after `setup`; records the
    times, what the module reported, and the three ratios to the floor (target: module <= 1.5x)."""
    seen = {}
    args = precompile_args(tree, ctx.python)
    ctx.ansible.run_module(ctx.python, "precompile", args)
    plus = " + compile" if with_compile else ""
    floor, floor_name = "floor" + plus, "floor walk" + plus
    floor_argv = [ctx.python, ctx.floor_script] + (["--compile"] if with_compile else []) + [tree]
    times = interleave([ctx.floor(floor_name, floor_argv, setup)] + list(others) + [
        ctx.module("precompile (module)", "precompile", args, setup, seen, group=group),
        ctx.entry_point("precompile() entry point (in-process)", "precompile", args, setup),
        ctx.playbook("precompile (ansible-playbook)", "%s-%s" % (bench.id.lower(), group),
                     [{"name": "precompile", "pycgi.hosting.precompile": args}], setup, seen),
    ], ctx.rounds[bench.id])
    bench.add(group, times)
    _module_facts(bench, group, seen)
    g = group + ": "
    bench.ratio(g + "module / " + floor, g + "precompile (module)", g + floor_name, "<=", 1.5)
    bench.ratio(g + "entry point / %s, both in-process" % floor, g + "precompile() entry point (in-process)",
                g + floor_name + " (in-process)", "<=", 1.5, scope=False)
    bench.ratio(g + "ansible-playbook / " + floor, g + "precompile (ansible-playbook)", g + floor_name,
                "<=", 1.5, scope=False)


def b2_rerun(ctx, tree_paths):
    bench = Bench("B2", "precompile re-run with nothing changed",
                  "the floor (one walk: stat every source, read its .pyc header); compileall -q re-run",
                  "precompile <= 1.5x the floor")
    for group, tree in tree_paths.items():
        _precompile_against_floor(ctx, bench, group, tree, with_compile=False, others=[
            ctx.cmd("compileall -j1", [ctx.python, "-m", "compileall", "-q", "-j1", tree], None, (0, 1)),
            ctx.cmd("compileall -j0", [ctx.python, "-m", "compileall", "-q", "-j0", tree], None, (0, 1)),
            ctx.module_startup("module start-up alone (interpreter + Ansible import)"),
        ])
        g = group + ": "
        bench.ratio(g + "module / best compileall re-run", g + "precompile (module)",
                    [g + "compileall -j1", g + "compileall -j0"], "<=", 1.5, scope=False)
        startup = bench.median(g + "module start-up alone (interpreter + Ansible import)")
        bench.note("%s: the module process takes %.0f ms, of which %.0f ms (%.0f%% of the whole floor walk, %.0f ms) "
                   "is the interpreter starting and importing AnsibleModule before any work; the work itself "
                   "(entry point, in-process) is %.2f× the floor walk's own in-process time."
                   % (group, bench.median(g + "precompile (module)") * 1000, startup * 1000,
                      100 * startup / bench.median(g + "floor walk"), bench.median(g + "floor walk") * 1000,
                      bench.median(g + "precompile() entry point (in-process)") / bench.median(g + "floor walk (in-process)")))
    return bench


def b3_push(ctx, tree_paths):
    bench = Bench("B3", "code push: 1% of the sources changed",
                  "the B2 floor plus compiling the changed files (one process); compileall -q",
                  "precompile <= 1.5x the floor + compile")
    for group, tree in tree_paths.items():
        push = trees.CodePush(tree)
        bench.facts["%s: files changed per push" % group] = len(push.targets)
        _precompile_against_floor(ctx, bench, group, tree, with_compile=True, setup=push, others=[
            ctx.cmd("compileall -j1", [ctx.python, "-m", "compileall", "-q", "-j1", tree], push, (0, 1)),
        ])
    return bench


def b4_owner(ctx, tree_paths):
    bench = Bench("B4", "pycache_owner, scope tree: first run and re-run",
                  "chown -R (first run); find ! -user walk (re-run); ansible.builtin.file recurse=true (both)",
                  "module <= 2x chown -R (and <= 2x the find walk on re-run); >= 5x faster than file recurse")
    owner = "%s:%s" % (WEB_USER, WEB_USER)
    for group, tree in tree_paths.items():
        seen = {}
        args = {"path": tree, "owner": WEB_USER, "group": WEB_USER, "scope": "tree"}
        file_args = {"path": tree, "state": "directory", "recurse": True, "owner": WEB_USER, "group": WEB_USER}
        file_task = [{"name": "file recurse", "ansible.builtin.file": file_args}]
        owner_task = [{"name": "pycache_owner", "pycgi.hosting.pycache_owner": args}]
        to_root = functools.partial(run_argv, ["chown", "-R", "root:root", tree])
        first = interleave([
            ctx.cmd("chown -R", ["chown", "-R", owner, tree], to_root),
            ctx.module("pycache_owner first run (module)", "pycache_owner", args, to_root, seen, group=group),
            ctx.entry_point("fix_ownership() first run (in-process)", "pycache_owner", args, to_root),
            ctx.module("file recurse first run (module)", "ansible.modules.file", file_args, to_root, group=group),
            ctx.playbook("pycache_owner first run (ansible-playbook)", "b4-%s-owner" % group, owner_task,
                         to_root, seen),
            ctx.playbook("file recurse first run (ansible-playbook)", "b4-%s-file" % group, file_task,
                         to_root, seen),
        ], ctx.rounds["B4"])
        ctx.ansible.run_module(ctx.python, "pycache_owner", args)
        again = interleave([
            ctx.cmd("find ! -user walk", ["find", tree, "(", "!", "-user", WEB_USER, "-o",
                                          "!", "-group", WEB_USER, ")", "-print"]),
            ctx.module("pycache_owner re-run (module)", "pycache_owner", args, None, seen, group=group),
            ctx.entry_point("fix_ownership() re-run (in-process)", "pycache_owner", args),
            ctx.module("file recurse re-run (module)", "ansible.modules.file", file_args, group=group),
            ctx.playbook("pycache_owner re-run (ansible-playbook)", "b4-%s-owner" % group, owner_task, None, seen),
            ctx.playbook("file recurse re-run (ansible-playbook)", "b4-%s-file" % group, file_task, None, seen),
        ], ctx.rounds["B4"])
        bench.add(group, first)
        bench.add(group, again)
        _module_facts(bench, group, seen)
        g = group + ": "
        bench.ratio(g + "first run: module / chown -R", g + "pycache_owner first run (module)",
                    g + "chown -R", "<=", 2.0)
        bench.ratio(g + "first run: in-process / chown -R", g + "fix_ownership() first run (in-process)",
                    g + "chown -R", "<=", 2.0, scope=False)
        bench.ratio(g + "re-run: module / find walk", g + "pycache_owner re-run (module)",
                    g + "find ! -user walk", "<=", 2.0)
        bench.ratio(g + "re-run: in-process / find walk", g + "fix_ownership() re-run (in-process)",
                    g + "find ! -user walk", "<=", 2.0, scope=False)
        for run in ("first run", "re-run"):
            bench.ratio(g + "%s: file recurse / pycache_owner (modules)" % run,
                        g + "file recurse %s (module)" % run, g + "pycache_owner %s (module)" % run, ">=", 5.0)
            bench.ratio(g + "%s: file recurse / pycache_owner (ansible-playbook)" % run,
                        g + "file recurse %s (ansible-playbook)" % run,
                        g + "pycache_owner %s (ansible-playbook)" % run, ">=", 5.0, scope=False)
    return bench
