"""B0, B5, B6: inside containers of the test image (real Apache, real semanage, a real play).

The timings of B0 and B5 are taken inside the container by `timer.py` (one `podman exec`
for the whole measurement, so podman's own start-up is never part of a number); B6 times
`ansible-playbook` on this machine against the container through the podman connection,
which is what a user runs.
"""
import json
import os
import re
import shutil
import tarfile
import time
import uuid

from benchlib import trees
from benchlib.ansible_runs import write_yaml
from benchlib.results import Bench
from benchlib.timer import interleave

from harness.podman import Container, podman, test_image

BENCH_DIR = "/root/bench"
LIB_DIR = "/root/bench/lib"
CGI_ROOT = "/usr/lib/cgi-bin"
WEB_USER = "www-data"
PYTHON = "/usr/bin/python3"


class ContainerContext:
    def __init__(self, ansible, workdir, rounds, example_app, timer_script, module_runtime, site):
        self.ansible = ansible
        self.workdir = workdir
        self.rounds = rounds
        self.example_app = example_app
        self.timer_script = timer_script
        self.module_runtime = module_runtime
        self.site = site


def start_container(timeout=180):
    """A container of the test image with systemd up (the harness's Container.start, polling
    for systemd instead of one `--wait`, which fails while the bus is not up yet on a busy
    machine)."""
    name = "pycgi-bench-%s" % uuid.uuid4().hex[:8]
    podman("run", "-d", "--name", name, "--hostname", name, "--systemd=always",
           "--tmpfs", "/run", "--tmpfs", "/tmp:exec", test_image(), "/sbin/init")
    container = Container(name)
    deadline = time.monotonic() + timeout
    while True:
        state = container.exec("systemctl", "is-system-running", check=False).stdout.strip()
        if state in ("running", "degraded"):
            return container
        if time.monotonic() > deadline:
            container.remove()
            raise RuntimeError("systemd in %s did not come up within %d s: %r" % (name, timeout, state))
        time.sleep(0.5)


def _copy_tree(ctx, container, src, dest):
    """Copies a host directory into the container as `dest` (through one tar archive)."""
    archive = os.path.join(ctx.workdir, "copy-%s.tar" % os.path.basename(src.rstrip("/")))
    with tarfile.open(archive, "w") as tar:
        tar.add(src, arcname=".", filter=lambda info: None if "__pycache__" in info.name else info)
    container.exec("mkdir", "-p", dest, BENCH_DIR)
    target = "%s/%s" % (BENCH_DIR, os.path.basename(archive))
    podman("cp", archive, "%s:%s" % (container.name, target))
    container.exec("tar", "-x", "-f", target, "-C", dest, "--no-same-owner")
    container.exec("rm", "-f", target)
    os.unlink(archive)


def _install_module_runtime(ctx, container):
    """Puts Ansible's module_utils and the installed collection into the container, so the
    module process can be timed there without the controller (see ansible_runs)."""
    _copy_tree(ctx, container, ctx.module_runtime, LIB_DIR)
    container.copy_in(ctx.timer_script, BENCH_DIR + "/timer.py")


def _module_step(module, args):
    return {"argv": [PYTHON, "-m", "ansible_collections.pycgi.hosting.plugins.modules." + module,
                     json.dumps({"ANSIBLE_MODULE_ARGS": args})],
            "env": {"PYTHONPATH": LIB_DIR}}


def _run_spec(container, ctx, name, spec):
    path = os.path.join(ctx.workdir, name + ".json")
    with open(path, "w") as handle:
        json.dump(spec, handle)
    container.copy_in(path, "%s/%s.json" % (BENCH_DIR, name))
    proc = container.exec(PYTHON, BENCH_DIR + "/timer.py", "%s/%s.json" % (BENCH_DIR, name), timeout=3600)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _module_once(container, module, args):
    step = _module_step(module, args)
    proc = container.exec(*step["argv"], env=step["env"], check=False)
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    if result.get("failed"):
        raise RuntimeError("%s failed in the container: %s" % (module, json.dumps(result)[:3000]))
    return result


# --- B0 ----------------------------------------------------------------------------------

# The application of the target ("a few thousand lines"), and a larger one that shows how
# the gain grows with the amount of imported code (informative).
B0_APPS = (("", 24), ("larger app: ", 72))


def b0_request(ctx):
    bench = Bench("B0", "one CGI request through Apache (example application + generated modules)",
                  "the same request with an unwritable __pycache__ (compile on every request); the "
                  "floor: the interpreter starting and importing from warm caches, without Apache",
                  "cached >= 3x faster than uncached; cached <= 1.3x the floor")
    container = start_container()
    expect = "pycgi example application"
    variants = []
    try:
        _install_module_runtime(ctx, container)
        container.exec("a2enmod", "-q", "cgid")
        container.exec("a2enconf", "-q", "serve-cgi-bin")
        container.exec("systemctl", "start", "apache2")
        for label, modules in B0_APPS:
            slug = "app%d" % modules
            app = os.path.join(ctx.workdir, "b0-" + slug)
            trees.build_b0_app(ctx.example_app, app, modules=modules)
            bench.facts["%sapplication" % label] = (
                "%(sources)d modules, %(lines)d lines (examples/app plus a generated package imported "
                "by the entry script bench.py)" % trees.tree_stats(app))
            warm, cold = "%s/%s-warm" % (CGI_ROOT, slug), "%s/%s-cold" % (CGI_ROOT, slug)
            for directory in (warm, cold):
                _copy_tree(ctx, container, app, directory)
            # Warm: what the collection sets up (caches compiled by the CGI interpreter, owned
            # by the web server user). Cold: the notes' problem, a root-owned tree in which the
            # web server user cannot create __pycache__, so Python compiles on every request.
            _module_once(container, "precompile", {"path": warm, "interpreters": [PYTHON]})
            _module_once(container, "pycache_owner", {"path": warm})
            container.exec("chown", "-R", "root:root", cold)
            container.exec("chmod", "-R", "go-w", cold)
            for name, path in (("cached", warm), ("uncached", cold)):
                status, body = container.http_get("/cgi-bin/%s/bench.py" % path.rsplit("/", 1)[1])
                if status != 200 or expect not in body:
                    raise RuntimeError("%s request failed: %s %s" % (name, status, body[:2000]))
                bench.facts["%s%s request: the page's own cache report" % (label, name)] = (
                    "%d modules from cache, %d not" % (body.count("<td>yes</td>"), body.count("<td>no</td>")))
            leftover = container.exec("find", cold, "-name", "*.pyc").stdout.split()
            if leftover:
                raise RuntimeError("the uncached tree got caches: %s" % leftover[:5])
            url = "http://localhost/cgi-bin/%s/bench.py"
            variants += [
                {"name": label + "cached (Apache)", "run": [{"http": url % warm.rsplit("/", 1)[1], "expect": expect}]},
                {"name": label + "uncached (Apache)", "run": [{"http": url % cold.rsplit("/", 1)[1], "expect": expect}]},
            ]
            if not label:
                variants.append({"name": "floor (python3 bench.py, no Apache)",
                                 "run": [{"argv": [PYTHON, warm + "/bench.py"],
                                          "env": {"QUERY_STRING": "", "REQUEST_METHOD": "GET"}}]})
                # What no cache can remove: the interpreter starting (site, encodings).
                variants.append({"name": "interpreter start alone (python3 -c pass)",
                                 "run": [{"argv": [PYTHON, "-c", "pass"]}]})
        spec = {"rounds": ctx.rounds["B0"], "warmup": 3, "variants": variants}
        bench.add("", _run_spec(container, ctx, "b0", spec))
    finally:
        container.remove()
    bench.ratio("uncached / cached", "uncached (Apache)", "cached (Apache)", ">=", 3.0)
    bench.ratio("cached / floor", "cached (Apache)", "floor (python3 bench.py, no Apache)", "<=", 1.3)
    bench.ratio("larger app: uncached / cached", "larger app: uncached (Apache)", "larger app: cached (Apache)",
                ">=", 3.0, scope=False)
    cached, uncached = bench.median("cached (Apache)"), bench.median("uncached (Apache)")
    floor, start = bench.median("floor (python3 bench.py, no Apache)"), bench.median("interpreter start alone (python3 -c pass)")
    lines = int(bench.facts["application"].split(" lines")[0].split(", ")[-1])
    per_line = (uncached - cached) / lines
    bench.note("Where a request's time goes (medians): the interpreter alone starts in %.0f ms; the cached request "
               "takes %.0f ms (the floor, without Apache, %.0f ms); compiling the application's %d lines adds %.0f ms "
               "(%.1f ms per 1,000 lines). Caching removes only the compile, so uncached / cached reaches 3× only when "
               "the compile costs twice the cached request: about {:,} lines of imported code at this rate."
               .format(int(2 * cached / per_line) if per_line > 0 else 0)
               % (start * 1000, cached * 1000, floor * 1000, lines, (uncached - cached) * 1000, per_line * 1e6))
    return bench


# --- B5 ----------------------------------------------------------------------------------

def _semanage_add(spec, setype):
    return {"argv": ["semanage", "fcontext", "-a", "-f", "a", "-t", setype, spec]}


def _root_rules(root):
    return [_semanage_add(root + "(/.*)?", "httpd_sys_script_exec_t"),
            _semanage_add(root + "(/.*)?/__pycache__(/.*)?", "httpd_sys_rw_content_t")]


def b5_selinux(ctx):
    bench = Bench("B5", "selinux_context for 1 and 5 roots (2 rules each)",
                  "the same rules as separate `semanage fcontext -a` calls (what a loop of "
                  "community.general.sefcontext makes); one single semanage call",
                  "5 roots <= 1.5x one single semanage call")
    roots = ["/srv/cgi%d" % number for number in range(1, 6)]
    container = start_container()
    try:
        _install_module_runtime(ctx, container)
        for root in roots:
            container.put_file(root + "/hello.py", "#!/usr/bin/python3\nimport app\n", mode=0o755)
            container.put_file(root + "/app/__init__.py", "VALUE = 1\n")
            container.exec("mkdir", "-p", root + "/app/__pycache__")
        clean = [{"argv": ["semanage", "fcontext", "-D"]}]
        one, five = roots[:1], roots
        variants = [
            {"name": "one semanage fcontext -a call", "setup": clean, "run": _root_rules(roots[0])[:1]},
            {"name": "1 root: separate semanage calls (2)", "setup": clean, "run": _root_rules(roots[0])},
            {"name": "1 root: selinux_context (module)", "setup": clean,
             "run": [_module_step("selinux_context", {"path": one, "relabel": False})]},
            {"name": "5 roots: separate semanage calls (10)", "setup": clean,
             "run": [step for root in five for step in _root_rules(root)]},
            {"name": "5 roots: selinux_context (module)", "setup": clean,
             "run": [_module_step("selinux_context", {"path": five, "relabel": False})]},
            {"name": "5 roots: selinux_context with relabel (module)", "setup": clean,
             "run": [_module_step("selinux_context", {"path": five})]},
        ]
        bench.add("", _run_spec(container, ctx, "b5", {"rounds": ctx.rounds["B5"], "variants": variants}))
        # What the module leaves behind, and that a second run changes nothing.
        container.exec("semanage", "fcontext", "-D")
        first = _module_once(container, "selinux_context", {"path": five})
        listed = container.exec("semanage", "fcontext", "-l", "-C").stdout
        bench.facts["5 roots: first run"] = "changed=%s, %d rules added, %d local rules listed by semanage" % (
            first.get("changed"), len(first.get("rules_added", [])),
            sum(1 for line in listed.splitlines() if line.startswith("/srv/cgi")))
        again = _module_once(container, "selinux_context", {"path": five})
        bench.facts["5 roots: second run"] = "changed=%s" % again.get("changed")
    finally:
        container.remove()
    bench.ratio("5 roots: module / one semanage call", "5 roots: selinux_context (module)",
                "one semanage fcontext -a call", "<=", 1.5)
    bench.ratio("1 root: module / one semanage call", "1 root: selinux_context (module)",
                "one semanage fcontext -a call", "<=", 1.5, scope=False)
    bench.ratio("5 roots: 10 separate calls / module", "5 roots: separate semanage calls (10)",
                "5 roots: selinux_context (module)", ">=", 1.0, scope=False)
    bench.ratio("5 roots with relabel: module / one semanage call",
                "5 roots: selinux_context with relabel (module)", "one semanage fcontext -a call",
                "<=", 1.5, scope=False)
    return bench


# --- B6 ----------------------------------------------------------------------------------

RECIPE_BLOCK = """<DirectoryMatch "^/usr/lib/cgi-bin/(.+/)?__pycache__/">
    Require all denied
    Options -ExecCGI -Indexes
</DirectoryMatch>"""


def _recipe_tasks():
    """What a user writes today with builtin modules (and community.general.sefcontext)."""
    return [
        {"name": "Compile the CGI tree", "ansible.builtin.command": {
            "argv": ["python3", "-m", "compileall", "-q", CGI_ROOT]}},
        {"name": "Give the tree to the web server user", "ansible.builtin.file": {
            "path": CGI_ROOT, "state": "directory", "recurse": True, "owner": WEB_USER, "group": WEB_USER}},
        {"name": "SELinux file contexts", "community.general.sefcontext": {
            "target": "{{ item.target }}", "setype": "{{ item.setype }}", "state": "present",
            # Kernel SELinux is off on these machines; the rules are still recorded.
            "ignore_selinux_state": True},
         "loop": [{"target": CGI_ROOT + "(/.*)?", "setype": "httpd_sys_script_exec_t"},
                  {"target": CGI_ROOT + "(/.*)?/__pycache__(/.*)?", "setype": "httpd_sys_rw_content_t"}]},
        {"name": "Relabel the tree", "ansible.builtin.command": {"argv": ["restorecon", "-R", CGI_ROOT]}},
        {"name": "Deny web access to the caches", "ansible.builtin.blockinfile": {
            "path": "/etc/apache2/apache2.conf", "marker": "# {mark} pycache recipe", "block": RECIPE_BLOCK}},
    ]


CALLBACK_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "callback_plugins")
# Actions that run on the controller only (no module is sent to the host).
CONTROLLER_ACTIONS = {"assert", "debug", "fail", "include_tasks", "import_tasks", "include_vars", "validate_argument_spec",
                      "include_role", "meta", "set_fact", "add_host", "group_by", "set_stats"}


def _short_action(action):
    for prefix in ("ansible.builtin.", "ansible.legacy."):
        if action.startswith(prefix):
            return action[len(prefix):]
    return action


def _task_log(ctx, name):
    """Environment that makes the task_shape callback write to a fresh file; the path."""
    path = os.path.join(ctx.workdir, "%s.tasks.jsonl" % name)
    if os.path.exists(path):
        os.unlink(path)
    return {"ANSIBLE_CALLBACK_PLUGINS": CALLBACK_DIR, "ANSIBLE_CALLBACKS_ENABLED": "task_shape",
            "PYCGI_BENCH_TASK_LOG": path}, path


def _read_task_log(path):
    with open(path) as handle:
        return [json.loads(line) for line in handle if line.strip()]


def _noop_tasks(records):
    """The no-op play's tasks: the same shape as the recorded run with the work taken out. A
    task that ran a module on the host becomes ansible.builtin.ping (with as many loop items),
    a controller-side task a debug message, a skipped task a skipped one. Fact gathering is
    the play's own (gather_facts, as in site.yml)."""
    tasks = []
    for number, record in enumerate(records):
        action = _short_action(record["action"])
        if action in ("gather_facts", "setup") and record["name"] == "Gathering Facts":
            continue
        task = {"name": "no-op %d (%s)" % (number, record["name"])}
        if record["outcome"] == "skipped":
            task.update({"ansible.builtin.debug": {"msg": "skipped"}, "when": False})
        elif action in CONTROLLER_ACTIONS:
            task["ansible.builtin.debug"] = {"msg": "no-op"}
        else:
            task["ansible.builtin.ping"] = {}
            if record["items"]:
                task["loop"] = list(range(record["items"]))
        tasks.append(task)
    return tasks


def _excess_list(site, noop):
    """[(seconds over the no-op twin, record)] of the site.yml run's tasks, largest first."""
    twin = {}
    for record in noop:
        if record["name"].startswith("no-op ") and " (" in record["name"]:
            twin[record["name"].split(" (", 1)[1][:-1]] = record["seconds"]
        elif record["name"] == "Gathering Facts":
            twin["Gathering Facts"] = record["seconds"]
    extra = [(r["seconds"] - twin[r["name"]], r) for r in site if r["name"] in twin]
    extra.sort(key=lambda item: -item[0])
    return extra


def _profile_in_container(container, module, args, lines=16):
    """The module process under cProfile inside the container: the top of the profile."""
    step = _module_step(module, args)
    argv = step["argv"][:1] + ["-m", "cProfile", "-o", "/root/bench/profile.out"] + step["argv"][1:]
    container.exec(*argv, env=step["env"])
    code = ("import pstats, io; buf = io.StringIO(); pstats.Stats('/root/bench/profile.out', stream=buf)"
            ".sort_stats('cumulative').print_stats(80); print(buf.getvalue())")
    text = container.exec(PYTHON, "-c", code).stdout
    rows = text[text.find("   ncalls"):].rstrip().splitlines()
    noise = ("<frozen", "builtins.exec", "<string>:1", "builtins.__import__")
    kept = [row.replace(LIB_DIR + "/", "") for row in rows[1:] if not any(n in row for n in noise)]
    return "\n".join(rows[:1] + kept[:lines])


def _excess(site, noop, count=6):
    """The tasks of the site.yml run that cost most over their no-op counterparts."""
    return ", ".join("%s +%.1f s" % (record["name"], seconds) for seconds, record in _excess_list(site, noop)[:count])


def _slowest(records, count=6):
    ranked = sorted(records, key=lambda r: -r["seconds"])[:count]
    return ", ".join("%s %.1f s" % (r["name"], r["seconds"]) for r in ranked)


PIPELINING = "pipelining: "
RECIPE_SCOPE = "site.yml re-run, the recipe's scope"


def b6_site(ctx, synthetic_tree):
    bench = Bench("B6", "whole site.yml re-run, nothing changed, 10,000-module tree",
                  "a play of as many no-op tasks (Ansible's own floor); the builtin recipe a user "
                  "writes today (command: compileall, file: recurse, sefcontext loop, restorecon, blockinfile); "
                  "each with Ansible's default connection settings and with pipelining; site.yml also with "
                  "only the recipe's scope (no Apache installation, service, smoke test or report)",
                  "<= 1.3x the no-op play; faster than the recipe; changed=0 where the recipe cannot")
    tree = os.path.join(ctx.workdir, "b6tree")
    shutil.rmtree(tree, ignore_errors=True)
    shutil.copytree(synthetic_tree, tree, ignore=shutil.ignore_patterns("__pycache__"))
    for name in os.listdir(ctx.example_app):
        src = os.path.join(ctx.example_app, name)
        if os.path.isdir(src):
            shutil.copytree(src, os.path.join(tree, name), ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, tree)
    bench.facts["tree"] = "%(sources)d Python sources in %(dirs)d directories" % trees.tree_stats(tree)
    container = start_container()
    try:
        _copy_tree(ctx, container, tree, CGI_ROOT)
        host = {"ansible_connection": "containers.podman.podman",
                "ansible_python_interpreter": PYTHON,
                # podman exec is root already; the image has no sudo.
                "ansible_become": False,
                # Ansible's default, whatever the project's ansible.cfg says.
                "ansible_pipelining": False}
        inventory = write_yaml(os.path.join(ctx.workdir, "b6-inventory.yml"),
                               {"webservers": {"hosts": {container.name: host}}})
        # The same host with pipelining (one connection call per module instead of four
        # with the podman connection): how most sites run Ansible over SSH.
        piped = write_yaml(os.path.join(ctx.workdir, "b6-inventory-pipelining.yml"),
                           {"webservers": {"hosts": {container.name: dict(host, ansible_pipelining=True)}}})
        variables = write_yaml(os.path.join(ctx.workdir, "b6-vars.yml"), {
            "pycgi_ownership_scope": "tree",
            "pycgi_smoke_urls": [{"url": "http://localhost/cgi-bin/hello.py",
                                  "contains": "pycgi example application"}]})
        # site.yml doing only what the recipe does (compile, own, label, deny): no Apache
        # installation, service or smoke test, no report.
        recipe_scope = write_yaml(os.path.join(ctx.workdir, "b6-vars-recipe-scope.yml"), {
            "pycgi_ownership_scope": "tree", "pycgi_manage_httpd": False, "pycgi_report": False})
        site = ctx.site
        first = ctx.ansible.run_playbook(site, inventory, variables)[0]
        env, log = _task_log(ctx, "site-shape")
        second = ctx.ansible.run_playbook(site, inventory, variables, env)[0]
        shape = _read_task_log(log)
        bench.facts["site.yml first run"] = "ok=%(ok)d changed=%(changed)d skipped=%(skipped)d" % first
        noop = write_yaml(os.path.join(ctx.workdir, "b6-noop.yml"), [{
            "name": "No-op tasks", "hosts": "webservers", "become": True, "gather_facts": True,
            "gather_subset": ["min"], "tasks": _noop_tasks(shape)}])
        recipe = write_yaml(os.path.join(ctx.workdir, "b6-recipe.yml"), [{
            "name": "Builtin recipe", "hosts": "webservers", "become": True, "gather_facts": True,
            "gather_subset": ["min"], "tasks": _recipe_tasks()}])
        recipe_first = ctx.ansible.run_playbook(recipe, inventory)[0]
        bench.facts["recipe first run"] = "ok=%(ok)d changed=%(changed)d" % recipe_first
        # The recipe's compileall also caches what precompile leaves alone (entry scripts),
        # as root: one more site.yml run takes those over, then both sides are settled.
        ctx.ansible.run_playbook(site, inventory, variables)
        recaps, logs = {}, {}

        def runner(name, playbook, extra=None, hosts=inventory):
            def run():
                env, logs[name] = _task_log(ctx, re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-"))
                recaps[name] = ctx.ansible.run_playbook(playbook, hosts, extra, env)[0]
            return {"name": name, "run": run}
        ctx.ansible.run_playbook(site, inventory, recipe_scope)
        variants = []
        for prefix, hosts in (("", inventory), (PIPELINING, piped)):
            variants += [
                runner(prefix + "site.yml re-run", site, variables, hosts),
                runner(prefix + "no-op play", noop, None, hosts),
                runner(prefix + "builtin recipe re-run", recipe, None, hosts),
                runner(prefix + RECIPE_SCOPE, site, recipe_scope, hosts),
            ]
        times = interleave(variants, ctx.rounds["B6"])
        bench.add("", times)
        for name, summary in recaps.items():
            bench.facts["%s: recap" % name] = "ok=%(ok)d changed=%(changed)d skipped=%(skipped)d" % summary
        bench.facts["tasks in the site.yml re-run"] = "%d ok, %d skipped; the no-op play has the same shape: %s" % (
            second["ok"], second["skipped"], ", ".join(
                "%s%s" % (_short_action(r["action"]), " x%d" % r["items"] if r["items"] else "")
                for r in shape if r["outcome"] != "skipped"))
        for name, path in logs.items():
            bench.facts["%s: slowest tasks (last run)" % name] = _slowest(_read_task_log(path))
        bench.facts["site.yml re-run: time over its no-op twin, per task (last runs)"] = _excess(
            _read_task_log(logs["site.yml re-run"]), _read_task_log(logs["no-op play"]))
        # The task that costs most over its no-op twin, when it is one of the collection's
        # modules: profiled once more, inside the container, with the arguments the role gave it.
        for seconds, record in _excess_list(_read_task_log(logs["site.yml re-run"]), _read_task_log(logs["no-op play"]))[:1]:
            module = record["action"].rsplit(".", 1)[-1]
            if record["action"].startswith("pycgi.hosting.") and record.get("module_args"):
                args = {k: v for k, v in record["module_args"].items() if v is not None}
                _install_module_runtime(ctx, container)
                bench.note("Profile of the task that costs most over its no-op twin (%s, +%.1f s): `%s` run again "
                           "in the container with the role's arguments, cProfile, top by cumulative time:\n\n```\n%s\n```"
                           % (record["name"], seconds, module, _profile_in_container(container, module, args)))
        bench.checks = []
        for name in ("site.yml re-run", RECIPE_SCOPE, PIPELINING + "site.yml re-run"):
            bench.checks.append({"label": "%s reports changed=0" % name, "value": "changed=%d" % recaps[name]["changed"],
                                 "met": recaps[name]["changed"] == 0})
        bench.checks.append({"label": "builtin recipe re-run reports changed=0",
                             "value": "changed=%d" % recaps["builtin recipe re-run"]["changed"],
                             "met": recaps["builtin recipe re-run"]["changed"] == 0, "informative": True})
    finally:
        container.remove()
    for prefix in ("", PIPELINING):
        bench.ratio(prefix + "site.yml / no-op play", prefix + "site.yml re-run", prefix + "no-op play", "<=", 1.3)
        bench.ratio(prefix + "site.yml / builtin recipe", prefix + "site.yml re-run", prefix + "builtin recipe re-run",
                    "<=", 1.0)
        # The no-op twin of site.yml against the recipe: what the play's shape alone (its
        # number of tasks, each a round trip through the connection) costs before any module works.
        bench.ratio(prefix + "no-op play / builtin recipe", prefix + "no-op play", prefix + "builtin recipe re-run",
                    "<=", 1.0, scope=False)
        # Like for like: site.yml with what the recipe leaves out (installing and starting
        # Apache, the smoke test, the report) turned off.
        bench.ratio(prefix + "site.yml in the recipe's scope / builtin recipe", prefix + RECIPE_SCOPE,
                    prefix + "builtin recipe re-run", "<=", 1.0, scope=False)
    return bench
