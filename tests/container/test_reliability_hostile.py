"""Hostile trees and careless settings that need a real host: the web server user (www-data), a
real Apache answering HTTP, Apache's own config test, and the role driven by ansible-playbook.

One container for the file, Apache running with mod_cgid.
"""
import os

import pytest

from harness.apache import stanza_text
from harness.podman import Container, require_podman
from harness.site import container_host, run_playbook

MAIN_CONFIG = "/etc/apache2/apache2.conf"
SECRET = "TOKEN = 'ffd0c1a9-not-for-the-web'\n"
PARALLEL = 16


@pytest.fixture(scope="module")
def host():
    require_podman()
    with Container.start(prefix="pycgi-rel-hostile") as container:
        container.exec("a2enmod", "-q", "cgid")
        container.exec("systemctl", "start", "apache2")
        yield container


def parallel_play(host, playbook, per_host_vars, workdir):
    """Runs ``playbook`` against ``host`` under several inventory names at once (one fork each), so
    that the module runs on the one container concurrently. Returns {name: last result}, the rc and
    the output."""
    hosts = dict((name, container_host(host.name, **extra)) for name, extra in per_host_vars.items())
    play = os.path.join(workdir, "play.yml")
    with open(play, "w") as handle:
        handle.write(playbook)
    run = run_playbook(hosts, play)
    return run.results, run.rc, run.output


# --- 2. live traffic ----------------------------------------------------------------------------

@pytest.mark.parametrize("placement", ["drop_in", "block"])
def test_sixteen_concurrent_runs_on_one_apache_config_keep_every_block(host, tmp_path, placement):
    """16 httpd_pycache runs at once on the container's Apache config (16 forks of one play, each
    for its own root, with Apache's config test), with each placement: every run reports a change,
    all 16 blocks are where the placement puts them afterwards (each root's drop-in, enabled with
    a2enconf, or apache2.conf), and `apache2ctl -t` passes (the lock covers the edit, the config
    test and any rollback; without it 2-4 blocks were lost from apache2.conf)."""
    before = host.read_file(MAIN_CONFIG)
    playbook = """
- hosts: webservers
  gather_facts: false
  tasks:
    - name: One root's block
      pycgi.hosting.httpd_pycache:
        path: "/srv/site{{ site }}/cgi-bin"
        placement: %s
""" % placement
    results, rc, output = parallel_play(host, playbook, dict(("site%02d" % i, {"site": "%02d" % i})
                                                             for i in range(PARALLEL)), str(tmp_path))
    try:
        assert rc == 0, output[-3000:]
        assert len(results) == PARALLEL and all(result.get("changed") for result in results.values()), results

        def text(i):
            return stanza_text(host, "/srv/site%02d/cgi-bin" % i, placement)
        missing = [i for i in range(PARALLEL) if "# BEGIN pycgi.hosting pycache /srv/site%02d/cgi-bin\n" % i not in text(i)]
        assert missing == [], "blocks lost: %s" % missing
        if placement == "drop_in":
            enabled = host.exec("a2query", "-c").stdout
            assert all("pycgi-pycache-srv-site%02d-cgi-bin" % i in enabled for i in range(PARALLEL)), enabled
        host.exec("apache2ctl", "-t")
    finally:
        host.put_file(MAIN_CONFIG, before)
        host.exec("sh", "-c", "rm -f /etc/apache2/conf-enabled/pycgi-pycache-srv-site* /etc/apache2/conf-available/pycgi-pycache-srv-site* "
                              "/var/lib/apache2/conf/*/pycgi-pycache-srv-site*")


# --- 4. hostile trees ---------------------------------------------------------------------------

def test_a_planted_link_to_a_root_only_file_never_reaches_the_web_user(host):
    """In a tree whose subdirectory www-data owns, www-data plants `config.py` -> /root/secret.py
    (0600) and `x.py` -> /etc/shadow; precompile and pycache_owner (scope tree), run as root,
    read neither: no file www-data can read holds the secret, and both links are named."""
    host.put_file("/root/secret.py", SECRET, mode=0o600)
    host.put_file("/srv/leak/index.py", "import sub.config\n", mode=0o755)
    host.put_file("/srv/leak/sub/__init__.py", "")
    host.exec("chown", "-R", "www-data:www-data", "/srv/leak/sub")
    host.exec("ln", "-s", "/root/secret.py", "/srv/leak/sub/config.py", user="www-data")
    host.exec("ln", "-s", "/etc/shadow", "/srv/leak/sub/x.py", user="www-data")

    compiled = host.run_module("precompile", {"path": "/srv/leak", "interpreters": ["/usr/bin/python3"]})
    assert not compiled["failed"], compiled
    assert compiled["outside_links"] == ["/srv/leak/sub/config.py", "/srv/leak/sub/x.py"]
    owned = host.run_module("pycache_owner", {"path": "/srv/leak", "scope": "tree"})
    assert not owned["failed"], owned
    found = host.exec("grep", "-rla", "ffd0c1a9", "/srv/leak", user="www-data", check=False)
    assert found.stdout == "", found.stdout
    assert host.exec("sh", "-c", "ls /srv/leak/sub/__pycache__ | grep -c -e config -e '^x\\.' || true").stdout.strip() == "0"


def test_readonly_caches_the_web_user_can_swap_are_reported(host):
    """Readonly caches (root-owned) in a package directory www-data may write to: pycache_info
    reports that cache as one www-data can swap for its own, and www-data can indeed rename it
    away; a cache under a root-only directory is not reported."""
    host.put_file("/srv/ro/index.py", "import pkg.mod\n", mode=0o755)
    host.put_file("/srv/ro/pkg/__init__.py", "")
    host.put_file("/srv/ro/pkg/mod.py", "X = 1\n")
    host.put_file("/srv/ro/safe/mod.py", "X = 1\n")
    host.exec("chown", "www-data:www-data", "/srv/ro/pkg")
    assert not host.run_module("precompile", {"path": "/srv/ro", "interpreters": ["/usr/bin/python3"]})["failed"]
    info = host.run_module("pycache_info", {"path": "/srv/ro", "cache_mode": "readonly",
                                            "interpreters": ["/usr/bin/python3"]})
    assert info["access"]["cache_dirs_replaceable"] == {"count": 1, "paths": ["/srv/ro/pkg/__pycache__"]}, info["access"]
    assert any("swap in a cache of its own" in line and line.startswith("1 cache") for line in info["summary"])
    host.exec("mv", "/srv/ro/pkg/__pycache__", "/srv/ro/pkg/swapped", user="www-data")


# --- 5. security properties, from outside -----------------------------------------------------------

def test_a_pycache_outside_the_managed_roots_is_denied_server_wide(host):
    """A `__pycache__` under /var/www/html is served (200) until httpd_pycache `server_wide: true`
    writes its block; after a reload Apache answers 403 for it, and the CGI root's scripts still run."""
    host.put_file("/var/www/html/__pycache__/views.cpython-311.pyc", "compiled code stand-in\n")
    before = host.read_file(MAIN_CONFIG)
    try:
        assert host.http_get("/__pycache__/views.cpython-311.pyc")[0] == 200
        result = host.run_module("httpd_pycache", {"server_wide": True})
        assert result["changed"] and not result["failed"], result
        host.exec("systemctl", "reload", "apache2")
        assert host.http_get("/__pycache__/views.cpython-311.pyc")[0] == 403
        assert host.http_get("/index.html")[0] == 200
    finally:
        host.run_module("httpd_pycache", {"server_wide": True, "state": "absent"})
        host.put_file(MAIN_CONFIG, before)
        host.exec("systemctl", "reload", "apache2")


# --- 1. bad input ---------------------------------------------------------------------------------

@pytest.mark.parametrize("settings, words", [
    ({"pycgi_cache_mode": "prefix", "pycgi_pycache_prefix": "/usr/lib/cgi-bin/cache"},
     ["pycgi_pycache_prefix /usr/lib/cgi-bin/cache is inside pycgi_roots[0].path /usr/lib/cgi-bin"]),
    ({"pycgi_roots": [{"path": ""}]}, ["pycgi_roots[0].path is empty"]),
    ({"pycgi_roots": [{"path": "/srv/app"}, {"path": "/etc"}]}, ["pycgi_roots[1].path '/etc' is a system directory"]),
    ({"pycgi_roots": [{"path": "~/cgi"}]}, ["pycgi_roots[0].path '~/cgi' is not an absolute path"]),
])
def test_the_role_rejects_bad_settings_before_any_change(host, settings, words):
    """Contradictory or bad role settings (a cache prefix inside the CGI root, an empty root path, a
    system directory, `~`) fail the play at its first check, naming the setting, with changed=0 in
    the recap and the prefix directory never created."""
    run = host.run_site(dict(settings, pycgi_manage_httpd=False))
    assert run.rc != 0, run.output[-2000:]
    for word in words:
        assert word in run.output, run.output[-3000:]
    assert run.recap is not None and run.recap["changed"] == 0, run.recap
    assert host.exec("test", "-e", "/usr/lib/cgi-bin/cache", check=False).returncode != 0
