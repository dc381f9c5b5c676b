"""selinux_report of pycache_info on real trees, with matchpathcon stood in for.

The real matchpathcon and policy run in the container tests (tests/container/test_pycache_info.py);
here a stand-in answers like a policy that gives __pycache__ the cache type, so that the number
of matchpathcon runs (each one loads and compiles the whole policy) can be counted. The check of
every label reads real security.selinux attributes (written as root; skipped where they cannot be)
and a policy's file_contexts served by a stand-in reader.
"""
import os

# labels_writable is a fixture, used by name.
from test_selinux_labels import labels_writable  # noqa: F401  pylint: disable=unused-import
from test_selinux_labels import RW as RW_TYPE, SCRIPT as SCRIPT_TYPE, make_tree, ours, set_label

from ansible_collections.pycgi.hosting.plugins.module_utils import _info, _selinux
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


# --- every label, decided from the policy's rules ------------------------------------------------
# Real security.selinux attributes (written as root, as the label walk of selinux_context is
# tested), the policy's file_contexts served by a stand-in reader, matchpathcon stood in for.


def policy_reader(root, readable=True):
    """read_text for a policy whose base gives everything default_t and whose local rules are the
    pycgi rules for ``root``."""
    base = _selinux.file_contexts_path("targeted")
    texts = {base: "/.*    system_u:object_r:default_t:s0\n",
             base + ".local": _selinux.render_file_contexts(ours(root))}
    return lambda path: texts.get(path) if readable else None


def labeled_report(tmp_path, monkeypatch, run=None, readable=True):
    root = str(tmp_path / "app")
    paths = make_tree(root)
    # A file that is not Python (a sampled check reads only sources and caches).
    static = os.path.join(root, "style.css")
    with open(static, "w") as handle:
        handle.write("p {}\n")
    set_label(static, "system_u:object_r:%s:s0" % SCRIPT_TYPE)
    paths[static] = SCRIPT_TYPE
    deep = os.path.join(root, "pkg/inner/__pycache__/mod.cpython-311.pyc")
    set_label(deep, "system_u:object_r:httpd_sys_content_t:s0")
    # Another user and range, the right type: no finding (types are compared).
    set_label(os.path.join(root, "hello.py"), "unconfined_u:object_r:%s:s0:c1" % SCRIPT_TYPE)
    new_cache = os.path.join(root, "pkg/inner/sub/__pycache__")
    os.makedirs(new_cache)
    open(os.path.join(new_cache, "m.cpython-311.pyc"), "w").close()
    set_label(os.path.dirname(new_cache), "system_u:object_r:%s:s0" % SCRIPT_TYPE)
    monkeypatch.setattr(_info, "selinux_policy", lambda read_text: "targeted")
    run = run or FakeMatchpathcon()
    result = _info.selinux_report(walk(root), "/usr/sbin/matchpathcon", run, policy_reader(root, readable), limit=10)
    return result, run, root, len(paths) + 3, deep, new_cache


def test_every_label_is_compared_with_one_matchpathcon_run(tmp_path, monkeypatch, labels_writable):
    result, run, root, count, deep, new_cache = labeled_report(tmp_path, monkeypatch)
    assert result["method"] == "every_path" and "method_reason" not in result
    assert (result["checked"], result["total"]) == (count, count)
    assert result["mismatched"] == {"count": 1, "paths": [
        {"path": deep, "type": "httpd_sys_content_t", "expected": RW_TYPE}]}
    assert result["unlabeled"] == {"count": 2, "paths": [new_cache, new_cache + "/m.cpython-311.pyc"]}
    assert result["root"] == {"path": root, "type": SCRIPT_TYPE, "expected": SCRIPT_TYPE}
    # Every cache path's type on disk: 3 directories and 3 files right, one file wrong, 2 new unlabeled.
    assert result["caches"] == {"expected": RW_TYPE, "types": {RW_TYPE: 5, "httpd_sys_content_t": 1, "unlabeled": 2}}
    # One run answers for the root, its cache and one path of each rule and file type that decided
    # (script and cache rules; directory, file and symlink): not for every path.
    assert len(run.calls) == 1, run.calls
    assert root in run.calls[0] and os.path.join(root, "__pycache__") in run.calls[0]
    assert len(set(run.calls[0][1:])) <= 2 + 5, run.calls


class Disagreeing(FakeMatchpathcon):
    """A matchpathcon whose policy gives the caches another type than the rules read here."""

    def __call__(self, argv):
        rc, out, err = super().__call__(argv)
        return rc, out.replace("httpd_sys_rw_content_t", "httpd_sys_content_t"), err


def test_a_matchpathcon_that_disagrees_leaves_the_check_to_the_sample(tmp_path, monkeypatch, labels_writable):
    result, run, _root, count, deep, _new = labeled_report(tmp_path, monkeypatch, run=Disagreeing())
    assert result["method"] == "sample" and len(run.calls) == 2
    assert "matchpathcon gives" in result["method_reason"] and "httpd_sys_content_t" in result["method_reason"]
    # The sample reads sources, caches and the directories holding them: not the stylesheet, nor
    # pkg/inner/sub, which holds only a cache directory.
    assert result["checked"] == result["total"] == count - 2
    # Judged by matchpathcon's answers: the hand-set cache label is what that policy wants.
    assert deep not in [item["path"] for item in result["mismatched"]["paths"]]


def test_an_unreadable_policy_leaves_the_check_to_the_sample(tmp_path, monkeypatch, labels_writable):
    result, run, _root, _count, deep, new_cache = labeled_report(tmp_path, monkeypatch, readable=False)
    assert result["method"] == "sample"
    assert result["method_reason"] == "cannot read %s" % _selinux.file_contexts_path("targeted")
    assert [item["path"] for item in result["mismatched"]["paths"]] == [deep]
    assert new_cache in result["unlabeled"]["paths"]
    assert len(run.calls) == 1
