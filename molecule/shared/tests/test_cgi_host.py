"""What a user checks on a web server after `site.yml`: checked from outside the playbook,
on the host itself (testinfra, podman backend). The `site` fixture (conftest.py) knows the
host's cache mode: `writable` (caches in __pycache__ beside the code) or `prefix` (caches
below the PYTHONPYCACHEPREFIX directory, none under the CGI roots)."""
import re

import pytest

# The application's modules, as the page lists them.
APP_MODULES = ["cgiapp", "cgiapp.inventory", "cgiapp.main", "cgiapp.render"]
# The caches every root holds (relative to its cache tree), besides those of the report script
# that only the stock root has.
APP_CACHES = ["cgiapp/%s.{tag}.pyc" % m for m in ("__init__", "inventory", "main", "render")] + ["hello.{tag}.pyc"]
REPORT_CACHES = ["_report_main.{tag}.pyc", "report.{tag}.pyc"]
# Runs on the host: exits 0 when the path has no SELinux label (no security.selinux xattr).
LABEL_ABSENT = r"""
import errno, os, sys
try:
    os.getxattr(sys.argv[1], "security.selinux", follow_symlinks=False)
except OSError as exc:
    sys.exit(0 if exc.errno == errno.ENODATA else 2)
sys.exit(1)
"""


def blocks(site):
    """The pycgi.hosting blocks, by root, where the host's placement puts them: the main Apache
    config, or the drop-ins Apache reads (and then none is left in the main config)."""
    if site.placement != "block":
        assert "# BEGIN pycgi.hosting pycache " not in site.host.file(site.config).content_string
    lines = []
    for path in site.stanza_files():
        lines += site.host.file(path).content_string.splitlines()
    found, current = {}, None
    for line in lines:
        if line.startswith("# BEGIN pycgi.hosting pycache "):
            current = line[len("# BEGIN pycgi.hosting pycache "):]
            found[current] = []
        elif line.startswith("# END pycgi.hosting pycache "):
            assert line == "# END pycgi.hosting pycache " + current, line
            current = None
        elif current is not None:
            found[current].append(line)
    return found


def cache_files(site, root):
    """Every file and directory below the root's cache tree: {relative path: (type, user, mode)}."""
    tree = site.cache_tree(root)
    out = site.host.check_output("find -H %s -mindepth 1 -printf '%%P\\t%%y\\t%%u\\t%%m\\n'", tree)
    found = {}
    for line in out.splitlines():
        path, kind, user, mode = line.split("\t")
        found[path] = (kind, user, int(mode, 8))
    return found


def test_apache_runs_with_a_valid_configuration(site):
    assert site.host.run_expect([0], site.ctl + " -t")
    assert site.host.service(site.service).is_running
    assert site.host.service(site.service).is_enabled


def test_cgi_request_answers_with_the_application_output(site):
    status, body = site.http("/cgi-bin/hello.py")
    assert status == 200, body
    assert "pycgi example application" in body
    # Every module of the package was imported from a cache that exists (with the prefix mode,
    # __cached__ names the prefix: Python looks nowhere else).
    rows = re.findall(r"<tr><td>(cgiapp[\w.]*)</td><td>(\w+)</td></tr>", body)
    assert sorted(name for name, _cached in rows) == APP_MODULES, body
    assert all(cached == "yes" for _name, cached in rows), body


@pytest.mark.parametrize("which", ["stock", "second"])
def test_every_source_has_a_current_cache_of_the_host_python(site, which):
    """After the code push (side_effect) this includes the two changed modules."""
    root = site.root if which == "stock" else site.second_root
    report = site.cache_report(root)
    assert report["missing"] == {} and report["stale"] == {}, report
    assert len(report["current"]) >= 5
    # Where Python, run as the web server runs it, looks for them.
    home = site.cache_tree(root) + "/"
    assert all(cache.startswith(home) for cache in report["current"].values()), report


def test_each_root_has_its_own_apache_block(site):
    found = blocks(site)
    # Besides the roots' blocks, the server-wide one (pycgi_deny_pycache_everywhere, on by default).
    server_wide = found.pop("/", None)
    assert server_wide is not None and "    Require all denied" in server_wide, found
    assert '<DirectoryMatch "^/(?:.+/)?__pycache__(?:/|$)">' in server_wide, server_wide
    assert sorted(found) == sorted(site.roots), found
    for root, lines in found.items():
        assert any(line.startswith("<DirectoryMatch ") and "__pycache__" in line for line in lines), lines
        assert "    Require all denied" in lines
        setenv = [line.strip() for line in lines if line.strip().startswith("SetEnv ")]
        if site.prefix:
            # The root's scripts run with the prefix, so Python reads and writes the caches there.
            assert setenv == ["SetEnv PYTHONPYCACHEPREFIX " + site.prefix], lines
            assert '<Directory "%s">' % root in lines, lines
        else:
            assert setenv == [], lines


@pytest.mark.cache_modes("writable")
def test_caches_belong_to_the_web_server_user(site):
    cache_dir = site.host.file(site.root + "/cgiapp/__pycache__")
    assert cache_dir.is_directory
    assert cache_dir.user == site.user
    assert cache_dir.mode == 0o755
    pycs = site.host.check_output("find -H %s -name '*.pyc'", site.root).split()
    assert pycs
    for pyc in pycs:
        cache = site.host.file(pyc)
        assert cache.user == site.user, pyc
        assert cache.mode == 0o644, pyc


@pytest.mark.cache_modes("prefix")
def test_no_cache_under_the_cgi_roots(site):
    for root in site.roots:
        assert site.host.file(root).is_directory
        found = site.host.check_output("find -H %s %s -name __pycache__ -o -name %s %s -print", root, "(", "*.pyc", ")")
        assert found == "", found


@pytest.mark.cache_modes("prefix")
@pytest.mark.parametrize("which", ["stock", "second"])
def test_caches_in_the_prefix_belong_to_the_web_server_user(site, which):
    root = site.root if which == "stock" else site.second_root
    prefix = site.host.file(site.prefix)
    assert prefix.is_directory and prefix.user == site.user and prefix.group == site.user
    assert prefix.mode == 0o755
    tag = site.cache_report(root)["tag"]
    files = cache_files(site, root)
    pycs = sorted(path for path, (kind, _user, _mode) in files.items() if kind == "f")
    expected = APP_CACHES + (REPORT_CACHES if root == site.root else [])
    assert pycs == sorted(name.format(tag=tag) for name in expected), files
    for path, (kind, user, mode) in files.items():
        assert user == site.user, path
        assert mode == (0o755 if kind == "d" else 0o644), (path, oct(mode))
    # The directories above the tree, which Python creates on the way, are the web user's too.
    parent = site.prefix
    for part in site.real(root).strip("/").split("/"):
        parent += "/" + part
        assert site.host.file(parent).user == site.user, parent


def test_the_entry_script_keeps_its_executable_bit(site):
    script = site.host.file(site.root + "/hello.py")
    assert script.mode & 0o111 == 0o111
    assert script.user == "root"


@pytest.mark.cache_modes("writable")
def test_a_cached_pyc_is_never_served(site):
    tag = site.cache_report(site.root)["tag"]
    for url in ("/cgi-bin/cgiapp/__pycache__/main.%s.pyc" % tag, "/cgi-bin/cgiapp/__pycache__/"):
        status = site.http(url)[0]
        assert status == 403, url


@pytest.mark.cache_modes("prefix")
def test_a_pyc_is_never_served_in_the_prefix_mode(site):
    tag = site.cache_report(site.root)["tag"]
    url = "/cgi-bin/cgiapp/__pycache__/main.%s.pyc" % tag
    assert site.http(url)[0] == 403, url
    # A __pycache__ made under the root after all (someone running a script by hand without
    # the prefix), with a real cache in it, is still refused by the Apache block.
    stray = site.root + "/cgiapp/__pycache__"
    assert not site.host.file(stray).exists
    site.host.check_output("mkdir %s", stray)
    try:
        site.host.check_output("cp %s %s", site.cache_tree(site.root) + "/cgiapp/main.%s.pyc" % tag, stray)
        for stray_url in (url, "/cgi-bin/cgiapp/__pycache__/"):
            status, body = site.http(stray_url)
            assert status == 403, (stray_url, status, body[:200])
    finally:
        site.host.check_output("rm -rf %s", stray)


def test_serving_requests_uses_the_caches_without_rewriting_them(site):
    def snapshot():
        return site.host.check_output("find -H %s -name '*.pyc' -printf '%%p %%i %%T@\\n'", site.cache_tree(site.root))

    assert site.http("/cgi-bin/hello.py")[0] == 200
    before = snapshot()
    assert before
    for _request in range(3):
        assert site.http("/cgi-bin/hello.py")[0] == 200
    assert snapshot() == before


def test_the_web_server_user_loads_the_application_from_its_caches(site):
    """The imports of a request, as Python run by the web server user reports them (-v)."""
    env = ["%s=%s" % item for item in sorted(site.cache_env().items())] + ["REQUEST_METHOD=GET"]
    out = site.web.run("env " + "%s " * len(env) + "/usr/bin/python3 -v %s", *(env + [site.root + "/hello.py"]))
    assert out.rc == 0, out.stderr[-2000:]
    report = site.cache_report(site.root)
    real = site.real(site.root)
    for module in ("main", "render", "inventory"):
        cache = report["current"]["%s/cgiapp/%s.py" % (site.root, module)]
        assert "# code object from '%s'" % cache in out.stderr, out.stderr[-3000:]
        # Python names the module by the real path of the script's directory (the live release).
        assert "# %s matches %s/cgiapp/%s.py" % (cache, real, module) in out.stderr


@pytest.mark.cache_modes("writable")
def test_selinux_labels_on_disk(site):
    host = site.host
    if host.run("command -v semanage").rc != 0:
        pytest.skip("no SELinux tools on this host")
    label = host.check_output("stat -c %%C %s", site.root + "/cgiapp/__pycache__")
    assert ":httpd_sys_rw_content_t:" in label
    label = host.check_output("stat -c %%C %s", site.root + "/hello.py")
    assert ":httpd_sys_script_exec_t:" in label
    # The policy's rules name real paths: those of the live release below the releases directory.
    assert "httpd_sys_rw_content_t" in host.check_output(
        "matchpathcon %s", site.real(site.root) + "/cgiapp/__pycache__/main.pyc")


@pytest.mark.cache_modes("writable")
def test_selinux_rules_for_a_root_the_policy_does_not_know(site):
    host = site.host
    if host.run("command -v semanage").rc != 0:
        pytest.skip("no SELinux tools on this host")
    local = host.check_output("semanage fcontext -l -C")
    # The root is pushed as releases: the rules cover its releases directory, every release.
    releases = site.real(site.second_root).rsplit("/", 1)[0].replace(".", "\\.")
    assert releases.endswith("/\\.admin\\.releases"), releases
    assert releases + "(/.*)?" in local
    assert releases + "(/.*)?/__pycache__(/.*)?" in local
    assert ":httpd_sys_script_exec_t:" in host.check_output("stat -c %%C %s", site.second_root + "/hello.py")
    assert ":httpd_sys_rw_content_t:" in host.check_output("stat -c %%C %s", site.second_root + "/cgiapp/__pycache__")
    # The writable type is given to the caches only, never to code.
    assert "httpd_sys_rw_content_t" not in host.check_output("matchpathcon %s",
                                                             site.real(site.second_root) + "/cgiapp/main.py")


def test_selinux_left_alone_when_switched_off(site):
    """pycgi_selinux: false never touches SELinux: no SELinux package installed on a host that had
    none (the bare Debian image), no local rules where the tools exist, no labels written."""
    host = site.host
    if site.selinux != "false":
        pytest.skip("SELinux is managed on this host")
    if host.run("command -v semanage").rc == 0:
        local = host.check_output("semanage fcontext -l -C")
        for path in site.roots + ((site.prefix,) if site.prefix else ()):
            assert path not in local, local
    if host.system_info.distribution == "debian":
        # The bare image has no SELinux package, and the role installed none.
        for package in ("policycoreutils", "selinux-policy-default"):
            assert not host.package(package).is_installed, package
    for path in (site.root + "/hello.py", site.second_root + "/hello.py", site.cache_home(site.root)):
        assert host.run("/usr/bin/python3 -c %s %s", LABEL_ABSENT, path).rc == 0, path
