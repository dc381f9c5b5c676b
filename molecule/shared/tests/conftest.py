"""What the checks need to know about the host they run on: its OS layout, and the cache mode and
SELinux setting the scenario gave it in the inventory (molecule passes the inventory directory
to testinfra as --ansible-inventory; the testinfra hosts themselves use the podman backend)."""
import base64
import json
import os
import re

import pytest
import testinfra

SECOND_ROOT = "/srv/pycgi/admin"
DEFAULT_PREFIX = "/var/cache/pycgi"
CHECKED_MODES = ("writable", "prefix")

# Runs on the managed host: for every Python source below the root, whether a cache of the
# host's python3 is present and current (timestamp pycs: magic, flags, mtime and size), and
# where it is. The second argument, when not empty, is the PYTHONPYCACHEPREFIX the web server
# runs the root's scripts with.
CACHE_CHECK = r"""
import importlib.util, json, os, struct, sys
root, prefix = sys.argv[1], sys.argv[2]
# A root pushed as releases is a symlink to the live release, and Python names the caches after
# the real path of the scripts' directory (sys.path[0]).
real = os.path.realpath(root)
if prefix:
    sys.pycache_prefix = prefix
report = {"current": {}, "missing": {}, "stale": {}, "tag": sys.implementation.cache_tag}
for dirpath, dirnames, filenames in os.walk(root):
    dirnames[:] = [d for d in dirnames if d != "__pycache__"]
    for name in filenames:
        if not name.endswith(".py"):
            continue
        source = os.path.join(dirpath, name)
        cache = importlib.util.cache_from_source(real + source[len(root):])
        try:
            with open(cache, "rb") as handle:
                header = handle.read(16)
        except FileNotFoundError:
            report["missing"][source] = cache
            continue
        st = os.stat(source)
        flags, mtime, size = struct.unpack("<3L", header[4:16])
        fresh = (header[:4] == importlib.util.MAGIC_NUMBER and flags == 0
                 and mtime == int(st.st_mtime) & 0xFFFFFFFF and size == st.st_size & 0xFFFFFFFF)
        report["current" if fresh else "stale"][source] = cache
print(json.dumps(report))
"""


# Runs on the managed host: one GET, answered as JSON (status line, headers, body in base64),
# error statuses included.
HTTP_GET = r"""
import base64, json, sys, urllib.error, urllib.request
try:
    response = urllib.request.urlopen(sys.argv[1], timeout=30)
except urllib.error.HTTPError as exc:
    response = exc
body = response.read()
print(json.dumps({"status_line": "HTTP/1.1 %d %s" % (response.status, response.reason),
                  "headers": dict(response.headers.items()), "body": base64.b64encode(body).decode()}))
"""


class Site(object):
    """One managed host as the checks see it."""

    def __init__(self, host, controller):
        self.host = host
        self.name = host.backend.get_hostname()
        self.controller = controller
        hostvars = controller.ansible.get_variables()
        self.mode = hostvars.get("pycgi_cache_mode", "writable")
        self.prefix = hostvars.get("pycgi_pycache_prefix", DEFAULT_PREFIX) if self.mode == "prefix" else None
        self.selinux = str(hostvars.get("pycgi_selinux", "auto")).lower()
        family = host.system_info.distribution.lower()
        if family in ("debian", "ubuntu"):
            self.root, self.user, self.ctl, self.service = "/usr/lib/cgi-bin", "www-data", "apache2ctl", "apache2"
            self.config = "/etc/apache2/apache2.conf"
        else:
            self.root, self.user, self.ctl, self.service = "/var/www/cgi-bin", "apache", "apachectl", "httpd"
            self.config = "/etc/httpd/conf/httpd.conf"
        self.placement = hostvars.get("pycgi_apache_placement", "drop_in")
        # Where the drop-ins are, as Apache reads them (Debian: the symlinks a2enconf makes).
        self.drop_in_dir = "/etc/apache2/conf-enabled" if family in ("debian", "ubuntu") else "/etc/httpd/conf.d"
        self.second_root = SECOND_ROOT
        self.roots = (self.root, SECOND_ROOT)

    def stanza_file(self, root):
        """The file that holds the pycgi.hosting block for ``root`` with the host's placement:
        the main config, or the root's drop-in (named as httpd_pycache's drop_in_name names it)."""
        if self.placement == "block":
            return self.config
        slug = re.sub("-+", "-", re.sub(r"[^A-Za-z0-9._]", "-", root.strip("/"))).strip("-") or "root"
        name = "pycgi-pycache-server" if root == "/" else "pycgi-pycache-" + slug
        directory = "/etc/apache2/conf-available" if self.config.startswith("/etc/apache2/") else self.drop_in_dir
        return "%s/%s.conf" % (directory, name)

    def stanza_files(self):
        """Every file that may hold pycgi.hosting blocks with the host's placement."""
        if self.placement == "block":
            return [self.config]
        listing = self.host.check_output("find %s -maxdepth 1 -name 'pycgi-pycache-*.conf'", self.drop_in_dir)
        return sorted(listing.split())

    @property
    def web(self):
        """The same host, commands run as the web server user."""
        return testinfra.get_host("podman://%s@%s" % (self.user, self.name))

    def real(self, root):
        """The real path of ``root``: the live release's directory where the root is pushed as
        releases, which is where Python looks for its caches."""
        return self.host.check_output("readlink -f %s", root)

    def cache_home(self, root):
        """The directory that holds the caches of ``root``'s top-level sources."""
        return self.prefix + self.real(root) if self.prefix else self.real(root) + "/__pycache__"

    def cache_tree(self, root):
        """The directory below which all the caches of ``root`` are."""
        return self.prefix + self.real(root) if self.prefix else self.real(root)

    def cache_env(self):
        """The environment the web server runs the scripts with (the Apache block's SetEnv)."""
        return {"PYTHONPYCACHEPREFIX": self.prefix} if self.prefix else {}

    def cache_report(self, root):
        return json.loads(self.host.check_output("/usr/bin/python3 -c %s %s %s", CACHE_CHECK, root, self.prefix or ""))

    def http(self, path):
        """(status, body) of a request to the host's own Apache."""
        reply = self.http_raw(path)
        return int(reply[0].split()[1]), reply[2].decode("utf-8", "replace")

    def http_raw(self, path):
        """(status line, headers dict, body bytes) of a request, the body exactly as sent. Asked
        with the host's own Python: a server the role set up from bare has no curl."""
        out = self.host.run("/usr/bin/python3 -c %s %s", HTTP_GET, "http://localhost" + path)
        assert out.rc == 0, out.stderr
        reply = json.loads(out.stdout)
        return reply["status_line"], reply["headers"], base64.b64decode(reply["body"])

    def module(self, name, **args):
        """The result of an Ansible module run on this host, in check mode, through the inventory."""
        return self.controller.ansible(name, json.dumps(args), check=True)


def pytest_configure(config):
    config.addinivalue_line("markers", "cache_modes(*modes): run the check only on hosts with one of these cache modes")


@pytest.fixture(scope="module")
def site(host, request):
    inventory = request.config.option.ansible_inventory
    if not inventory and os.environ.get("MOLECULE_INVENTORY_FILE"):
        inventory = os.path.dirname(os.environ["MOLECULE_INVENTORY_FILE"])
    if not inventory:
        pytest.fail("run the checks with molecule verify: they read the host's settings from its inventory")
    controller = testinfra.get_host("ansible://" + host.backend.get_hostname(), ansible_inventory=inventory)
    checked = Site(host, controller)
    if checked.mode not in CHECKED_MODES:
        pytest.fail("%s: no checks are written for the cache mode %s" % (checked.name, checked.mode))
    return checked


@pytest.fixture(autouse=True)
def _cache_modes(request):
    marker = request.node.get_closest_marker("cache_modes")
    if marker is not None:
        mode = request.getfixturevalue("site").mode
        if mode not in marker.args:
            pytest.skip("applies to the cache modes %s, not %s" % (", ".join(marker.args), mode))
