"""The large report script that prepare.yml placed in the stock root's source and launcher.yml
split with pycgi.hosting.entry_launcher before the role pushed it as part of the release: a small
launcher at its URL, its code in a module whose cache the role built, and real requests answered
exactly as the script did."""
import pytest

SCRIPT = "report.py"
MODULE = "_report_main.py"
# prepare.yml: the script's CGI output before the split, and the query it was run with.
EXPECTED = "/var/lib/pycgi-molecule/report.expected"
QUERY = "scale=3&limit=280"
LAUNCHER_MARKER = "# pycgi.hosting entry launcher"


@pytest.fixture(scope="module")
def expected(site):
    """(headers, body) of the recorded CGI output."""
    recorded = site.host.file(EXPECTED)
    assert recorded.is_file, EXPECTED
    head, sep, body = recorded.content.partition(b"\r\n\r\n")
    assert sep and body, recorded.content[:200]
    headers = dict(line.split(": ", 1) for line in head.decode("ascii").split("\r\n"))
    return headers, body


def test_the_script_at_the_url_is_a_small_launcher(site):
    launcher = site.host.file(site.root + "/" + SCRIPT)
    assert launcher.is_file and not launcher.is_symlink
    lines = launcher.content_string.splitlines()
    assert len(lines) <= 15, "%d lines" % len(lines)
    # The shebang, owner and mode of the script are kept: same URL, still run as CGI.
    assert lines[0] == "#!/usr/bin/python3"
    assert any(line.startswith(LAUNCHER_MARKER) for line in lines[:3]), lines
    assert '"%s"' % MODULE in launcher.content_string
    assert launcher.user == "root" and launcher.group == "root"
    assert launcher.mode == 0o755


def test_the_code_is_in_a_module_beside_it_that_is_not_run_as_cgi(site):
    module = site.host.file(site.root + "/" + MODULE)
    assert module.is_file
    lines = module.content_string.splitlines()
    assert len(lines) >= 3000, "%d lines" % len(lines)
    assert lines[0] == "#!/usr/bin/python3"
    assert "def main(" in module.content_string
    assert lines[-1].startswith(LAUNCHER_MARKER + ": code moved from "), lines[-1]
    # The script's owner, its mode without the execute bits.
    assert module.user == "root" and module.group == "root"
    assert module.mode == 0o644


def test_the_module_has_a_current_cache_where_python_looks(site):
    report = site.cache_report(site.root)
    source = site.root + "/" + MODULE
    assert source in report["current"], report
    cache = site.host.file(report["current"][source])
    assert cache.path == "%s/%s.%s.pyc" % (site.cache_home(site.root), MODULE[:-3], report["tag"])
    assert cache.is_file and cache.user == site.user and cache.mode == 0o644
    if site.prefix:
        assert cache.path.startswith(site.prefix + "/")


def test_a_request_answers_exactly_as_the_script_did_before_the_split(site, expected):
    headers, body = expected
    for _request in range(2):
        status, got_headers, got_body = site.http_raw("/cgi-bin/%s?%s" % (SCRIPT, QUERY))
        assert status.split()[1] == "200", status
        assert got_headers.get("Content-Type") == headers["Content-Type"], got_headers
        assert got_body == body
    # The query string reaches the moved code: another query, another answer.
    assert site.http_raw("/cgi-bin/%s?scale=4&limit=280" % SCRIPT)[2] != body


def test_the_launcher_runs_the_moved_code_from_its_cache(site, expected):
    """Run as the web server user with the environment Apache gives the script."""
    report = site.cache_report(site.root)
    source = site.root + "/" + MODULE
    cache = report["current"][source]
    before = site.host.file(cache)
    before = (before.inode, before.mtime)
    env = ["%s=%s" % item for item in sorted(site.cache_env().items())]
    env += ["GATEWAY_INTERFACE=CGI/1.1", "REQUEST_METHOD=GET", "QUERY_STRING=" + QUERY]
    out = site.web.run("env " + "%s " * len(env) + "/usr/bin/python3 -v %s", *(env + [site.root + "/" + SCRIPT]))
    assert out.rc == 0, out.stderr[-2000:]
    assert "# code object from '%s'" % cache in out.stderr, out.stderr[-3000:]
    # Python names the module by the real path of the script's directory (the live release).
    assert "# %s matches %s/%s" % (cache, site.real(site.root), MODULE) in out.stderr
    assert out.stdout_bytes.partition(b"\r\n\r\n")[2] == expected[1]
    after = site.host.file(cache)
    assert (after.inode, after.mtime) == before, "the cache was rewritten"
