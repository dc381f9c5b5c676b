"""selinux_report of pycache_info on real trees, with matchpathcon stood in for.

The real matchpathcon and policy run in the container tests (tests/container/test_pycache_info.py);
here a stand-in answers like a policy that gives __pycache__ the cache type, so that the number
of matchpathcon runs (each one loads and compiles the whole policy) can be counted.
"""
import os

from ansible_collections.pycgi.hosting.plugins.module_utils import _info
from ansible_collections.pycgi.hosting.plugins.module_utils._pytree import walk

SCRIPT = "system_u:object_r:httpd_sys_script_exec_t:s0"
CACHE = "system_u:object_r:httpd_sys_rw_content_t:s0"


class FakeMatchpathcon:
    """Answers matchpathcon's argv like a policy with the pycgi rules; records every call."""

    def __init__(self):
        self.calls = []

    def __call__(self, argv):
        self.calls.append(argv)
        paths = argv[3:] if argv[1:2] == ["-m"] else argv[1:]
        lines = ["%s\t%s" % (p, CACHE if "/__pycache__" in p else SCRIPT) for p in paths]
        return 0, "\n".join(lines) + "\n", ""


def report(tmp_path, monkeypatch, make_cache):
    root = tmp_path / "cgi"
    (root / "pkg").mkdir(parents=True)
    (root / "app.py").write_text("import pkg\n")
    (root / "pkg" / "__init__.py").write_text("")
    if make_cache:
        (root / "__pycache__").mkdir()
    monkeypatch.setattr(_info, "selinux_policy", lambda read_text: "targeted")
    run = FakeMatchpathcon()
    result = _info.selinux_report(walk(str(root)), "/usr/sbin/matchpathcon", run, lambda path: None, limit=10)
    return result, run, str(root)


def test_existing_root_cache_needs_no_second_matchpathcon(tmp_path, monkeypatch):
    result, run, root = report(tmp_path, monkeypatch, make_cache=True)
    assert len(run.calls) == 1, run.calls
    assert os.path.join(root, "__pycache__") in run.calls[0]
    assert result["caches"]["expected"] == "httpd_sys_rw_content_t"
    assert result["root"]["expected"] == "httpd_sys_script_exec_t"


def test_without_a_root_cache_the_policy_is_asked_for_a_directory(tmp_path, monkeypatch):
    result, run, root = report(tmp_path, monkeypatch, make_cache=False)
    assert len(run.calls) == 2, run.calls
    assert run.calls[1][1:3] == ["-m", "dir"]
    assert os.path.join(root, "__pycache__") in run.calls[1]
    assert result["caches"]["expected"] == "httpd_sys_rw_content_t"
