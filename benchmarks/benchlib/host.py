"""B1-B4: the precompile and pycache_owner modules on this machine, on tmpfs.

Every tree lives under /dev/shm (file creation on the ext4 disk drifts by a factor of two
from one minute to the next; tmpfs measures the compile work itself). Each module is timed
twice: as the module process alone (the target is checked on this one) and through
`ansible-playbook` on localhost (Ansible's own start-up, about 0.9 s, included).
"""
import os

from benchlib import trees
from benchlib.ansible_runs import play, write_yaml
from benchlib.results import Bench
from benchlib.timer import interleave, run_argv

WEB_USER = "www-data"


class HostContext:
    def __init__(self, ansible, python, workdir, inventory, floor_script, rounds):
        self.ansible = ansible
        self.python = python
        self.workdir = workdir
        self.inventory = inventory
        self.floor_script = floor_script
        self.rounds = rounds
        self.env = ansible.env

    def cmd(self, name, argv, setup=None, ok_codes=(0,)):
        return {"name": name, "setup": setup,
                "run": lambda: run_argv(argv, env=self.env, ok_codes=ok_codes)}

    def module(self, name, module, args, setup=None, seen=None):
        """A variant that runs the module process; `seen` collects its last result."""
        def run():
            result = self.ansible.run_module(self.python, module, args)
            if seen is not None:
                seen[name] = result
        return {"name": name, "setup": setup, "run": run}

    def playbook(self, name, tag, tasks, setup=None, seen=None):
        """A variant that runs a one-play playbook on localhost; `seen` collects its recap."""
        path = write_yaml(os.path.join(self.workdir, "%s.yml" % tag), [play(name, tasks)])

        def run():
            summary, _ = self.ansible.run_playbook(path, self.inventory)
            if seen is not None:
                seen[name] = summary
        return {"name": name, "setup": setup, "run": run}


def precompile_args(tree, python):
    # on_error warn: Django's sources hold one file with a deliberate syntax error.
    return {"path": tree, "interpreters": [python], "on_error": "warn"}


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
        cold = (lambda t: lambda: trees.remove_caches(t))(tree)
        args = precompile_args(tree, ctx.python)
        times = interleave([
            ctx.cmd("compileall -j0", [ctx.python, "-m", "compileall", "-q", "-j0", tree], cold, (0, 1)),
            ctx.cmd("compileall -j1", [ctx.python, "-m", "compileall", "-q", "-j1", tree], cold, (0, 1)),
            ctx.module("precompile (module)", "precompile", args, cold, seen),
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


def b2_rerun(ctx, tree_paths):
    bench = Bench("B2", "precompile re-run with nothing changed",
                  "the floor (one walk: stat every source, read its .pyc header); compileall -q re-run",
                  "precompile <= 1.5x the floor")
    for group, tree in tree_paths.items():
        seen = {}
        args = precompile_args(tree, ctx.python)
        ctx.ansible.run_module(ctx.python, "precompile", args)
        times = interleave([
            ctx.cmd("floor walk", [ctx.python, ctx.floor_script, tree]),
            ctx.cmd("compileall -j1", [ctx.python, "-m", "compileall", "-q", "-j1", tree], None, (0, 1)),
            ctx.cmd("compileall -j0", [ctx.python, "-m", "compileall", "-q", "-j0", tree], None, (0, 1)),
            ctx.module("precompile (module)", "precompile", args, None, seen),
            ctx.playbook("precompile (ansible-playbook)", "b2-%s" % group,
                         [{"name": "precompile", "pycgi.hosting.precompile": args}], None, seen),
        ], ctx.rounds["B2"])
        bench.add(group, times)
        _module_facts(bench, group, seen)
        bench.ratio("%s: module / floor" % group, "%s: precompile (module)" % group,
                    "%s: floor walk" % group, "<=", 1.5)
        bench.ratio("%s: module / best compileall re-run" % group, "%s: precompile (module)" % group,
                    ["%s: compileall -j1" % group, "%s: compileall -j0" % group], "<=", 1.5, scope=False)
        bench.ratio("%s: ansible-playbook / floor" % group, "%s: precompile (ansible-playbook)" % group,
                    "%s: floor walk" % group, "<=", 1.5, scope=False)
    return bench


def b3_push(ctx, tree_paths):
    bench = Bench("B3", "code push: 1% of the sources changed",
                  "the B2 floor plus compiling the changed files (one process); compileall -q",
                  "precompile <= 1.5x the floor + compile")
    for group, tree in tree_paths.items():
        seen = {}
        args = precompile_args(tree, ctx.python)
        ctx.ansible.run_module(ctx.python, "precompile", args)
        push = trees.CodePush(tree)
        bench.facts["%s: files changed per push" % group] = len(push.targets)
        times = interleave([
            ctx.cmd("floor walk + compile", [ctx.python, ctx.floor_script, "--compile", tree], push),
            ctx.cmd("compileall -j1", [ctx.python, "-m", "compileall", "-q", "-j1", tree], push, (0, 1)),
            ctx.module("precompile (module)", "precompile", args, push, seen),
            ctx.playbook("precompile (ansible-playbook)", "b3-%s" % group,
                         [{"name": "precompile", "pycgi.hosting.precompile": args}], push, seen),
        ], ctx.rounds["B3"])
        bench.add(group, times)
        _module_facts(bench, group, seen)
        bench.ratio("%s: module / floor + compile" % group, "%s: precompile (module)" % group,
                    "%s: floor walk + compile" % group, "<=", 1.5)
        bench.ratio("%s: ansible-playbook / floor + compile" % group,
                    "%s: precompile (ansible-playbook)" % group,
                    "%s: floor walk + compile" % group, "<=", 1.5, scope=False)
    return bench


def b4_owner(ctx, tree_paths):
    bench = Bench("B4", "pycache_owner, scope tree: first run and re-run",
                  "chown -R (first run); find ! -user walk (re-run); ansible.builtin.file recurse=true (both)",
                  "module <= 2x chown -R (and <= 2x the find walk on re-run); >= 5x faster than file recurse")
    owner = "%s:%s" % (WEB_USER, WEB_USER)
    for group, tree in tree_paths.items():
        seen = {}
        args = {"path": tree, "owner": WEB_USER, "group": WEB_USER, "scope": "tree"}
        file_task = [{"name": "file recurse", "ansible.builtin.file": {
            "path": tree, "state": "directory", "recurse": True, "owner": WEB_USER, "group": WEB_USER}}]
        owner_task = [{"name": "pycache_owner", "pycgi.hosting.pycache_owner": args}]
        to_root = (lambda t: lambda: run_argv(["chown", "-R", "root:root", t]))(tree)
        first = interleave([
            ctx.cmd("chown -R", ["chown", "-R", owner, tree], to_root),
            ctx.module("pycache_owner first run (module)", "pycache_owner", args, to_root, seen),
            ctx.playbook("pycache_owner first run (ansible-playbook)", "b4-%s-owner" % group, owner_task,
                         to_root, seen),
            ctx.playbook("file recurse first run (ansible-playbook)", "b4-%s-file" % group, file_task,
                         to_root, seen),
        ], ctx.rounds["B4"])
        ctx.ansible.run_module(ctx.python, "pycache_owner", args)
        again = interleave([
            ctx.cmd("find ! -user walk", ["find", tree, "(", "!", "-user", WEB_USER, "-o",
                                          "!", "-group", WEB_USER, ")", "-print"]),
            ctx.module("pycache_owner re-run (module)", "pycache_owner", args, None, seen),
            ctx.playbook("pycache_owner re-run (ansible-playbook)", "b4-%s-owner" % group, owner_task, None, seen),
            ctx.playbook("file recurse re-run (ansible-playbook)", "b4-%s-file" % group, file_task, None, seen),
        ], ctx.rounds["B4"])
        bench.add(group, first)
        bench.add(group, again)
        _module_facts(bench, group, seen)
        g = group + ": "
        bench.ratio(g + "first run: module / chown -R", g + "pycache_owner first run (module)",
                    g + "chown -R", "<=", 2.0)
        bench.ratio(g + "re-run: module / find walk", g + "pycache_owner re-run (module)",
                    g + "find ! -user walk", "<=", 2.0)
        bench.ratio(g + "first run: file recurse / module (both ansible-playbook)",
                    g + "file recurse first run (ansible-playbook)",
                    g + "pycache_owner first run (ansible-playbook)", ">=", 5.0)
        bench.ratio(g + "re-run: file recurse / module (both ansible-playbook)",
                    g + "file recurse re-run (ansible-playbook)",
                    g + "pycache_owner re-run (ansible-playbook)", ">=", 5.0)
    return bench
