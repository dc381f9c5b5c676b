"""Ansible runs against containers: the collection's site.yml (or another playbook, or an ad hoc
module) with an inventory of one or more containers reached through the podman connection, and
what each host did read back through the json_results callback (tests/harness/callback_plugins)
rather than parsed from Ansible's output.

The container tests call it through Container.run_site and Container.run_module, or directly
for several hosts at once (`run_playbook(hosts_of(containers), extra_vars=...)`); `tools/demo`
calls it as a program:

    python -m harness.site [-e VARS | -e @FILE]... [--check] [--unchanged] CONTAINER...

which runs site.yml against the named containers with Ansible's own output on the terminal,
prints each host's recap counts and fails when the play failed or, with --unchanged, when it
changed anything.
"""
import argparse
import collections
import json
import os
import subprocess
import sys
import tempfile

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONTAINERS_CONF = os.path.join(REPO_ROOT, "tools", "containers.conf")
# The json_results callback, through which Ansible hands over its results.
CALLBACK_PLUGINS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "callback_plugins")

# What an Ansible run against one container left: its exit code, its output (stdout, then
# stderr), the result of the container's last task and its counts in the play recap (ok,
# changed, failures, unreachable, skipped, rescued, ignored); None where Ansible recorded none.
AnsibleRun = collections.namedtuple("AnsibleRun", "rc output result recap")


class PlayRun(collections.namedtuple("PlayRun", "rc output results recap")):
    """What an Ansible run against several hosts left: `results` and `recap` map each inventory
    name to its last task's result and its recap counts."""
    __slots__ = ()

    def host(self, name):
        """The run as seen from one host: an AnsibleRun."""
        return AnsibleRun(self.rc, self.output, self.results.get(name), self.recap.get(name))


def podman_env():
    """This process's environment, with the project's podman configuration unless one is set
    (the Makefile sets it): for podman, and for Ansible's podman connection."""
    env = dict(os.environ)
    env.setdefault("CONTAINERS_CONF", CONTAINERS_CONF)
    return env


def container_host(container, user=None, **host_vars):
    """The inventory variables that reach the container named ``container`` through podman, as
    root or as ``user`` (podman exec --user); ``host_vars`` are added (or override)."""
    host = {
        "ansible_host": container,
        "ansible_connection": "containers.podman.podman",
        "ansible_python_interpreter": "/usr/bin/python3",
        # podman exec already runs as root; the image has no sudo.
        "ansible_become": False,
        # Fewer round trips per task through podman exec.
        "ansible_pipelining": True,
    }
    if user:
        host.update({"ansible_user": user, "ansible_remote_tmp": "/tmp/.ansible-%s" % user})
    host.update(host_vars)
    return host


def hosts_of(containers, **host_vars):
    """The inventory hosts of these containers (Container objects or names), each under its own
    name, with the same ``host_vars``."""
    names = [getattr(container, "name", container) for container in containers]
    return dict((name, container_host(name, **host_vars)) for name in names)


def run_ansible(argv, hosts, check_mode=False, diff=False, capture=True, timeout=900, groups=None):
    """Runs an Ansible command line (its inventory left out) from the repository root with the
    inventory ``hosts`` ({inventory name: variables}, all in the group `webservers`, in this
    order; ``groups`` ({group: [names]}) adds child groups of `webservers`), one fork a host;
    returns a PlayRun. With ``capture`` false Ansible's output goes to this process's own stdout
    and stderr (and `output` is empty)."""
    with tempfile.TemporaryDirectory() as workdir:
        inventory = os.path.join(workdir, "inventory.json")
        webservers = {"hosts": hosts}
        if groups:
            webservers["children"] = dict((group, {"hosts": dict((name, {}) for name in names)})
                                          for group, names in groups.items())
        with open(inventory, "w") as handle:
            json.dump({"webservers": webservers}, handle)
        results_file = os.path.join(workdir, "results.json")
        env = podman_env()
        env.update({
            "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1",
            "ANSIBLE_CALLBACK_PLUGINS": CALLBACK_PLUGINS,
            "ANSIBLE_CALLBACKS_ENABLED": "json_results",
            "PYCGI_RESULTS_FILE": results_file,
            "ANSIBLE_FORKS": str(max(5, len(hosts))),
        })
        cmd = list(argv) + ["-i", inventory] + (["--check"] if check_mode else []) + (["--diff"] if diff else [])
        proc = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=capture, text=True, env=env, timeout=timeout,
                              check=False)
        recorded = {}
        if os.path.exists(results_file):
            with open(results_file) as handle:
                recorded = json.load(handle)
    output = (proc.stdout + proc.stderr) if capture else ""
    return PlayRun(proc.returncode, output, recorded.get("results", {}), recorded.get("recap", {}))


def run_playbook(hosts, playbook="site.yml", extra_vars=None, check_mode=False, capture=True, groups=None,
                 timeout=900):
    """Runs ``playbook`` (site.yml by default; a path relative to the repository root, or
    absolute) against ``hosts`` (``groups``: as run_ansible's) with these extra variables (a
    dict, or a list of `-e` arguments such as "@vars.yml"); returns a PlayRun."""
    if extra_vars is None:
        extra_vars = []
    elif isinstance(extra_vars, dict):
        extra_vars = [json.dumps(extra_vars)]
    argv = ["ansible-playbook"]
    for value in extra_vars:
        argv += ["-e", value]
    return run_ansible(argv + [playbook], hosts, check_mode=check_mode, capture=capture, groups=groups,
                       timeout=timeout)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m harness.site",
                                     description="Runs site.yml against running containers through podman.")
    parser.add_argument("containers", nargs="+", metavar="CONTAINER")
    parser.add_argument("-e", "--extra-vars", action="append", default=[], metavar="VARS",
                        help="as ansible-playbook's -e (JSON, key=value or @FILE); repeatable")
    parser.add_argument("--check", action="store_true", help="check mode")
    parser.add_argument("--unchanged", action="store_true", help="fail when the run changed anything")
    args = parser.parse_args(argv)
    run = run_playbook(hosts_of(args.containers), extra_vars=args.extra_vars, check_mode=args.check, capture=False)
    problems = [] if run.rc == 0 else ["ansible-playbook failed (rc=%d)" % run.rc]
    for name in args.containers:
        counts = run.recap.get(name)
        if counts is None:
            problems.append("%s: no recap" % name)
            continue
        print("%s: %s" % (name, " ".join("%s=%s" % item for item in sorted(counts.items()))))
        if args.unchanged and counts["changed"]:
            problems.append("%s: the run changed something (changed=%d); it should report changed=0"
                            % (name, counts["changed"]))
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
