"""Containers of the local test image, for tests that touch Apache, users or SELinux.

Those tests never change the machine that runs them: each gets a container of the Debian
test image (systemd as PID 1, Apache, Python 3, SELinux userland and reference policy), built
by `tools/build-image` and named by the PYCGI_TEST_IMAGE variable the Makefile exports.
Modules and site.yml are run in the container through Ansible itself (the podman connection
plugin), so what is tested is what a playbook does.
"""
import json
import os
import shutil
import subprocess
import tempfile
import time
import uuid

import pytest

# REPO_ROOT too, for the tests that import it from here.
from harness.site import REPO_ROOT, container_host, hosts_of, podman_env, run_ansible, run_playbook  # noqa: F401 pylint: disable=unused-import


def podman(*args, check=True, input=None, timeout=300):
    """Runs podman with an argument list; returns the CompletedProcess (text mode)."""
    proc = subprocess.run(["podman"] + [str(a) for a in args], input=input, capture_output=True,
                          text=True, env=podman_env(), timeout=timeout, check=False)
    if check and proc.returncode != 0:
        raise RuntimeError("podman %s failed (rc=%d): %s%s" % (" ".join(map(str, args)), proc.returncode,
                                                               proc.stdout, proc.stderr))
    return proc


def test_image():
    """The test image's name; skips-or-fails decisions belong to the caller."""
    image = os.environ.get("PYCGI_TEST_IMAGE")
    if not image:
        raise RuntimeError("PYCGI_TEST_IMAGE is not set: run the container tests through `make container-tests`")
    return image


def podman_available():
    return shutil.which("podman") is not None and "PYCGI_TEST_IMAGE" in os.environ


def require_podman():
    """Fails the calling test where podman or the image is missing, rather than letting it pass
    vacuously or skip."""
    if not podman_available():
        pytest.fail("container tests need podman and PYCGI_TEST_IMAGE: run them with `make container-tests`")


# curl's `-w "\n%{http_code}"` output, from Python's standard library.
_PYTHON_HTTP_GET = r"""
import sys, urllib.error, urllib.request
try:
    with urllib.request.urlopen(sys.argv[1], timeout=30) as response:
        status, body = response.status, response.read()
except urllib.error.HTTPError as exc:
    status, body = exc.code, exc.read()
except OSError:
    status, body = 0, b""
sys.stdout.write(body.decode("utf-8", "replace") + "\n%d" % status)
"""


class ModuleSkipped(RuntimeError):
    """Ansible skipped a module instead of running it (check mode that the module does not
    support, for example); `result` holds what Ansible said. The message starts the way
    Ansible's own output line does: `HOST | SKIPPED`."""

    def __init__(self, host, module, result):
        super().__init__("%s | SKIPPED: %s was not run: %s" % (host, module, result.get("msg", result)))
        self.result = result


class Container:
    """One running container of the test image with systemd as PID 1."""

    def __init__(self, name):
        self.name = name

    @classmethod
    def start(cls, image=None, prefix="pycgi-test"):
        name = "%s-%s" % (prefix, uuid.uuid4().hex[:8])
        podman("run", "-d", "--name", name, "--hostname", name, "--systemd=always",
               "--tmpfs", "/run", "--tmpfs", "/tmp:exec", image or test_image(), "/sbin/init")
        container = cls(name)
        try:
            container.wait_for_systemd()
        except BaseException:
            container.remove()
            raise
        return container

    def wait_for_systemd(self, timeout=90):
        """Waits until systemd reports the system up. Right after `podman run` its private bus
        socket may not exist yet, and systemctl then fails at once: wait for the socket first,
        and retry rather than fail."""
        deadline = time.monotonic() + timeout
        while self.exec("test", "-S", "/run/systemd/private", check=False).returncode != 0:
            if time.monotonic() > deadline:
                raise RuntimeError("systemd in %s did not open its bus" % self.name)
            time.sleep(0.2)
        while True:
            proc = self.exec("systemctl", "is-system-running", "--wait", check=False, timeout=timeout)
            state = proc.stdout.strip()
            if state in ("running", "degraded"):
                return
            if time.monotonic() > deadline:
                raise RuntimeError("systemd in %s did not come up: %r %s" % (self.name, state, proc.stderr))
            time.sleep(0.2)

    def remove(self):
        podman("rm", "-f", "-t", "0", self.name, check=False)

    def exec(self, *argv, user=None, check=True, input=None, env=None, timeout=300, workdir=None):
        """Runs an argument list in the container (never through a shell string)."""
        args = ["exec", "-i"] if input is not None else ["exec"]
        if user:
            args += ["--user", user]
        if workdir:
            args += ["--workdir", workdir]
        for key, value in (env or {}).items():
            args += ["--env", "%s=%s" % (key, value)]
        return podman(*(args + [self.name] + list(argv)), check=check, input=input, timeout=timeout)

    def put_file(self, path, content, mode=0o644, owner="root:root"):
        """Writes a file in the container (parents created)."""
        if isinstance(content, str):
            content = content.encode()
        with tempfile.NamedTemporaryFile(delete=False) as tmp:
            tmp.write(content)
        try:
            self.exec("mkdir", "-p", os.path.dirname(path))
            podman("cp", tmp.name, "%s:%s" % (self.name, path))
        finally:
            os.unlink(tmp.name)
        self.exec("chown", owner, path)
        self.exec("chmod", "%o" % mode, path)

    def read_file(self, path):
        return self.exec("cat", path).stdout

    def copy_in(self, src, dest):
        self.exec("mkdir", "-p", os.path.dirname(dest.rstrip("/")) or "/")
        podman("cp", src, "%s:%s" % (self.name, dest))

    def http_get(self, url_path, port=80):
        """Requests http://localhost<url_path> from inside the container: (status, body); status
        0 when nothing answered. With curl where the image has it, else with the container's
        Python (a bare server has no curl)."""
        url = "http://localhost:%d%s" % (port, url_path)
        if self.exec("test", "-x", "/usr/bin/curl", check=False).returncode == 0:
            proc = self.exec("curl", "-s", "-o", "/dev/stdout", "-w", "\n%{http_code}", url, check=False)
        else:
            proc = self.exec("/usr/bin/python3", "-c", _PYTHON_HTTP_GET, url, check=False)
        body, _sep, status = proc.stdout.rpartition("\n")
        return int(status or 0), body

    def run_module(self, module, args=None, check_mode=False, diff=False, user=None, host_vars=None):
        """Runs pycgi.hosting.<module> (or any FQCN) in this container through Ansible (`ansible`,
        ad hoc), as root or as `user` (podman exec --user); `host_vars` are added to the host's
        inventory variables (``ansible_become`` for example).

        Returns the module's result dict, `diff` included when the module returned one, with
        `failed` set when it failed. Raises ModuleSkipped when Ansible skipped the module."""
        fqcn = module if "." in module else "pycgi.hosting." + module
        argv = ["ansible", "all", "-m", fqcn] + (["-a", json.dumps(args)] if args else [])
        run = self._ansible(argv, check_mode, diff, user, host_vars)
        if run.result is None:
            raise RuntimeError("ansible gave no result (rc=%d):\n%s" % (run.rc, run.output))
        if run.result.get("skipped"):
            raise ModuleSkipped(self.name, fqcn, run.result)
        run.result.setdefault("failed", run.rc != 0)
        return run.result

    def run_site(self, extra_vars, check_mode=False):
        """Runs the collection's site.yml against this container (its only web server) with
        these extra variables, as `make demo` does; in check mode when asked.

        Returns an AnsibleRun: `rc`, `output`, and `recap`, this container's counts in the play
        recap (None when the play did not get that far)."""
        return run_playbook(hosts_of([self]), extra_vars=extra_vars, check_mode=check_mode).host(self.name)

    def _ansible(self, argv, check_mode=False, diff=False, user=None, host_vars=None):
        """Runs an Ansible command line (its inventory left out) from the repository root against
        this container alone, through the podman connection, as root or as `user`; returns an
        AnsibleRun."""
        hosts = {self.name: container_host(self.name, user=user, **(host_vars or {}))}
        return run_ansible(argv, hosts, check_mode=check_mode, diff=diff, timeout=600).host(self.name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.remove()
