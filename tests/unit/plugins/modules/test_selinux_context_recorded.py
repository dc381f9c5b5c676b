"""selinux_context's logic without containers: table-driven cases replaying recorded command output.

Each case runs `_selinux_host.run()` (everything the module does between its argument spec and
`exit_json`) against a stand-in AnsibleModule whose `run_command` answers from the table: the
commands the case expects, in order, each with the output the real tool printed. The stand-in
fails the test on any command the case does not list, or listed in another order.

Where the outputs come from: `fixtures/selinux_context_recorded.json`, written by
`fixtures/record_selinux_context.py` run inside a container of the project's test image (Debian
bookworm, selinux-policy-default, SELinux disabled in the kernel): the real `semanage fcontext
-l -C`, `semanage import` (a commit, a deletion, the always-aborting type check with a known and
an unknown type), `matchpathcon -m dir/-m file` (a fresh root, a labeled one, one under an
equivalence rule), `matchpathcon -N` and `setfiles -F -v [-n]`. The recording's root /srv/rec is
replaced by each case's own root. The policy file the module reads is the recorded excerpt of
the reference policy's file_contexts (the /srv, /var/www and /usr/lib/cgi-bin rules). A
simulated policy (`matchpathcon -f` in a check, check mode's `setfiles -n`) answers as the
committed one did, which is what the simulation stands for.

These cases stand in for the tools only; the same behaviour runs against the real tools in
tests/container/test_selinux_context.py and test_selinux_context_relabel.py.
"""
import json
import os
import re

import pytest

from ansible_collections.pycgi.hosting.plugins.module_utils import _selinux_host

HERE = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(HERE, "fixtures", "selinux_context_recorded.json")) as _handle:
    REC = json.load(_handle)

REC_ROOT = "/srv/rec"
REC_FC = "/etc/selinux/default/contexts/files/file_contexts"
SCRIPT = "httpd_sys_script_exec_t"
RW = "httpd_sys_rw_content_t"
TOOLS = {"semanage": "/usr/sbin/semanage", "matchpathcon": "/usr/sbin/matchpathcon", "setfiles": "/usr/sbin/setfiles"}
DEFAULTS = {"script_type": SCRIPT, "cache_type": RW, "relabel": True, "state": "present",
            "missing_tools": "fail", "allow_system_path": False}
TREE = ["hello.py", "app/__init__.py", "app/__pycache__/__init__.cpython-311.pyc"]
RELABELED = ["", "/app", "/app/__init__.py", "/app/__pycache__", "/app/__pycache__/__init__.cpython-311.pyc",
             "/hello.py"]


class Exited(Exception):
    def __init__(self, result, failed):
        super().__init__(result.get("msg"))
        self.result = result
        self.failed = failed


class RecordedModule:
    """AnsibleModule as `_selinux_host.run()` uses it, commands answered from recordings."""

    def __init__(self, params, check_mode, diff, expected, tools, replace):
        self.params = dict(DEFAULTS, **params)
        self.check_mode = check_mode
        self._diff = diff
        self.expected = list(expected)
        self.tools = tools
        self.replace = replace
        self.ran = []

    def get_bin_path(self, name):
        return self.tools.get(name)

    def run_command(self, argv, data=None, environ_update=None):
        assert environ_update == {"LC_ALL": "C", "LANG": "C"}
        shown = [os.path.basename(argv[0])] + [self.replace(arg) for arg in argv[1:]]
        self.ran.append(shown)
        assert self.expected, "unexpected command %r" % shown
        recorded, want_data = self.expected.pop(0)
        assert shown == recorded["argv"], "ran %r, the case expects %r" % (shown, recorded["argv"])
        if want_data is not None:
            assert self.replace(data) == want_data
        back = self.replace.back
        return recorded["rc"], back(recorded["stdout"]), back(recorded["stderr"])

    def fail_json(self, **result):
        raise Exited(result, True)

    def exit_json(self, **result):
        raise Exited(result, False)


class Replacer:
    """The case's root and files shown as the recording's (forward) and back."""

    def __init__(self, root, fc, tmp_prefix):
        self.root, self.fc, self.tmp_prefix = root, fc, tmp_prefix

    def __call__(self, text):
        if text is None:
            return None
        text = text.replace(self.fc, REC_FC).replace(self.root, REC_ROOT)
        return re.sub(re.escape(self.tmp_prefix) + r"[^/]*/file_contexts", "SIMULATED", text)

    def back(self, text):
        return text.replace(REC_ROOT, self.root)


def simulated(recorded):
    """A recorded matchpathcon run as it is asked against the simulated policy (`-f`)."""
    argv = recorded["argv"]
    return dict(recorded, argv=argv[:3] + ["-f", "SIMULATED"] + argv[3:])


def dry_run_simulated(recorded):
    return dict(recorded, argv=[arg if arg != REC_FC else "SIMULATED" for arg in recorded["argv"]])


FRESH = [(REC["matchpathcon_fresh"]["dir"], None), (REC["matchpathcon_fresh"]["file"], None)]
LABELED = [(REC["matchpathcon_labeled"]["dir"], None), (REC["matchpathcon_labeled"]["file"], None)]
CHECKED = [(simulated(REC["matchpathcon_labeled"]["dir"]), None), (simulated(REC["matchpathcon_labeled"]["file"]), None)]
COMMIT = [(REC["commit"], REC["commit_script"])]
ADDED = [{"target": REC_ROOT + "(/.*)?", "ftype": "a", "setype": SCRIPT},
         {"target": REC_ROOT + "(/.*)?/__pycache__(/.*)?", "ftype": "a", "setype": RW}]

# name, params, check mode, tree exists, local rules stored, expected commands, expected result
CASES = [
    ("new root, not created yet", {}, False, False, False, FRESH + CHECKED + COMMIT,
     {"changed": True, "rules_added": ADDED, "rules_removed": [], "relabel_method": "none", "relabeled_count": 0}),
    ("new root, check mode", {}, True, False, False, FRESH + CHECKED,
     {"changed": True, "rules_added": ADDED, "relabel_method": "none"}),
    ("new root with a tree", {}, False, True, False, FRESH + CHECKED + COMMIT + [(REC["setfiles"], None)],
     {"changed": True, "rules_added": ADDED, "relabel_method": "full", "relabel_reason": "the rules changed",
      "relabeled_count": 6, "relabeled": RELABELED}),
    ("new root with a tree, check mode", {}, True, True, False,
     FRESH + CHECKED + [(dry_run_simulated(REC["setfiles_dry_run"]), None)],
     {"changed": True, "rules_added": ADDED, "relabel_method": "full", "relabeled": RELABELED}),
    ("rules already there, no tree", {}, False, False, True, LABELED,
     {"changed": False, "rules_added": [], "rules_removed": [], "relabel_method": "none"}),
    ("rules already there, relabel off", {"relabel": False}, False, True, True, LABELED,
     {"changed": False, "rules_added": [], "relabel_method": "none"}),
    ("store without its usual layout: semanage lists the rules", {}, False, False, "semanage",
     [(REC["semanage_list_after"], None)] + LABELED,
     {"changed": False, "rules_added": []}),
    ("a type the policy does not know", {"cache_type": "pycgi_no_such_t"}, False, False, False,
     [(REC["type_check_unknown"], None)],
     {"failed": True, "msg": "cache_type: 'pycgi_no_such_t' is not a file type of the default policy"}),
    ("an equivalence maps the root elsewhere", {}, False, False, False,
     [(REC["matchpathcon_equivalence"]["dir"], None), (REC["matchpathcon_equivalence"]["file"], None),
      (simulated(REC["matchpathcon_equivalence"]["dir"]), None),
      (simulated(REC["matchpathcon_equivalence"]["file"]), None)],
     {"failed": True, "msg_start": "path: the rules for %s would not take effect" % REC_ROOT}),
    ("absent: the module's rules deleted, the tree relabeled", {"state": "absent"}, False, True, True,
     [(REC["delete"], "fcontext -d -f a %s(/.*)?\nfcontext -d -f a %s(/.*)?/__pycache__(/.*)?\n" % (REC_ROOT, REC_ROOT)),
      (REC["setfiles_after_delete"], None)],
     {"changed": True, "rules_added": [], "rules_removed": ADDED, "relabel_method": "full",
      "relabel_reason": "the rules changed", "relabeled_count": 6}),
    ("absent, nothing to delete", {"state": "absent"}, False, False, False, [],
     {"changed": False, "rules_removed": [], "relabel_method": "none"}),
    ("missing matchpathcon", {}, False, False, False, [],
     {"failed": True, "msg": "'matchpathcon' is missing: install the package selinux-utils (Debian family; "
                             "libselinux-utils on the RedHat family)", "tools": {"matchpathcon": None}}),
    ("missing matchpathcon, skipped", {"missing_tools": "skip"}, False, False, False, [],
     {"changed": False, "skipped": True, "tools": {"matchpathcon": None}}),
]


@pytest.mark.parametrize("name, params, check_mode, tree, stored, expected, want", CASES, ids=[c[0] for c in CASES])
def test_recorded(tmp_path, monkeypatch, name, params, check_mode, tree, stored, expected, want):
    root = str(tmp_path / "srv" / "rec")
    etc = tmp_path / "etc"
    fc = etc / "file_contexts"
    etc.mkdir()
    fc.write_text(REC["file_contexts_excerpt"])
    (etc / "config").write_text("SELINUX=disabled\nSELINUXTYPE=default\n")
    (etc / "semanage.conf").write_text("store-root=%s\n" % (tmp_path / "store"))
    (etc / "os-release").write_text('ID=debian\nVERSION_ID="12"\n')
    if stored != "semanage":
        active = tmp_path / "store" / "default" / "active"
        active.mkdir(parents=True)
        (active / "file_contexts.local").write_text(REC["store_local"].replace(REC_ROOT, root) if stored else "")
    if tree:
        for path in TREE:
            os.makedirs(os.path.dirname(os.path.join(root, path)), exist_ok=True)
            open(os.path.join(root, path), "w").close()
    monkeypatch.setattr(_selinux_host, "SELINUX_CONFIG", str(etc / "config"))
    monkeypatch.setattr(_selinux_host, "SEMANAGE_CONF", str(etc / "semanage.conf"))
    monkeypatch.setattr(_selinux_host, "ENFORCE_FILE", str(etc / "no-enforce-file"))
    monkeypatch.setattr(_selinux_host, "OS_RELEASE", str(etc / "os-release"))
    monkeypatch.setattr(_selinux_host, "file_contexts_path", lambda policy: str(fc))
    tools = dict(TOOLS, **want.get("tools", {}))
    module = RecordedModule(dict(params, path=[root]), check_mode, True, expected, tools,
                            Replacer(root, str(fc), os.path.join(_selinux_host.tempfile.gettempdir(), "pycgi-selinux-")))
    try:
        result = _selinux_host.run(module)
        failed = False
    except Exited as exc:
        result, failed = exc.result, exc.failed
    assert module.expected == [], "commands the case expects were not run: %r (ran %r)" % (
        [rec["argv"] for rec, _data in module.expected], module.ran)
    assert failed == want.get("failed", False), result
    # The failures of a command leave it out; every other result tells the kernel's mode.
    assert result.get("selinux_status", "disabled") == "disabled"
    for key, value in want.items():
        if key in ("failed", "tools"):
            continue
        if key == "msg_start":
            assert result["msg"].startswith(value.replace(REC_ROOT, root)), result["msg"]
        elif key == "relabeled":
            assert result[key] == [root + suffix for suffix in value]
        elif key in ("rules_added", "rules_removed"):
            assert result[key] == [dict(rule, target=rule["target"].replace(REC_ROOT, root)) for rule in value]
        else:
            assert result[key] == value, key
    if not failed and "skipped" not in result:
        assert result["roots"] == [root]
        assert result["policy"] == "default"
        # The diff shows the local rules before and after, as semanage lists them.
        assert (result["diff"]["before"] == result["diff"]["after"]) == (not result["rules_added"] and
                                                                         not result["rules_removed"])
