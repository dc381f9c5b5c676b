"""pycgi.hosting.release (the host module) run as Ansible runs it, fed what its action plugin
sends: the manifest, then the archive of the lacking contents. The action plugin itself runs in
the container tests (tests/container/test_release.py)."""
import hashlib
import json
import os
import time

import pytest

from ansible_collections.pycgi.hosting.plugins.module_utils import _release as rel
from conftest import run_module


def make_tree(root, files):
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    return root


def push(tmp_path, root, source, check_mode=False, diff=False, **extra):
    """One push as the action plugin makes it: returns (result, module calls)."""
    manifest = rel.build_manifest(str(source), rel.walk_source(str(source)))
    args = dict(path=str(root), source=str(source), manifest=json.dumps(manifest), **extra)
    result = run_module("release", args, check_mode=check_mode, diff=diff, tmp_path=tmp_path)
    if not result.get("need_archive"):
        return result, 1
    archive = str(tmp_path / "push.tar")
    rel.write_archive(str(source), manifest, result["lacking"], archive)
    args["archive"] = archive
    result = run_module("release", args, check_mode=check_mode, diff=diff, tmp_path=tmp_path)
    os.unlink(archive)
    return result, 2


def rollback(tmp_path, root, check_mode=False, **extra):
    return run_module("release", dict(path=str(root), state="rolled_back", **extra), check_mode=check_mode,
                      tmp_path=tmp_path)


def tree_state(path):
    """Every name below ``path`` with its link target or content: what check mode must not change."""
    found = {}
    for base, dirs, files in os.walk(path):
        for name in dirs + files:
            full = os.path.join(base, name)
            found[full] = os.readlink(full) if os.path.islink(full) else (
                open(full, "rb").read() if os.path.isfile(full) else None)
    return found


@pytest.fixture
def host(tmp_path):
    (tmp_path / "host").mkdir()
    return tmp_path / "host" / "cgi-bin"


def test_push_again_unchanged_then_one_file(tmp_path, host):
    src = make_tree(tmp_path / "src", {"a.py": "A = 1\n", "b.py": "B = 1\n", "lib/c.py": "C = 1\n"})
    first, calls = push(tmp_path, host, src)
    assert first["changed"] and calls == 2 and first["rc"] == 0, first
    assert os.readlink(str(host)) == ".cgi-bin.releases/" + first["release"]
    again, calls = push(tmp_path, host, src)
    assert (again["changed"], calls, again["release"]) == (False, 1, first["release"])
    (src / "b.py").write_text("B = 2\n")
    second, calls = push(tmp_path, host, src, diff=True)
    assert second["changed"] and calls == 2
    assert second["transferred"] == {"files": 1, "bytes": 6}
    assert second["linked"]["files"] == 2 and second["previous"] == first["release"]
    assert second["files"] == {"added": [], "changed": ["b.py"], "removed": []}
    assert "b.py" in second["diff"]["after"] and first["release"] in second["diff"]["before"]
    assert (host / "b.py").read_text() == "B = 2\n"


def test_check_mode_reports_and_writes_nothing(tmp_path, host):
    src = make_tree(tmp_path / "src", {"a.py": "A = 1\n"})
    push(tmp_path, host, src)
    (src / "a.py").write_text("A = 2\n")
    before = tree_state(str(tmp_path / "host"))
    result, calls = push(tmp_path, host, src, check_mode=True)
    assert result["changed"] and result["switched"] and calls == 1
    assert result["transferred"]["files"] == 1
    assert tree_state(str(tmp_path / "host")) == before
    assert rollback(tmp_path, host, check_mode=True)["rc"] != 0  # nothing live before this one


def test_deleted_file_is_gone_from_the_new_release(tmp_path, host):
    src = make_tree(tmp_path / "src", {"a.py": "A = 1\n", "old.py": "OLD = 1\n"})
    push(tmp_path, host, src)
    os.unlink(src / "old.py")
    result, _calls = push(tmp_path, host, src)
    assert result["files"]["removed"] == ["old.py"]
    assert not (host / "old.py").exists()


def test_rollback_once_then_no_further_and_a_push_brings_the_source_back(tmp_path, host):
    src = make_tree(tmp_path / "src", {"a.py": "A = 1\n"})
    first = push(tmp_path, host, src)[0]
    (src / "a.py").write_text("A = 2\n")
    second = push(tmp_path, host, src)[0]
    (src / "a.py").write_text("A = 3\n")
    third = push(tmp_path, host, src)[0]
    back = rollback(tmp_path, host)
    assert (back["changed"], back["release"], back["previous"]) == (True, second["release"], third["release"])
    assert (host / "a.py").read_text() == "A = 2\n"
    again = rollback(tmp_path, host)
    assert (again["changed"], again["release"]) == (False, second["release"])
    assert (host / "a.py").read_text() == "A = 2\n"
    forward, calls = push(tmp_path, host, src)
    assert (forward["changed"], forward["reused"], forward["release"], calls) == (True, True, third["release"], 1)
    to_first = rollback(tmp_path, host, release=first["release"])
    assert to_first["changed"] and (host / "a.py").read_text() == "A = 1\n"
    missing = rollback(tmp_path, host, release="nope")
    assert missing["failed"] and "nope" in missing["msg"]


def test_keep_prunes_old_releases_but_not_the_previous(tmp_path, host):
    src = make_tree(tmp_path / "src", {"a.py": "A = 0\n"})
    ids = []
    for n in range(4):
        (src / "a.py").write_text("A = %d\n" % n)
        ids.append(push(tmp_path, host, src, keep=2)[0])
    assert [r["pruned"] for r in ids] == [[], [], [ids[0]["release"]], [ids[1]["release"]]]
    releases = sorted(n for n in os.listdir(str(tmp_path / "host" / ".cgi-bin.releases")) if not n.startswith("."))
    assert releases == sorted([ids[2]["release"], ids[3]["release"]])
    assert run_module("release", dict(path=str(host), keep=1, release=ids[3]["release"]),
                      tmp_path=tmp_path)["msg"].startswith("keep must be at least 2")


def test_migration_of_a_plain_directory_reports_and_keeps_extra_files(tmp_path, host):
    make_tree(host, {"a.py": "old\n", "uploads/report.csv": "1,2\n"})
    src = make_tree(tmp_path / "src", {"a.py": "A = 1\n"})
    result, _calls = push(tmp_path, host, src)
    assert result["changed"] and result["migrated"]["kept_files"] == ["uploads/report.csv"]
    assert result["migrated"]["method"] == "exchange"
    assert "uploads/report.csv" in json.dumps(result.get("warnings"))
    assert result["previous"] == result["migrated"]["id"]
    kept = tmp_path / "host" / ".cgi-bin.releases" / result["migrated"]["id"] / "uploads" / "report.csv"
    assert kept.read_text() == "1,2\n"
    back = rollback(tmp_path, host)
    assert back["release"] == result["migrated"]["id"] and (host / "a.py").read_text() == "old\n"


def test_push_after_the_releases_were_deleted_by_hand(tmp_path, host):
    src = make_tree(tmp_path / "src", {"a.py": "A = 1\n"})
    push(tmp_path, host, src)
    import shutil
    shutil.rmtree(str(tmp_path / "host" / ".cgi-bin.releases"))
    result, calls = push(tmp_path, host, src)
    assert result["changed"] and calls == 2 and (host / "a.py").read_text() == "A = 1\n"


def test_a_link_to_somewhere_else_is_refused(tmp_path, host):
    (tmp_path / "elsewhere").mkdir()
    os.symlink(str(tmp_path / "elsewhere"), str(host))
    src = make_tree(tmp_path / "src", {"a.py": "A = 1\n"})
    result, _calls = push(tmp_path, host, src)
    assert result["failed"] and "not a release" in result["msg"] and str(host) in result["msg"]
    assert os.readlink(str(host)) == str(tmp_path / "elsewhere")


def test_shared_paths_survive_pushes_and_rollbacks(tmp_path, host):
    src = make_tree(tmp_path / "src", {"a.py": "A = 1\n"})
    first = push(tmp_path, host, src, shared_paths=["data"])[0]
    assert first["shared_created"] == ["data"]
    (host / "data" / "counter").write_text("7")
    (src / "a.py").write_text("A = 2\n")
    push(tmp_path, host, src, shared_paths=["data"])
    assert (host / "data" / "counter").read_text() == "7"
    rollback(tmp_path, host)
    assert (host / "data" / "counter").read_text() == "7"
    (src / "data").mkdir()
    (src / "data" / "seed").write_text("x")
    refused = push(tmp_path, host, src, shared_paths=["data"])[0]
    assert refused["failed"] and "data/seed" in refused["msg"]


def discard(tmp_path, root, release, check_mode=False, **extra):
    return run_module("release", dict(path=str(root), state="discarded", release=release, **extra),
                      check_mode=check_mode, tmp_path=tmp_path)


def test_a_prepared_release_that_failed_its_checks_is_removed_and_logged(tmp_path, host):
    src = make_tree(tmp_path / "src", {"a.py": "A = 1\n", "data/.keep": ""})
    live = push(tmp_path, host, src, shared_paths=["state"])[0]
    (host / "state" / "sessions").write_text("kept")
    (src / "a.py").write_text("A = 2\n")
    prepared = push(tmp_path, host, src, state="prepared", shared_paths=["state"])[0]
    releases = tmp_path / "host" / ".cgi-bin.releases"
    assert (releases / prepared["release"]).is_dir()
    before = tree_state(str(releases / live["release"]))
    checked = discard(tmp_path, host, prepared["release"], check_mode=True, reason="a.py:1: SyntaxError")
    assert (checked["changed"], checked["discarded"]) == (True, "removed")
    assert (releases / prepared["release"]).is_dir()
    gone = discard(tmp_path, host, prepared["release"], reason="a.py:1: SyntaxError")
    assert (gone["changed"], gone["discarded"], gone["live"]) == (True, "removed", live["release"])
    assert not (releases / prepared["release"]).exists()
    assert not (releases / ".meta" / (prepared["release"] + ".json")).exists()
    assert (host / "a.py").read_text() == "A = 1\n" and tree_state(str(releases / live["release"])) == before
    assert (host / "state" / "sessions").read_text() == "kept"
    log = json.loads((releases / ".meta" / "failures.json").read_text())
    assert [(e["id"], e["reason"], e["outcome"]) for e in log] == [
        (prepared["release"], "a.py:1: SyntaxError", "removed")]
    again = discard(tmp_path, host, prepared["release"], reason="again")
    assert (again["changed"], again["discarded"]) == (False, "absent")


def test_a_release_that_has_been_live_is_marked_not_removed(tmp_path, host):
    src = make_tree(tmp_path / "src", {"a.py": "A = 1\n"})
    first = push(tmp_path, host, src)[0]
    (src / "a.py").write_text("A = 2\n")
    push(tmp_path, host, src)
    releases = tmp_path / "host" / ".cgi-bin.releases"
    for release_id in (first["release"], push(tmp_path, host, src)[0]["release"]):
        marked = discard(tmp_path, host, release_id, reason="owner step failed")
        assert (marked["changed"], marked["discarded"]) == (True, "marked")
        assert (releases / release_id).is_dir()
        meta = json.loads((releases / ".meta" / (release_id + ".json")).read_text())
        assert meta["failed"]["reason"] == "owner step failed" and "manifest" in meta
    assert (host / "a.py").read_text() == "A = 2\n"
    back = rollback(tmp_path, host)
    assert back["release"] == first["release"] and (host / "a.py").read_text() == "A = 1\n"


def test_discarded_needs_a_release(tmp_path, host):
    result = run_module("release", dict(path=str(host), state="discarded"), tmp_path=tmp_path)
    assert result["failed"] and "release" in result["msg"]


@pytest.mark.parametrize("contents, waits", [({}, False), ({"a.py": "old\n"}, True)])
def test_the_migration_grace_is_waited_only_for_a_directory_that_served_something(tmp_path, host, contents, waits):
    """The grace lets requests that started in the plain directory end before the switch; an
    empty directory (as a web server package creates it) cannot have served one."""
    import time
    host.mkdir()
    make_tree(host, contents)
    src = make_tree(tmp_path / "src", {"a.py": "A = 1\n"})
    started = time.monotonic()
    result, _calls = push(tmp_path, host, src, migration_grace=4.0)
    elapsed = time.monotonic() - started
    assert result["changed"] and result["migrated"]["id"] and (host / "a.py").read_text() == "A = 1\n"
    assert (elapsed >= 4.0) == waits, elapsed


def push_digest(tmp_path, root, source, check_mode=False, **extra):
    """The action plugin's call when it saw this source's manifest live on the host before: the
    hash alone."""
    manifest = rel.build_manifest(str(source), rel.walk_source(str(source)))
    digest = rel.manifest_digest(manifest, extra.get("shared_paths", ()), extra.get("entry_launchers", False))
    args = dict(path=str(root), source=str(source), digest=digest, **extra)
    return run_module("release", args, check_mode=check_mode, tmp_path=tmp_path), digest


def test_the_hash_alone_is_enough_for_an_unchanged_source(tmp_path, host):
    src = make_tree(tmp_path / "src", {"a.py": "A = 1\n", "lib/c.py": "C = 1\n"})
    first, _calls = push(tmp_path, host, src, shared_paths=["data"])
    again, digest = push_digest(tmp_path, host, src, shared_paths=["data"])
    assert first["digest"] == digest
    assert not again.get("need_manifest") and not again["changed"], again
    assert (again["release"], again["live"], again["reused"]) == (first["release"], first["release"], True)
    assert again["transferred"] == {"files": 0, "bytes": 0}
    assert again["files"] == {"added": [], "changed": [], "removed": []}
    # Another shared path is another release: the hash the host recorded does not match.
    other, _digest = push_digest(tmp_path, host, src, shared_paths=["other"])
    assert other["need_manifest"] and not other["changed"] and other["release"] is None


def test_the_hash_of_a_source_the_host_does_not_hold_asks_for_the_manifest(tmp_path, host):
    src = make_tree(tmp_path / "src", {"a.py": "A = 1\n"})
    first, _calls = push(tmp_path, host, src)
    (src / "a.py").write_text("A = 2\n")
    result, _digest = push_digest(tmp_path, host, src)
    assert result["need_manifest"] and not result["changed"]
    assert os.readlink(str(host)).endswith(first["release"]) and (host / "a.py").read_text() == "A = 1\n"
    assert sorted(n for n in os.listdir(str(tmp_path / "host" / ".cgi-bin.releases")) if n != ".lock") == [
        ".meta", first["release"]]


def test_a_release_changed_behind_the_controllers_back_is_not_trusted(tmp_path, host):
    src = make_tree(tmp_path / "src", {"a.py": "A = 1\n", "b.py": "B = 1\n"})
    first, _calls = push(tmp_path, host, src)
    (host / "b.py").write_text("B = 666\n")
    result, _digest = push_digest(tmp_path, host, src)
    assert result["need_manifest"] and not result["changed"]
    # A release id is its second and its hash: the rebuild of the same source needs another second.
    time.sleep(1.1)
    full, calls = push(tmp_path, host, src)
    assert full["changed"] and calls == 2 and full["release"] != first["release"], full
    assert (host / "b.py").read_text() == "B = 1\n"


def test_the_hash_after_the_releases_were_deleted_by_hand(tmp_path, host):
    import shutil
    src = make_tree(tmp_path / "src", {"a.py": "A = 1\n"})
    push(tmp_path, host, src)
    shutil.rmtree(str(tmp_path / "host" / ".cgi-bin.releases"))
    result, _digest = push_digest(tmp_path, host, src)
    assert result["need_manifest"] and not result["changed"]
    full, calls = push(tmp_path, host, src)
    assert full["changed"] and calls == 2 and (host / "a.py").read_text() == "A = 1\n"


@pytest.mark.parametrize("tamper", ["manifest", "digest", "garbage"])
def test_a_tampered_release_record_is_not_trusted(tmp_path, host, tamper):
    src = make_tree(tmp_path / "src", {"a.py": "A = 1\n"})
    first, _calls = push(tmp_path, host, src)
    meta_path = tmp_path / "host" / ".cgi-bin.releases" / ".meta" / (first["release"] + ".json")
    meta = json.loads(meta_path.read_text())
    if tamper == "manifest":
        # The record claims another content for a.py, its hash left as it was.
        meta["manifest"]["a.py"][3] = "0" * 64
        meta_path.write_text(json.dumps(meta))
    elif tamper == "digest":
        meta["digest"] = "f" * 64
        meta_path.write_text(json.dumps(meta))
    else:
        meta_path.write_text("{not json")
    result, _digest = push_digest(tmp_path, host, src)
    if tamper == "garbage":
        # Unreadable: the push stops and names the record, as it does with the manifest.
        assert result["failed"] and str(meta_path) in result["msg"], result
    else:
        assert result["need_manifest"] and not result["changed"], result
    assert os.readlink(str(host)).endswith(first["release"])


def test_the_hash_after_a_rollback_brings_the_sources_release_back(tmp_path, host):
    src = make_tree(tmp_path / "src", {"a.py": "A = 1\n"})
    push(tmp_path, host, src)
    (src / "a.py").write_text("A = 2\n")
    second, _calls = push(tmp_path, host, src)
    rollback(tmp_path, host)
    assert (host / "a.py").read_text() == "A = 1\n"
    result, _digest = push_digest(tmp_path, host, src)
    assert result["changed"] and result["switched"] and result["release"] == second["release"], result
    assert (host / "a.py").read_text() == "A = 2\n"


def test_the_hash_in_check_mode_changes_nothing(tmp_path, host):
    src = make_tree(tmp_path / "src", {"a.py": "A = 1\n"})
    first, _calls = push(tmp_path, host, src)
    before = tree_state(str(tmp_path / "host"))
    result, _digest = push_digest(tmp_path, host, src, check_mode=True)
    assert not result["changed"] and result["release"] == first["release"]
    assert tree_state(str(tmp_path / "host")) == before


def test_a_compressed_manifest_is_accepted_and_not_echoed_back(tmp_path, host):
    src = make_tree(tmp_path / "src", {"a.py": "A = 1\n", "lib/c.py": "C = 1\n"})
    manifest = rel.build_manifest(str(src), rel.walk_source(str(src)))
    text = rel.encode_manifest(manifest)
    assert text.startswith("zlib:")
    # As Ansible's controller asks of a module whose task is not no_log.
    args = dict(path=str(host), source=str(src), manifest=text, _ansible_inject_invocation=True)
    result = run_module("release", args, tmp_path=tmp_path)
    assert result["need_archive"] and len(result["lacking"]) == 2
    assert text not in json.dumps(result)
    assert result["invocation"]["module_args"]["manifest"] == "(%d characters)" % len(text)
    bad = run_module("release", dict(args, manifest="zlib:bm90IHpsaWI="), tmp_path=tmp_path)
    assert bad["failed"] and "manifest is not valid JSON" in bad["msg"]


def push_speculative(tmp_path, host, source, guess):
    """One call carrying the manifest and an archive of the ``guess`` contents, as the action
    plugin sends it when it knows the manifest live on the host."""
    manifest = rel.build_manifest(str(source), rel.walk_source(str(source)))
    archive = str(tmp_path / "guess.tar")
    rel.write_archive(str(source), manifest, guess, archive)
    args = dict(path=str(host), source=str(source), manifest=json.dumps(manifest), archive=archive, speculative=True)
    result = run_module("release", args, tmp_path=tmp_path)
    os.unlink(archive)
    return result, manifest


def sha(text):
    return hashlib.sha256(text.encode()).hexdigest()


def test_one_call_when_the_archive_holds_what_the_host_lacks(tmp_path, host):
    src = make_tree(tmp_path / "src", {"a.py": "A = 1\n", "b.py": "B = 1\n", "lib/c.py": "C = 1\n"})
    first, _calls = push(tmp_path, host, src)
    (src / "b.py").write_text("B = 2\n")
    # The guess may hold contents the host has already (A = 1): they are skipped, not refused.
    second, _manifest = push_speculative(tmp_path, host, src, [sha("B = 2\n"), sha("A = 1\n")])
    assert second["changed"] and not second.get("need_archive") and not second.get("failed"), second
    assert second["previous"] == first["release"] and second["linked"]["files"] == 2
    assert second["files"] == {"added": [], "changed": ["b.py"], "removed": []}
    assert (host / "b.py").read_text() == "B = 2\n" and (host / "a.py").read_text() == "A = 1\n"


def test_a_guess_short_of_what_the_host_lacks_builds_nothing_and_asks(tmp_path, host):
    src = make_tree(tmp_path / "src", {"a.py": "A = 1\n", "b.py": "B = 1\n"})
    first, _calls = push(tmp_path, host, src)
    releases = sorted(os.listdir(str(tmp_path / "host" / ".cgi-bin.releases")))
    (src / "a.py").write_text("A = 2\n")
    (src / "b.py").write_text("B = 2\n")
    asked, _manifest = push_speculative(tmp_path, host, src, [sha("B = 2\n")])
    assert asked["need_archive"] and not asked["changed"], asked
    assert asked["lacking"] == sorted([sha("A = 2\n"), sha("B = 2\n")])
    assert sorted(os.listdir(str(tmp_path / "host" / ".cgi-bin.releases"))) == releases
    assert os.readlink(str(host)) == ".cgi-bin.releases/" + first["release"]
    # The exact archive then completes the push.
    second, calls = push(tmp_path, host, src)
    assert second["changed"] and calls == 2 and (host / "a.py").read_text() == "A = 2\n"


def test_a_guess_is_still_checked_member_by_member(tmp_path, host):
    import tarfile
    src = make_tree(tmp_path / "src", {"a.py": "A = 1\n"})
    push(tmp_path, host, src)
    (src / "a.py").write_text("A = 2\n")
    manifest = rel.build_manifest(str(src), rel.walk_source(str(src)))
    archive = tmp_path / "bad.tar"
    with tarfile.open(str(archive), "w") as tar:
        tar.add(str(src / "a.py"), arcname=sha("A = 2\n"))
        tar.add(str(src / "a.py"), arcname="../escape")
    args = dict(path=str(host), source=str(src), manifest=json.dumps(manifest), archive=str(archive), speculative=True)
    refused = run_module("release", args, tmp_path=tmp_path)
    assert refused["failed"] and "archive member ../escape climbs out" in refused["msg"], refused
    assert (host / "a.py").read_text() == "A = 1\n"
