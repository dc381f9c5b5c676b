"""What a user checks on a web server after `site.yml`: checked from outside the playbook,
on the host itself (testinfra, podman backend)."""
import json

import pytest

# Runs on the managed host: for every Python source below the root, whether a cache of the
# host's python3 is present and current (timestamp pycs: magic, flags, mtime and size).
CACHE_CHECK = r"""
import importlib.util, json, os, struct, sys
root = sys.argv[1]
report = {"current": [], "missing": [], "stale": [], "tag": sys.implementation.cache_tag}
for dirpath, dirnames, filenames in os.walk(root):
    dirnames[:] = [d for d in dirnames if d != "__pycache__"]
    for name in filenames:
        if not name.endswith(".py"):
            continue
        source = os.path.join(dirpath, name)
        cache = importlib.util.cache_from_source(source)
        try:
            with open(cache, "rb") as handle:
                header = handle.read(16)
        except FileNotFoundError:
            report["missing"].append(source)
            continue
        st = os.stat(source)
        flags, mtime, size = struct.unpack("<3L", header[4:16])
        fresh = (header[:4] == importlib.util.MAGIC_NUMBER and flags == 0
                 and mtime == int(st.st_mtime) & 0xFFFFFFFF and size == st.st_size & 0xFFFFFFFF)
        report["current" if fresh else "stale"].append(source)
print(json.dumps(report))
"""


@pytest.fixture(scope="module")
def layout(host):
    family = host.system_info.distribution.lower()
    if family in ("debian", "ubuntu"):
        return {"root": "/usr/lib/cgi-bin", "user": "www-data", "ctl": "apache2ctl", "service": "apache2"}
    return {"root": "/var/www/cgi-bin", "user": "apache", "ctl": "apachectl", "service": "httpd"}


SECOND_ROOT = "/srv/pycgi/admin"


def http(host, path):
    """(status, body) of a request to the host's own Apache."""
    out = host.check_output("curl -s -o /dev/stdout -w '\\n%%{http_code}' %s", "http://localhost" + path)
    body, _sep, status = out.rpartition("\n")
    return int(status), body


def cache_report(host, root):
    return json.loads(host.check_output("/usr/bin/python3 -c %s %s", CACHE_CHECK, root))


def test_apache_runs_with_a_valid_configuration(host, layout):
    assert host.run_expect([0], layout["ctl"] + " -t")
    assert host.service(layout["service"]).is_running
    assert host.service(layout["service"]).is_enabled


def test_cgi_request_answers_with_the_application_output(host):
    status, body = http(host, "/cgi-bin/hello.py")
    assert status == 200, body
    assert "pycgi example application" in body
    # Every module of the package was imported from a cache that exists.
    assert "<td>cgiapp.main</td><td>yes</td>" in body
    assert "<td>cgiapp.render</td><td>yes</td>" in body


@pytest.mark.parametrize("root", ["stock", SECOND_ROOT])
def test_every_source_has_a_current_cache_of_the_host_python(host, layout, root):
    report = cache_report(host, layout["root"] if root == "stock" else root)
    assert report["missing"] == [] and report["stale"] == [], report
    assert len(report["current"]) >= 4


def test_each_root_has_its_own_apache_block(host, layout):
    config = "/etc/apache2/apache2.conf" if layout["service"] == "apache2" else "/etc/httpd/conf/httpd.conf"
    lines = host.file(config).content_string.splitlines()
    assert sum(1 for line in lines if line.startswith("# BEGIN pycgi.hosting pycache ")) == 2
    for root in (layout["root"], SECOND_ROOT):
        assert "# BEGIN pycgi.hosting pycache " + root in lines
        assert "# END pycgi.hosting pycache " + root in lines


def test_caches_belong_to_the_web_server_user(host, layout):
    cache_dir = host.file(layout["root"] + "/cgiapp/__pycache__")
    assert cache_dir.is_directory
    assert cache_dir.user == layout["user"]
    assert cache_dir.mode == 0o755
    pycs = host.check_output("find %s -name '*.pyc'", layout["root"]).split()
    assert pycs
    for pyc in pycs:
        cache = host.file(pyc)
        assert cache.user == layout["user"], pyc
        assert cache.mode == 0o644, pyc


def test_the_entry_script_keeps_its_executable_bit(host, layout):
    script = host.file(layout["root"] + "/hello.py")
    assert script.mode & 0o111 == 0o111
    assert script.user == "root"


def test_a_cached_pyc_is_never_served(host, layout):
    tag = cache_report(host, layout["root"])["tag"]
    for url in ("/cgi-bin/cgiapp/__pycache__/main.%s.pyc" % tag, "/cgi-bin/cgiapp/__pycache__/"):
        status = http(host, url)[0]
        assert status == 403, url


def test_serving_requests_uses_the_caches_without_rewriting_them(host, layout):
    def snapshot():
        return host.check_output("find %s -name '*.pyc' -printf '%%p %%i %%T@\\n'", layout["root"])

    before = snapshot()
    for _request in range(3):
        assert http(host, "/cgi-bin/hello.py")[0] == 200
    assert snapshot() == before


def test_selinux_labels_on_disk(host, layout):
    if host.run("command -v semanage").rc != 0:
        pytest.skip("no SELinux tools on this host")
    label = host.check_output("stat -c %%C %s", layout["root"] + "/cgiapp/__pycache__")
    assert ":httpd_sys_rw_content_t:" in label
    label = host.check_output("stat -c %%C %s", layout["root"] + "/hello.py")
    assert ":httpd_sys_script_exec_t:" in label
    assert "httpd_sys_rw_content_t" in host.check_output(
        "matchpathcon %s", layout["root"] + "/cgiapp/__pycache__/main.pyc")


def test_selinux_rules_for_a_root_the_policy_does_not_know(host):
    if host.run("command -v semanage").rc != 0:
        pytest.skip("no SELinux tools on this host")
    local = host.check_output("semanage fcontext -l -C")
    assert SECOND_ROOT + "(/.*)?" in local
    assert SECOND_ROOT + "(/.*)?/__pycache__(/.*)?" in local
    assert ":httpd_sys_script_exec_t:" in host.check_output("stat -c %%C %s", SECOND_ROOT + "/hello.py")
    assert ":httpd_sys_rw_content_t:" in host.check_output("stat -c %%C %s", SECOND_ROOT + "/cgiapp/__pycache__")
    # The writable type is given to the caches only, never to code.
    assert "httpd_sys_rw_content_t" not in host.check_output("matchpathcon %s", SECOND_ROOT + "/cgiapp/main.py")
