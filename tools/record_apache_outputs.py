"""Records what the commands httpd_pycache runs answer on a real Debian Apache, for the
table-driven unit tests (tests/unit/plugins/module_utils/test_apache_change.py).

Starts a container of the test image (PYCGI_TEST_IMAGE, as `make container-tests` builds it),
runs each command the way the module runs it (same argument list, same environment) in the
state each recording needs, and writes their rc, stdout and stderr, plus what they changed on
disk (the "effects" the tests replay), to tests/unit/plugins/module_utils/apache_commands.yml.

    CONTAINERS_CONF=tools/containers.conf PYCGI_TEST_IMAGE=localhost/pycgi-hosting-test:TAG \\
        PYTHONPATH=.build/src:tests .venv/bin/python tools/record_apache_outputs.py

The RHEL family cannot be recorded here (no image of it can be built offline).
"""
import datetime
import json
import os
import sys

import yaml

from harness.podman import Container

from ansible_collections.pycgi.hosting.plugins.module_utils._apache import drop_in_name, render_block

OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "unit", "plugins", "module_utils", "apache_commands.yml")
ROOT = "/srv/cgi"
NAME = drop_in_name(ROOT)
DROP_IN = "/etc/apache2/conf-available/%s.conf" % NAME
ENV = {"LC_ALL": "C"}
A2_ENV = {"LC_ALL": "C", "APACHE_CONFDIR": "/etc/apache2", "APACHE_STATE_DIRECTORY": "/var/lib/apache2"}
WATCHED = ["/etc/apache2/conf-enabled", "/var/lib/apache2/conf"]

# Prints every entry below the watched directories: {path: [kind, content or link target, mode]}.
TREE = r"""
import json, os, stat, sys
out = {}
for top in sys.argv[1:]:
    for base, dirs, files in os.walk(top):
        for name in dirs + files:
            path = os.path.join(base, name)
            st = os.lstat(path)
            if stat.S_ISLNK(st.st_mode):
                out[path] = ["link", os.readlink(path), 0o777]
            elif stat.S_ISDIR(st.st_mode):
                out[path] = ["dir", None, stat.S_IMODE(st.st_mode)]
            else:
                out[path] = ["file", open(path, encoding="utf-8").read(), stat.S_IMODE(st.st_mode)]
print(json.dumps(out))
"""


class Literal(str):
    """A string dumped as a YAML block scalar."""


yaml.SafeDumper.add_representer(Literal, lambda dumper, data: dumper.represent_scalar(
    "tag:yaml.org,2002:str", data, style="|" if "\n" in data else None))


def tree(container):
    return json.loads(container.exec("python3", "-c", TREE, *WATCHED).stdout)


def effects(before, after):
    """What changed between two trees, in an order that replays: removals deepest first, then
    creations shallowest first."""
    out = []
    for path in sorted(set(before) - set(after), key=len, reverse=True):
        out.append({"remove": path})
    for path in sorted(after, key=len):
        if before.get(path) == after[path]:
            continue
        kind, data, mode = after[path]
        if kind == "link":
            out.append({"symlink": path, "target": data})
        elif kind == "dir":
            out.append({"mkdir": path, "mode": oct(mode)})
        else:
            out.append({"file": path, "content": Literal(data), "mode": oct(mode)})
    return out


def record(container, argv, env):
    before = tree(container)
    proc = container.exec(*argv, env=env, check=False)
    return {"argv": list(argv), "rc": proc.returncode, "stdout": Literal(proc.stdout), "stderr": Literal(proc.stderr),
            "effects": effects(before, tree(container))}


def main():
    recorded = {}
    image = os.environ["PYCGI_TEST_IMAGE"]
    with Container.start() as container:
        dump = ["/usr/sbin/apache2ctl", "-t", "-D", "DUMP_INCLUDES"]
        recorded["dump_includes_stock"] = record(container, dump, ENV)
        recorded["config_test_stock"] = record(container, ["/usr/sbin/apache2ctl", "-t"], ENV)

        container.put_file(DROP_IN, render_block(ROOT))
        recorded["a2enconf_fresh"] = record(container, ["/usr/sbin/a2enconf", "-q", NAME], A2_ENV)
        recorded["dump_includes_with_drop_in"] = record(container, dump, ENV)
        recorded["a2disconf"] = record(container, ["/usr/sbin/a2disconf", "-q", NAME], A2_ENV)
        recorded["a2enconf_after_a2disconf"] = record(container, ["/usr/sbin/a2enconf", "-q", NAME], A2_ENV)
        container.exec("/usr/sbin/a2disconf", "-q", NAME, env=A2_ENV)
        container.exec("rm", "-rf", DROP_IN, "/var/lib/apache2/conf/disabled_by_admin", "/var/lib/apache2/conf/enabled_by_admin")

        # Without mod_env the SetEnv of write_bytecode=false is an unknown directive.
        container.exec("a2dismod", "-q", "-f", "env")
        recorded["dump_includes_without_mod_env"] = record(container, dump, ENV)
        recorded["config_test_without_mod_env"] = record(container, ["/usr/sbin/apache2ctl", "-t"], ENV)
        container.put_file(DROP_IN, render_block(ROOT, [("PYTHONDONTWRITEBYTECODE", "1")]))
        container.exec("/usr/sbin/a2enconf", "-q", NAME, env=A2_ENV)
        recorded["dump_includes_setenv_without_mod_env"] = record(container, dump, ENV)
        container.exec("/usr/sbin/a2disconf", "-q", NAME, env=A2_ENV)
        container.exec("rm", "-rf", DROP_IN, "/var/lib/apache2/conf/disabled_by_admin", "/var/lib/apache2/conf/enabled_by_admin")
        main = container.read_file("/etc/apache2/apache2.conf")
        container.put_file("/etc/apache2/apache2.conf", main + render_block(ROOT, [("PYTHONDONTWRITEBYTECODE", "1")]))
        recorded["config_test_setenv_without_mod_env"] = record(container, ["/usr/sbin/apache2ctl", "-t"], ENV)
        container.put_file("/etc/apache2/apache2.conf", main)
        container.exec("a2enmod", "-q", "env")

        container.put_file("/etc/apache2/conf-enabled/zz-broken.conf", "# broken on purpose\nThisIsNotADirective on\n")
        recorded["dump_includes_broken_before"] = record(container, dump, ENV)
        container.exec("rm", "/etc/apache2/conf-enabled/zz-broken.conf")

        # A main config that no longer includes conf-enabled/: the drop-in is enabled but never read.
        container.put_file("/etc/apache2/apache2.conf", main.replace("IncludeOptional conf-enabled/*.conf", "# (conf-enabled not included)"))
        container.put_file(DROP_IN, render_block(ROOT))
        container.exec("/usr/sbin/a2enconf", "-q", NAME, env=A2_ENV)
        recorded["dump_includes_conf_enabled_not_included"] = record(container, dump, ENV)
        version = container.exec("apache2", "-v", check=False).stdout.splitlines()[0]
    document = {
        "source": Literal("Recorded by tools/record_apache_outputs.py on %s in a container of %s (Debian 12, %s).\n"
                          "Drop-in of the recordings: %s (root %s).\n" % (
                              datetime.date.today().isoformat(), image, version, DROP_IN, ROOT)),
        "recordings": recorded,
    }
    with open(OUT, "w") as handle:
        handle.write("# Generated by tools/record_apache_outputs.py; do not edit by hand.\n")
        yaml.safe_dump(document, handle, sort_keys=False, allow_unicode=True, width=200)
    print("wrote %s (%d recordings)" % (os.path.normpath(OUT), len(recorded)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
