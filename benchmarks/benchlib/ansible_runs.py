"""Running the collection's modules the two ways the benchmarks time them.

- through `ansible-playbook` (what a user runs: Ansible's start-up, about 0.9 s, included);
- as the module process alone: the module file run by the target interpreter with its
  arguments on the command line, the way Ansible's wrapper runs it on the managed host,
  without the controller (`python -m ansible_collections.pycgi.hosting.plugins.modules.X ARGS`).
"""
import json
import os
import re
import subprocess

import yaml

RECAP = re.compile(r"^(?P<host>\S+)\s+:\s+ok=(?P<ok>\d+)\s+changed=(?P<changed>\d+)\s+"
                   r"unreachable=(?P<unreachable>\d+)\s+failed=(?P<failed>\d+)\s+"
                   r"skipped=(?P<skipped>\d+)", re.M)


class AnsibleFailed(RuntimeError):
    pass


def write_yaml(path, data):
    with open(path, "w") as handle:
        handle.write("---\n")
        yaml.safe_dump(data, handle, sort_keys=False, default_flow_style=False)
    return path


def local_inventory(path, interpreter):
    return write_yaml(path, {"all": {"hosts": {"localhost": {
        "ansible_connection": "local", "ansible_python_interpreter": interpreter}}}})


def play(name, tasks, hosts="localhost", gather_facts=False, **extra):
    entry = {"name": name, "hosts": hosts, "gather_facts": gather_facts}
    entry.update(extra)
    entry["tasks"] = tasks
    return entry


def recap(output):
    """{ok, changed, unreachable, failed, skipped} of the first host in a play recap."""
    found = RECAP.search(output)
    if not found:
        return None
    return {key: int(value) for key, value in found.groupdict().items() if key != "host"}


class Ansible:
    """Builds argument lists for ansible-playbook and the module processes."""

    def __init__(self, bin_dir, collections_path, module_pythonpath, env=None):
        self.playbook_cmd = os.path.join(bin_dir, "ansible-playbook")
        self.collections_path = collections_path
        self.module_pythonpath = module_pythonpath
        self.env = dict(env or os.environ)
        self.env["ANSIBLE_COLLECTIONS_PATH"] = collections_path
        self.env.setdefault("ANSIBLE_NOCOLOR", "1")
        self.env["ANSIBLE_RETRY_FILES_ENABLED"] = "0"
        # Python caches its own imports for the processes we start (see ENVIRONMENT notes).
        self.env.pop("PYTHONDONTWRITEBYTECODE", None)

    def playbook_argv(self, playbook, inventory, extra_vars=None):
        argv = [self.playbook_cmd, "-i", inventory, playbook]
        if extra_vars:
            argv += ["-e", "@" + extra_vars]
        return argv

    def run_playbook(self, playbook, inventory, extra_vars=None, env=None):
        """Runs a playbook; returns (recap dict, output). Raises when it fails."""
        run_env = dict(self.env)
        run_env.update(env or {})
        proc = subprocess.run(self.playbook_argv(playbook, inventory, extra_vars), env=run_env, check=False,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        summary = recap(proc.stdout)
        if proc.returncode != 0 or summary is None or summary["failed"] or summary["unreachable"]:
            raise AnsibleFailed("%s failed (rc=%d):\n%s" % (playbook, proc.returncode, proc.stdout[-6000:]))
        return summary, proc.stdout

    def module_argv(self, interpreter, module, args):
        fqcn = module if module.startswith("ansible.") else "ansible_collections.pycgi.hosting.plugins.modules." + module
        return [interpreter, "-m", fqcn, json.dumps({"ANSIBLE_MODULE_ARGS": args})]

    def module_env(self):
        env = dict(self.env)
        env["PYTHONPATH"] = os.pathsep.join(self.module_pythonpath)
        return env

    def run_module(self, interpreter, module, args):
        """Runs the module process once; returns its result dict. Raises when it failed."""
        proc = subprocess.run(self.module_argv(interpreter, module, args), env=self.module_env(), check=False,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            result = json.loads(proc.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            raise AnsibleFailed("%s gave no result (rc=%d): %s %s"
                                % (module, proc.returncode, proc.stdout[-3000:], proc.stderr[-3000:]))
        if result.get("failed") or proc.returncode != 0:
            raise AnsibleFailed("%s failed: %s" % (module, json.dumps(result)[:3000]))
        return result
