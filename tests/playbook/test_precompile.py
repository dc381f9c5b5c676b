"""The installed collection's precompile module, driven by ansible-playbook and ansible on localhost.

Run through `make playbook-tests`, which builds the tarball, installs it into
ANSIBLE_COLLECTIONS_PATH and runs these tests.
"""
import glob
import json
import os
import re
import subprocess
import sys
import textwrap

import pytest

BIN = os.path.dirname(sys.executable)
# Ansible's own Python on the host differs from the one the CGI scripts use.
ANSIBLE_PYTHON = "/usr/bin/python3"


def installed_collection():
    for base in os.environ.get("ANSIBLE_COLLECTIONS_PATH", "").split(os.pathsep):
        module = os.path.join(base, "ansible_collections", "pycgi", "hosting", "plugins", "modules", "precompile.py")
        if base and os.path.isfile(module):
            return os.path.dirname(os.path.dirname(os.path.dirname(module)))
    pytest.fail("the built collection is not installed in ANSIBLE_COLLECTIONS_PATH: run `make playbook-tests`")


def cgi_python():
    """The interpreter the CGI scripts name: the oldest Python here (3.6 where present)."""
    root = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    found = sorted(glob.glob(os.path.join(root, "versions", "3.6.*", "bin", "python3.6")))
    return found[0] if found else ANSIBLE_PYTHON


def ansible_env():
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONDONTWRITEBYTECODE")}
    env["ANSIBLE_NOCOLOR"] = "1"
    env["ANSIBLE_RETRY_FILES_ENABLED"] = "0"
    return env


def run(argv, cwd):
    proc = subprocess.run(argv, cwd=str(cwd), env=ansible_env(), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, universal_newlines=True, timeout=300, check=False)
    return proc.returncode, proc.stdout


def recap(output):
    match = re.search(r"localhost\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", output)
    assert match, output
    return dict(zip(("ok", "changed", "unreachable", "failed"), map(int, match.groups())))


@pytest.fixture
def site(tmp_path):
    if not os.access(ANSIBLE_PYTHON, os.X_OK):
        pytest.skip("no %s for Ansible's module interpreter" % ANSIBLE_PYTHON)
    installed_collection()
    python = cgi_python()
    root = tmp_path / "cgi-bin"
    (root / "app").mkdir(parents=True)
    (root / "index.py").write_text("#!%s\nimport app.views\napp.views.main()\n" % python)
    (root / "index.py").chmod(0o755)
    (root / "app" / "__init__.py").write_text("")
    (root / "app" / "views.py").write_text("def main():\n    print('Content-Type: text/plain\\n\\nhello')\n")
    (tmp_path / "inventory").write_text(
        "localhost ansible_connection=local ansible_python_interpreter=%s\n" % ANSIBLE_PYTHON)
    tag = subprocess.run([python, "-c", "import sys; print(sys.implementation.cache_tag)"],
                         stdout=subprocess.PIPE, universal_newlines=True, check=True).stdout.strip()
    (tmp_path / "play.yml").write_text(textwrap.dedent("""\
        - name: Precompile a CGI tree
          hosts: localhost
          gather_facts: false
          tasks:
            - name: Compile with the interpreter named by the scripts
              pycgi.hosting.precompile:
                path: {root}
              register: result

            - name: The caches are those of the CGI interpreter, not Ansible's
              ansible.builtin.assert:
                that:
                  - result.interpreters | map(attribute='cache_tag') | list == ['{tag}']
                  - result.interpreters[0].path == '{python}'
                  - result.entry_scripts == ['{root}/index.py']
                  - result.stats.sources == 3
                  - result.errors == []
        """.format(root=root, tag=tag, python=python)))
    return {"dir": tmp_path, "root": root, "tag": tag, "python": python}


def test_playbook_compiles_then_changes_nothing(site):
    argv = [os.path.join(BIN, "ansible-playbook"), "-i", "inventory", "play.yml"]
    pyc = site["root"] / "app" / "__pycache__" / ("views.%s.pyc" % site["tag"])

    rc, out = run(argv + ["--check", "--diff"], site["dir"])
    assert rc == 0 and recap(out)["changed"] == 1, out
    assert "%s: missing" % pyc in out and "%s: current" % pyc in out
    assert not pyc.parent.exists()

    rc, out = run(argv, site["dir"])
    assert rc == 0 and recap(out) == {"ok": 2, "changed": 1, "unreachable": 0, "failed": 0}, out
    assert pyc.is_file()
    first = os.stat(str(pyc))

    rc, out = run(argv, site["dir"])
    assert rc == 0 and recap(out) == {"ok": 2, "changed": 0, "unreachable": 0, "failed": 0}, out
    again = os.stat(str(pyc))
    assert (again.st_ino, again.st_mtime_ns) == (first.st_ino, first.st_mtime_ns)


def test_ad_hoc_module_call(site):
    argv = [os.path.join(BIN, "ansible"), "localhost", "-i", "inventory", "-m", "pycgi.hosting.precompile",
            "-a", "path=%s" % site["root"]]
    rc, out = run(argv, site["dir"])
    assert rc == 0, out
    result = json.loads(out[out.index("=>") + 2:])
    assert result["changed"] is True
    assert result["compiled"] == [str(site["root"] / p) for p in ("app/__init__.py", "app/views.py", "index.py")]
    assert [i["cache_tag"] for i in result["interpreters"]] == [site["tag"]]

    rc, out = run(argv, site["dir"])
    assert rc == 0 and json.loads(out[out.index("=>") + 2:])["changed"] is False, out


def test_ad_hoc_failure_names_the_source_and_line(site):
    (site["root"] / "app" / "broken.py").write_text("x = 1\ndef (:\n")
    argv = [os.path.join(BIN, "ansible"), "localhost", "-i", "inventory", "-m", "pycgi.hosting.precompile",
            "-a", "path=%s" % site["root"]]
    rc, out = run(argv, site["dir"])
    assert rc != 0, out
    assert "%s:2: SyntaxError" % (site["root"] / "app" / "broken.py") in out
