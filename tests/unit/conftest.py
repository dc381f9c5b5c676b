"""Shared fixtures for the unit tests: real interpreters and real module runs.

Modules run as Ansible runs them on a host: the module file executed by a Python process with
its arguments in a JSON file, no mocks of AnsibleModule.
"""
import glob
import json
import os
import subprocess
import sys

import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PYENV_ROOT = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
CHILD_ENV_DROP = ("PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX", "PYTHONOPTIMIZE")


def _version_of(path):
    try:
        out = subprocess.run([path, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                             capture_output=True, text=True, timeout=30, check=False)
    except OSError:
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def discover_interpreters():
    """Every CPython 3 on this machine by version: pyenv's (by full path), Debian's, this one."""
    found = {}
    candidates = sorted(glob.glob(os.path.join(PYENV_ROOT, "versions", "3.*", "bin", "python3.*")))
    candidates += ["/usr/bin/python3", sys.executable]
    for path in candidates:
        if path.endswith("-config") or not os.access(path, os.X_OK):
            continue
        version = _version_of(path)
        if version and version.startswith("3.") and version not in found:
            found[version] = path
    return found


INTERPRETERS = discover_interpreters()


def interpreter(version):
    """The path of a Python X.Y, or a skip where this machine has none."""
    path = INTERPRETERS.get(version)
    if path is None:
        pytest.skip("no Python %s on this machine" % version)
    return path


@pytest.fixture(params=sorted(INTERPRETERS, key=lambda v: tuple(map(int, v.split(".")))) or ["none"])
def any_python(request):
    """Each Python on this machine in turn: (version, path)."""
    if request.param == "none":
        pytest.skip("no Python found")
    return request.param, INTERPRETERS[request.param]


@pytest.fixture
def layout(tmp_path):
    """The release layout of a CGI root at tmp_path/host/cgi-bin (its metadata directory made)."""
    from ansible_collections.pycgi.hosting.plugins.module_utils import _release

    (tmp_path / "host").mkdir()
    layout = _release.Layout(str(tmp_path / "host" / "cgi-bin"))
    os.makedirs(layout.meta)
    return layout


def child_env(**extra):
    """An environment for interpreters the tests start: without the variables that stop or
    redirect bytecode writing (this machine sets PYTHONDONTWRITEBYTECODE)."""
    env = {k: v for k, v in os.environ.items() if k not in CHILD_ENV_DROP}
    env.update(extra)
    return env


def run_module(name, args, check_mode=False, diff=False, tmp_path=None):
    """Runs plugins/modules/<name>.py the way Ansible does on a host; returns its result."""
    params = dict(args)
    params["_ansible_check_mode"] = check_mode
    params["_ansible_diff"] = diff
    args_file = os.path.join(str(tmp_path) if tmp_path else "/tmp", "args-%s-%d.json" % (name, os.getpid()))
    with open(args_file, "w") as handle:
        json.dump({"ANSIBLE_MODULE_ARGS": params}, handle)
    try:
        proc = subprocess.run([sys.executable, "-m", "ansible_collections.pycgi.hosting.plugins.modules." + name,
                               args_file], capture_output=True, text=True, env=child_env(), timeout=600, check=False)
    finally:
        os.unlink(args_file)
    try:
        result = json.loads(proc.stdout)
    except ValueError:
        raise AssertionError("module %s printed no JSON (rc=%d):\n%s\n%s" % (name, proc.returncode, proc.stdout, proc.stderr))
    result["rc"] = proc.returncode
    return result


def apache_stanza_file(conf, root, placement="drop_in", name=None):
    """The file where httpd_pycache puts the block for ``root`` with ``placement``: the main
    config ``conf`` itself, or the drop-in of the layout beside it (conf-available/ for
    Debian, conf.d/ for the RHEL family) named as the module names it."""
    if placement == "block":
        return str(conf)
    from ansible_collections.pycgi.hosting.plugins.module_utils._apache import drop_in_layout, drop_in_name, normalize_root
    return drop_in_layout(os.path.realpath(str(conf)), name or drop_in_name(normalize_root(str(root)))).file
