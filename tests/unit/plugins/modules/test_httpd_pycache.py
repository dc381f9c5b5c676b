"""pycgi.hosting.httpd_pycache run as Ansible runs it, on config files in tmp_path.

These tests use validate=false: the config test needs a real Apache, which the container
tests (tests/container/test_httpd_pycache.py) provide; the config test and rollback are also
covered with recorded command outputs in tests/unit/plugins/module_utils/test_apache_change.py.
The tests up to test_no_change_needs_no_config_test are about the block inside the main config
(placement=block); those of drop-in files follow them.
"""
import glob
import os
import shutil
import stat

import pytest

from conftest import run_module

CONFIG = b"ServerRoot \"/etc/apache2\"\n# caf\xe9 (latin-1 comment)\nInclude ports.conf\n"


@pytest.fixture
def conf(tmp_path):
    path = tmp_path / "apache2.conf"
    path.write_bytes(CONFIG)
    return str(path)


def run(conf, tmp_path, check_mode=False, diff=False, **args):
    params = dict(dest=conf, validate=False, placement="block")
    params.update(args)
    return run_module("httpd_pycache", params, check_mode=check_mode, diff=diff, tmp_path=tmp_path)


def read(path):
    with open(path, "rb") as handle:
        return handle.read()


def test_insert_then_rerun_then_remove(conf, tmp_path):
    result = run(conf, tmp_path, path="/srv/py cgi (v1.2)+$")
    assert result["rc"] == 0 and result["changed"] is True, result
    assert result["dest"] == conf
    assert result["regex"] == r"^/srv/py cgi \(v1\.2\)\+\$/(?:.+/)?__pycache__(?:/|$)"
    assert read(conf) == CONFIG + result["block"].encode()
    assert '<DirectoryMatch "%s">' % result["regex"] in result["block"]

    again = run(conf, tmp_path, path="/srv/py cgi (v1.2)+$/")
    assert again["changed"] is False
    assert read(conf) == CONFIG + result["block"].encode()

    removed = run(conf, tmp_path, path="/srv/py cgi (v1.2)+$", state="absent")
    assert removed["changed"] is True and removed["block"] == ""
    assert read(conf) == CONFIG
    assert run(conf, tmp_path, path="/srv/py cgi (v1.2)+$", state="absent")["changed"] is False


def test_write_bytecode_false_replaces_the_block_in_place(conf, tmp_path):
    run(conf, tmp_path, path="/srv/a")
    with open(conf, "ab") as handle:
        handle.write(b"LogLevel warn\n")
    result = run(conf, tmp_path, path="/srv/a", write_bytecode=False, diff=True)
    assert result["changed"] is True
    assert read(conf) == CONFIG + result["block"].encode() + b"LogLevel warn\n"
    assert '<Directory "/srv/a">\n    SetEnv PYTHONDONTWRITEBYTECODE 1\n</Directory>\n' in result["block"]
    assert "SetEnv" not in result["diff"]["before"] and result["diff"]["after"] == result["block"]
    assert result["diff"]["before"].startswith("# BEGIN pycgi.hosting pycache /srv/a\n")


def test_several_roots_are_independent(conf, tmp_path):
    roots = ["/usr/lib/cgi-bin", "/srv/py cgi", "/usr/lib/cgi-bin/sub"]
    blocks = [run(conf, tmp_path, path=root)["block"].encode() for root in roots]
    assert read(conf) == CONFIG + b"".join(blocks)
    assert run(conf, tmp_path, path="/srv/py cgi", state="absent")["changed"] is True
    assert read(conf) == CONFIG + blocks[0] + blocks[2]
    assert all(run(conf, tmp_path, path=root)["changed"] is False for root in (roots[0], roots[2]))


def test_check_mode_writes_nothing_and_predicts_the_change(conf, tmp_path):
    before = os.stat(conf)
    checked = run(conf, tmp_path, check_mode=True, diff=True, path="/srv/a", backup=True)
    assert checked["changed"] is True and checked["diff"]["before"] == "" and checked["diff"]["after"] == checked["block"]
    assert "backup_file" not in checked
    assert read(conf) == CONFIG and os.stat(conf).st_mtime_ns == before.st_mtime_ns
    assert os.listdir(str(tmp_path)) == ["apache2.conf"]
    done = run(conf, tmp_path, path="/srv/a")
    assert done["block"] == checked["block"] and done["changed"] is True


def test_backup_keeps_the_original(conf, tmp_path):
    result = run(conf, tmp_path, path="/srv/a", backup=True)
    assert read(result["backup_file"]) == CONFIG
    assert os.path.dirname(result["backup_file"]) == str(tmp_path)
    unchanged = run(conf, tmp_path, path="/srv/a", backup=True)
    assert "backup_file" not in unchanged
    assert len(glob.glob(conf + ".*~")) == 1


@pytest.mark.skipif(os.geteuid() != 0, reason="changing owners needs root")
def test_the_file_keeps_its_mode_and_owner(conf, tmp_path):
    os.chown(conf, 65534, 65534)
    os.chmod(conf, 0o640)
    run(conf, tmp_path, path="/srv/a")
    st = os.stat(conf)
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (65534, 65534, 0o640)
    # No temporary files are left behind.
    assert os.listdir(str(tmp_path)) == ["apache2.conf"]


def test_a_symlinked_dest_edits_the_file_it_points_to(conf, tmp_path):
    link = str(tmp_path / "link.conf")
    os.symlink(conf, link)
    result = run(conf, tmp_path, path="/srv/a", dest=link)
    assert result["dest"] == conf
    assert os.path.islink(link) and read(link) == CONFIG + result["block"].encode()


@pytest.mark.parametrize("content, message", [
    (b"# BEGIN pycgi.hosting pycache /srv/a\nX\n", "line 1: '# BEGIN pycgi.hosting pycache /srv/a' has no"),
    (b"A\n# END pycgi.hosting pycache /srv/a\n", "line 2: '# END pycgi.hosting pycache /srv/a' has no"),
])
def test_damaged_markers_fail_naming_file_and_line_and_change_nothing(conf, tmp_path, content, message):
    with open(conf, "wb") as handle:
        handle.write(content)
    result = run(conf, tmp_path, path="/srv/a")
    assert result["failed"] is True
    assert result["msg"].startswith(conf + ": " + message), result["msg"]
    assert read(conf) == content


@pytest.mark.parametrize("args, message", [
    (dict(path="relative/cgi"), "is not an absolute path"),
    (dict(path="/srv/a\nb"), "contains a control character"),
    (dict(path="/srv/a", dest="MISSING"), "does not exist"),
])
def test_bad_input_is_a_clear_error(conf, tmp_path, args, message):
    if args.get("dest") == "MISSING":
        args["dest"] = str(tmp_path / "missing.conf")
    result = run(conf, tmp_path, **args)
    assert result["failed"] is True and message in result["msg"], result
    assert read(conf) == CONFIG


def test_absent_from_a_missing_file_is_no_change(tmp_path):
    result = run(str(tmp_path / "missing.conf"), tmp_path, path="/srv/a", state="absent")
    assert result["rc"] == 0 and result["changed"] is False


@pytest.mark.skipif(any(shutil.which(p, path="/usr/sbin:/sbin:/usr/local/sbin:/usr/bin:/usr/local/apache2/bin:" + os.environ["PATH"])
                        for p in ("apachectl", "apache2ctl")), reason="Apache is installed here")
def test_validate_without_apache_fails_and_changes_nothing(conf, tmp_path):
    result = run(conf, tmp_path, path="/srv/a", validate=True)
    assert result["failed"] is True
    assert "validate=true needs Apache's config test program (apachectl or apache2ctl)" in result["msg"]
    assert read(conf) == CONFIG


def test_no_change_needs_no_config_test(conf, tmp_path):
    # With the block in place, validate=true succeeds even where no Apache exists to test it.
    run(conf, tmp_path, path="/srv/a")
    result = run(conf, tmp_path, path="/srv/a", validate=True)
    assert result["rc"] == 0 and result["changed"] is False


def test_pycache_prefix_sets_the_variable_for_the_root(conf, tmp_path):
    result = run(conf, tmp_path, path="/srv/a", pycache_prefix="/var/cache/py cgi/")
    assert result["changed"] is True
    assert '<Directory "/srv/a">\n    SetEnv PYTHONPYCACHEPREFIX "/var/cache/py cgi"\n</Directory>\n' in result["block"]
    assert read(conf) == CONFIG + result["block"].encode()
    assert run(conf, tmp_path, path="/srv/a", pycache_prefix="/var/cache/py cgi")["changed"] is False
    both = run(conf, tmp_path, path="/srv/a", pycache_prefix="/var/cache/pycgi", write_bytecode=False)
    assert both["changed"] is True and both["block"].count("SetEnv") == 2
    assert "    SetEnv PYTHONPYCACHEPREFIX /var/cache/pycgi\n" in both["block"]
    for bad in ("cache", "/var/cache/py\tcgi"):
        refused = run(conf, tmp_path, path="/srv/a", pycache_prefix=bad)
        assert refused.get("failed") is True and "pycache_prefix" in refused["msg"], refused
    assert read(conf) == CONFIG + both["block"].encode()


# --- placement=drop_in: the RHEL family's layout in tmp_path (conf/httpd.conf, conf.d/) -------

@pytest.fixture
def rhel(tmp_path):
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf.d").mkdir()
    path = tmp_path / "conf" / "httpd.conf"
    path.write_bytes(CONFIG)
    return str(path)


def drop_in(tmp_path, name="pycgi-pycache-srv-a"):
    return str(tmp_path / "conf.d" / (name + ".conf"))


def run_drop_in(conf, tmp_path, check_mode=False, diff=False, **args):
    params = dict(dest=conf, validate=False)
    params.update(args)
    return run_module("httpd_pycache", params, check_mode=check_mode, diff=diff, tmp_path=tmp_path)


def test_drop_in_is_the_default_and_leaves_the_main_config_alone(rhel, tmp_path):
    result = run_drop_in(rhel, tmp_path, path="/srv/a")
    assert result["rc"] == 0 and result["changed"] is True, result
    assert (result["placement"], result["dest"], result["main_config"]) == ("drop_in", drop_in(tmp_path), rhel)
    assert read(drop_in(tmp_path)) == result["block"].encode()
    assert stat.S_IMODE(os.stat(drop_in(tmp_path)).st_mode) == 0o644
    assert read(rhel) == CONFIG
    assert run_drop_in(rhel, tmp_path, path="/srv/a/")["changed"] is False

    removed = run_drop_in(rhel, tmp_path, path="/srv/a", state="absent")
    assert removed["changed"] is True and not os.path.exists(drop_in(tmp_path))
    assert run_drop_in(rhel, tmp_path, path="/srv/a", state="absent")["changed"] is False
    assert read(rhel) == CONFIG and os.listdir(str(tmp_path / "conf.d")) == []


def test_each_root_gets_its_own_file(rhel, tmp_path):
    blocks = {root: run_drop_in(rhel, tmp_path, path=root)["block"] for root in ("/srv/a", "/srv/py cgi")}
    blocks["/"] = run_drop_in(rhel, tmp_path, server_wide=True)["block"]
    assert sorted(os.listdir(str(tmp_path / "conf.d"))) == [
        "pycgi-pycache-server.conf", "pycgi-pycache-srv-a.conf", "pycgi-pycache-srv-py-cgi.conf"]
    assert read(drop_in(tmp_path, "pycgi-pycache-srv-py-cgi")) == blocks["/srv/py cgi"].encode()
    assert run_drop_in(rhel, tmp_path, path="/srv/py cgi", state="absent")["changed"] is True
    assert sorted(os.listdir(str(tmp_path / "conf.d"))) == ["pycgi-pycache-server.conf", "pycgi-pycache-srv-a.conf"]


def test_migration_moves_the_block_out_of_the_main_config_and_back(rhel, tmp_path):
    block = run(rhel, tmp_path, path="/srv/a")["block"].encode()
    assert read(rhel) == CONFIG + block

    checked = run_drop_in(rhel, tmp_path, path="/srv/a", check_mode=True, diff=True)
    assert checked["changed"] is True and read(rhel) == CONFIG + block and not os.path.exists(drop_in(tmp_path))
    main_diff, file_diff = checked["diff"]
    assert (main_diff["before"], main_diff["after"]) == (block.decode(), "")
    assert (file_diff["before"], file_diff["after"]) == ("", block.decode())

    moved = run_drop_in(rhel, tmp_path, path="/srv/a", backup=True)
    assert moved["changed"] is True
    assert read(rhel) == CONFIG and read(drop_in(tmp_path)) == block
    assert [read(path) for path in moved["backup_files"]] == [CONFIG + block]
    assert run_drop_in(rhel, tmp_path, path="/srv/a")["changed"] is False

    back = run(rhel, tmp_path, path="/srv/a")
    assert back["changed"] is True and read(rhel) == CONFIG + block and not os.path.exists(drop_in(tmp_path))


def test_absent_removes_the_block_from_both_places(rhel, tmp_path):
    run(rhel, tmp_path, path="/srv/a")
    # A drop-in of the same root beside it (written by hand, or a run that was interrupted).
    with open(drop_in(tmp_path), "w") as handle:
        handle.write(run_drop_in(rhel, tmp_path, path="/srv/a", check_mode=True)["block"])
    result = run_drop_in(rhel, tmp_path, path="/srv/a", state="absent")
    assert result["changed"] is True and read(rhel) == CONFIG and not os.path.exists(drop_in(tmp_path))


def test_a_file_of_that_name_that_is_not_ours_is_never_overwritten(rhel, tmp_path):
    # /srv/a-b and /srv/a/b share the default name.
    run_drop_in(rhel, tmp_path, path="/srv/a-b")
    theirs = read(drop_in(tmp_path, "pycgi-pycache-srv-a-b"))
    clash = run_drop_in(rhel, tmp_path, path="/srv/a/b")
    assert clash["failed"] is True and "does not hold the block for /srv/a/b" in clash["msg"], clash
    assert "drop_in_name" in clash["msg"] and drop_in(tmp_path, "pycgi-pycache-srv-a-b") in clash["msg"]
    assert read(drop_in(tmp_path, "pycgi-pycache-srv-a-b")) == theirs
    # Absent for the other root leaves it alone too.
    assert run_drop_in(rhel, tmp_path, path="/srv/a/b", state="absent")["changed"] is False
    named = run_drop_in(rhel, tmp_path, path="/srv/a/b", drop_in_name="ab-nested.conf")
    assert named["changed"] is True and named["dest"] == drop_in(tmp_path, "ab-nested")
    assert read(drop_in(tmp_path, "pycgi-pycache-srv-a-b")) == theirs


@pytest.mark.parametrize("name", ["../x", "a/b", ".hidden", "x y", ""])
def test_a_bad_drop_in_name_is_refused(rhel, tmp_path, name):
    result = run_drop_in(rhel, tmp_path, path="/srv/a", drop_in_name=name or ".conf")
    assert result["failed"] is True and "drop_in_name" in result["msg"], result
    assert os.listdir(str(tmp_path / "conf.d")) == [] and read(rhel) == CONFIG


def test_drop_in_without_a_drop_in_directory_is_a_clear_error(conf, tmp_path):
    result = run_drop_in(conf, tmp_path, path="/srv/a")
    assert result["failed"] is True, result
    assert "conf-available" in result["msg"] and "conf.d" in result["msg"] and "placement=block" in result["msg"]
    assert read(conf) == CONFIG and os.listdir(str(tmp_path)) == ["apache2.conf"]
    # Nothing to remove there: absent is no change.
    assert run_drop_in(conf, tmp_path, path="/srv/a", state="absent")["changed"] is False


@pytest.mark.skipif(os.geteuid() != 0, reason="changing owners needs root")
def test_a_rewritten_drop_in_keeps_its_mode_and_owner(rhel, tmp_path):
    run_drop_in(rhel, tmp_path, path="/srv/a")
    os.chown(drop_in(tmp_path), 65534, 65534)
    os.chmod(drop_in(tmp_path), 0o640)
    assert run_drop_in(rhel, tmp_path, path="/srv/a", write_bytecode=False)["changed"] is True
    st = os.stat(drop_in(tmp_path))
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (65534, 65534, 0o640)
    assert os.listdir(str(tmp_path / "conf.d")) == ["pycgi-pycache-srv-a.conf"]
