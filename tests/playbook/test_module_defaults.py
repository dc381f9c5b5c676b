"""meta/runtime.yml's action group: one module_defaults entry for the collection's modules,
read by ansible-playbook from the installed tarball."""
import os
import textwrap

import pytest

from test_precompile import ANSIBLE_PYTHON, BIN, installed_collection, recap, run


def test_the_group_gives_every_module_its_defaults(tmp_path):
    if not os.access(ANSIBLE_PYTHON, os.X_OK):
        pytest.skip("no %s for Ansible's module interpreter" % ANSIBLE_PYTHON)
    installed_collection()
    root = tmp_path / "cgi-bin"
    root.mkdir()
    (root / "lib.py").write_text("VALUE = 1\n")
    (tmp_path / "inventory").write_text(
        "localhost ansible_connection=local ansible_python_interpreter=%s\n" % ANSIBLE_PYTHON)
    (tmp_path / "play.yml").write_text(textwrap.dedent("""\
        - name: Modules take path and interpreters from the collection's group
          hosts: localhost
          gather_facts: false
          module_defaults:
            group/pycgi.hosting.hosting:
              path: {root}
              interpreters: [{python}]
          tasks:
            - name: Compile without naming the tree
              pycgi.hosting.precompile:
              register: compiled
            - name: Inspect without naming the tree
              pycgi.hosting.pycache_info:
              register: info
            - name: Both ran on the tree of the group's defaults
              ansible.builtin.assert:
                that:
                  - compiled.compiled == ['{root}/lib.py']
                  - info.interpreters | length == 1
        """.format(root=root, python=ANSIBLE_PYTHON)))
    rc, out = run([os.path.join(BIN, "ansible-playbook"), "-i", "inventory", "play.yml"], tmp_path)
    assert rc == 0 and recap(out)["failed"] == 0, out
    assert (root / "__pycache__").is_dir()
