# Copyright (c) 2026 pycgi.hosting contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The label comparison of selinux_context: which rules decide a path below a root, and the walk
that compares every label of a tree with the context those rules give it.

The decisions are checked against a plain model of libselinux's lookup (every rule tried, last
first, exact paths before regular expressions), fed with lines of the Debian reference policy;
the walk runs on real files with real security.selinux attributes (root may write them on any
file system that keeps them, SELinux enabled or not). The container tests check the same against
the real matchpathcon and setfiles.
"""
import errno
import os
import re
import stat

import pytest

from ansible_collections.pycgi.hosting.plugins.module_utils import _selinux as sel

SCRIPT = "httpd_sys_script_exec_t"
RW = "httpd_sys_rw_content_t"
DIR, FILE, LINK = stat.S_IFDIR, stat.S_IFREG, stat.S_IFLNK

# Lines of the reference policy's file_contexts (selinux-policy-default 2:2.20221101), in its order.
BASE = """\
/.*	system_u:object_r:default_t:s0
/srv/.*	system_u:object_r:var_t:s0
/tmp/.*	<<none>>
/usr/.*	system_u:object_r:usr_t:s0
/usr/.*\\.cgi	--	system_u:object_r:httpd_sys_script_exec_t:s0
/usr/(.*/)?bin(/.*)?	system_u:object_r:bin_t:s0
/usr/(.*/)?lib(/.*)?	system_u:object_r:lib_t:s0
/usr/(local/)?.*\\.so(\\.[^/]*)*	--	system_u:object_r:lib_t:s0
/srv/([^/]*/)?www(/.*)?	system_u:object_r:httpd_sys_content_t:s0
/var/www(/.*)?	system_u:object_r:httpd_sys_content_t:s0
/var/www(/.*)?/logs	-d	system_u:object_r:httpd_sys_ra_content_t:s0
/var/www(/.*)?/logs/.*	system_u:object_r:httpd_sys_ra_content_t:s0
/usr/lib/.*	system_u:object_r:lib_t:s0
/usr/lib/(.*/)?bin(/.*)?	system_u:object_r:bin_t:s0
/var/www/[^/]*/cgi-bin(/.*)?	system_u:object_r:httpd_sys_script_exec_t:s0
/usr/lib/cgi-bin(/.*)?	system_u:object_r:httpd_sys_script_exec_t:s0
/var/www/cgi-bin(/.*)?	system_u:object_r:httpd_sys_script_exec_t:s0
/usr/lib/cgi-bin/(nph-)?cgiwrap(d)?	--	system_u:object_r:httpd_suexec_exec_t:s0
/usr/lib/cgi-bin/nagios(/.*)?	system_u:object_r:httpd_nagios_script_exec_t:s0
/var/www/cgi-bin/apcgui(/.*)?	system_u:object_r:httpd_apcupsd_cgi_script_exec_t:s0
/usr/lib/cgi-bin/mailman/.*	--	system_u:object_r:mailman_cgi_exec_t:s0
/usr/lib/cgi-bin/lightsquid/.*\\.cgi	--	system_u:object_r:httpd_lightsquid_script_exec_t:s0
/	-d	system_u:object_r:root_t:s0
/usr	-d	system_u:object_r:usr_t:s0
/usr/lib	system_u:object_r:lib_t:s0
/var/www/cgi-bin/cvsweb\\.cgi	--	system_u:object_r:httpd_cvs_script_exec_t:s0
/usr/lib/cgi-bin/nut/upsset\\.cgi	--	system_u:object_r:httpd_nutups_cgi_script_exec_t:s0
"""
HOMEDIRS = "/home/[^/]+/public_html(/.+)?	system_u:object_r:httpd_user_content_t:s0\n"


def local(*rules):
    return [sel.Rule(target, ftype, sel.context_type(context), context) for target, ftype, context in rules]


def ours(root, script_type=SCRIPT, cache_type=RW):
    return list(sel.wanted_rules(root, script_type, cache_type, "s0"))


# The local rules of a host with a few roots: stock trees with the cache rule, custom trees with
# both rules, and rules of others (subtrees, a directory, an exact path).
LOCAL = (ours("/srv/app") + ours("/srv/my.app+v2 (x)") + ours("/srv/www/site")[1:] + ours("/usr/lib/cgi-bin")[1:]
         + ours("/var/www/cgi-bin")[1:]
         + local(("/usr/lib/cgi-bin/nut(/.*)?", "a", "system_u:object_r:httpd_sys_content_t:s0"),
                 ("/srv/app/static(/.*)?", "a", "system_u:object_r:httpd_sys_content_t:s0"),
                 ("/srv/app/uploads", "d", "system_u:object_r:httpd_sys_rw_content_t:s0"),
                 ("/srv/app/pkg/secret\\.py", "f", "system_u:object_r:httpd_sys_ra_content_t:s0")))
RULES = [sel.parse_file_contexts(BASE), sel.parse_file_contexts(HOMEDIRS), LOCAL]
POLICY = sel.policy_rules(RULES)

ROOTS = ["/usr/lib/cgi-bin", "/var/www/cgi-bin", "/srv/app", "/srv/my.app+v2 (x)", "/srv/www/site",
         "/srv/unlabelled", "/tmp/cgi", "/var/www/site/cgi-bin", "/usr/lib/cgi-bin/nagios"]
# Paths below a root, with the file types they are looked up as.
BELOW = [("", DIR), ("/hello.py", FILE), ("/hello.py", LINK), ("/x.cgi", FILE), ("/x.cgi", DIR), ("/pkg", DIR),
         ("/pkg/mod.py", FILE), ("/pkg/__pycache__", DIR), ("/pkg/__pycache__/mod.cpython-311.pyc", FILE),
         ("/__pycache__", DIR), ("/__pycache__/hello.cpython-36.pyc", FILE), ("/a b/__pycache__/c d.pyc", FILE),
         ("/nagios", DIR), ("/nagios/status.cgi", FILE), ("/nagios/__pycache__/x.pyc", FILE),
         ("/cgiwrap", FILE), ("/nph-cgiwrapd", FILE), ("/cgiwrapd", DIR), ("/mailman/admin", FILE),
         ("/mailman", DIR), ("/lightsquid/x.cgi", FILE), ("/nut/upsset.cgi", FILE), ("/nut/upsset.cgi", DIR),
         ("/cvsweb.cgi", FILE), ("/logs", DIR), ("/logs/a", FILE), ("/apcgui/x", FILE), ("/bin/tool", FILE),
         ("/lib/x.so", FILE), ("/lib/x.so.1", FILE), ("/static/a.css", FILE), ("/static/__pycache__/s.pyc", FILE),
         ("/uploads", DIR), ("/uploads", FILE), ("/pkg/secret.py", FILE), ("/pkg/secret.pyc", FILE),
         ("/caf\u00e9/__pycache__/m.pyc", FILE), ("/www/__pycache__", DIR)]


def model_context(path, mode):
    """libselinux's lookup_common() written plainly: every rule of every file, exact paths moved to
    the end, tried last first; the stem of a spec must be the path's; <<none>> and no match alike."""
    specs = [rule for rules in RULES for rule in rules]
    meta = re.compile(r"[.^$?*+|\[({]")
    exact = [rule for rule in specs if not meta.search(re.sub(r"\\.", "", rule.target))]
    ordered = [rule for rule in specs if rule not in exact] + exact
    path_b = path.encode("utf-8", "surrogateescape")
    path_stem = path_b[:path_b.find(b"/", 1)] if path_b.find(b"/", 1) > 0 else None
    letters = {DIR: "d", FILE: "f", LINK: "l"}
    for rule in reversed(ordered):
        if rule.ftype not in ("a", letters[mode]):
            continue
        target = rule.target.encode()
        cut = target.find(b"/", 1)
        stem = target[:cut] if cut > 0 and not meta.search(target[:cut].decode()) else None
        if stem is not None and stem != path_stem:
            continue
        rest, subject = (target[len(stem):], path_b[len(stem):]) if stem else (target, path_b)
        if re.search(b"^" + rest + b"$", subject, re.DOTALL):
            return rule.context
    return None


# --- deciding contexts ---------------------------------------------------------------------------

@pytest.mark.parametrize("root", ROOTS)
def test_the_few_rules_kept_for_a_root_decide_as_the_whole_policy(root):
    specs, reason = sel.root_labels(root, POLICY)
    assert reason is None
    assert len(specs) < 12  # of the 30 rules; a handful of the reference policy's 5,600
    for path, mode in BELOW:
        spec = sel.lookup(specs, (root + path).encode("utf-8"), mode)
        assert (spec.rule.context if spec else None) == model_context(root + path, mode), (root + path, mode)


@pytest.mark.parametrize("root", ROOTS)
def test_the_rules_tried_for_the_entries_of_a_directory_decide_as_the_whole_policy(root):
    """The walk tries, for each directory, the specs up to the first one matching every entry there."""
    specs, _reason = sel.root_labels(root, POLICY)
    deciders = 0
    for path, mode in BELOW:
        if not path:
            continue
        full = (root + path).encode("utf-8")
        first, decider = sel.entry_specs(specs, full.rpartition(b"/")[0])
        deciders += decider is not None
        spec = sel.lookup(first, full, mode) or decider
        assert (spec.rule.context if spec else None) == model_context(root + path, mode), (root + path, mode)
    assert deciders > len(BELOW) // 2


def test_what_the_rules_give_below_the_stock_tree():
    specs, _reason = sel.root_labels("/usr/lib/cgi-bin", POLICY)

    def setype(path, mode):
        return sel.lookup(specs, path.encode(), mode).rule.setype

    assert setype("/usr/lib/cgi-bin", DIR) == SCRIPT
    assert setype("/usr/lib/cgi-bin/pkg/__pycache__/m.cpython-311.pyc", FILE) == RW
    assert setype("/usr/lib/cgi-bin/nagios/status.cgi", FILE) == "httpd_nagios_script_exec_t"
    assert setype("/usr/lib/cgi-bin/nagios/__pycache__/x.pyc", FILE) == RW  # the local cache rule comes last
    assert setype("/usr/lib/cgi-bin/cgiwrapd", FILE) == "httpd_suexec_exec_t"
    assert setype("/usr/lib/cgi-bin/cgiwrapd", DIR) == SCRIPT
    # An exact path of the policy beats even a later local rule; the rest of that local rule's tree is its.
    assert setype("/usr/lib/cgi-bin/nut/upsset.cgi", FILE) == "httpd_nutups_cgi_script_exec_t"
    assert setype("/usr/lib/cgi-bin/nut/other.cgi", FILE) == "httpd_sys_content_t"
    # Rules of the policy before the tree rule (/usr/.*\.cgi, /usr/lib/(.*/)?bin(/.*)?) are shadowed by it.
    assert setype("/usr/lib/cgi-bin/x.cgi", FILE) == SCRIPT
    assert setype("/usr/lib/cgi-bin/bin/tool", FILE) == SCRIPT
    kept = [spec.rule.target for spec in specs]
    assert "/usr/(.*/)?lib(/.*)?" not in kept and "/.*" not in kept and "/usr/lib" not in kept


def test_other_local_rules_below_a_root_are_respected():
    specs, _reason = sel.root_labels("/srv/app", POLICY)

    def setype(path, mode=FILE):
        return sel.lookup(specs, path.encode(), mode).rule.setype

    assert setype("/srv/app/static/a.css") == "httpd_sys_content_t"
    assert setype("/srv/app/uploads", DIR) == RW and setype("/srv/app/uploads") == SCRIPT
    assert setype("/srv/app/pkg/secret.py") == "httpd_sys_ra_content_t"  # an exact path beats every expression
    assert setype("/srv/app/pkg/secret.pyc") == SCRIPT


def test_an_equivalence_at_above_or_below_a_root_leaves_it_undecided():
    policy = sel.policy_rules(RULES, sel.parse_subs("# aliases\n/lib /usr/lib\n/srv/web /var/www\n/srv/app/old /srv/app\n"))
    assert sel.root_labels("/lib/cgi-bin", policy)[1] == "the equivalence /lib = /usr/lib applies below /lib/cgi-bin"
    assert "applies below /srv/web" in sel.root_labels("/srv/web", policy)[1]
    assert "applies below /srv/app" in sel.root_labels("/srv/app", policy)[1]
    assert sel.root_labels("/usr/lib/cgi-bin", policy)[1] is None
    assert sel.root_labels("/srv/lib", policy)[1] is None  # /lib is a component prefix only of /lib/...


@pytest.mark.parametrize("target", ["/srv/app/[[:alpha:]]+", "/srv/app/(?!x).*", "/srv/app/a++", "/srv/app/x{,3}",
                                    "/srv/app/\\bword", "/srv/app/\\Qx\\E"])
def test_a_rule_python_may_read_otherwise_than_pcre_leaves_the_root_undecided(target):
    policy = sel.policy_rules(RULES[:2] + [LOCAL + local((target, "a", "system_u:object_r:var_t:s0"))])
    specs, reason = sel.root_labels("/srv/app", policy)
    assert specs is None and reason == "the rule %s is a regular expression this module does not evaluate" % target
    # ... but only for the roots it can reach.
    assert sel.root_labels("/var/www/cgi-bin", policy)[1] is None


def test_a_rule_shadowed_by_a_later_one_covering_the_root_does_not_count():
    policy = sel.policy_rules([sel.parse_file_contexts("/srv/app/[[:alpha:]]+  system_u:object_r:var_t:s0\n")]
                              + RULES[:2] + [ours("/srv/app")])
    assert sel.root_labels("/srv/app", policy)[1] is None


def test_an_alternation_at_the_top_may_match_anywhere():
    # libselinux anchors as ^spec$: "/x|y" matches what starts with /x or ends with y.
    policy = sel.policy_rules(RULES[:2] + [ours("/srv/app") + local(("/nothing|.*\\.secret", "f", "system_u:object_r:etc_t:s0"))])
    specs, reason = sel.root_labels("/srv/app", policy)
    assert reason is None
    assert sel.lookup(specs, b"/srv/app/a.secret", FILE).rule.setype == "etc_t"
    assert sel.lookup(specs, b"/srv/app/a.secret.py", FILE).rule.setype == SCRIPT


@pytest.mark.parametrize("target,meta,head,plain", [
    ("/usr/lib/cgi-bin(/.*)?", True, b"/usr/lib/cgi-bin", None),
    ("/srv/my\\.app\\x20b(/.*)?", True, b"/srv/my.app b", None),
    ("/usr/lib/cgi-bin/(nph-)?cgiwrap(d)?", True, b"/usr/lib/cgi-bin/", None),
    ("/srv/ab?c", True, b"/srv/a", None),
    ("/srv/ab*", True, b"/srv/a", None),
    ("/srv/ab+", True, b"/srv/ab", None),
    ("/srv/a\\.b?", True, b"/srv/a.", None),
    ("/srv/a\\.?", True, b"/srv/a", None),
    ("/x|/y", True, b"", None),
    ("/srv/a\\.b", False, b"/srv/a.b", b"/srv/a.b"),
    ("/srv/\\d", False, b"/srv/", None),
    ("/srv/caf\\xc3\\xa9", False, b"/srv/caf\xc3\xa9", b"/srv/caf\xc3\xa9"),
])
def test_spec_shapes(target, meta, head, plain):
    assert sel.has_meta_chars(target) is meta
    assert sel.literal_head(target) == head
    assert sel.plain_literal(target) == plain


def test_specs_covering_a_whole_root():
    assert sel.covers("/usr/lib/cgi-bin(/.*)?", "/usr/lib/cgi-bin")
    assert sel.covers("/usr/lib/cgi-bin(/.*)?", "/usr/lib/cgi-bin/sub")
    assert sel.covers("/srv/.*", "/srv/app") and sel.covers("/.*", "/srv")
    assert not sel.covers("/srv/.*", "/srv")  # /srv itself is not matched
    assert not sel.covers("/usr/lib/cgi-bin(/.*)?", "/usr/lib/cgi-binx")
    assert not sel.covers("/usr/lib/cgi-bin(/.*)?/__pycache__(/.*)?", "/usr/lib/cgi-bin")
    assert not sel.covers("/var/www/[^/]*/cgi-bin(/.*)?", "/var/www/site/cgi-bin")  # not a plain path: not trusted
    assert sel.covers("/srv/my\\.app(/.*)?", "/srv/my.app") and not sel.covers("/srv/my\\.app(/.*)?", "/srv/myXapp")


def test_stems_as_libselinux_takes_them():
    assert sel.spec_stem("/usr/lib(/.*)?") == b"/usr"
    assert sel.spec_stem("/srv(/.*)?") is None and sel.spec_stem("/.*") is None and sel.spec_stem("/a?b/c") is None
    # A spec with a stem is never tried for a path without one (a top-level path).
    rules = local(("/srv/?", "a", "system_u:object_r:etc_t:s0"), ("/s.*", "a", "system_u:object_r:var_t:s0"))
    specs, _reason = sel.root_labels("/srv", sel.policy_rules([rules]))
    assert sel.lookup(specs, b"/srv", DIR).rule.setype == "var_t"


# --- the walk ---------------------------------------------------------------------------------------

def set_label(path, context):
    os.setxattr(path, sel.XATTR, context.encode() + b"\0", follow_symlinks=False)


@pytest.fixture
def labels_writable(tmp_path):
    """Skips where this process may not write security.selinux attributes (not root, or a file
    system that keeps none): the walk compares labels, so it needs real ones."""
    probe = tmp_path / "probe"
    probe.write_text("")
    try:
        set_label(str(probe), "system_u:object_r:var_t:s0")
    except OSError as exc:
        if exc.errno in (errno.EPERM, errno.EACCES, errno.ENOTSUP, errno.EOPNOTSUPP):
            pytest.skip("cannot write security.selinux here: %s" % exc)
        raise
    probe.unlink()


def make_tree(root):
    """A CGI tree: an entry script, a package with caches at two depths, a symlink; all labeled right."""
    paths = {root: SCRIPT}
    for sub in ("pkg", "pkg/__pycache__", "pkg/inner", "pkg/inner/__pycache__", "__pycache__"):
        os.makedirs(os.path.join(root, sub))
    for name in ("hello.py", "pkg/__init__.py", "pkg/inner/mod.py", "__pycache__/hello.cpython-311.pyc",
                 "pkg/__pycache__/__init__.cpython-311.pyc", "pkg/inner/__pycache__/mod.cpython-311.pyc"):
        with open(os.path.join(root, name), "w") as handle:
            handle.write("x = 1\n")
    os.symlink("hello.py", os.path.join(root, "link.py"))
    for directory, subdirs, files in os.walk(root):
        for name in subdirs + files:
            path = os.path.join(directory, name)
            paths[path] = RW if "/__pycache__" in path[len(root):] else SCRIPT
    for path, setype in paths.items():
        set_label(path, "system_u:object_r:%s:s0" % setype)
    return paths


def tree_policy(root):
    return sel.policy_rules([sel.parse_file_contexts("/.*  system_u:object_r:default_t:s0\n"), [], ours(root)])


def scan(root, policy=None):
    specs, reason = sel.root_labels(root, policy or tree_policy(root))
    assert reason is None
    return sel.scan_labels(root, specs)


def test_a_tree_labeled_right_has_nothing_to_relabel(tmp_path, labels_writable):
    root = str(tmp_path / "app")
    paths = make_tree(root)
    result = scan(root)
    assert (result.reason, result.wrong, result.checked) == (None, [], len(paths))
    # One sample for each rule and file type that decided a path, with the context it gave.
    samples = [(mode, context.split(":")[2]) for (_index, mode), (_path, context) in result.samples.items()]
    assert sorted(samples) == sorted([(DIR, SCRIPT), (FILE, SCRIPT), (LINK, SCRIPT), (DIR, RW), (FILE, RW)])
    assert all(paths[path.decode()] == context.split(":")[2] for path, context in result.samples.values())


def test_a_label_changed_by_hand_and_a_new_unlabeled_cache_are_found(tmp_path, labels_writable):
    root = str(tmp_path / "app")
    make_tree(root)
    deep = os.path.join(root, "pkg/inner/__pycache__/mod.cpython-311.pyc")
    set_label(deep, "system_u:object_r:httpd_sys_content_t:s0")
    new_cache = os.path.join(root, "pkg/inner/sub/__pycache__")
    os.makedirs(new_cache)  # unlabeled, as a web server without SELinux leaves it
    with open(os.path.join(new_cache, "m.cpython-311.pyc"), "w"):
        pass
    role = os.path.join(root, "hello.py")
    set_label(role, "unconfined_u:object_r:%s:s0" % SCRIPT)  # -F resets user, role and range too
    result = scan(root)
    assert result.reason is None
    assert sorted(result.wrong) == sorted([
        (deep.encode(), FILE), (role.encode(), FILE), ((root + "/pkg/inner/sub").encode(), DIR),
        (new_cache.encode(), DIR), ((new_cache + "/m.cpython-311.pyc").encode(), FILE)])
    # setfiles relabels a directory's subtree: the paths below a listed directory are left out.
    assert sel.relabel_list(result.wrong) == sorted([deep.encode(), role.encode(), (root + "/pkg/inner/sub").encode()])


def test_a_path_with_no_context_is_left_alone(tmp_path, labels_writable):
    root = str(tmp_path / "app")
    make_tree(root)
    os.removexattr(os.path.join(root, "hello.py"), sel.XATTR)
    policy = sel.policy_rules([sel.parse_file_contexts("/.*  system_u:object_r:default_t:s0\n"), [],
                               ours(root) + local((sel.escape_path(root) + "/hello\\.py", "f", "<<none>>"))])
    assert scan(root, policy).wrong == []


@pytest.mark.parametrize("name,reason", [("a\nb.py", "holds a name with a newline")])
def test_a_name_setfiles_cannot_report_leaves_the_tree_to_setfiles(tmp_path, labels_writable, name, reason):
    root = str(tmp_path / "app")
    make_tree(root)
    open(os.path.join(root, "pkg", name), "w").close()
    result = scan(root)
    assert result.reason == "%s/pkg %s" % (root, reason)


def test_a_root_that_is_a_symlink_leaves_the_tree_to_setfiles(tmp_path, labels_writable):
    root = str(tmp_path / "app")
    make_tree(root)
    os.symlink(root, str(tmp_path / "alias"))
    assert scan(str(tmp_path / "alias"), tree_policy(root)).reason == "%s/alias is a symbolic link" % tmp_path


def test_a_file_system_without_labels_leaves_the_tree_to_setfiles():
    root = "/proc/sys/kernel/random"  # procfs keeps no security.selinux attributes
    try:
        os.getxattr(root, sel.XATTR)
    except OSError as exc:
        if exc.errno not in (errno.ENOTSUP, errno.EOPNOTSUPP):
            pytest.skip("procfs answers %s here" % exc)
    else:
        pytest.skip("procfs has SELinux labels here")
    result = scan(root, sel.policy_rules([sel.parse_file_contexts("/proc(/.*)?  system_u:object_r:proc_t:s0\n")]))
    assert result.reason.startswith(root + " has no SELinux label to compare (")


def test_a_missing_root_is_reported():
    assert scan("/nonexistent/pycgi/root").reason == "/nonexistent/pycgi/root: No such file or directory"


def test_the_relabel_list_refuses_glob_characters():
    assert sel.relabel_list([(b"/srv/app/a b.py", FILE), (b"/srv/app/x", DIR), (b"/srv/app/x/y", FILE)]) == [
        b"/srv/app/a b.py", b"/srv/app/x"]
    for name in (b"a*b", b"a?b", b"a[b]", b"a{b,c}", b"a\\b"):
        assert sel.relabel_list([(b"/srv/app/ok", FILE), (b"/srv/app/" + name, FILE)]) is None
    assert sel.nul_list([b"/a b", "/c\u00e9"]) == b"/a b\0/c\xc3\xa9\0"
