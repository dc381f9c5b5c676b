"""SELinux file-context specs for roots with non-ASCII names (plain functions, no host access).

libselinux refuses a file_contexts file that holds a non-ASCII character, and with it every
context lookup of the host; it matches a path's bytes. The end-to-end case (rules committed,
labels written) is in tests/container/test_reliability_bad_input.py.
"""
import re

import pytest

from ansible_collections.pycgi.hosting.plugins.module_utils import _selinux as sel


# --- 1. bad input ---------------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/srv/é", "/srv/it's \"q\" ; $(id) `id` é 目录", "/srv/päckage 'x'/naïve"])
def test_non_ascii_root_gives_an_ascii_spec_matching_the_paths_bytes(path):
    """A root with non-ASCII letters: its rules are pure ASCII (\\xHH escapes of the UTF-8
    bytes), match the path's bytes exactly and nothing else, and hold no blank or quote that
    semanage's import parser would split on."""
    tree, cache = sel.wanted_rules(path, "httpd_sys_script_exec_t", "httpd_sys_rw_content_t", "s0")
    for rule in (tree, cache):
        assert rule.target.isascii() and len(rule.target.split()) == 1
        assert "'" not in rule.target and '"' not in rule.target
    encoded = path.encode("utf-8")
    assert re.fullmatch(tree.target.encode(), encoded)
    assert re.fullmatch(tree.target.encode(), encoded + b"/mod.py")
    assert re.fullmatch(cache.target.encode(), encoded + b"/pkg/__pycache__/mod.cpython-311.pyc")
    assert not re.fullmatch(tree.target.encode(), encoded + b"x")
    assert not re.fullmatch(cache.target.encode(), encoded + b"/pkg/mod.py")
