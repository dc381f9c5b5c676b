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

Then the same site.yml over SSH, on the first hosts of the same containers (their addresses on
podman's bridge network): openssh-server and sudo installed with apt, a login user with a key
of the run's own and passwordless sudo (untimed). Three settings, interleaved round by round
with the podman connection: Ansible's defaults (`ssh_args` with ControlMaster=auto and
ControlPersist=60s, no pipelining), the defaults with pipelining, and no connection reuse. The
controller CPU then includes the ssh clients and the ControlPersist masters (which leave the
process tree, so their CPU is read from /proc before each run's masters are stopped); the
host CPU includes sshd and sudo.
"""
import collections
import json
import os
import random
import re
import resource
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import traceback
import uuid

from harness.podman import Container, podman, test_image

from benchlib import trees
from benchlib.ansible_runs import AnsibleFailed, write_yaml
from benchlib.container import _copy_tree  # pylint: disable=protected-access
from benchlib.results import Bench

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
# Ansible's default ssh_args (ansible-core's ssh connection plugin), and the same without
# connection reuse. Every SSH variant sets ssh_args and pipelining itself, so neither the
# project's ansible.cfg (pipelining = True) nor the environment decides them.
DEFAULT_SSH_ARGS = "-C -o ControlMaster=auto -o ControlPersist=60s"
NO_REUSE_SSH_ARGS = "-C -o ControlMaster=no -o ControlPath=none"
SSH_USER = "deploy"
SSH_COUNTS = {"full": (1, 4), "quick": (1,)}
SSH_ROUNDS = {"full": 3, "quick": 1}
PODMAN = "podman connection"
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
        self.ssh = None

    def inventory(self, count):
        hosts = {name: {"ansible_connection": "containers.podman.podman", "ansible_python_interpreter": PYTHON,
                        "ansible_become": False, "ansible_pipelining": True} for name in self.names[:count]}
        return write_yaml(os.path.join(self.ctx.workdir, "b8-inventory-%d.yml" % count),
                          {"webservers": {"hosts": hosts}})

    def run(self, playbook, count, extra=None, ssh=None):
        """One timed run on the first ``count`` hosts, through the podman connection or, with
        ``ssh`` (an SshVariant), over SSH with its settings."""
        names = self.names[:count]
        env = dict(self.env, ANSIBLE_FORKS=str(count))
        inventory = self.inventory(count)
        control_dir = None
        if ssh is not None:
            control_dir = self.ssh.control_dir()
            env.update(ssh.env(control_dir))
            inventory = self.ssh.inventory(names)
        before = {name: cpu_seconds(self.accounting[name]) for name in names}
        controller = children_cpu()
        started = time.monotonic()
        run_env = dict(self.ctx.ansible.env)
        run_env.update(env)
        proc = subprocess.run(self.ctx.ansible.playbook_argv(playbook, inventory, extra), env=run_env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False)
        wall = time.monotonic() - started
        controller = children_cpu() - controller
        host = sum(cpu_seconds(self.accounting[name]) - before[name] for name in names)
        masters = []
        if control_dir is not None:
            # The ControlPersist masters left the process tree (rusage misses them): their CPU
            # from /proc, then they are stopped, so that the next run starts without them.
            masters = stop_masters(control_dir)
            controller += sum(masters)
        print("   %s%s on %d hosts: %.0f s wall, %.1f s controller CPU, %.1f s host CPU (load %.1f)"
              % (os.path.basename(playbook), " (%s)" % ssh.name if ssh else "", count, wall, controller, host,
                 os.getloadavg()[0]), flush=True)
        recaps = {m.group("host"): {k: int(v) for k, v in m.groupdict().items() if k != "host"}
                  for m in RECAP.finditer(proc.stdout)}
        if proc.returncode != 0 or set(recaps) != set(names) or any(
                r["failed"] or r["unreachable"] for r in recaps.values()):
            raise AnsibleFailed("%s on %d hosts failed (rc=%d):\n%s" % (playbook, count, proc.returncode,
                                                                        proc.stdout[-6000:]))
        return Run(wall, controller, host, recaps, masters)


Run = collections.namedtuple("Run", "wall controller host recaps masters")


class SshVariant(collections.namedtuple("SshVariant", "name ssh_args pipelining")):
    """One way of running over SSH; ``env`` sets every setting the comparison depends on."""

    @property
    def persistent(self):
        return "controlpersist" in self.ssh_args.lower()

    def env(self, control_dir):
        pipelining = str(bool(self.pipelining))
        return {"ANSIBLE_SSH_ARGS": self.ssh_args, "ANSIBLE_SSH_EXTRA_ARGS": "",
                "ANSIBLE_PIPELINING": pipelining, "ANSIBLE_SSH_PIPELINING": pipelining,
                "ANSIBLE_SSH_CONTROL_PATH_DIR": control_dir, "ANSIBLE_HOST_KEY_CHECKING": "False"}


SSH_VARIANTS = (SshVariant("ssh defaults", DEFAULT_SSH_ARGS, False),
                SshVariant("ssh pipelining", DEFAULT_SSH_ARGS, True),
                SshVariant("ssh no reuse", NO_REUSE_SSH_ARGS, False))


def _process_cpu(pid):
    """User + system CPU seconds of one process, from /proc/PID/stat (fields 14 and 15)."""
    with open("/proc/%d/stat" % pid) as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / float(os.sysconf("SC_CLK_TCK"))


def ssh_masters(control_dir):
    """{pid: CPU seconds} of the ssh ControlPersist masters whose sockets are in ``control_dir``
    (a master names its socket in its process title: `ssh: SOCKET [mux]`)."""
    found = {}
    prefix = "ssh: %s/" % control_dir
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % entry, "rb") as handle:
                title = handle.read().decode("utf-8", "replace")
            if title.startswith(prefix):
                found[int(entry)] = _process_cpu(int(entry))
        except (OSError, IndexError, ValueError):
            continue  # gone meanwhile
    return found


def stop_masters(control_dir, timeout=10):
    """Stops the masters of ``control_dir`` (started by this run's ssh clients, by their pids);
    returns the CPU seconds each had used."""
    masters = ssh_masters(control_dir)
    for pid in masters:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + timeout
    while ssh_masters(control_dir) and time.monotonic() < deadline:
        time.sleep(0.1)
    return list(masters.values())


def container_address(name):
    """The container's address on its podman network (reachable from this machine on podman's
    bridge)."""
    data = json.loads(podman("inspect", name).stdout)[0]
    settings = data.get("NetworkSettings") or {}
    address = settings.get("IPAddress")
    for network in (settings.get("Networks") or {}).values():
        address = address or network.get("IPAddress")
    if not address:
        raise RuntimeError("container %s has no address on a podman network: SSH cannot reach it" % name)
    return address


def _wait_for_port(address, port=22, timeout=60):
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((address, port), timeout=5) as conn:
                if conn.recv(64).startswith(b"SSH-"):
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError("no SSH server answered on %s:%d within %d s" % (address, port, timeout))
        time.sleep(0.5)


class SshAccess:
    """Login over SSH to containers of the test image, as to a web server of a real fleet: a
    user with a key and passwordless sudo (without `requiretty`, Debian's default)."""

    def __init__(self, workdir):
        self.dir = os.path.join(workdir, "b8-ssh")
        shutil.rmtree(self.dir, ignore_errors=True)
        os.makedirs(self.dir)
        self.key = os.path.join(self.dir, "id_ed25519")
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "pycgi-b8", "-f", self.key],
                       check=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        # Control sockets under a short path (a socket's path is limited to 108 bytes).
        self.control_root = os.path.realpath(tempfile.mkdtemp(prefix="pycgi-b8-cp-"))
        self.addresses = {}

    def prepare(self, container):
        """Untimed: openssh-server and sudo from the Debian mirror, the user and its key, sshd."""
        with open(self.key + ".pub") as handle:
            public_key = handle.read()
        apt_env = {"DEBIAN_FRONTEND": "noninteractive"}
        container.exec("apt-get", "update", "-q", env=apt_env, timeout=900)
        container.exec("apt-get", "install", "-y", "-q", "--no-install-recommends", "openssh-server", "sudo",
                       env=apt_env, timeout=900)
        if container.exec("id", "-u", SSH_USER, check=False).returncode != 0:
            container.exec("useradd", "--create-home", "--shell", "/bin/bash", SSH_USER)
        home = "/home/" + SSH_USER
        container.exec("install", "-d", "-m", "0700", "-o", SSH_USER, "-g", SSH_USER, home + "/.ssh")
        container.put_file(home + "/.ssh/authorized_keys", public_key, mode=0o600,
                           owner="%s:%s" % (SSH_USER, SSH_USER))
        container.put_file("/etc/sudoers.d/" + SSH_USER, "%s ALL=(ALL) NOPASSWD: ALL\n" % SSH_USER, mode=0o440)
        container.exec("visudo", "-c", "-q", "-f", "/etc/sudoers.d/" + SSH_USER)
        container.exec("systemctl", "enable", "--now", "ssh")
        address = container_address(container.name)
        _wait_for_port(address)
        self.addresses[container.name] = address

    def inventory(self, names):
        """Each host by its inventory name (the container's, as through the podman connection:
        the controller's per-host release cache is the same) and its address. No
        ansible_pipelining here: the variant's environment decides it."""
        hosts = {name: {"ansible_host": self.addresses[name], "ansible_connection": "ansible.builtin.ssh",
                        "ansible_user": SSH_USER, "ansible_become": True,
                        "ansible_ssh_private_key_file": self.key,
                        "ansible_ssh_common_args": "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null",
                        "ansible_python_interpreter": PYTHON} for name in names}
        return write_yaml(os.path.join(self.dir, "inventory-%d.yml" % len(names)), {"webservers": {"hosts": hosts}})

    def control_dir(self):
        """A fresh directory for the control sockets of one run."""
        return tempfile.mkdtemp(dir=self.control_root)

    def close(self):
        for entry in os.listdir(self.control_root):
            stop_masters(os.path.join(self.control_root, entry))
        shutil.rmtree(self.control_root, ignore_errors=True)


def check_variant(ctx, ssh, name, variant):
    """Untimed: a ping with -vvv on one host proves the variant's settings are what the run
    uses: the ssh options on Ansible's command lines, and pipelining (no module file PUT).
    Returns (config file read, check entry)."""
    playbook = write_yaml(os.path.join(ssh.dir, "probe.yml"), [{
        "name": "Probe", "hosts": "webservers", "gather_facts": False,
        "tasks": [{"name": "Ping", "ansible.builtin.ping": {}}]}])
    control_dir = ssh.control_dir()
    env = dict(ctx.ansible.env)
    env.update(variant.env(control_dir))
    proc = subprocess.run(ctx.ansible.playbook_argv(playbook, ssh.inventory([name])) + ["-vvv"], env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False)
    masters = stop_masters(control_dir)
    config = re.search(r"^\s*(?:Using (\S+) as config file|config file = (\S+))", proc.stdout, re.M)
    commands = [line for line in proc.stdout.splitlines() if "SSH: EXEC ssh " in line]
    puts = sum(1 for line in proc.stdout.splitlines() if re.search(r"> PUT ", line))
    reuse_ok = bool(commands) and all(
        ("ControlPersist=60s" in line and "ControlMaster=auto" in line) if variant.persistent
        else ("ControlMaster=no" in line and "ControlPersist" not in line) for line in commands)
    pipelining_ok = (puts == 0) if variant.pipelining else (puts > 0)
    met = proc.returncode == 0 and reuse_ok and pipelining_ok and len(masters) == (1 if variant.persistent else 0)
    check = {"label": "%s: settings in effect (ping with -vvv)" % variant.name,
             "value": "rc=%d; %d ssh command(s) %s; %d module file PUT(s) (pipelining %s); %d ControlPersist master(s)"
                      % (proc.returncode, len(commands), "with " + variant.ssh_args if reuse_ok else "NOT as set",
                         puts, "on" if variant.pipelining else "off", len(masters)),
             "met": met}
    if not met:
        raise RuntimeError("%s is not in effect as set: %s\n%s" % (variant.name, check["value"], proc.stdout[-3000:]))
    return (config.group(1) or config.group(2)) if config else "none", check


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


def _record(bench, series, run, count):
    for measure, value in (("wall", run.wall), ("controller CPU", run.controller), ("host CPU", run.host),
                           ("CPU per host", (run.controller + run.host) / count)):
        bench.times.setdefault("%s N=%d: %s" % (series, count, measure), []).append(value)


def ssh_part(ctx, bench, fleet, containers, counts, rounds, variables, push):
    """site.yml over SSH in each of SSH_VARIANTS and through the podman connection, on the first
    ``count`` containers, the four interleaved (their order turning round by round). Returns the
    informative ratios to record: (label, numerator, denominator)."""
    started = time.monotonic()
    ssh = fleet.ssh = SshAccess(ctx.workdir)
    for container in containers[:max(counts)]:
        ssh.prepare(container)
    bench.facts["ssh set-up (untimed)"] = (
        "openssh-server and sudo installed with apt, user %s with a key and passwordless sudo, sshd started, "
        "in %d container(s): %.0f s" % (SSH_USER, max(counts), time.monotonic() - started))
    bench.facts["ssh variants"] = "; ".join(
        "%s: ssh_args `%s`, pipelining %s" % (v.name, v.ssh_args, "on" if v.pipelining else "off")
        for v in SSH_VARIANTS) + "; %s: as in the curve (pipelining on)" % PODMAN
    for variant in SSH_VARIANTS:
        config, check = check_variant(ctx, ssh, containers[0].name, variant)
        bench.checks.append(check)
    bench.facts["ansible.cfg read by the runs"] = "%s (its pipelining = True is overridden by every SSH variant's " \
        "environment: ANSIBLE_PIPELINING, ANSIBLE_SSH_ARGS)" % config
    variants = [None] + list(SSH_VARIANTS)
    masters = collections.defaultdict(list)
    unchanged = []
    for count in counts:
        first = fleet.run(ctx.site, count, variables, ssh=SSH_VARIANTS[0])
        bench.facts["ssh N=%d: set-up run (ssh defaults)" % count] = "%.0f s wall" % first.wall
        for number in range(rounds):
            turn = number % len(variants)
            for variant in variants[turn:] + variants[:turn]:
                name = variant.name if variant else PODMAN
                for case in ("nothing changed", "one-file push"):
                    if case == "one-file push":
                        push()
                    run = fleet.run(ctx.site, count, variables, ssh=variant)
                    _record(bench, "%s, %s" % (name, case), run, count)
                    if case == "nothing changed":
                        unchanged.append(sum(r["changed"] for r in run.recaps.values()))
                    if variant:
                        masters[name, count].append(len(run.masters))
                    if variant and variant.persistent:
                        bench.times.setdefault("%s, %s N=%d: ControlPersist masters' CPU (in the controller's)"
                                               % (name, case, count), []).append(sum(run.masters))
        print("   ssh N=%d done, load %.2f" % (count, os.getloadavg()[0]), flush=True)
    for variant in SSH_VARIANTS:
        expected = 1 if variant.persistent else 0
        found = [n == expected * count for count in counts for n in masters[variant.name, count]]
        bench.checks.append({
            "label": "%s: %s ControlPersist master per host after every timed run" % (
                variant.name, "one" if expected else "no"),
            "value": "masters per host: %s" % ", ".join(
                "N=%d: %s" % (count, ",".join("%g" % (n / count) for n in masters[variant.name, count]))
                for count in counts),
            "met": bool(found) and all(found)})
    bench.checks.append({"label": "over SSH and through podman, nothing changed reports changed=0",
                         "value": "changed per run: %s" % (", ".join(map(str, unchanged)) or "none"),
                         "met": bool(unchanged) and not any(unchanged)})
    return [("ssh N=%d %s: %s, %s" % (count, case, label, measure),
             "%s, %s N=%d: %s" % (numerator, case, count, measure),
             "%s, %s N=%d: %s" % (denominator, case, count, measure))
            for count in counts for case in ("nothing changed", "one-file push")
            for label, numerator, denominator in (("pipelining / defaults", "ssh pipelining", "ssh defaults"),
                                                  ("no reuse / defaults", "ssh no reuse", "ssh defaults"),
                                                  ("defaults / podman connection", "ssh defaults", PODMAN),
                                                  ("pipelining / podman connection", "ssh pipelining", PODMAN))
            for measure in ("CPU per host", "wall")]


def _extend(bench, kept, counts):
    """Starts ``bench`` from the kept B8 results (``--b8-extend``): their timings, facts, notes and
    checks stay; the ``counts`` measured now replace theirs."""
    for key, entry in kept.get("times", {}).items():
        if key.startswith(("site.yml ", "recipe ")) and _count_of(key) in counts:
            continue
        bench.times[key] = list(entry["values"])
    bench.facts.update(kept.get("facts", {}))
    bench.facts.pop("duration of this benchmark", None)
    bench.notes.extend(kept.get("notes", []))
    bench.checks.extend(kept.get("checks", []))
    return [(r["label"], r["numerator"], r["denominator"]) for r in kept.get("ratios", []) if r.get("op") is None
            and not r["label"].startswith(("nothing changed N=", "one-file push N="))]


def _count_of(key):
    """The host count in a timing key such as ``"recipe nothing changed N=8: wall"``."""
    return int(key.split(" N=")[1].split(":")[0])


def _counts_in(times, series):
    """The host counts timed for ``series`` (keys of ``times``), in order."""
    return sorted({_count_of(key) for key in times if key.startswith(series + " N=")})


def b8_fleet(ctx, counts, rounds, recipe_max=RECIPE_MAX["full"], ssh_counts=(), ssh_rounds=1, recipe_counts=None,
             kept=None):
    """``recipe_counts``: the counts the recipe is measured on (default: those up to
    ``recipe_max``). ``kept``: the B8 results of an earlier run, extended by this one's counts
    (its SSH part is kept as it was)."""
    bench = Bench("B8", "site.yml on 1-16 hosts (containers, podman connection, forks = hosts): nothing changed, "
                  "and a one-file push; then over SSH with Ansible's defaults, with pipelining, without connection "
                  "reuse",
                  "the builtin recipe (copy of the tree, command: compileall, file: recurse, blockinfile); over SSH, "
                  "the settings against each other and against the podman connection (informative)",
                  "CPU per host (controller + host) at 16 hosts <= 1.2x at 1 host; <= 0.5x the recipe's at every N")
    if recipe_counts is None:
        recipe_counts = [n for n in counts if n <= recipe_max]
    kept_ratios = _extend(bench, kept, set(counts) | set(recipe_counts)) if kept else []
    started_at = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    source = make_source(ctx.example_app, os.path.join(ctx.workdir, "b8-source"))
    shutil.rmtree(os.path.join(ctx.workdir, "release-cache"), ignore_errors=True)
    bench.facts["source"] = "%(sources)d Python sources in %(dirs)d directories (examples/app + a generated package)" \
        % trees.tree_stats(source)
    bench.facts["load average at the start" + (" (extension run)" if kept else "")] = \
        "%.2f, %.2f, %.2f" % os.getloadavg()
    bench.facts["hosts counts" + (" (extension run, %s)" % started_at if kept else "")] = (
        "site.yml: %s; recipe: %s (its copy costs a round trip per file and host); over SSH: %s (%d round(s))"
        % (", ".join(map(str, counts)), ", ".join(map(str, recipe_counts)), ", ".join(map(str, ssh_counts)) or "none",
           ssh_rounds))
    variables = write_yaml(os.path.join(ctx.workdir, "b8-vars.yml"), {"pycgi_source": source})
    recipe = _recipe(ctx.workdir, source)
    containers = []
    pushes = [0]

    def push():
        pushes[0] += 1
        push_one_file(source, pushes[0])

    fleet = None
    ssh_ratios = []
    try:
        started = time.monotonic()
        start_fleet(max(tuple(counts) + tuple(ssh_counts)), containers)
        containers.sort(key=lambda c: c.name)
        bench.facts["%d containers started in" % len(containers)] = "%.0f s" % (time.monotonic() - started)
        fleet = Fleet(ctx, source, [c.name for c in containers])
        curve = []
        for count in counts:
            # Set-up (not timed): the first release on the hosts new in this count.
            first = fleet.run(ctx.site, count, variables)
            bench.facts["site.yml N=%d: set-up run" % count] = "%.0f s wall" % first.wall
            for _round in range(rounds):
                run = fleet.run(ctx.site, count, variables)
                _record(bench, "site.yml nothing changed", run, count)
                changed = sum(r["changed"] for r in run.recaps.values())
                bench.facts["site.yml nothing changed N=%d: changed" % count] = changed
                push()
                _record(bench, "site.yml one-file push", fleet.run(ctx.site, count, variables), count)
            if count in recipe_counts:
                for container in containers[:count]:
                    seed_recipe(ctx, container, source)
                for _round in range(rounds):
                    run = fleet.run(recipe, count)
                    _record(bench, "recipe nothing changed", run, count)
                    bench.facts["recipe nothing changed N=%d: changed" % count] = sum(
                        r["changed"] for r in run.recaps.values())
                    push()
                    _record(bench, "recipe one-file push", fleet.run(recipe, count), count)
            curve.append(count)
            print("   N=%d done, load %.2f" % (count, os.getloadavg()[0]), flush=True)
        if ssh_counts:
            try:
                ssh_ratios = ssh_part(ctx, bench, fleet, containers, ssh_counts, ssh_rounds, variables, push)
            except Exception as exc:  # the curve stands without the SSH part
                bench.checks.append({"label": "site.yml over SSH measured", "value": str(exc).splitlines()[0][:300],
                                     "met": False})
                bench.note("The SSH part failed:\n\n```\n%s\n```" % traceback.format_exc()[-4000:])
        bench.facts["load average at the end" + (" (extension run)" if kept else "")] = \
            "%.2f, %.2f, %.2f" % os.getloadavg()
    finally:
        if fleet is not None and fleet.ssh is not None:
            fleet.ssh.close()
        for container in containers:
            container.remove()
    if kept:
        # The ratios over every count now measured, this run's and the kept ones.
        curve = _counts_in(bench.times, "site.yml nothing changed")
        recipe_counts = _counts_in(bench.times, "recipe nothing changed")
        ssh_ratios = kept_ratios + ssh_ratios
    low, high = min(curve), max(curve)
    for case in ("nothing changed", "one-file push"):
        bench.ratio("%s: CPU per host N=%d / N=%d" % (case, high, low), "site.yml %s N=%d: CPU per host" % (case, high),
                    "site.yml %s N=%d: CPU per host" % (case, low), "<=", 1.2)
        for count in recipe_counts:
            bench.ratio("%s N=%d: site.yml / recipe, CPU per host" % (case, count),
                        "site.yml %s N=%d: CPU per host" % (case, count),
                        "recipe %s N=%d: CPU per host" % (case, count), "<=", 0.5)
            bench.ratio("%s N=%d: site.yml / recipe, wall" % (case, count), "site.yml %s N=%d: wall" % (case, count),
                        "recipe %s N=%d: wall" % (case, count), "<=", 1.0, scope=False)
    for label, numerator, denominator in ssh_ratios:
        bench.ratio(label, numerator, denominator, "<=", 1.0, scope=False)
    bench.facts["curve"] = json.dumps(curve)
    return bench


def write_curve_chart(bench_dict, path):
    """CPU seconds per host (controller + host) and wall time against N for the podman curve and
    the recipe; with the SSH part, a third panel: CPU per host for each connection setting."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    times = bench_dict["times"]
    series = sorted({key.split(" N=")[0] for key in times})
    curve = [name for name in series if name.startswith(("site.yml ", "recipe "))]
    settings = [name for name in series if name not in curve]
    fig, axes = plt.subplots(1, 3 if settings else 2, figsize=(16.5 if settings else 11, 4.2))
    cpu_ax, wall_ax = axes[0], axes[1]

    for name in curve:
        counts = _counts_in(times, name)
        style = "-" if name.startswith("site.yml") else "--"
        for axis, measure in ((cpu_ax, "CPU per host"), (wall_ax, "wall")):
            values = [times["%s N=%d: %s" % (name, n, measure)]["median"] for n in counts]
            axis.plot(counts, values, style, marker="o", label=name)
    cpu_ax.set_title("CPU seconds per host (controller + host)")
    wall_ax.set_title("wall time of ansible-playbook (s)")
    if settings:
        colors = {}
        for name in settings:
            setting = name.split(", ")[0]
            color = colors.setdefault(setting, "C%d" % len(colors))
            counts = _counts_in(times, name)
            values = [times["%s N=%d: CPU per host" % (name, n)]["median"] for n in counts]
            axes[2].plot(counts, values, "-" if name.endswith("nothing changed") else ":", marker="o", color=color,
                         label=name)
        axes[2].set_title("site.yml per connection setting: CPU per host")
        axes[2].legend(fontsize=7)
    for axis in axes:
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
