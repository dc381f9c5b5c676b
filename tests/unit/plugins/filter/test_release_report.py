"""The role's report line per root, from results shaped as the role registers them (the
release, switch and precompile tasks loop over the roots; the switch loops over the release
results, so its item is a release result)."""
from ansible_collections.pycgi.hosting.plugins.filter.release_report import human_bytes, release_report, step_times

ROOTS = [{"path": "/usr/lib/cgi-bin", "source": "/src/app"}, {"path": "/srv/legacy"}]
CLOCK = [["start", 100.0], ["release", 101.25], ["precompile", 101.75], ["owner", 101.8], ["selinux", 102.1],
         ["switch", 102.3]]


def built(**extra):
    result = {"item": ROOTS[0], "changed": True, "release": "R2", "live": "R1", "previous": "R0", "reused": False,
              "transferred": {"files": 1, "bytes": 2048}, "launchers": ["report.py"]}
    result.update(extra)
    return result


def compiled(path, sources, count):
    return {"item": {"path": path}, "stats": {"sources": sources, "fresh": sources - count, "compiled": count}}


def test_a_push_names_the_live_and_previous_release_files_sources_and_step_times():
    release = built()
    switch = {"item": release, "changed": True, "live": "R2", "previous": "R1"}
    lines = release_report(ROOTS, releases=[release], switches=[switch],
                           precompile=[compiled("/usr/lib/cgi-bin", 310, 3), compiled("/srv/legacy", 4, 0)],
                           clock=CLOCK)
    assert lines == [
        "/usr/lib/cgi-bin: live R2 (previous R1), 1 file transferred (2.0 KiB), 3 of 310 sources compiled, "
        "entry launchers: report.py; steps: release 1.25 s, precompile 0.50 s, owner 0.05 s, selinux 0.30 s, "
        "switch 0.20 s",
        "/srv/legacy: in place (no source), 0 of 4 sources compiled; steps: release 1.25 s, precompile 0.50 s, "
        "owner 0.05 s, selinux 0.30 s, switch 0.20 s",
    ]


def test_an_unchanged_push_says_so_and_a_rollback_names_its_target():
    release = built(changed=False, reused=True, release="R2", live="R2", previous="R1",
                    transferred={"files": 0, "bytes": 0}, launchers=None)
    switch = {"item": release, "changed": False, "live": "R2", "previous": "R1"}
    line = release_report(ROOTS[:1], releases=[release], switches=[switch], clock=CLOCK[:2])[0]
    assert line == "/usr/lib/cgi-bin: live R2 (previous R1), unchanged, 0 files transferred (0 B); steps: release 1.25 s"
    rollback = {"item": ROOTS[0], "changed": True, "release": "R1", "live": "R1", "previous": "R2", "switched": True}
    line = release_report(ROOTS[:1], releases=[rollback], switches=[{"item": rollback, "skipped": True}])[0]
    assert line == "/usr/lib/cgi-bin: live R1 (previous R2)"


def test_check_mode_and_failures_are_worded_as_such():
    would = built(live="R1")
    assert release_report(ROOTS[:1], releases=[would])[0] == "/usr/lib/cgi-bin: release R2 would replace R1, entry launchers: report.py"
    assert release_report(ROOTS[:1], releases=[{"item": ROOTS[0], "failed": True}])[0] == \
        "/usr/lib/cgi-bin: release failed"


def test_step_times_and_sizes():
    assert step_times([["start", 5], ["a", 6.5], ["b", 6.5]]) == [("a", 1.5), ("b", 0.0)]
    assert step_times([]) == []
    assert [human_bytes(n) for n in (0, 1023, 1024, 5 * 1024 * 1024)] == ["0 B", "1023 B", "1.0 KiB", "5.0 MiB"]
