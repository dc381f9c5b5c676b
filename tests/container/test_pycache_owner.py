"""pycgi.hosting.pycache_owner with the real web server user in a container.

One container for the file; each test works on its own tree under /srv.
"""
import pytest

# Builds a CGI tree the way a developer testing by hand leaves it: root-owned, private caches,
# a stray world-writable .pyc, a package that was never cached, and a symlink out of the tree.
BUILD_TREE = r"""
import os, sys
root = sys.argv[1]
def put(path, mode, content=""):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as handle:
        handle.write(content)
    os.chmod(path, mode)
put(root + "/app.py", 0o755, "#!/usr/bin/python3\nimport lib.util\n")
put(root + "/lib/util.py", 0o644, "X = 1\n")
put(root + "/lib/__pycache__/util.cpython-311.pyc", 0o600)
os.chmod(root + "/lib/__pycache__", 0o700)
put(root + "/__pycache__/app.cpython-311.pyc", 0o666)
put(root + "/pkg/__init__.py", 0o644, "Y = 2\n")
put(root + "/static/site.css", 0o640)
put("/opt/outside/secret", 0o600, "secret\n")
put("/opt/outside/lib/m.py", 0o644)
if not os.path.lexists(root + "/linked"):
    os.symlink("/opt/outside/lib", root + "/linked")
"""


def build(container, root):
    container.exec("python3", "-c", BUILD_TREE, root)


def attrs(container, path):
    """owner:group mode of a path itself (symlinks not followed)."""
    return container.exec("stat", "-c", "%U:%G %a", path).stdout.strip()


def snapshot(container, *paths):
    return container.exec("find", *paths, "-printf", "%p %u:%g %m\n").stdout


def writes_cache_as_web_user(container, root, module):
    """Imports a module of the tree as www-data, as a CGI script would; True if Python wrote
    its bytecode cache."""
    container.exec("python3", "-c", "import sys; sys.path.insert(0, sys.argv[1]); import %s" % module, root,
                   user="www-data")
    cached = "%s/%s/__pycache__/__init__.cpython-311.pyc" % (root, module)
    return container.exec("test", "-f", cached, check=False).returncode == 0


def test_default_owner_is_www_data_and_the_web_server_can_then_write_its_caches(module_container):
    root = "/srv/app"
    build(module_container, root)
    assert not writes_cache_as_web_user(module_container, root, "pkg")

    result = module_container.run_module("pycache_owner", {"path": root})
    assert not result["failed"] and result["changed"] is True, result
    assert (result["owner"], result["group"]) == ("www-data", "www-data")
    assert attrs(module_container, root + "/lib/__pycache__") == "www-data:www-data 755"
    assert attrs(module_container, root + "/lib/__pycache__/util.cpython-311.pyc") == "www-data:www-data 644"
    assert attrs(module_container, root + "/__pycache__/app.cpython-311.pyc") == "www-data:www-data 644"
    assert attrs(module_container, root + "/pkg/__pycache__") == "www-data:www-data 755"
    assert attrs(module_container, root + "/app.py") == "root:root 755"
    assert result["stats"]["created"] == 1
    assert result["skipped_symlinks"] == [root + "/linked"]

    assert writes_cache_as_web_user(module_container, root, "pkg")
    assert attrs(module_container, root + "/pkg/__pycache__/__init__.cpython-311.pyc").startswith("www-data:www-data ")

    again = module_container.run_module("pycache_owner", {"path": root})
    assert not again["failed"] and again["changed"] is False, again


def test_tree_scope_keeps_exec_bits_and_never_follows_a_symlink(module_container):
    root = "/srv/tree"
    build(module_container, root)
    first = module_container.run_module("pycache_owner", {"path": root, "scope": "tree"})
    assert not first["failed"] and first["changed"] is True, first
    assert attrs(module_container, root) == "www-data:www-data 755"
    assert attrs(module_container, root + "/app.py") == "www-data:www-data 755"
    assert attrs(module_container, root + "/static/site.css") == "www-data:www-data 640"
    assert attrs(module_container, root + "/lib/__pycache__") == "www-data:www-data 755"

    # The web server user, who owns the caches now, plants a symlink to a root-only file.
    planted = root + "/lib/__pycache__/evil.cpython-311.pyc"
    module_container.exec("ln", "-s", "/opt/outside/secret", planted, user="www-data")
    module_container.exec("chown", "-h", "root:root", root + "/lib/__pycache__/util.cpython-311.pyc")
    outside = snapshot(module_container, "/opt/outside")

    second = module_container.run_module("pycache_owner", {"path": root, "scope": "tree"})
    assert not second["failed"] and second["changed"] is True, second
    assert second["changed_paths"] == [root + "/lib/__pycache__/util.cpython-311.pyc"]
    assert sorted(second["skipped_symlinks"]) == sorted([root + "/linked", planted])
    assert snapshot(module_container, "/opt/outside") == outside
    assert attrs(module_container, "/opt/outside/secret") == "root:root 600"
    assert attrs(module_container, planted) == "www-data:www-data 777"
    world_writable = module_container.exec("find", root, "!", "-type", "l", "-perm", "-0002").stdout
    assert world_writable == ""


def test_check_mode_changes_nothing(module_container):
    root = "/srv/checked"
    build(module_container, root)
    before = snapshot(module_container, root)
    result = module_container.run_module("pycache_owner", {"path": root, "scope": "tree"}, check_mode=True)
    assert not result["failed"] and result["changed"] is True, result
    assert root + "/pkg/__pycache__" in result["changed_paths"]
    assert snapshot(module_container, root) == before


@pytest.mark.parametrize("args, message", [
    ({"owner": "nosuchuser"}, "owner 'nosuchuser': no such user on this host"),
    ({"group": "nosuchgroup"}, "group 'nosuchgroup': no such group on this host"),
])
def test_an_unknown_user_or_group_fails_before_any_change(module_container, args, message):
    root = "/srv/unknown"
    build(module_container, root)
    before = snapshot(module_container, root)
    args = dict(args, path=root)
    result = module_container.run_module("pycache_owner", args)
    assert result["failed"] is True and message in result["msg"], result
    assert snapshot(module_container, root) == before


def test_the_apache_user_is_preferred_when_it_exists(module_container):
    root = "/srv/rhel-like"
    build(module_container, root)
    module_container.exec("useradd", "--system", "--user-group", "--no-create-home", "apache")
    try:
        result = module_container.run_module("pycache_owner", {"path": root})
        assert not result["failed"], result
        assert (result["owner"], result["group"]) == ("apache", "apache")
        assert attrs(module_container, root + "/lib/__pycache__") == "apache:apache 755"
    finally:
        module_container.exec("userdel", "apache")


def test_a_hard_link_the_web_user_plants_is_never_changed(module_container):
    """The web server user owns the caches after a first run. With fs.protected_hardlinks = 1
    it may still hard-link, into a cache, a file outside the tree that it may read and write.
    Root then pushes a new .pyc into that cache. The second run changes the pushed file
    (opened first: the cache is no longer root's alone) and leaves the planted link, and so the
    file outside, exactly as they were."""
    root = "/srv/linked"
    build(module_container, root)
    first = module_container.run_module("pycache_owner", {"path": root, "scope": "tree"})
    assert not first["failed"] and first["changed"] is True, first

    module_container.put_file("/opt/outside/shared.conf", "shared\n", mode=0o660, owner="root:www-data")
    planted = root + "/lib/__pycache__/planted.cpython-311.pyc"
    module_container.exec("ln", "/opt/outside/shared.conf", planted, user="www-data")
    pushed = root + "/lib/__pycache__/new.cpython-311.pyc"
    module_container.put_file(pushed, "", mode=0o644, owner="root:root")
    outside = snapshot(module_container, "/opt/outside")

    second = module_container.run_module("pycache_owner", {"path": root, "scope": "tree"})
    assert not second["failed"] and second["changed"] is True, second
    assert second["changed_paths"] == [pushed]
    assert attrs(module_container, pushed) == "www-data:www-data 644"
    assert snapshot(module_container, "/opt/outside") == outside
    assert attrs(module_container, "/opt/outside/shared.conf") == "root:www-data 660"
    assert "planted.cpython-311.pyc: skipped, it has 2 hard links" in str(second.get("warnings")), second


def test_a_first_run_as_root_leaves_a_planted_hard_link_alone(module_container):
    """A tree as root leaves it (directories root's alone, so the walk changes files by name)
    whose cache holds a hard link to a file outside, planted while the cache was writable:
    every other path goes to www-data, the linked file and the outside stay as they were."""
    root = "/srv/rootowned"
    build(module_container, root)
    planted = root + "/lib/__pycache__/old.cpython-311.pyc"
    module_container.exec("ln", "-f", "/opt/outside/secret", planted)
    outside = snapshot(module_container, "/opt/outside")

    result = module_container.run_module("pycache_owner", {"path": root, "scope": "tree"})
    assert not result["failed"] and result["changed"] is True, result
    assert planted not in result["changed_paths"]
    assert "old.cpython-311.pyc: skipped, it has 2 hard links" in str(result.get("warnings")), result
    assert snapshot(module_container, "/opt/outside") == outside
    assert attrs(module_container, "/opt/outside/secret") == "root:root 600"
    not_web = module_container.exec("find", root, "!", "-type", "l", "(", "!", "-user", "www-data", "-o", "!",
                                    "-group", "www-data", ")").stdout.split()
    assert not_web == [planted]
