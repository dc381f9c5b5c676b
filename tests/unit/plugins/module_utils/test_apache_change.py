"""The config test and rollback of httpd_pycache, without containers: the cases of
apache_change_cases.yml replayed against real files in tmp_path, with the commands (apache2ctl,
a2enconf, a2disconf) answered by their outputs recorded on a real Debian Apache
(apache_commands.yml, written by tools/record_apache_outputs.py; its `source` says where and
when). Only the commands are stand-ins; every file is written, moved and restored for real.
The same behaviour against a real Apache: tests/container/test_httpd_pycache_drop_in.py.
"""
import os
import stat

import pytest
import yaml

from ansible_collections.pycgi.hosting.plugins.module_utils._apache import DropInLayout, render_block
from ansible_collections.pycgi.hosting.plugins.module_utils._apache_change import Host, Request, converge

HERE = os.path.dirname(__file__)
ROOT = "/srv/cgi"
NAME = "pycgi-pycache-srv-cgi"
# The host's prefixes that the fake root in tmp_path stands in for.
MAPPED = ("/etc/apache2", "/var/lib/apache2")
MAIN = 'ServerRoot "/etc/apache2"\nInclude ports.conf\nIncludeOptional conf-enabled/*.conf\nIncludeOptional sites-enabled/*.conf\n'
PIECES = {
    "MAIN": MAIN,
    "MAIN_NO_CONF_ENABLED": MAIN.replace("IncludeOptional conf-enabled/*.conf\n", ""),
    "BLOCK": render_block(ROOT),
    "BLOCK_NO_BYTECODE": render_block(ROOT, [("PYTHONDONTWRITEBYTECODE", "1")]),
}


def load(name):
    with open(os.path.join(HERE, name)) as handle:
        return yaml.safe_load(handle)


CASES = load("apache_change_cases.yml")
RECORDINGS = load(CASES["commands_from"])["recordings"]


class RecordedHost(Host):
    """Answers each command with its recording, after checking it is the one expected next, and
    makes the changes on disk that the command made when it was recorded."""

    def __init__(self, top, expected, check_mode):
        self.top = top
        self.expected = list(expected)
        self.ran = []
        self.check_mode = check_mode
        self.diff = True

    def local(self, text):
        for prefix in MAPPED:
            text = text.replace(prefix + "/", self.top + prefix + "/")
        return text

    def run(self, argv, environ):
        assert self.expected, "unexpected command %s" % argv
        name = self.expected.pop(0)
        recording = RECORDINGS[name]
        assert argv == recording["argv"], (name, argv)
        if "a2" in os.path.basename(argv[0]):
            assert environ["APACHE_CONFDIR"] == self.local("/etc/apache2/")[:-1], environ
            assert environ["APACHE_STATE_DIRECTORY"] == self.local("/var/lib/apache2/")[:-1], environ
        self.ran.append(name)
        for effect in recording["effects"]:
            self.apply(effect)
        return recording["rc"], self.local(recording["stdout"]), self.local(recording["stderr"])

    def apply(self, effect):
        if "remove" in effect:
            path = self.local(effect["remove"])
            os.rmdir(path) if os.path.isdir(path) and not os.path.islink(path) else os.unlink(path)
        elif "symlink" in effect:
            os.symlink(effect["target"], self.local(effect["symlink"]))
        elif "mkdir" in effect:
            os.mkdir(self.local(effect["mkdir"]), int(effect["mode"], 8))
        else:
            path = self.local(effect["file"])
            with open(path, "w") as handle:
                handle.write(effect["content"])
            os.chmod(path, int(effect["mode"], 8))

    def find_program(self, name, dirs):
        return "/usr/sbin/" + name

    def move(self, src, dest):
        os.rename(src, dest)

    def backup(self, path):
        raise AssertionError("no case asks for a backup")


def content(pieces):
    return "".join(PIECES.get(piece, piece) for piece in pieces)


def lay_out(top, files):
    for path in ("/etc/apache2/conf-available", "/etc/apache2/conf-enabled", "/var/lib/apache2/conf/enabled_by_maint"):
        os.makedirs(top + path)
    for path, value in files.items():
        local = top + path
        os.makedirs(os.path.dirname(local), exist_ok=True)
        if isinstance(value, dict):
            os.symlink(value["symlink"], local)
        else:
            with open(local, "w") as handle:
                handle.write(content(value))


def tree(top, with_dirs=True):
    """Everything below ``top``: {path as on the host: (kind, content or target, mode, uid, gid, inode)}."""
    found = {}
    for base, dirs, files in os.walk(top):
        for name in dirs + files:
            local = os.path.join(base, name)
            st = os.lstat(local)
            path = local[len(top):]
            if stat.S_ISLNK(st.st_mode):
                found[path] = ("link", os.readlink(local))
            elif stat.S_ISDIR(st.st_mode):
                if with_dirs:
                    found[path] = ("dir", None, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid)
            else:
                with open(local, "rb") as handle:
                    found[path] = ("file", handle.read(), stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, st.st_ino)
    return found


def expected_tree(files):
    out = {}
    for path, value in files.items():
        if isinstance(value, dict):
            out[path] = ("link", value["symlink"])
        else:
            out[path] = ("file", content(value).encode())
    return out


@pytest.mark.parametrize("case", CASES["cases"], ids=[case["id"] for case in CASES["cases"]])
def test_recorded_case(tmp_path, case):
    top = str(tmp_path / "host")
    lay_out(top, case["before"])
    before = tree(top)
    request = dict(state="present", placement="drop_in", write_bytecode=True, check_mode=False)
    request.update(case["request"])
    environment = [] if request["write_bytecode"] else [("PYTHONDONTWRITEBYTECODE", "1")]
    confdir = top + "/etc/apache2"
    layout = DropInLayout("debian", confdir + "/conf-available/%s.conf" % NAME, confdir + "/conf-enabled/%s.conf" % NAME,
                          confdir, top + "/var/lib/apache2")
    host = RecordedHost(top, case["commands"], request["check_mode"])
    result = converge(host, Request(root=ROOT, block=render_block(ROOT, environment) if request["state"] == "present" else None,
                                    placement=request["placement"], main_config=confdir + "/apache2.conf", layout=layout))

    assert host.expected == [], "commands not run: %s (ran %s)" % (host.expected, host.ran)
    expected = case["result"]
    assert result.get("failed", False) is expected.get("failed", False), result
    assert result["changed"] is expected["changed"], result
    for text in expected.get("msg_contains", []):
        assert text.format(tmp=top) in result["msg"], result["msg"]
    if "diff_after" in expected:
        assert result["diff"]["after"] == content(expected["diff_after"]), result["diff"]
    if case["after"] == "unchanged":
        assert tree(top) == before
    else:
        files = dict((path, entry[:2]) for path, entry in tree(top, with_dirs=False).items())
        assert files == expected_tree(case["after"])
    # No temporary or kept copies are left behind.
    assert not [path for path in tree(top) if os.path.basename(path).startswith(".")]


def test_every_recording_is_replayed_by_a_case():
    used = set(name for case in CASES["cases"] for name in case["commands"])
    assert set(RECORDINGS) - used <= {"a2enconf_after_a2disconf"}, set(RECORDINGS) - used


class SyntheticRhelHost(Host):
    """The RHEL family cannot be recorded here (no image of it can be built offline): this host
    answers the config test with output written by hand in the format of the recordings above
    (`Included configuration files:` and one `  (LINE) /path` per file), listing the main config
    and every conf.d/*.conf that exists when ``include_conf_d`` is true, as
    `IncludeOptional conf.d/*.conf` does."""

    check_mode = False
    diff = False

    def __init__(self, top, programs, include_conf_d=True):
        self.top, self.programs, self.include_conf_d = top, programs, include_conf_d
        self.argvs = []

    def run(self, argv, environ):
        self.argvs.append(argv)
        conf_d = sorted(os.listdir(self.top + "/conf.d")) if self.include_conf_d else []
        listing = ["Included configuration files:", "  (*) %s/conf/httpd.conf" % self.top]
        listing += ["    (357) %s/conf.d/%s" % (self.top, name) for name in conf_d if name.endswith(".conf")]
        return 0, "\n".join(listing) + "\n" if "DUMP_INCLUDES" in argv else "", "Syntax OK\n"

    def find_program(self, name, dirs):
        return "/usr/sbin/" + name if name in self.programs else None

    def move(self, src, dest):
        os.rename(src, dest)


def rhel_request(top):
    os.makedirs(top + "/conf")
    os.makedirs(top + "/conf.d")
    with open(top + "/conf/httpd.conf", "w") as handle:
        handle.write('ServerRoot "/etc/httpd"\nIncludeOptional conf.d/*.conf\n')
    path = top + "/conf.d/%s.conf" % NAME
    layout = DropInLayout("redhat", path, path, top + "/conf", None)
    return Request(root=ROOT, block=render_block(ROOT), placement="drop_in", main_config=top + "/conf/httpd.conf", layout=layout)


def test_rhel_asks_httpd_itself_for_the_included_files(tmp_path):
    """RHEL's apachectl refuses arguments after -t, so the list comes from httpd -t -D DUMP_INCLUDES."""
    top = str(tmp_path)
    host = SyntheticRhelHost(top, {"httpd", "apachectl"})
    result = converge(host, rhel_request(top))
    assert not result.get("failed") and result["changed"] is True, result
    assert host.argvs == [["/usr/sbin/httpd", "-t", "-D", "DUMP_INCLUDES"]] * 2
    with open(top + "/conf.d/%s.conf" % NAME) as handle:
        assert handle.read() == render_block(ROOT)


def test_rhel_drop_in_that_httpd_does_not_read_is_removed_again(tmp_path):
    top = str(tmp_path)
    host = SyntheticRhelHost(top, {"httpd", "apachectl"}, include_conf_d=False)
    result = converge(host, rhel_request(top))
    assert result["failed"] is True and "Apache does not read %s/conf.d/%s.conf" % (top, NAME) in result["msg"], result
    assert os.listdir(top + "/conf.d") == []


def test_rhel_without_the_httpd_binary_runs_apachectl_without_the_list(tmp_path):
    top = str(tmp_path)
    host = SyntheticRhelHost(top, {"apachectl"})
    result = converge(host, rhel_request(top))
    assert not result.get("failed") and result["changed"] is True, result
    assert host.argvs == [["/usr/sbin/apachectl", "-t"]] * 2
