"""B8: site.yml on a fleet of 1 to 16 containers of the test image, and the builtin recipe.

Each variant is one `ansible-playbook` run on this machine against N containers through the
podman connection, with as many forks as hosts. What a run costs is read three ways:

- wall time of `ansible-playbook`;
- controller CPU seconds: the rusage of this process's children across the run (Ansible, its
  forks and the `podman exec` clients they start: the connection's share on the controller);
- host CPU seconds: the cpuacct accounting of each container's cgroup across the run (every
  process of the container, the ones `podman exec` starts included), summed over the hosts.

The per-host cost is (controller + host CPU) / N. Containers are shared by both playbooks:
site.yml manages the stock root, the recipe its own directory.
"""
import json
import os
import random
import re
import resource
import shutil
import subprocess
import time
import uuid

from benchlib import trees
from benchlib.ansible_runs import AnsibleFailed, write_yaml
from benchlib.container import _copy_tree  # pylint: disable=protected-access
from benchlib.results import Bench

from harness.podman import Container, podman, test_image

CGI_ROOT = "/usr/lib/cgi-bin"
RECIPE_ROOT = "/srv/cgi-recipe"
WEB_USER = "www-data"
PYTHON = "/usr/bin/python3"
COUNTS = {"full": (1, 2, 4, 8, 16), "quick": (1, 4, 16)}
# The recipe's copy makes one round trip per file and host (copy's remote stat): it is measured
# up to this many hosts.
RECIPE_MAX = {"full": 4, "quick": 1}
PACKAGES, MODULES = 2, 50
RECAP = re.compile(r"^(?P<host>\S+)\s+:\s+ok=(?P<ok>\d+)\s+changed=(?P<changed>\d+)\s+"
                   r"unreachable=(?P<unreachable>\d+)\s+failed=(?P<failed>\d+)", re.M)
RECIPE_BLOCK = """<DirectoryMatch "^%s/(.+/)?__pycache__/">
    Require all denied
</DirectoryMatch>""" % RECIPE_ROOT


def make_source(example_app, dest):
    """The example application plus a generated package imported by nobody: about 110 files,
    a small CGI tree (the recipe's copy costs a round trip per file and host)."""
    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(example_app, dest, ignore=shutil.ignore_patterns("__pycache__"))
    rng = random.Random(20261205)
    for package in range(PACKAGES):
        directory = os.path.join(dest, "fleetlib", "pkg%d" % package)
        os.makedirs(directory)
        with open(os.path.join(directory, "__init__.py"), "w") as handle:
            handle.write("")
        for index in range(MODULES):
            with open(os.path.join(directory, "m%03d.py" % index), "w") as handle:
                handle.write(trees._module_text(rng, "fleetlib.pkg%d" % package, index))  # pylint: disable=protected-access
    with open(os.path.join(dest, "fleetlib", "__init__.py"), "w") as handle:
        handle.write("")
    return dest


def push_one_file(source, counter):
    """A one-file code push: a new size and mtime for one module."""
    path = os.path.join(source, "fleetlib", "pkg0", "m000.py")
    with open(path, "a") as handle:
        handle.write("PUSH_%d = %d\n" % (counter, counter))


def start_fleet(count, containers, timeout=600, spares=2):
    """Starts ``count`` containers of the test image (and ``spares`` more) at once, appended to
    ``containers`` for the caller to remove, waits until systemd is up in ``count`` of them and
    removes the others: on a busy machine one systemd in a dozen can stall its boot, and booting
    them side by side takes less than one after the other. Returns the ``count`` that are up."""
    for _number in range(count + spares):
        name = "pycgi-b8-%s" % uuid.uuid4().hex[:8]
        podman("run", "-d", "--name", name, "--hostname", name, "--systemd=always",
               "--tmpfs", "/run", "--tmpfs", "/tmp:exec", test_image(), "/sbin/init")
        containers.append(Container(name))
    deadline = time.monotonic() + timeout
    ready = []
    while len(ready) < count:
        for container in containers:
            if container in ready:
                continue
            state = container.exec("systemctl", "is-system-running", check=False).stdout.strip()
            if state in ("running", "degraded"):
                ready.append(container)
        if len(ready) < count and time.monotonic() > deadline:
            raise RuntimeError(
                "systemd came up in %d of %d containers within %d s" % (len(ready), len(containers), timeout))
        time.sleep(1)
    ready = ready[:count]
    for container in [c for c in containers if c not in ready]:
        container.remove()
        containers.remove(container)
    return ready


def _cpuacct_file(name):
    pid = podman("inspect", "-f", "{{.State.Pid}}", name).stdout.strip()
    with open("/proc/%s/cgroup" % pid) as handle:
        lines = handle.read().splitlines()
    for line in lines:
        _number, controllers, path = line.split(":", 2)
        if "cpuacct" in controllers.split(","):
            for mount in ("/sys/fs/cgroup/cpuacct", "/sys/fs/cgroup/cpu,cpuacct"):
                if os.path.exists(mount + path + "/cpuacct.usage"):
                    return ("v1", mount + path + "/cpuacct.usage")
    for line in lines:
        if line.startswith("0::"):
            return ("v2", "/sys/fs/cgroup%s/cpu.stat" % line[3:])
    raise RuntimeError("no CPU accounting found for container %s (cgroups %s)" % (name, lines))


def cpu_seconds(accounting):
    kind, path = accounting
    with open(path) as handle:
        text = handle.read()
    if kind == "v1":
        return int(text.strip()) / 1e9
    return int(dict(line.split() for line in text.splitlines())["usage_usec"]) / 1e6


def children_cpu():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class Fleet:
    def __init__(self, ctx, source, names):
        self.ctx = ctx
        self.source = source
        self.names = names
        self.accounting = {name: _cpuacct_file(name) for name in names}
        self.env = {"ANSIBLE_PIPELINING": "True", "PYCGI_RELEASE_CACHE": os.path.join(ctx.workdir, "release-cache")}

    def inventory(self, count):
        hosts = {name: {"ansible_connection": "containers.podman.podman", "ansible_python_interpreter": PYTHON,
                        "ansible_become": False, "ansible_pipelining": True} for name in self.names[:count]}
        return write_yaml(os.path.join(self.ctx.workdir, "b8-inventory-%d.yml" % count),
                          {"webservers": {"hosts": hosts}})

    def run(self, playbook, count, extra=None):
        """One timed run on the first ``count`` hosts: (wall, controller CPU, host CPU summed,
        {host: recap})."""
        names = self.names[:count]
        env = dict(self.env, ANSIBLE_FORKS=str(count))
        before = {name: cpu_seconds(self.accounting[name]) for name in names}
        controller = children_cpu()
        started = time.monotonic()
        run_env = dict(self.ctx.ansible.env)
        run_env.update(env)
        proc = subprocess.run(self.ctx.ansible.playbook_argv(playbook, self.inventory(count), extra), env=run_env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False)
        wall = time.monotonic() - started
        controller = children_cpu() - controller
        host = sum(cpu_seconds(self.accounting[name]) - before[name] for name in names)
        print("   %s on %d hosts: %.0f s wall, %.1f s controller CPU, %.1f s host CPU (load %.1f)"
              % (os.path.basename(playbook), count, wall, controller, host, os.getloadavg()[0]), flush=True)
        recaps = {m.group("host"): {k: int(v) for k, v in m.groupdict().items() if k != "host"}
                  for m in RECAP.finditer(proc.stdout)}
        if proc.returncode != 0 or set(recaps) != set(names) or any(
                r["failed"] or r["unreachable"] for r in recaps.values()):
            raise AnsibleFailed("%s on %d hosts failed (rc=%d):\n%s" % (playbook, count, proc.returncode,
                                                                        proc.stdout[-6000:]))
        return wall, controller, host, recaps


def _recipe(workdir, source):
    tasks = [
        {"name": "Copy the CGI tree", "ansible.builtin.copy": {
            "src": source.rstrip("/") + "/", "dest": RECIPE_ROOT + "/", "mode": "preserve"}},
        {"name": "Compile the CGI tree", "ansible.builtin.command": {
            "argv": [PYTHON, "-m", "compileall", "-q", RECIPE_ROOT]}},
        {"name": "Give the tree to the web server user", "ansible.builtin.file": {
            "path": RECIPE_ROOT, "state": "directory", "recurse": True, "owner": WEB_USER, "group": WEB_USER}},
        {"name": "Deny web access to the caches", "ansible.builtin.blockinfile": {
            "path": "/etc/apache2/apache2.conf", "marker": "# {mark} pycache recipe", "block": RECIPE_BLOCK}},
    ]
    return write_yaml(os.path.join(workdir, "b8-recipe.yml"), [{
        "name": "Builtin recipe", "hosts": "webservers", "gather_facts": False, "tasks": tasks}])


def seed_recipe(ctx, container, source):
    """Untimed: the recipe's end state on a host without a first run of the recipe (whose copy
    costs two round trips per file): the tree copied in one archive, compiled, owned by the web
    server user, and the block blockinfile writes."""
    if container.exec("test", "-d", RECIPE_ROOT, check=False).returncode == 0:
        container.exec("rm", "-rf", RECIPE_ROOT)
    _copy_tree(ctx, container, source, RECIPE_ROOT)
    container.exec(PYTHON, "-m", "compileall", "-q", RECIPE_ROOT)
    container.exec("chown", "-R", "%s:%s" % (WEB_USER, WEB_USER), RECIPE_ROOT)
    conf = "/etc/apache2/apache2.conf"
    if "# BEGIN pycache recipe" not in container.exec("cat", conf).stdout:
        container.exec("tee", "-a", conf, input="# BEGIN pycache recipe\n%s\n# END pycache recipe\n" % RECIPE_BLOCK)


def _record(bench, series, wall, controller, host, count):
    for measure, value in (("wall", wall), ("controller CPU", controller), ("host CPU", host),
                           ("CPU per host", (controller + host) / count)):
        bench.times.setdefault("%s N=%d: %s" % (series, count, measure), []).append(value)


def b8_fleet(ctx, counts, rounds, recipe_max=RECIPE_MAX["full"]):
    bench = Bench("B8", "site.yml on 1-16 hosts (containers, podman connection, forks = hosts): nothing changed, "
                  "and a one-file push",
                  "the builtin recipe (copy of the tree, command: compileall, file: recurse, blockinfile)",
                  "CPU per host (controller + host) at 16 hosts <= 1.2x at 1 host; <= 0.5x the recipe's at every N")
    recipe_counts = [n for n in counts if n <= recipe_max]
    source = make_source(ctx.example_app, os.path.join(ctx.workdir, "b8-source"))
    shutil.rmtree(os.path.join(ctx.workdir, "release-cache"), ignore_errors=True)
    bench.facts["source"] = "%(sources)d Python sources in %(dirs)d directories (examples/app + a generated package)" \
        % trees.tree_stats(source)
    bench.facts["load average at the start"] = "%.2f, %.2f, %.2f" % os.getloadavg()
    bench.facts["hosts counts"] = "site.yml: %s; recipe: %s (its copy costs a round trip per file and host)" % (
        ", ".join(map(str, counts)), ", ".join(map(str, recipe_counts)))
    variables = write_yaml(os.path.join(ctx.workdir, "b8-vars.yml"), {"pycgi_source": source})
    recipe = _recipe(ctx.workdir, source)
    containers = []
    pushes = 0
    try:
        started = time.monotonic()
        start_fleet(max(counts), containers)
        containers.sort(key=lambda c: c.name)
        bench.facts["%d containers started in" % len(containers)] = "%.0f s" % (time.monotonic() - started)
        fleet = Fleet(ctx, source, [c.name for c in containers])
        curve = []
        for count in counts:
            # Set-up (not timed): the first release on the hosts new in this count.
            first = fleet.run(ctx.site, count, variables)
            bench.facts["site.yml N=%d: set-up run" % count] = "%.0f s wall" % first[0]
            for _round in range(rounds):
                wall, controller, host, recaps = fleet.run(ctx.site, count, variables)
                _record(bench, "site.yml nothing changed", wall, controller, host, count)
                changed = sum(r["changed"] for r in recaps.values())
                bench.facts["site.yml nothing changed N=%d: changed" % count] = changed
                pushes += 1
                push_one_file(source, pushes)
                wall, controller, host, recaps = fleet.run(ctx.site, count, variables)
                _record(bench, "site.yml one-file push", wall, controller, host, count)
            if count in recipe_counts:
                for container in containers[:count]:
                    seed_recipe(ctx, container, source)
                for _round in range(rounds):
                    wall, controller, host, recaps = fleet.run(recipe, count)
                    _record(bench, "recipe nothing changed", wall, controller, host, count)
                    bench.facts["recipe nothing changed N=%d: changed" % count] = sum(
                        r["changed"] for r in recaps.values())
                    pushes += 1
                    push_one_file(source, pushes)
                    wall, controller, host, recaps = fleet.run(recipe, count)
                    _record(bench, "recipe one-file push", wall, controller, host, count)
            curve.append(count)
            print("   N=%d done, load %.2f" % (count, os.getloadavg()[0]), flush=True)
        # The release task's own report on the controller's caches, from the last push.
        bench.facts["load average at the end"] = "%.2f, %.2f, %.2f" % os.getloadavg()
    finally:
        for container in containers:
            container.remove()
    low, high = min(counts), max(counts)
    for case in ("nothing changed", "one-file push"):
        bench.ratio("%s: CPU per host N=%d / N=%d" % (case, high, low), "site.yml %s N=%d: CPU per host" % (case, high),
                    "site.yml %s N=%d: CPU per host" % (case, low), "<=", 1.2)
        for count in recipe_counts:
            bench.ratio("%s N=%d: site.yml / recipe, CPU per host" % (case, count),
                        "site.yml %s N=%d: CPU per host" % (case, count),
                        "recipe %s N=%d: CPU per host" % (case, count), "<=", 0.5)
            bench.ratio("%s N=%d: site.yml / recipe, wall" % (case, count), "site.yml %s N=%d: wall" % (case, count),
                        "recipe %s N=%d: wall" % (case, count), "<=", 1.0, scope=False)
    bench.facts["curve"] = json.dumps(curve)
    return bench


def write_curve_chart(bench_dict, path):
    """Two panels: CPU seconds per host (controller + host) and wall time, against N."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    times = bench_dict["times"]
    series = sorted({key.split(" N=")[0] for key in times})
    fig, (cpu_ax, wall_ax) = plt.subplots(1, 2, figsize=(11, 4.2))
    for name in series:
        counts = sorted({int(key.split(" N=")[1].split(":")[0]) for key in times if key.startswith(name + " N=")})
        style = "-" if name.startswith("site.yml") else "--"
        for axis, measure in ((cpu_ax, "CPU per host"), (wall_ax, "wall")):
            values = [times["%s N=%d: %s" % (name, n, measure)]["median"] for n in counts]
            axis.plot(counts, values, style, marker="o", label=name)
    cpu_ax.set_title("CPU seconds per host (controller + host)")
    wall_ax.set_title("wall time of ansible-playbook (s)")
    for axis in (cpu_ax, wall_ax):
        axis.set_xscale("log", base=2)
        axis.set_xticks([1, 2, 4, 8, 16])
        axis.set_xticklabels(["1", "2", "4", "8", "16"])
        axis.set_xlabel("hosts (forks = hosts)")
        axis.grid(True, alpha=0.3)
    cpu_ax.legend(fontsize=8)
    fig.suptitle("B8: site.yml on a fleet of containers, 2 cores (%s)" % bench_dict.get("run", ""))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
