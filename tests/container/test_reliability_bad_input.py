"""Bad input that needs a real host: an unreadable source (the module run as a non-root user),
SELinux types that do not exist, an Apache config broken before the run, and shell
metacharacters in a root handled by every module.

One container for the file. Each case checks that the error names the file, line or setting,
and that sources, configs, the SELinux policy (`semanage fcontext -l -C`), labels and caches
are byte-identical afterwards (except the caches of the good files where the contract says so).
"""
import json
import os

import pytest

from harness.podman import Container, podman_available

MAIN_CONFIG = "/etc/apache2/apache2.conf"

# Every path below the given roots: kind, owner, mode, inode, SELinux label, and the sha256 of
# a file's content or a link's target. What "left as it was" means.
STATE = r"""
import hashlib, json, os, stat, sys
found = {}
for root in sys.argv[1:]:
    if not os.path.lexists(root):
        continue
    paths = [root]
    for directory, dirs, files in os.walk(root):
        paths += [os.path.join(directory, name) for name in dirs + files]
    for path in paths:
        st = os.lstat(path)
        if stat.S_ISREG(st.st_mode):
            with open(path, "rb") as handle:
                what = hashlib.sha256(handle.read()).hexdigest()
        elif stat.S_ISLNK(st.st_mode):
            what = os.readlink(path)
        else:
            what = None
        try:
            label = os.getxattr(path, "security.selinux", follow_symlinks=False).decode()
        except OSError:
            label = None
        mtime = None if stat.S_ISDIR(st.st_mode) else st.st_mtime_ns
        found[path] = [stat.S_IFMT(st.st_mode), st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode), st.st_ino,
                       mtime, label, what]
print(json.dumps(found))
"""


class Host(Container):
    """Waits for systemd's bus before asking systemd anything."""

    def state(self, *roots):
        return json.loads(self.exec("python3", "-c", STATE, *roots).stdout)

    def policy(self):
        return self.exec("semanage", "fcontext", "-l", "-C").stdout


@pytest.fixture(scope="module")
def host():
    if not podman_available():
        pytest.fail("container tests need podman and PYCGI_TEST_IMAGE: run them with `make container-tests`")
    container = Host.start(prefix="pycgi-rel-input")
    yield container
    container.remove()


def added_paths(before, after):
    assert {path: after.get(path) for path in before} == before, "something that existed was changed"
    return sorted(set(after) - set(before))


# --- 1. bad input ---------------------------------------------------------------------------------

def test_unreadable_source_and_directory_are_named_when_run_as_a_deploy_user(host):
    """The module run as a non-root user (www-data owns the tree) meets a root-only source next
    to good ones, another alone in its directory, and a root-only directory: the task fails
    naming each of them (permission denied); the good sources are compiled; nothing else changes,
    not even an empty __pycache__ beside the lone unreadable source."""
    root = "/srv/unreadable"
    host.put_file(root + "/app.py", "A = 1\n", owner="www-data:www-data")
    host.put_file(root + "/pkg/ok.py", "OK = 1\n", owner="www-data:www-data")
    host.put_file(root + "/pkg/secret.py", "S = 1\n", mode=0o600)
    host.put_file(root + "/lonely/secret2.py", "S = 2\n", mode=0o600)
    host.put_file(root + "/private/hidden.py", "H = 1\n", mode=0o600)
    host.exec("chown", "www-data:www-data", root, root + "/pkg", root + "/lonely")
    host.exec("chmod", "700", root + "/private")
    before = host.state(root)

    result = host.run_module("precompile", {"path": root}, user="www-data")
    assert result["failed"] is True, result
    errors = {e["path"]: e["msg"] for e in result["errors"]}
    assert sorted(errors) == [root + "/lonely/secret2.py", root + "/pkg/secret.py", root + "/private"], errors
    assert all("Permission denied" in msg for msg in errors.values()), errors
    for path in errors:
        assert path in result["msg"]
    assert added_paths(before, host.state(root)) == [
        root + "/__pycache__", root + "/__pycache__/app.cpython-311.pyc",
        root + "/pkg/__pycache__", root + "/pkg/__pycache__/ok.cpython-311.pyc"]


@pytest.mark.parametrize("args, words", [
    ({"cache_type": "httpd_no_such_cache_t"}, "cache_type: 'httpd_no_such_cache_t' is not a file type"),
    ({"script_type": "no_such_script_exec_t"}, "script_type: 'no_such_script_exec_t' is not a file type"),
    ({"cache_type": "bad type;touch /tmp/pwned"},
     "cache_type: 'bad type;touch /tmp/pwned' is not an SELinux type name"),
], ids=["cache-type", "script-type", "not-a-type-name"])
def test_unknown_selinux_type_names_the_setting_and_leaves_the_policy_alone(host, args, words):
    """An SELinux type the policy does not have (or a string that cannot be a type): the task
    fails naming the setting and the type; the local rules (`semanage fcontext -l -C`) and the
    labels on disk are unchanged; nothing in the type string is run."""
    root = "/srv/labels"
    host.put_file(root + "/app.py", "A = 1\n")
    host.put_file(root + "/__pycache__/app.cpython-311.pyc", "stand-in\n")
    policy, labels = host.policy(), host.state(root)
    result = host.run_module("selinux_context", dict(args, path=[root]))
    assert result["failed"] is True and words in result["msg"], result
    assert host.policy() == policy
    assert host.state(root) == labels
    assert host.exec("test", "-e", "/tmp/pwned", check=False).returncode != 0


def test_selinux_refuses_the_whole_file_system(host):
    """`/` as a CGI root for SELinux would relabel the whole host: refused naming it; no rule added."""
    policy = host.policy()
    result = host.run_module("selinux_context", {"path": ["/srv/labels", "/"]})
    assert result["failed"] is True and "'/' would label the whole file system" in result["msg"], result
    assert host.policy() == policy


def test_apache_config_broken_before_the_run_is_left_exactly_as_it_was(host):
    """An Apache config that already fails its test (a bad directive on line 2 of a file in
    conf-enabled): httpd_pycache fails in check mode and in a real run, quoting Apache's error
    with the file and line; the main config keeps its content, inode and mtime and no temporary
    file is left beside it."""
    broken = "/etc/apache2/conf-enabled/zz-broken.conf"
    host.put_file(broken, "# left behind by someone\nThisIsNotAnApacheDirective on\n")
    try:
        before = host.state("/etc/apache2")
        for check_mode in (True, False):
            result = host.run_module("httpd_pycache", {"path": "/srv/cgi"}, check_mode=check_mode)
            assert result["failed"] is True and result["changed"] is False, result
            assert "already fails before any change" in result["msg"], result["msg"]
            assert "zz-broken.conf" in result["msg"] and "line 2" in result["msg"], result["msg"]
            assert host.state("/etc/apache2") == before
    finally:
        host.exec("rm", "-f", broken)


def test_shell_metacharacters_in_a_root_reach_no_shell_in_any_module(host):
    """A root and file names with spaces, quotes, `;`, `$(...)`, backquotes and non-ASCII letters,
    handled by precompile, pycache_owner, selinux_context, httpd_pycache and pycache_info: each
    succeeds, the caches, owners, labels and Apache block are right (the config passes Apache's
    test), nothing hidden in a name runs; removing the block and the rules afterwards restores
    the config and the policy byte for byte."""
    marker = "/tmp/pwned-%d" % os.getpid()
    root = "/srv/it's \"q\" ; $(touch %s) `touch %s` é 目录" % (marker, marker)
    host.put_file(root + "/run ;touch x; $(id).py", "#!/usr/bin/python3\nimport mod\n", mode=0o755)
    host.put_file(root + "/mod.py", "M = 1\n")
    host.put_file(root + "/päckage 'x'/__init__.py", "P = 1\n")
    config = host.state(MAIN_CONFIG)
    policy = host.policy()
    stamp = "/tmp/stamp-%d" % os.getpid()
    host.exec("touch", stamp)

    steps = [("precompile", {"path": root}), ("pycache_owner", {"path": root}),
             ("selinux_context", {"path": [root]}), ("httpd_pycache", {"path": root}),
             ("pycache_info", {"path": root})]
    for module, args in steps:
        result = host.run_module(module, args)
        assert not result["failed"], (module, result)
    owners = host.exec("stat", "-c", "%U:%G", root + "/__pycache__/mod.cpython-311.pyc",
                       root + "/päckage 'x'/__pycache__").stdout.split()
    assert owners == ["www-data:www-data", "www-data:www-data"]
    contexts = host.exec("matchpathcon", root + "/mod.py", root + "/__pycache__/mod.cpython-311.pyc").stdout
    assert contexts.count("httpd_sys_script_exec_t") == 1 and contexts.count("httpd_sys_rw_content_t") == 1, contexts
    host.exec("apache2ctl", "-t")
    assert host.exec("test", "-e", marker, check=False).returncode != 0
    created = host.exec("find", "/", "(", "-path", "/proc", "-o", "-path", "/sys", ")", "-prune", "-o",
                        "-type", "f", "(", "-name", "x", "-o", "-name", os.path.basename(marker), ")",
                        "-newer", stamp, "-print").stdout
    assert created == ""

    assert not host.run_module("httpd_pycache", {"path": root, "state": "absent"})["failed"]
    assert not host.run_module("selinux_context", {"path": [root], "state": "absent"})["failed"]
    assert host.policy() == policy
    after = host.state(MAIN_CONFIG)
    assert [v[-1] for v in after.values()] == [v[-1] for v in config.values()]
