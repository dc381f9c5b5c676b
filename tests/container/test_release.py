"""pycgi.hosting.release driven by Ansible (the action plugin on this machine, the module in a
container through the podman connection), answered by a real Apache over HTTP."""
import os
import subprocess

import pytest

ROOT = "/usr/lib/cgi-bin"
RELEASES = "/usr/lib/.cgi-bin.releases"

SCRIPT = """#!/usr/bin/python3
import lib.version
print("Content-Type: text/plain")
print()
print("{name}", lib.version.VERSION)
"""


def write(path, content, mode=0o644):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content)
    os.chmod(path, mode)


def make_app(root, scripts=("hello", "bye"), version="1"):
    for name in scripts:
        write(root / ("%s.py" % name), SCRIPT.format(name=name), 0o755)
    write(root / "lib" / "__init__.py", "")
    write(root / "lib" / "version.py", "VERSION = %r\n" % version)
    return root


def release(container, source, **args):
    args = dict({"path": ROOT, "source": str(source)}, **args)
    result = container.run_module("release", args)
    assert not result["failed"], result
    return result


def rollback(container, **args):
    result = container.run_module("release", dict({"path": ROOT, "state": "rolled_back"}, **args))
    assert not result["failed"], result
    return result


@pytest.fixture
def apache(container):
    container.exec("a2enmod", "cgid")
    container.exec("systemctl", "start", "apache2")
    return container


def test_push_unchanged_one_file_deleted_script_and_rollback(apache, tmp_path):
    src = make_app(tmp_path / "app")
    first = release(apache, src)
    assert first["changed"] and first["module_calls"] == 2 and first["transferred"]["files"] == 4
    # The image's stock directory became a release. It is a directory of the image's overlayfs
    # lower layer, which cannot be renamed (EXDEV), so it was copied.
    assert first["migrated"]["method"] == "copy"
    apache.exec("test", "-d", "%s/%s" % (RELEASES, first["migrated"]["id"]))
    assert apache.exec("readlink", ROOT).stdout.strip() == ".cgi-bin.releases/" + first["release"]
    assert apache.http_get("/cgi-bin/hello.py") == (200, "hello 1\n")

    again = release(apache, src)
    assert (again["changed"], again["module_calls"], again["release"]) == (False, 1, first["release"])
    assert again["manifest_cache"] == "hit"

    write(src / "lib" / "version.py", "VERSION = '2'\n")
    second = release(apache, src)
    # The controller knows the manifest live there: the changed content goes with the manifest.
    assert second["changed"] and second["module_calls"] == 1
    assert second["transferred"] == {"files": 1, "bytes": len("VERSION = '2'\n")}
    assert second["linked"]["files"] == 3
    assert apache.http_get("/cgi-bin/hello.py") == (200, "hello 2\n")
    inode = "stat", "-c", "%i"
    assert apache.exec(*inode, "%s/%s/hello.py" % (RELEASES, first["release"])).stdout == \
        apache.exec(*inode, "%s/%s/hello.py" % (RELEASES, second["release"])).stdout

    os.unlink(src / "bye.py")
    third = release(apache, src)
    assert third["files"]["removed"] == ["bye.py"] and third["transferred"]["files"] == 0
    assert apache.http_get("/cgi-bin/bye.py")[0] == 404
    assert apache.http_get("/cgi-bin/hello.py") == (200, "hello 2\n")

    back = rollback(apache)
    assert (back["changed"], back["release"]) == (True, second["release"])
    assert apache.http_get("/cgi-bin/bye.py") == (200, "bye 2\n")
    still = rollback(apache)
    assert (still["changed"], still["release"]) == (False, second["release"])
    assert apache.http_get("/cgi-bin/bye.py") == (200, "bye 2\n")

    forward = release(apache, src)
    assert (forward["changed"], forward["reused"], forward["release"]) == (True, True, third["release"])
    assert apache.http_get("/cgi-bin/bye.py")[0] == 404


def test_releases_deleted_by_hand_and_a_source_with_symlinks(apache, tmp_path):
    src = make_app(tmp_path / "app")
    os.symlink("hello.py", src / "alias.py")
    os.symlink("../lib", src / "lib" / "self")
    release(apache, src)
    assert apache.exec("readlink", ROOT + "/alias.py").stdout.strip() == "hello.py"
    assert apache.http_get("/cgi-bin/alias.py") == (200, "hello 1\n")

    apache.exec("rm", "-rf", RELEASES)
    assert apache.http_get("/cgi-bin/hello.py")[0] == 403  # Apache refuses the dangling link
    result = release(apache, src)
    assert result["changed"] and result["transferred"]["files"] == 4 and result["previous"] is None
    assert apache.http_get("/cgi-bin/hello.py") == (200, "hello 1\n")

    os.symlink("../../etc", src / "lib" / "escape")
    refused = apache.run_module("release", {"path": ROOT, "source": str(src)})
    assert refused["failed"] and "symlink lib/escape" in refused["msg"]
    assert apache.http_get("/cgi-bin/hello.py") == (200, "hello 1\n")


def test_check_mode_and_git_source(container, tmp_path):
    repo = make_app(tmp_path / "repo")
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run(git + ["add", "-A"], check=True)
    subprocess.run(git + ["commit", "-qm", "one"], check=True)
    subprocess.run(git + ["tag", "v1"], check=True)
    write(repo / "lib" / "version.py", "VERSION = 'working tree'\n")  # never deployed

    check = container.run_module("release", {"path": ROOT, "source": str(repo), "version": "v1"}, check_mode=True)
    assert check["changed"] and check["transferred"]["files"] == 4
    assert container.exec("test", "-L", ROOT, check=False).returncode != 0  # nothing written

    result = release(container, repo, version="v1")
    commit = subprocess.run(git + ["rev-parse", "v1"], capture_output=True, text=True, check=True).stdout.strip()
    assert result["commit"] == commit and result["release"].endswith("-" + commit[:10])
    assert container.read_file(ROOT + "/lib/version.py") == "VERSION = '1'\n"
    meta = container.read_file("%s/.meta/%s.json" % (RELEASES, result["release"]))
    assert commit in meta


def test_become_from_an_unprivileged_login_user(container, tmp_path):
    """The way most users connect: a login user that becomes root with sudo."""
    installed = container.exec("apt-get", "install", "-y", "-q", "sudo", check=False, timeout=300)
    if installed.returncode != 0:
        container.exec("apt-get", "update", "-q", check=False, timeout=300)
        installed = container.exec("apt-get", "install", "-y", "-q", "sudo", check=False, timeout=300)
    assert installed.returncode == 0, installed.stderr
    container.exec("useradd", "-m", "deploy")
    container.put_file("/etc/sudoers.d/deploy", "deploy ALL=(ALL) NOPASSWD: ALL\n", mode=0o440)
    src = make_app(tmp_path / "app")
    become = {"ansible_become": True, "ansible_become_method": "sudo"}
    result = container.run_module("release", {"path": ROOT, "source": str(src)}, user="deploy", host_vars=become)
    assert not result["failed"], result
    assert result["changed"] and result["module_calls"] == 2
    owner = container.exec("stat", "-c", "%U", "%s/%s/hello.py" % (RELEASES, result["release"])).stdout.strip()
    assert owner == "root"
    write(src / "lib" / "version.py", "VERSION = '2'\n")
    second = container.run_module("release", {"path": ROOT, "source": str(src)}, user="deploy", host_vars=become)
    assert not second["failed"], second
    assert second["transferred"]["files"] == 1
    assert container.read_file(ROOT + "/lib/version.py") == "VERSION = '2'\n"
    # The archive went through the login user's temporary directory and is gone.
    assert container.exec("find", "/tmp/.ansible-deploy", "-name", "release.tar", check=False).stdout == ""
