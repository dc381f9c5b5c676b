# Copyright (c) 2026 pycgi.hosting contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The pure logic of selinux_context: escaping, parsing, planning, the semanage import input.

Plans are checked against a small model of libselinux's lookup (local rules last-added-wins,
ahead of the base policy), fed with lines copied from the Debian reference policy; the
container tests check the same behaviour against the real libselinux, semanage and setfiles.
"""
import ast
import importlib
import re

import pytest

from ansible_collections.pycgi.hosting.plugins.module_utils import _selinux as sel

SCRIPT = "httpd_sys_script_exec_t"
RW = "httpd_sys_rw_content_t"
CONTENT = "httpd_sys_content_t"

# Lines of the reference policy's file_contexts (selinux-policy-default 2:2.20221101), less specific first.
BASE_FILE_CONTEXTS = """\
# comment
/.*	system_u:object_r:default_t:s0
/srv(/.*)?	system_u:object_r:var_t:s0
/tmp/.*	<<none>>
/usr/lib(/.*)?	system_u:object_r:lib_t:s0
/var/www(/.*)?	system_u:object_r:httpd_sys_content_t:s0
/var/www(/.*)?/logs	-d	system_u:object_r:httpd_sys_ra_content_t:s0
/usr/lib/cgi-bin(/.*)?	system_u:object_r:httpd_sys_script_exec_t:s0
/var/www/cgi-bin(/.*)?	system_u:object_r:httpd_sys_script_exec_t:s0
/usr/lib/cgi-bin/nagios(/.*)?	system_u:object_r:httpd_nagios_script_exec_t:s0
/usr/lib/cgi-bin/(nph-)?cgiwrap(d)?	--	system_u:object_r:httpd_suexec_exec_t:s0
"""
BASE = sel.parse_file_contexts(BASE_FILE_CONTEXTS)
BASE_SPECS, BASE_TYPES, MLS = sel.policy_facts(BASE)

# `semanage fcontext -l -C` as printed by policycoreutils-python-utils 3.4.
SEMANAGE_LIST = "\n".join([
    "SELinux fcontext                                   type               Context",
    "",
    "/srv/a(/.*)?                                       all files          system_u:object_r:httpd_sys_script_exec_t:s0 ",
    "/srv/a(/.*)?/__pycache__(/.*)?                     all files          system_u:object_r:httpd_sys_rw_content_t:s0 ",
    "/srv/logs                                          directory          system_u:object_r:var_log_t:s0 ",
    "/srv/skip(/.*)?                                    all files          <<None>>",
    "",
    "SELinux Local fcontext Equivalence ",
    "",
    "/srv/web = /var/www",
    "",
])


def model_type(path, mode, local_rules):
    """libselinux's answer in miniature: the last matching local rule, else the last matching base rule."""
    letter = {"dir": "d", "file": "f"}[mode]
    for rules in (local_rules, BASE):
        for rule in reversed(rules):
            if rule.ftype in ("a", letter) and re.fullmatch(rule.target, path):
                return rule.setype
    return None


def model_effective(roots, local_rules):
    return dict(((p.path, p.mode), model_type(p.path, p.mode, local_rules))
                for root in roots for p in sel.probes(root))


def plan(roots, local_rules, script_type=SCRIPT, cache_type=RW):
    roots = sel.normalize_roots(roots)
    return sel.plan_present(roots, local_rules, BASE_SPECS, model_effective(roots, local_rules),
                            script_type, cache_type, MLS)


def converge(roots, local_rules, script_type=SCRIPT, cache_type=RW):
    """Plans, applies, and checks the result labels every probe right and needs no second change."""
    first = plan(roots, local_rules, script_type, cache_type)
    after = sel.apply_operations(local_rules, first.operations)
    normalized = sel.normalize_roots(roots)
    assert sel.mismatches(normalized, model_effective(normalized, after), script_type, cache_type) == []
    assert plan(roots, after, script_type, cache_type).operations == []
    return first, after


def rule(target, setype, ftype="a"):
    return sel.Rule(target, ftype, setype, sel.make_context(setype, "s0"))


def actions(plan_):
    return [(op.action, op.rule.target, op.rule.setype) for op in plan_.operations]


# --- paths and specs ---------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/srv/my.app+v2 (x)", "/srv/a[b]{c}|d^e$f*g?h\\i", "/srv/it's \"quoted\""])
def test_escaped_path_matches_itself_and_nothing_else(path):
    spec = sel.escape_path(path)
    assert re.fullmatch(spec, path)
    assert not re.fullmatch(spec, path.replace(".", "X").replace("+", "++").replace("[", "") + "x")
    assert not re.fullmatch(spec, path + "/child")
    # semanage's import parser splits on blanks and strips quotes: the spec must have neither.
    assert len(spec.split()) == 1 and "'" not in spec and '"' not in spec


def test_tree_and_cache_rules_of_a_root():
    tree, cache = sel.wanted_rules("/srv/my.app", SCRIPT, RW, "s0")
    assert tree == ("/srv/my\\.app(/.*)?", "a", SCRIPT, "system_u:object_r:httpd_sys_script_exec_t:s0")
    assert cache == ("/srv/my\\.app(/.*)?/__pycache__(/.*)?", "a", RW, "system_u:object_r:httpd_sys_rw_content_t:s0")
    assert re.fullmatch(cache.target, "/srv/my.app/pkg/__pycache__/m.cpython-311.pyc")
    assert not re.fullmatch(cache.target, "/srv/my.app/pkg/m.py")


def test_roots_are_normalized_as_semanage_stores_them():
    assert sel.normalize_roots(["//srv//b/", "/srv/a", "/srv/a/", "/srv/a/sub"]) == ["/srv/a", "/srv/a/sub", "/srv/b"]


@pytest.mark.parametrize("path,reason", [
    ("srv/app", "not an absolute path"), ("/", "whole file system"), ("///", "whole file system"),
    ("/srv/../etc", "'..'"), ("/srv/./app", "'.'"), ("/srv/a\nb", "control"), ("/srv/a\tb", "control"),
    ("/srv/a\u00a0b", "blank"), ("", "empty"),
])
def test_unusable_roots_are_refused_with_the_reason(path, reason):
    with pytest.raises(ValueError, match=re.escape(reason)):
        sel.normalize_root(path)


def test_type_names():
    assert sel.is_type_name(SCRIPT) and sel.is_type_name("my.module_t")
    assert not any(sel.is_type_name(v) for v in ("", "a b", "system_u:object_r:x_t", "x;rm", "-t"))


# --- parsing -------------------------------------------------------------------------------------

def test_parse_file_contexts_reads_flags_contexts_and_order():
    rules = sel.parse_file_contexts(BASE_FILE_CONTEXTS)
    assert rules[0] == ("/.*", "a", "default_t", "system_u:object_r:default_t:s0")
    assert ("/tmp/.*", "a", "<<none>>", "<<none>>") in rules
    assert ("/var/www(/.*)?/logs", "d", "httpd_sys_ra_content_t", "system_u:object_r:httpd_sys_ra_content_t:s0") in rules
    assert rules[-1].ftype == "f"
    assert len(rules) == 10


def test_parse_the_local_store_file():
    text = ("# This file is auto-generated by libsemanage\n# Do not edit directly.\n\n"
            "/srv/a(/.*)?    system_u:object_r:httpd_sys_script_exec_t:s0\n"
            "/srv/sp\\x20ace(/.*)?    -d system_u:object_r:httpd_sys_content_t:s0\n")
    assert sel.parse_file_contexts(text) == [
        ("/srv/a(/.*)?", "a", SCRIPT, "system_u:object_r:httpd_sys_script_exec_t:s0"),
        ("/srv/sp\\x20ace(/.*)?", "d", CONTENT, "system_u:object_r:httpd_sys_content_t:s0"),
    ]


def test_parse_semanage_list_skips_headers_and_equivalences():
    assert sel.parse_semanage_list(SEMANAGE_LIST) == [
        ("/srv/a(/.*)?", "a", SCRIPT, "system_u:object_r:httpd_sys_script_exec_t:s0"),
        ("/srv/a(/.*)?/__pycache__(/.*)?", "a", RW, "system_u:object_r:httpd_sys_rw_content_t:s0"),
        ("/srv/logs", "d", "var_log_t", "system_u:object_r:var_log_t:s0"),
        ("/srv/skip(/.*)?", "a", "<<none>>", "<<none>>"),
    ]


def test_the_store_file_and_semanage_list_agree():
    rules = sel.parse_semanage_list(SEMANAGE_LIST)
    assert sel.parse_file_contexts(sel.render_file_contexts(rules)) == rules


def test_policy_facts():
    assert ("/usr/lib/cgi-bin(/.*)?", "a") in BASE_SPECS
    assert ("/usr/lib/cgi-bin/(nph-)?cgiwrap(d)?", "f") in BASE_SPECS
    assert ("/usr/lib/cgi-bin(/.*)?", "d") not in BASE_SPECS
    assert {SCRIPT, CONTENT, "var_t"} <= BASE_TYPES and "<<none>>" not in BASE_TYPES
    assert MLS == "s0"
    assert sel.policy_facts(sel.parse_file_contexts("/x(/.*)?  system_u:object_r:x_t\n"))[2] is None
    ranged = sel.parse_file_contexts("/x(/.*)?  system_u:object_r:x_t:s0-s15:c0.c1023\n")
    assert sel.policy_facts(ranged)[2] == "s0"


def test_effective_types_from_matchpathcon():
    dir_out = "/srv/a\tsystem_u:object_r:httpd_sys_script_exec_t:s0\n/srv/sp ace\tsystem_u:object_r:var_t:s0\n"
    file_out = "/srv/a/x.py\tsystem_u:object_r:httpd_sys_script_exec_t:s0\n/tmp/x\t<<none>>\n"
    assert sel.effective_types(dir_out, file_out) == {
        ("/srv/a", "dir"): SCRIPT, ("/srv/sp ace", "dir"): "var_t",
        ("/srv/a/x.py", "file"): SCRIPT, ("/tmp/x", "file"): "<<none>>",
    }


def test_parse_setfiles_keeps_odd_paths_whole():
    out = ("Relabeled /srv/a from (null) to system_u:object_r:httpd_sys_script_exec_t:s0\n"
           "Relabeled /srv/a/x from y to z.py from (null) to system_u:object_r:httpd_sys_script_exec_t:s0\n"
           "Would relabel /srv/a/__pycache__ from system_u:object_r:var_t:s0 to system_u:object_r:httpd_sys_rw_content_t:s0\n"
           "Warning no default label for /tmp/x\n")
    assert sel.parse_setfiles(out) == ["/srv/a", "/srv/a/x from y to z.py", "/srv/a/__pycache__"]


def test_host_facts():
    assert sel.selinux_status(None) == "disabled"
    assert sel.selinux_status("1") == "enforcing" and sel.selinux_status("0\n") == "permissive"
    assert sel.parse_key_values("# c\nSELINUX=permissive\nSELINUXTYPE= targeted \n")["SELINUXTYPE"] == "targeted"
    assert sel.os_family('ID="rocky"\nID_LIKE="rhel centos fedora"\n') == "RedHat"
    assert sel.os_family("ID=ubuntu\nID_LIKE=debian\n") == "Debian"
    assert sel.os_family("ID=arch\n") is None and sel.os_family(None) is None


def test_required_tools():
    assert sel.required_tools("present", True) == ["semanage", "matchpathcon", "setfiles"]
    assert sel.required_tools("absent", False) == ["semanage"]


def test_missing_tools_name_the_packages():
    rhel = sel.missing_message(["semanage", "matchpathcon"], "RedHat")
    assert "'semanage' is missing: install the package policycoreutils-python-utils (RedHat family" in rhel
    assert "'matchpathcon' is missing: install the package libselinux-utils (RedHat family; selinux-utils" in rhel
    unknown = sel.missing_message(["policy"], None)
    assert "selinux-policy-targeted (RedHat family) or selinux-policy-default (Debian family)" in unknown


# --- planning ------------------------------------------------------------------------------------

def test_a_new_root_gets_tree_then_cache_rule():
    result, after = converge(["/srv/app"], [])
    assert actions(result) == [("add", "/srv/app(/.*)?", SCRIPT), ("add", "/srv/app(/.*)?/__pycache__(/.*)?", RW)]
    assert result.removed == [] and [r.target for r in after] == ["/srv/app(/.*)?", "/srv/app(/.*)?/__pycache__(/.*)?"]


@pytest.mark.parametrize("root", ["/usr/lib/cgi-bin", "/var/www/cgi-bin"])
def test_stock_cgi_trees_need_only_the_cache_rule(root):
    result, _after = converge([root], [])
    assert actions(result) == [("add", root + "(/.*)?/__pycache__(/.*)?", RW)]


def test_stock_cgi_tree_with_script_exec_caches_needs_nothing():
    assert plan(["/usr/lib/cgi-bin"], [], cache_type=SCRIPT).operations == []


def test_a_base_policy_spec_is_modified_not_added():
    result, _after = converge(["/usr/lib/cgi-bin"], [], script_type=CONTENT, cache_type=CONTENT)
    assert actions(result) == [("modify", "/usr/lib/cgi-bin(/.*)?", CONTENT)]


def test_a_tree_rule_added_after_the_cache_rule_is_put_back_in_order():
    wrong_order = [rule("/srv/app(/.*)?/__pycache__(/.*)?", RW), rule("/srv/app(/.*)?", SCRIPT)]
    assert model_type("/srv/app/__pycache__/m.pyc", "file", wrong_order) == SCRIPT
    result, after = converge(["/srv/app"], wrong_order)
    assert actions(result) == [("delete", "/srv/app(/.*)?/__pycache__(/.*)?", RW),
                               ("add", "/srv/app(/.*)?/__pycache__(/.*)?", RW)]
    assert [r.target for r in after] == ["/srv/app(/.*)?", "/srv/app(/.*)?/__pycache__(/.*)?"]
    assert sel.import_script(result.operations) == (
        "fcontext -d -f a /srv/app(/.*)?/__pycache__(/.*)?\n"
        "fcontext -a -f a -t httpd_sys_rw_content_t /srv/app(/.*)?/__pycache__(/.*)?\n")


def test_rules_shadowed_by_a_later_broader_rule_are_re_added_after_it():
    local = [rule("/srv/app(/.*)?", SCRIPT), rule("/srv/app(/.*)?/__pycache__(/.*)?", RW), rule("/srv(/.*)?", CONTENT)]
    result, after = converge(["/srv/app"], local)
    assert [a for a, _t, _s in actions(result)] == ["delete", "add", "delete", "add"]
    assert after[0].target == "/srv(/.*)?" and len(after) == 3


def test_a_tree_rule_of_another_type_is_replaced():
    result, after = converge(["/srv/app"], [rule("/srv/app(/.*)?", CONTENT)])
    assert result.removed == [rule("/srv/app(/.*)?", CONTENT)]
    assert [(r.target, r.setype) for r in after] == [("/srv/app(/.*)?", SCRIPT), ("/srv/app(/.*)?/__pycache__(/.*)?", RW)]


def test_a_re_added_base_spec_deletes_its_local_modification_first():
    local = [rule("/usr/lib/cgi-bin(/.*)?", CONTENT), rule("/srv(/.*)?", "var_t")]
    result, _after = converge(["/usr/lib/cgi-bin"], local)
    assert actions(result)[:2] == [("delete", "/usr/lib/cgi-bin(/.*)?", CONTENT), ("modify", "/usr/lib/cgi-bin(/.*)?", SCRIPT)]


def test_roots_below_a_re_added_tree_rule_need_nothing_of_their_own():
    result, _after = converge(["/srv/app/inner", "/srv/app", "/srv/app/inner/deeper"], [])
    assert [t for _a, t, _s in actions(result)] == ["/srv/app(/.*)?", "/srv/app(/.*)?/__pycache__(/.*)?"]


def test_a_root_below_a_re_added_cache_rule_gets_only_what_it_lacks():
    # /usr/lib/cgi-bin/nagios has a base rule of its own; /usr/lib/cgi-bin/sub has not.
    result, _after = converge(["/usr/lib/cgi-bin", "/usr/lib/cgi-bin/nagios", "/usr/lib/cgi-bin/sub"], [])
    assert actions(result) == [
        ("add", "/usr/lib/cgi-bin(/.*)?/__pycache__(/.*)?", RW),
        ("modify", "/usr/lib/cgi-bin/nagios(/.*)?", SCRIPT), ("add", "/usr/lib/cgi-bin/nagios(/.*)?/__pycache__(/.*)?", RW),
    ]


def test_five_roots_make_one_import_of_ten_ordered_lines():
    roots = ["/srv/cgi/app%d" % i for i in range(5)]
    result, _after = converge(roots, [])
    lines = sel.import_script(result.operations).splitlines()
    assert len(lines) == 10
    for i, root in enumerate(roots):
        assert lines[2 * i] == "fcontext -a -f a -t %s %s(/.*)?" % (SCRIPT, root)
        assert lines[2 * i + 1] == "fcontext -a -f a -t %s %s(/.*)?/__pycache__(/.*)?" % (RW, root)


def test_equal_types_need_no_cache_rule():
    result, _after = converge(["/srv/app"], [], cache_type=SCRIPT)
    assert actions(result) == [("add", "/srv/app(/.*)?", SCRIPT)]


def test_absent_removes_exactly_this_modules_rules():
    others = [rule("/srv/app(/.*)?", CONTENT, "d"), rule("/srv/other(/.*)?", SCRIPT)]
    ours = [rule("/srv/app(/.*)?", SCRIPT), rule("/srv/app(/.*)?/__pycache__(/.*)?", RW)]
    local = others[:1] + ours + others[1:]
    result = sel.plan_absent(["/srv/app"], local, SCRIPT, RW)
    assert result.removed == ours and result.added == []
    assert sel.apply_operations(local, result.operations) == others
    assert sel.plan_absent(["/srv/app"], local, SCRIPT, CONTENT).removed == ours[:1]
    assert sel.plan_absent(["/srv/app"], others, SCRIPT, RW).operations == []


def test_apply_operations_models_libsemanage_order():
    a, b = rule("/a", SCRIPT), rule("/b", SCRIPT)
    assert sel.apply_operations([a, b], [sel.Operation("modify", rule("/a", CONTENT))])[0] == rule("/a", CONTENT)
    assert sel.apply_operations([a, b], [sel.Operation("delete", a), sel.Operation("add", a)]) == [b, a]


def test_import_script_lines():
    ops = [sel.Operation("delete", rule("/x(/.*)?", CONTENT)), sel.Operation("modify", rule("/y(/.*)?", RW)),
           sel.Operation("add", rule("/z", SCRIPT, "d"))]
    assert sel.import_script(ops) == ("fcontext -d -f a /x(/.*)?\n"
                                      "fcontext -m -f a -t httpd_sys_rw_content_t /y(/.*)?\n"
                                      "fcontext -a -f d -t httpd_sys_script_exec_t /z\n")


def test_the_type_check_import_can_never_commit():
    script = sel.type_check_script(["a_t", "b_t"])
    assert script.splitlines() == ["fcontext -a -f a -t a_t /pycgi-hosting-type-check-0",
                                   "fcontext -a -f a -t b_t /pycgi-hosting-type-check-1",
                                   "fcontext -a -f a -t"]
    err = "ValueError: Type httpd_t is invalid, must be a file or device type\n"
    assert sel.invalid_types(err, [("script_type", SCRIPT), ("cache_type", "httpd_t")]) == [("cache_type", "httpd_t")]
    assert sel.invalid_types(err, [("cache_type", "httpd")]) == []
    assert sel.invalid_types_message([("cache_type", "httpd_t")], "targeted") == (
        "cache_type: 'httpd_t' is not a file type of the targeted policy")
    assert sel.invalid_types_message([], "targeted") == ""


def test_mismatches_name_the_roots():
    effective = model_effective(["/srv/app"], [])
    wrong = sel.mismatches(["/srv/app"], effective, SCRIPT, RW)
    assert len(wrong) == 8 and wrong[0] == ("/srv/app", "/srv/app", SCRIPT, "var_t")
    assert "path: the rules for /srv/app would not take effect" in sel.ineffective_message(wrong)


def test_render_rules_for_the_diff():
    assert sel.render_rules([rule("/x(/.*)?", RW), rule("/y", SCRIPT, "d")]) == (
        "/x(/.*)?    all files    system_u:object_r:httpd_sys_rw_content_t:s0\n"
        "/y    directory    system_u:object_r:httpd_sys_script_exec_t:s0\n")


def test_outermost_roots():
    assert sel.outermost(["/srv/a", "/srv/a/b", "/srv/ab"]) == ["/srv/a", "/srv/ab"]


def test_the_module_needs_no_python_selinux_bindings():
    """The bindings exist only in the distribution's Python; the module must run under any interpreter."""
    module = importlib.import_module("ansible_collections.pycgi.hosting.plugins.modules.selinux_context")
    imported = set()
    for path in (module.__file__, sel.__file__):
        with open(path) as handle:
            for node in ast.walk(ast.parse(handle.read())):
                if isinstance(node, ast.Import):
                    imported.update(alias.name.split(".")[0] for alias in node.names)
                elif isinstance(node, ast.ImportFrom) and node.module:
                    imported.add(node.module.split(".")[0])
    assert "ansible" in imported
    assert not imported & {"selinux", "semanage", "seobject", "sepolicy", "setools"}
