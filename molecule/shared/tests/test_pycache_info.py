"""pycgi.hosting.pycache_info run on the host at verify time, read-only (check mode, through
testinfra's Ansible backend with molecule's inventory), as a person debugging the host would run
it: its answer must show healthy caches for the host's cache mode, before and after the code push."""
import pytest

# The entry scripts Apache runs directly in each root: the example's and, in the stock root,
# the report script's launcher. The report's code module is not run directly.
STOCK_SCRIPTS = ["hello.py", "report.py"]
SECOND_SCRIPTS = ["hello.py"]


@pytest.fixture(scope="module")
def inspect(site):
    """The module's answer for a root (one run per root and host)."""
    answers = {}

    def answer(root):
        if root not in answers:
            args = {"path": root, "owner": site.user, "group": site.user, "cache_mode": site.mode,
                    "apache_config": site.stanza_file(root)}
            if site.prefix:
                args["pycache_prefix"] = site.prefix
            answers[root] = site.module("pycgi.hosting.pycache_info", **args)
            assert answers[root].get("changed") is False, answers[root]
        return answers[root]
    return answer


@pytest.mark.parametrize("which", ["stock", "second"])
def test_pycache_info_reports_every_cache_fresh(site, inspect, which):
    root = site.root if which == "stock" else site.second_root
    info = inspect(root)
    assert info["path"] == root
    scripts = STOCK_SCRIPTS if which == "stock" else SECOND_SCRIPTS
    # The application's package (4 modules), the entry scripts, the report's module.
    sources = 4 + len(scripts) + (1 if which == "stock" else 0)
    assert info["sources"] == sources, info
    assert len(info["interpreters"]) == 1, info["interpreters"]
    python = info["interpreters"][0]
    assert python["path"] == "/usr/bin/python3"
    assert (python["fresh"], python["stale"], python["missing"]) == (sources, 0, 0), python
    assert python["error_count"] == 0, python
    leftovers = info["leftovers"]
    assert leftovers["orphans"]["count"] == 0 and leftovers["foreign_tags"]["count"] == 0, leftovers
    assert leftovers["temporary_files"]["count"] == 0, leftovers
    assert info["problems"] == [], info["problems"]


@pytest.mark.parametrize("which", ["stock", "second"])
def test_pycache_info_finds_only_small_entry_scripts(site, inspect, which):
    root = site.root if which == "stock" else site.second_root
    entry = inspect(root)["entry_scripts"]
    scripts = {script["path"]: script for script in entry["scripts"]}
    expected = STOCK_SCRIPTS if which == "stock" else SECOND_SCRIPTS
    # Reported where they are: in the live release the root's symlink points at.
    assert sorted(scripts) == sorted(site.real(root) + "/" + name for name in expected), entry
    # What Python compiles on every request: the launcher's few lines, not the report's thousands.
    for script in scripts.values():
        assert script["lines"] <= 15, script
        assert script["interpreter"] == "/usr/bin/python3", script
    assert entry["count"] == len(expected) and entry["lines"] <= 15 * len(expected), entry


@pytest.mark.parametrize("which", ["stock", "second"])
def test_pycache_info_finds_the_web_user_can_use_the_caches_and_the_block(site, inspect, which):
    root = site.root if which == "stock" else site.second_root
    info = inspect(root)
    access = info["access"]
    assert access["checked"] is True and access["user"] == site.user, access
    assert access["cache_mode"] == site.mode
    assert access["root_blocked_by"] is None, access
    assert access["cache_dirs_not_writable"]["count"] == 0, access
    assert access["pycs_not_readable"]["count"] == 0, access
    assert access["cache_dirs_not_creatable"]["count"] == 0, access
    apache = info["apache"]
    assert apache["config"] == site.stanza_file(root), apache
    assert apache["present"] is True and apache["current"] is True, apache
    assert apache["write_bytecode"] is True, apache
    summary = "Apache: the pycgi __pycache__ block for %s is in %s" % (root, site.stanza_file(root))
    assert summary in info["summary"], info["summary"]
    selinux = info["selinux"]
    if selinux["available"] and site.selinux != "false":
        assert selinux["mismatched"]["count"] == 0 and selinux["unlabeled"]["count"] == 0, selinux
