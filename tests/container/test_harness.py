"""The container harness itself: what `Container.run_module` hands back from Ansible.

Ansible's tree callback (`ansible --tree`) dropped a module's `diff` below -vvv and wrote no
result at all for a skipped task; these tests hold the harness to the whole result, at the
default verbosity, and to a clear error for a skipped module.
"""
import re

import pytest

from harness.podman import ModuleSkipped

ROOT = "/srv/harness"


@pytest.fixture
def default_verbosity(monkeypatch):
    monkeypatch.delenv("ANSIBLE_VERBOSITY", raising=False)


def test_the_diff_of_a_change_comes_back(module_container, default_verbosity):
    host = module_container
    host.put_file(ROOT + "/app.py", "A = 1\n")
    args = {"path": ROOT, "interpreters": ["/usr/bin/python3"]}
    cache = ROOT + "/__pycache__/app.cpython-311.pyc"

    predicted = host.run_module("precompile", args, check_mode=True, diff=True)
    assert not predicted["failed"] and predicted["changed"], predicted
    assert "diff" in predicted, predicted
    assert predicted["diff"]["before"] == cache + ": missing\n", predicted["diff"]
    assert host.exec("test", "-e", cache, check=False).returncode != 0

    done = host.run_module("precompile", args, diff=True)
    assert not done["failed"] and done["changed"], done
    assert (done["diff"]["before"], done["diff"]["after"]) == (cache + ": missing\n", cache + ": current\n")

    # Without --diff the module returns none, and the harness does not ask for one.
    host.put_file(ROOT + "/app.py", "A = 2\n")
    plain = host.run_module("precompile", args)
    assert plain["changed"] and "diff" not in plain, plain


def test_a_skipped_module_is_reported_as_skipped(module_container, default_verbosity):
    # ansible.builtin.command in check mode, without creates or removes, is skipped by design.
    expected = ("%s | SKIPPED: ansible.builtin.command was not run: Command would have run if not in check mode"
                % module_container.name)
    with pytest.raises(ModuleSkipped, match="^%s$" % re.escape(expected)) as raised:
        module_container.run_module("ansible.builtin.command", {"argv": ["touch", "/tmp/ran"]}, check_mode=True)
    assert raised.value.result["skipped"] is True
    assert module_container.exec("test", "-e", "/tmp/ran", check=False).returncode != 0


def test_a_failed_module_comes_back_failed_with_its_message(module_container):
    result = module_container.run_module("precompile", {"path": ROOT + "/missing"})
    assert result["failed"] is True and "is not a directory" in result["msg"], result
