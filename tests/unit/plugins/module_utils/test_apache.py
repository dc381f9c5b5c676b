"""The Apache block: escaping, rendering, and editing config text (plain strings)."""
import re

import pytest

from ansible_collections.pycgi.hosting.plugins.module_utils._apache import (
    DEBIAN_CONFIG,
    RHEL_CONFIG,
    ApacheConfigError,
    check_drop_in_name,
    config_test_programs,
    current_block,
    default_config_path,
    drop_in_layout,
    drop_in_name,
    markers,
    normalize_root,
    pcre_escape,
    pycache_regex,
    render_block,
    set_block,
    split_dump_includes,
)

AWKWARD_ROOTS = [
    "/var/www/cgi-bin",
    "/srv/py cgi",
    "/srv/app.v1.2/cgi-bin",
    "/srv/c++/cgi",
    "/srv/app (old)/cgi",
    "/srv/$HOME/cgi",
    "/srv/a${X}b",
    "/srv/[x]{2}|y^z*q?",
    '/srv/back\\slash "quoted"',
]


def apache_unquote(word):
    """What Apache's quoted-argument parser (ap_getword_conf) makes of the inside of "...":
    a backslash before a backslash or the quote is dropped."""
    return re.sub(r'\\([\\"])', r"\1", word)


def regex_in(block):
    match = re.search(r'<DirectoryMatch "(.*)">', block)
    return apache_unquote(match.group(1))


@pytest.mark.parametrize("root", AWKWARD_ROOTS)
def test_regex_matches_the_caches_of_exactly_that_root(root):
    # Python's re agrees with PCRE on every construct the regex uses.
    regex = re.compile(regex_in(render_block(root)))
    for path in (root + "/__pycache__", root + "/__pycache__/", root + "/__pycache__/m.cpython-311.pyc",
                 root + "/pkg/__pycache__/m.pyc", root + "/a/b/c/__pycache__/m.pyc", root + "/__pycache__/sub/x"):
        assert regex.search(path), path
    for path in (root, root + "/", root + "/app.py", root + "/pkg/mod.py", root + "/x__pycache__/m.pyc",
                 root + "/__pycache__x/m.pyc", root + "2/__pycache__/m.pyc", "/elsewhere" + root + "/__pycache__/m.pyc"):
        assert not regex.search(path), path


def test_every_special_character_is_escaped():
    assert pcre_escape(".^$*+?()[]{}|") == r"\.\^\$\*\+\?\(\)\[\]\{\}\|"
    assert pcre_escape("a b/c-d_e") == "a b/c-d_e"
    # No backslash-backslash or backslash-quote pair that Apache's parser would rewrite.
    assert pcre_escape('\\"') == r"\x5c\x22"
    assert re.fullmatch(pcre_escape('/a\\b"c'), '/a\\b"c')


def test_the_regex_never_holds_an_apache_variable_reference():
    # ${NAME} in a directive is replaced by Apache at read time (comments are skipped first).
    block = render_block("/srv/a${X}b", [("PYTHONDONTWRITEBYTECODE", "1")])
    directives = [line for line in block.splitlines() if not line.startswith("#")]
    assert len(directives) == 8
    assert not any("${" in line for line in directives)


def test_block_shape_for_the_stock_root():
    block = render_block("/var/www/cgi-bin")
    lines = block.splitlines()
    assert lines[0] == "# BEGIN pycgi.hosting pycache /var/www/cgi-bin"
    assert lines[-1] == "# END pycgi.hosting pycache /var/www/cgi-bin"
    assert '<DirectoryMatch "^/var/www/cgi-bin/(?:.+/)?__pycache__(?:/|$)">' in lines
    assert ["    Require all denied", "    Options None", "    AllowOverride None", "</DirectoryMatch>"] == \
        lines[lines.index('<DirectoryMatch "^/var/www/cgi-bin/(?:.+/)?__pycache__(?:/|$)">') + 1:][:4]
    assert "SetEnv" not in block and "<Directory " not in block
    assert block.endswith("\n")
    assert pycache_regex("/var/www/cgi-bin") == "^/var/www/cgi-bin/(?:.+/)?__pycache__(?:/|$)"


def test_environment_goes_into_a_directory_section_for_the_root():
    block = render_block("/srv/py cgi", [("PYTHONDONTWRITEBYTECODE", "1"), ("PYTHONPYCACHEPREFIX", "/var/cache/py cgi")])
    assert '<Directory "/srv/py cgi">\n    SetEnv PYTHONDONTWRITEBYTECODE 1\n' \
           '    SetEnv PYTHONPYCACHEPREFIX "/var/cache/py cgi"\n</Directory>\n# END' in block


def test_environment_values_are_quoted_the_way_apache_reads_them():
    # Checked against Apache 2.4.68 in the test image: SetEnv V "a\\b \"q\" c" gives a CGI script a\b "q" c.
    block = render_block("/srv/cgi", [("V", 'a\\b "q" c'), ("W", "/plain/path-1.2")])
    assert '    SetEnv V "a\\\\b \\"q\\" c"\n' in block
    assert apache_unquote(re.search(r'SetEnv V "(.*)"', block).group(1)) == 'a\\b "q" c'
    assert "    SetEnv W /plain/path-1.2\n" in block


def test_a_root_that_directory_would_read_as_a_wildcard_gets_a_literal_regex_section():
    block = render_block("/srv/cgi[1]*", [("PYTHONDONTWRITEBYTECODE", "1")])
    assert "<Directory " not in block
    section = re.findall(r'<DirectoryMatch "(.*)">', block)[1]
    regex = re.compile(apache_unquote(section))
    assert regex.search("/srv/cgi[1]*/app.py") and regex.search("/srv/cgi[1]*")
    assert not regex.search("/srv/cgi1x/app.py") and not regex.search("/srv/cgi[1]*x/app.py")


@pytest.mark.parametrize("name, value", [("1BAD", "1"), ("A-B", "1"), ("", "1"), ("OK", "${HOME}"), ("OK", "a\nb")])
def test_environment_that_cannot_be_written_is_refused(name, value):
    with pytest.raises(ApacheConfigError):
        render_block("/srv/cgi", [(name, value)])


@pytest.mark.parametrize("path, root", [
    ("/var/www/cgi-bin/", "/var/www/cgi-bin"),
    ("/var/www//cgi-bin/./", "/var/www/cgi-bin"),
    ("//srv/x", "/srv/x"),
    ("/srv/py cgi", "/srv/py cgi"),
])
def test_roots_are_normalized(path, root):
    assert normalize_root(path) == root


@pytest.mark.parametrize("path", ["cgi-bin", "", "/srv/a\nb", "/srv/a\tb"])
def test_bad_roots_are_refused_with_the_reason(path):
    with pytest.raises(ApacheConfigError, match="absolute|control character"):
        normalize_root(path)


CONFIG = "ServerRoot /etc/apache2\n# a comment\nInclude ports.conf\n"


def test_insert_appends_and_remove_restores_the_text_exactly():
    block = render_block("/srv/a")
    inserted = set_block(CONFIG, "/srv/a", block)
    assert inserted == CONFIG + block
    assert set_block(inserted, "/srv/a", block) == inserted
    assert set_block(inserted, "/srv/a", None) == CONFIG


def test_text_without_final_newline_gets_one_before_the_block():
    inserted = set_block("Listen 80", "/srv/a", render_block("/srv/a"))
    assert inserted.startswith("Listen 80\n# BEGIN pycgi.hosting pycache /srv/a\n")


def test_replace_changes_only_the_block_in_place():
    old = render_block("/srv/a")
    text = "A\n" + old + "B\r\nC"
    new = render_block("/srv/a", [("PYTHONDONTWRITEBYTECODE", "1")])
    assert set_block(text, "/srv/a", new) == "A\n" + new + "B\r\nC"
    assert current_block(text, "/srv/a") == old


def test_several_roots_keep_independent_blocks():
    text = CONFIG
    for root in ("/srv/a", "/srv/a b", "/srv/a/b"):
        text = set_block(text, root, render_block(root))
    assert text == CONFIG + render_block("/srv/a") + render_block("/srv/a b") + render_block("/srv/a/b")
    removed = set_block(text, "/srv/a b", None)
    assert removed == CONFIG + render_block("/srv/a") + render_block("/srv/a/b")
    assert current_block(removed, "/srv/a b") is None
    assert current_block(removed, "/srv/a") == render_block("/srv/a")


def test_marker_with_trailing_carriage_return_is_recognized():
    crlf = render_block("/srv/a").replace("\n", "\r\n")
    assert set_block("X\r\n" + crlf, "/srv/a", None) == "X\r\n"


@pytest.mark.parametrize("text, message", [
    ("A\n# BEGIN pycgi.hosting pycache /srv/a\nB\n", r"line 2: .* has no .*END.* after it"),
    ("A\nB\n# END pycgi.hosting pycache /srv/a\n", r"line 3: .* has no .*BEGIN.* before it"),
    ("# BEGIN pycgi.hosting pycache /srv/a\n# BEGIN pycgi.hosting pycache /srv/a\n", r"line 2: .* opens a block again"),
    (render_block("/srv/a") + "X\n" + render_block("/srv/a"), r"lines 1-9, 11-19: more than one block for /srv/a"),
])
def test_damaged_markers_are_reported_with_line_numbers(text, message):
    with pytest.raises(ApacheConfigError, match=message):
        set_block(text, "/srv/a", render_block("/srv/a"))


def test_markers_of_another_root_are_not_ours():
    text = "# BEGIN pycgi.hosting pycache /srv/ab\n# END pycgi.hosting pycache /srv/ab\n"
    assert set_block(text, "/srv/a", None) == text
    assert markers("/srv/a") == ("# BEGIN pycgi.hosting pycache /srv/a", "# END pycgi.hosting pycache /srv/a")


def test_default_config_prefers_the_rhel_layout():
    assert default_config_path(lambda p: True) == RHEL_CONFIG
    assert default_config_path(lambda p: p == DEBIAN_CONFIG) == DEBIAN_CONFIG
    assert default_config_path(lambda p: False) is None


def test_config_test_program_follows_the_layout():
    assert config_test_programs(DEBIAN_CONFIG)[0] == "apache2ctl"
    assert config_test_programs(RHEL_CONFIG)[0] == "apachectl"


@pytest.mark.parametrize("root, name", [
    ("/usr/lib/cgi-bin", "pycgi-pycache-usr-lib-cgi-bin"),
    ("/var/www/cgi-bin", "pycgi-pycache-var-www-cgi-bin"),
    ("/srv/py cgi [v1.2]+(x)$", "pycgi-pycache-srv-py-cgi-v1.2-x"),
    ("/srv/目录", "pycgi-pycache-srv"),
    ("/", "pycgi-pycache-server"),
])
def test_drop_in_names_are_plain_file_names(root, name):
    assert drop_in_name(root) == name
    assert check_drop_in_name(name) == name


@pytest.mark.parametrize("name, expected", [("site.conf", "site"), ("a_b-1.2", "a_b-1.2")])
def test_drop_in_name_accepts_a_trailing_conf(name, expected):
    assert check_drop_in_name(name) == expected


@pytest.mark.parametrize("name", ["", ".conf", ".x", "a/b", "../a", "a b", "é"])
def test_drop_in_name_refuses_what_is_not_a_plain_name(name):
    with pytest.raises(ApacheConfigError, match="drop_in_name"):
        check_drop_in_name(name)


def test_drop_in_layout_of_each_family():
    debian = drop_in_layout(DEBIAN_CONFIG, "n", {"/etc/apache2/conf-available"}.__contains__)
    assert debian == ("debian", "/etc/apache2/conf-available/n.conf", "/etc/apache2/conf-enabled/n.conf",
                      "/etc/apache2", "/var/lib/apache2")
    assert debian.uses_a2enconf
    rhel = drop_in_layout(RHEL_CONFIG, "n", {"/etc/httpd/conf.d"}.__contains__)
    assert rhel == ("redhat", "/etc/httpd/conf.d/n.conf", "/etc/httpd/conf.d/n.conf", "/etc/httpd/conf", None)
    assert not rhel.uses_a2enconf
    suse = drop_in_layout("/etc/apache2/httpd.conf", "n", {"/etc/apache2/conf.d"}.__contains__)
    assert suse.file == "/etc/apache2/conf.d/n.conf"
    with pytest.raises(ApacheConfigError, match=r"none of /etc/httpd/conf/conf-available, /etc/httpd/conf.d, "
                                                r"/etc/httpd/conf/conf.d exists; use placement=block"):
        drop_in_layout(RHEL_CONFIG, "n", lambda path: False)


def test_dump_includes_output_is_split_into_files_and_messages():
    output = ("Included configuration files:\n  (*) /etc/apache2/apache2.conf\n"
              "    (146) /etc/apache2/mods-enabled/env.load\n    (222) /etc/apache2/conf-enabled/a b.conf\n"
              "AH00558: apache2: Could not reliably determine the server's fully qualified domain name\n")
    included, rest = split_dump_includes(output)
    assert included == ["/etc/apache2/apache2.conf", "/etc/apache2/mods-enabled/env.load", "/etc/apache2/conf-enabled/a b.conf"]
    assert rest == "AH00558: apache2: Could not reliably determine the server's fully qualified domain name"
