"""Entry launchers made while a release is built: only the new release is written (never an
inode it shares with another release), the release stays reusable, later pushes still link the
scripts' content, and a refused script leaves no release behind. Real files in tmp_path; the
split is the entry_launcher module's own plan and apply, its syntax check compiling here."""
import os
import subprocess
import sys

import pytest

from ansible_collections.pycgi.hosting.plugins.module_utils import _launcher
from ansible_collections.pycgi.hosting.plugins.module_utils import _release as rel
from test_release_utils import make_tree, manifest_of


SCRIPT = "#!/usr/bin/python3\nimport lib\nprint('Content-Type: text/plain')\nprint()\nprint('v', lib.V)\n"
APP = {"report.py": SCRIPT, "lib.py": "V = 1\n", "tool.sh": "#!/bin/sh\necho hi\n", "notes.txt": "x\n"}
MODES = {"report.py": 0o755, "tool.sh": 0o755}


def run_command(args, data=None, binary_data=False):
    result = subprocess.run(args, input=data, capture_output=True, check=False)
    return result.returncode, result.stdout.decode(), result.stderr.decode()


def split(path):
    todo = _launcher.plan(path, None, "present", lambda *a: _launcher.check_syntax(run_command, *a))
    if not todo.changed:
        return None
    _launcher.apply(todo)
    return todo.module


def push(layout, source, launchers=True):
    manifest = manifest_of(source)
    plan = rel.plan_release(layout, manifest, (), launchers)
    if plan["reuse"]:
        return plan["reuse"], plan, None
    archive = None
    if plan["lacking"]:
        archive = os.path.join(os.path.dirname(layout.releases), "push.tar")
        rel.write_archive(str(source), manifest, plan["lacking"], archive)
    release_id = "r%d" % len(layout.releases_on_disk())
    counts = rel.build_release(layout, manifest, release_id, plan["digest"], archive=archive,
                               split_entry=split if launchers else None)
    return release_id, plan, counts


def output(path):
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    return subprocess.run([sys.executable, path], capture_output=True, env=env, check=True).stdout


def test_entry_scripts_become_launchers_in_the_new_release_only(tmp_path, layout):
    src = make_tree(tmp_path / "src", APP, MODES)
    plain, _plan, _counts = push(layout, src, launchers=False)
    before = output(os.path.join(layout.release_path(plain), "report.py"))
    source_bytes = (src / "report.py").read_bytes()

    release_id, plan, counts = push(layout, src)
    assert not plan["reuse"] and plan["lacking"] == []  # same files, but a release of its own
    assert counts["launchers"] == ["report.py"]
    base = layout.release_path(release_id)
    launcher = open(os.path.join(base, "report.py"), "rb").read()
    assert _launcher.launcher_module(launcher) == "_report_main"
    assert open(os.path.join(base, "_report_main.py"), "rb").read().startswith(source_bytes)
    assert open(os.path.join(base, "tool.sh")).read() == APP["tool.sh"]  # not Python: left alone
    assert output(os.path.join(base, "report.py")) == before
    # The release it was linked from and the source are unchanged.
    assert open(os.path.join(layout.release_path(plain), "report.py"), "rb").read() == source_bytes
    assert (src / "report.py").read_bytes() == source_bytes
    assert os.stat(os.path.join(base, "report.py")).st_mode & 0o777 == 0o755


def test_a_release_with_launchers_is_reused_and_its_scripts_are_linked_later(tmp_path, layout):
    src = make_tree(tmp_path / "src", APP, MODES)
    first, _plan, _counts = push(layout, src)
    again, plan, counts = push(layout, src)
    assert again == first and plan["reuse"] == first and counts is None
    (src / "lib.py").write_text("V = 2\n")
    second, plan, counts = push(layout, src)
    # Only lib.py travels: the script's content is linked from the original the first release kept.
    assert len(plan["lacking"]) == 1 and counts["extracted"] == 1
    assert counts["launchers"] == ["report.py"]
    kept = os.path.join(layout.originals_path(first), "0")
    assert os.path.samefile(kept, os.path.join(layout.originals_path(second), "0"))
    assert b"v 2" in output(os.path.join(layout.release_path(second), "report.py"))


def test_a_launcher_edited_on_the_host_makes_the_release_not_reusable(tmp_path, layout):
    src = make_tree(tmp_path / "src", APP, MODES)
    first, _plan, _counts = push(layout, src)
    with open(os.path.join(layout.release_path(first), "_report_main.py"), "a") as handle:
        handle.write("# edited\n")
    again, plan, _counts = push(layout, src)
    assert again != first and not plan["reuse"]


def test_prune_removes_the_kept_originals_with_their_release(tmp_path, layout):
    src = make_tree(tmp_path / "src", APP, MODES)
    first, _plan, _counts = push(layout, src)
    (src / "lib.py").write_text("V = 2\n")
    second, _plan, _counts = push(layout, src)
    assert rel.prune(layout, 1, {second}) == [first]
    assert not os.path.exists(layout.originals_path(first))
    assert os.path.isdir(layout.originals_path(second))


@pytest.mark.parametrize("extra, message", [
    ({"broken.py": "#!/usr/bin/python3\nprint(\n"}, "broken.py, line"),
    ({"_report_main.py": "x = 1\n"}, "the source holds _report_main.py"),
])
def test_a_refused_script_leaves_no_release(tmp_path, layout, extra, message):
    src = make_tree(tmp_path / "src", dict(APP, **extra), dict(MODES, **{"broken.py": 0o755}))
    with pytest.raises(rel.ReleaseError, match=message) as info:
        push(layout, src)
    assert ".partial" not in str(info.value)
    assert layout.releases_on_disk() == []
    assert sorted(os.listdir(layout.meta)) == []
