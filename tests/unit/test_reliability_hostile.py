"""Hostile trees and careless input, found by trying to break the modules: links out of the tree,
names that are not UTF-8, system directories as roots, `$VAR` and `~` in paths, concurrent edits
of one Apache config.

Every case runs the real module process on files in pytest's tmp_path; the cases that name a
system directory run in check mode, so that a regression could not change anything.
docs/reliability.md lists these cases; tools/reliability_doc.py regenerates it from the docstrings.
"""
import json
import os
import pathlib
import stat
import subprocess
import sys
import uuid

import pytest

from conftest import apache_stanza_file, child_env, run_module

SOURCE = "X = 1\n"
SECRET = "TOKEN = 'ffd0c1a9-not-for-the-web'\n"


def write(path, content, mode=0o644):
    """Writes a file (parents created); ``path`` may be bytes, for names that are not UTF-8."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as handle:
        handle.write(content.encode() if isinstance(content, str) else content)
    os.chmod(path, mode)
    return pathlib.Path(path) if isinstance(path, (str, pathlib.Path)) else path


def strict_utf8(value):
    """Every string in ``value`` encodes as UTF-8 without errors (Ansible refuses the rest)."""
    if isinstance(value, str):
        value.encode("utf-8")
    elif isinstance(value, dict):
        for key, item in value.items():
            strict_utf8(key)
            strict_utf8(item)
    elif isinstance(value, list):
        for item in value:
            strict_utf8(item)


def pycs_below(root):
    return sorted(p for p in pathlib.Path(root).rglob("*.pyc"))


# --- 4. hostile trees ---------------------------------------------------------------------------

def test_a_source_linked_from_outside_the_tree_is_never_read(tmp_path):
    """A web-user-writable subdirectory holds `config.py` -> a root-only file outside the tree and
    `x.py` -> another: precompile neither reads nor compiles them (a warning names each, they are
    listed in `outside_links`), no cache anywhere holds the secret, the leaked cache an earlier
    run left behind is pruned, and pycache_info names the links without reading them. With
    `follow_outside_links: true` a link is compiled."""
    secret = write(tmp_path / "private" / "secret.py", SECRET, 0o600)
    other = write(tmp_path / "private" / "shadow.py", "HASH = 'x'\n", 0o600)
    root = tmp_path / "cgi"
    write(root / "index.py", SOURCE)
    (root / "sub").mkdir()
    (root / "sub").chmod(0o777)
    (root / "sub" / "config.py").symlink_to(secret)
    (root / "sub" / "x.py").symlink_to(other)
    (root / "sub" / "inside.py").symlink_to(root / "index.py")
    # The cache an earlier deploy wrote through the link.
    write(root / "sub" / "__pycache__" / "config.cpython-311.pyc", b"leaked " + SECRET.encode())

    result = run_module("precompile", {"path": str(root), "interpreters": [sys.executable]}, tmp_path=tmp_path)
    assert result["rc"] == 0, result
    assert result["outside_links"] == [str(root / "sub" / "config.py"), str(root / "sub" / "x.py")]
    assert str(root / "sub" / "config.py") not in result["compiled"]
    assert str(root / "sub" / "inside.py") in result["compiled"]
    assert str(root / "sub" / "__pycache__" / "config.cpython-311.pyc") in result["pruned"]
    warnings = json.dumps(result.get("warnings", []))
    assert "config.py" in warnings and "x.py" in warnings and "follow_outside_links" in warnings
    for pyc in pycs_below(root):
        assert b"ffd0c1a9" not in pyc.read_bytes(), pyc
        assert not pyc.name.startswith(("config.", "x.")), pyc

    info = run_module("pycache_info", {"path": str(root), "interpreters": [sys.executable]}, tmp_path=tmp_path)
    assert any(problem.startswith(str(root / "sub" / "config.py") + ": a symbolic link to") for problem in info["problems"])

    followed = run_module("precompile", {"path": str(root), "interpreters": [sys.executable],
                                         "follow_outside_links": True}, tmp_path=tmp_path)
    assert str(root / "sub" / "config.py") in followed["compiled"], followed


def test_a_pyc_is_never_more_readable_than_its_source(tmp_path):
    """Sources of mode 0600 and 0640 get caches of mode 0600 and 0640 from precompile (0644 for a
    0644 source); a 0644 cache an earlier run wrote for a 0600 source is written again as 0600; and
    pycache_owner with its default `file_mode` 0644 keeps them that narrow."""
    root = tmp_path / "cgi"
    write(root / "private.py", SECRET, 0o600)
    write(root / "group.py", SOURCE, 0o640)
    write(root / "public.py", SOURCE, 0o644)
    write(root / "old.py", SOURCE, 0o600)
    first = run_module("precompile", {"path": str(root), "interpreters": [sys.executable]}, tmp_path=tmp_path)
    assert first["rc"] == 0, first
    tag = first["interpreters"][0]["cache_tag"]
    cache = root / "__pycache__"
    old_pyc = cache / ("old.%s.pyc" % tag)
    old_pyc.chmod(0o644)
    again = run_module("precompile", {"path": str(root), "interpreters": [sys.executable]}, tmp_path=tmp_path)
    assert again["compiled"] == [str(root / "old.py")], again

    modes = dict((name, stat.S_IMODE(os.stat(str(cache / ("%s.%s.pyc" % (name, tag)))).st_mode))
                 for name in ("private", "group", "public", "old"))
    assert modes == {"private": 0o600, "group": 0o640, "public": 0o644, "old": 0o600}

    uid, gid = os.getuid(), os.getgid()
    owned = run_module("pycache_owner", {"path": str(root), "owner": str(uid), "group": str(gid)}, tmp_path=tmp_path)
    assert owned["rc"] == 0, owned
    for name in ("private", "old"):
        (cache / ("%s.%s.pyc" % (name, tag))).chmod(0o644)
    owned = run_module("pycache_owner", {"path": str(root), "owner": str(uid), "group": str(gid)}, tmp_path=tmp_path)
    after = dict((name, stat.S_IMODE(os.stat(str(cache / ("%s.%s.pyc" % (name, tag)))).st_mode))
                 for name in ("private", "group", "public", "old"))
    assert after == {"private": 0o600, "group": 0o640, "public": 0o644, "old": 0o600}, owned


# --- 1. bad input ---------------------------------------------------------------------------------

def bad_name_tree(tmp_path):
    root = tmp_path / "cgi"
    root.mkdir()
    raw = os.fsencode(str(root))
    write(raw + b"/\xff\xfe_bad.py", SOURCE)
    write(raw + b"/\xff_dir/mod.py", SOURCE)
    write(root / "good.py", SOURCE)
    return root


@pytest.mark.parametrize("module", ["precompile", "pycache_owner", "pycache_info"])
def test_names_that_are_not_utf8_are_handled_and_reported_escaped(tmp_path, module):
    """A file `\\xff\\xfe_bad.py` and a directory `\\xff_dir` in the tree: precompile compiles
    them, pycache_owner gives their caches an owner, pycache_info counts them; each task succeeds
    and returns every path as valid UTF-8, the undecodable bytes written as `\\xNN`."""
    root = bad_name_tree(tmp_path)
    args = {"path": str(root)}
    if module in ("precompile", "pycache_info"):
        args["interpreters"] = [sys.executable]
    if module != "precompile":
        run_module("precompile", dict(path=str(root), interpreters=[sys.executable]), tmp_path=tmp_path)
    if module == "pycache_owner":
        args.update(owner=str(os.getuid()), group=str(os.getgid()), scope="tree")
        (root / "__pycache__").chmod(0o700)
    result = run_module(module, args, diff=True, tmp_path=tmp_path)
    assert result["rc"] == 0 and not result.get("failed"), result
    strict_utf8(result)
    text = json.dumps(result)
    if module == "precompile":
        assert str(root) + "/\\xff\\xfe_bad.py" in result["compiled"]
        assert str(root) + "/\\xff_dir/mod.py" in result["compiled"]
        assert os.path.exists(os.fsencode(str(root)) + b"/\xff_dir/__pycache__")
    elif module == "pycache_owner":
        assert result["changed"] and result["stats"]["changed"] >= 1
    else:
        assert result["interpreters"][0]["fresh"] == 3, result["interpreters"]
    assert "\\udc" not in text


def test_a_failing_run_says_what_it_changed(tmp_path):
    """A tree with a syntax error next to good sources and a non-UTF-8 name: precompile fails
    (on_error fail) and its failed result still lists, readably, the caches it wrote (`changed`,
    `compiled`), so that what changed on the host is never hidden behind the failure."""
    root = bad_name_tree(tmp_path)
    write(root / "broken.py", "def f(:\n")
    result = run_module("precompile", {"path": str(root), "interpreters": [sys.executable]}, tmp_path=tmp_path)
    assert result["failed"] and result["changed"], result
    strict_utf8(result)
    assert str(root / "good.py") in result["compiled"]
    assert str(root) + "/\\xff\\xfe_bad.py" in result["compiled"]
    assert "broken.py:1" in result["msg"]


SYSTEM_CASES = [
    ("precompile", {"path": "/etc"}),
    ("precompile", {"path": "/srv/cgi", "pycache_prefix": "/var/cache"}),
    ("pycache_owner", {"path": "/etc", "scope": "tree"}),
    ("pycache_owner", {"path": "/var/lib"}),
    ("pycache_owner", {"path": "/usr/../usr"}),
    ("pycache_info", {"path": "/usr"}),
    ("selinux_context", {"path": ["/srv/cgi", "/var/lib"]}),
    ("httpd_pycache", {"path": "/var", "validate": False}),
]


@pytest.mark.parametrize("module, args", SYSTEM_CASES, ids=["%s:%s" % (m, a["path"]) for m, a in SYSTEM_CASES])
def test_system_directories_are_refused_as_roots(tmp_path, module, args):
    """`/etc`, `/var/lib`, `/usr` (also as `/usr/../usr`), `/var`, `/var/cache` as a prefix: every
    module that takes a root refuses them (check mode, so nothing could change), naming the option,
    the directory and `allow_system_path`."""
    result = run_module(module, args, check_mode=True, tmp_path=tmp_path)
    assert result["failed"], result
    assert "system directory" in result["msg"] and "allow_system_path" in result["msg"], result["msg"]
    assert not result.get("changed"), result


def test_allow_system_path_lets_a_system_root_through(tmp_path):
    """With `allow_system_path: true` the refusal of a listed directory is lifted (pycache_owner
    in check mode on `/srv`), while `/` stays refused whatever the option says."""
    allowed = run_module("pycache_owner", {"path": "/srv", "allow_system_path": True, "owner": "0", "group": "0"},
                         check_mode=True, tmp_path=tmp_path)
    assert "system directory" not in allowed.get("msg", ""), allowed
    root = run_module("pycache_owner", {"path": "/", "allow_system_path": True}, check_mode=True, tmp_path=tmp_path)
    assert root["failed"] and "whole file system" in root["msg"], root


@pytest.mark.parametrize("module", ["precompile", "pycache_owner", "pycache_info", "httpd_pycache"])
def test_dollar_and_tilde_in_paths_are_literal(tmp_path, module):
    """A root named `a$HOME` is the directory of that name, never `a` + the value of HOME, in
    every module; `~/cgi` is refused as not absolute, naming the option."""
    root = tmp_path / "a$HOME"
    write(root / "mod.py", SOURCE)
    args = {"path": str(root)}
    if module in ("precompile", "pycache_info"):
        args["interpreters"] = [sys.executable]
    if module == "pycache_owner":
        args.update(owner=str(os.getuid()), group=str(os.getgid()))
    if module == "httpd_pycache":
        conf = write(tmp_path / "apache2.conf", "ServerName x\n")
        args.update(dest=str(conf), validate=False, placement="block")
    result = run_module(module, args, tmp_path=tmp_path)
    assert result["rc"] == 0, result
    if module == "precompile":
        assert result["compiled"] == [str(root / "mod.py")]
    elif module == "pycache_owner":
        assert (root / "__pycache__").is_dir()
    elif module == "pycache_info":
        assert result["path"] == str(root)
    else:
        assert "# BEGIN pycgi.hosting pycache %s\n" % root in conf.read_text()
    refused = run_module(module, dict(args, path="~/cgi"), check_mode=True, tmp_path=tmp_path)
    assert refused["failed"] and "path ~/cgi is not an absolute path" in refused["msg"], refused


def test_selinux_context_refuses_an_empty_path_list(tmp_path):
    """`selinux_context path: []` fails naming the setting instead of succeeding with nothing done."""
    result = run_module("selinux_context", {"path": []}, check_mode=True, tmp_path=tmp_path)
    assert result["failed"] and "path is an empty list" in result["msg"], result


# --- 2. live traffic ----------------------------------------------------------------------------

@pytest.mark.parametrize("placement", ["drop_in", "block"])
def test_concurrent_httpd_pycache_runs_keep_every_block(tmp_path, placement):
    """16 httpd_pycache processes started at once on one Apache config, each for its own root, with
    each placement: all 16 blocks are where the placement puts them afterwards, in the one config
    file or each in its drop-in (the lock serialises the edits; without it some are lost)."""
    conf = write(tmp_path / "apache2.conf", "ServerName x\n")
    (tmp_path / "conf.d").mkdir()
    procs = []
    for index in range(16):
        params = {"path": "/srv/site%02d/cgi-bin" % index, "dest": str(conf), "validate": False, "placement": placement,
                  "_ansible_check_mode": False, "_ansible_diff": False}
        args_file = tmp_path / ("args-%s.json" % uuid.uuid4().hex[:8])
        args_file.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": params}))
        procs.append(subprocess.Popen([sys.executable, "-m", "ansible_collections.pycgi.hosting.plugins.modules.httpd_pycache",
                                       str(args_file)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=child_env()))
    results = [json.loads(proc.communicate(timeout=300)[0]) for proc in procs]
    assert all(result.get("changed") for result in results), results

    def text(index):
        return pathlib.Path(apache_stanza_file(conf, "/srv/site%02d/cgi-bin" % index, placement)).read_text()
    missing = [index for index in range(16) if "# BEGIN pycgi.hosting pycache /srv/site%02d/cgi-bin\n" % index not in text(index)]
    assert missing == [], "blocks lost: %s" % missing


# --- 5. security properties, from outside ---------------------------------------------------------

def test_server_wide_deny_is_one_block_for_every_pycache(tmp_path):
    """`server_wide: true` writes one block whose regex matches a `__pycache__` anywhere (for
    example under /var/www/html), is idempotent, and cannot be combined with `path`."""
    conf = write(tmp_path / "apache2.conf", "ServerName x\n")
    (tmp_path / "conf.d").mkdir()
    first = run_module("httpd_pycache", {"server_wide": True, "dest": str(conf), "validate": False}, tmp_path=tmp_path)
    assert first["changed"] and first["regex"] == "^/(?:.+/)?__pycache__(?:/|$)", first
    assert "# BEGIN pycgi.hosting pycache /\n" in pathlib.Path(apache_stanza_file(conf, "/")).read_text()
    again = run_module("httpd_pycache", {"server_wide": True, "dest": str(conf), "validate": False}, tmp_path=tmp_path)
    assert again["changed"] is False, again
    both = run_module("httpd_pycache", {"server_wide": True, "path": "/srv/cgi", "dest": str(conf), "validate": False},
                      tmp_path=tmp_path)
    assert both["failed"] and "server_wide" in both["msg"], both


# --- 1. bad input ---------------------------------------------------------------------------------

ROLE_CASES = [
    (dict(roots=[{"path": ""}], cache_mode="writable"), "pycgi_roots[0].path is empty"),
    (dict(roots=[{"path": "/srv/a"}, {"path": "/srv/a/"}], cache_mode="writable"),
     "pycgi_roots[1].path and pycgi_roots[0].path name the same directory /srv/a"),
    (dict(roots=[{"path": "/srv/cgi"}], cache_mode="prefix", pycache_prefix="/srv/cgi/cache"),
     "pycgi_pycache_prefix /srv/cgi/cache is inside pycgi_roots[0].path /srv/cgi"),
    (dict(roots=[{"path": "/srv/cache/cgi"}], cache_mode="prefix", pycache_prefix="/srv/cache"),
     "pycgi_roots[0].path /srv/cache/cgi is inside pycgi_pycache_prefix /srv/cache"),
    (dict(roots=[{"path": "/srv/cgi"}], cache_mode="prefix", pycache_prefix="/var/cache"),
     "pycgi_pycache_prefix '/var/cache' is a system directory"),
    (dict(roots=[{"path": "/var/lib/"}], cache_mode="writable"), "pycgi_roots[0].path '/var/lib/' is a system directory"),
    (dict(roots=[{"path": "cgi"}], cache_mode="writable"), "pycgi_roots[0].path 'cgi' is not an absolute path"),
    (dict(roots=[{"path": "/srv/cgi"}], cache_mode="writable", source="app/", explicit_roots=True),
     "pycgi_source is only the source of the stock root"),
    (dict(roots=[{"path": "/srv/cgi"}], cache_mode="writable", interpreters=["python3"]),
     "pycgi_interpreters[0] 'python3' is not an absolute path"),
    (dict(roots=[{"path": "/srv/cgi"}], cache_mode="writable", keep_releases=1), "pycgi_keep_releases is 1"),
    (dict(roots=[{"path": "/srv/cgi"}], cache_mode="writable", shared_paths=["data", "/var/data"]),
     "pycgi_shared_paths[1] '/var/data' is absolute"),
    (dict(roots=[{"path": "/srv/cgi"}], cache_mode="writable", shared_paths=["data/../../etc"]),
     "pycgi_shared_paths[0] 'data/../../etc' leaves the root"),
]


@pytest.mark.parametrize("settings, message", ROLE_CASES, ids=[m.split(" ")[0] for _s, m in ROLE_CASES])
def test_the_role_names_each_bad_setting(settings, message):
    """The role's first check (the `cgi_host_problems` filter behind roles/cgi_host/tasks/validate.yml)
    names the setting for an empty root path, the same root twice, a cache prefix inside a root or
    a root inside it, a system directory as root or prefix, a relative root, `pycgi_source` that
    `pycgi_roots` would make ignored, a relative interpreter, fewer than two releases kept and a
    shared path that is absolute or leaves the root; good settings give no problem."""
    from ansible_collections.pycgi.hosting.plugins.filter.cgi_host import cgi_host_problems

    roots = settings.pop("roots")
    problems = cgi_host_problems(roots, **settings)
    assert any(message in problem for problem in problems), problems
    good = cgi_host_problems([{"path": "/usr/lib/cgi-bin"}, {"path": "/srv/app/cgi-bin"}], "prefix",
                             pycache_prefix="/var/cache/pycgi", source="", interpreters=["/usr/bin/python3"],
                             keep_releases=2, shared_paths=["data", "uploads/tmp"])
    assert good == []
