"""pycgi.hosting.pycache_info with cache_mode prefix: the caches that precompile wrote below
pycache_prefix, judged where Python 3.8+ reads them under PYTHONPYCACHEPREFIX."""
import os
import pathlib

from conftest import INTERPRETERS, interpreter, run_module
from test_pycache_info import info, package, write


def test_fresh_stale_missing_and_orphans_in_the_prefix(tmp_path):
    python = interpreter("3.12") if "3.12" in INTERPRETERS else interpreter("3.8")
    root = package(tmp_path / "cgi")
    prefix = tmp_path / "cache"
    write(root / "app" / "legacy.py", "X = 1\n")
    compiled = run_module("precompile", {"path": str(root), "interpreters": [python],
                                         "pycache_prefix": str(prefix)}, tmp_path=tmp_path)
    assert compiled["rc"] == 0 and compiled["stats"]["compiled"] == 5, compiled
    (root / "app" / "legacy.py").unlink()
    models = root / "app" / "models.py"
    models.write_text("ROWS = [1, 2, 3, 4]\n")
    os.utime(str(models), (1, 1))
    write(root / "app" / "new.py", "NEW = True\n")
    conf = write(tmp_path / "httpd.conf", "ServerName localhost\n")
    assert run_module("httpd_pycache", {"path": str(root), "dest": str(conf), "validate": False, "placement": "block",
                                        "pycache_prefix": str(prefix)}, tmp_path=tmp_path)["changed"]

    args = dict(path=str(root), interpreters=[python], apache_config=str(conf))
    result = info(tmp_path, cache_mode="prefix", pycache_prefix=str(prefix), **args)
    report, = result["interpreters"]
    tag = report["cache_tag"]
    cache_dir = pathlib.Path(str(prefix) + str(root / "app"))
    assert (report["fresh"], report["stale"], report["missing"]) == (3, 1, 1), report
    assert report["stale_caches"][0]["cache"] == str(cache_dir / ("models.%s.pyc" % tag))
    assert report["missing_caches"] == [{"source": str(root / "app" / "new.py"),
                                         "cache": str(cache_dir / ("new.%s.pyc" % tag))}]
    assert result["leftovers"]["orphans"]["paths"] == [str(cache_dir / ("legacy.%s.pyc" % tag))]
    assert result["apache"]["current"] is True and result["access"]["cache_mode"] == "prefix"
    assert not list(root.rglob("__pycache__"))

    # The same tree read the usual way: every cache is missing, and the block is not the usual one.
    plain = info(tmp_path, **args)
    assert plain["interpreters"][0]["missing"] == 5 and plain["apache"]["current"] is False


def test_prefix_mode_and_the_prefix_go_together_and_old_pythons_are_named(tmp_path):
    root = package(tmp_path / "cgi")
    for args in ({"cache_mode": "prefix"}, {"pycache_prefix": str(tmp_path / "cache")}):
        result = run_module("pycache_info", dict(path=str(root), **args), tmp_path=tmp_path)
        assert result.get("failed") is True and "pycache_prefix" in result["msg"], result
    old = interpreter("3.7")
    result = info(tmp_path, path=str(root), interpreters=[old], cache_mode="prefix",
                  pycache_prefix=str(tmp_path / "cache"))
    assert any(old in problem and "pycache_prefix" in problem for problem in result["problems"]), result["problems"]
