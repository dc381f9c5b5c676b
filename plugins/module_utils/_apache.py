# Copyright (c) 2026 pycgi.hosting contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The Apache side of the bytecode caches: the marker-delimited block that denies web access
to every ``__pycache__`` below a CGI root, where it is placed (a drop-in file of its own or a
block inside the main config), and the knowledge of the two Apache layouts.

Plain functions on plain strings; nothing here touches the host except
``default_config_path`` and ``drop_in_layout``, which only look at which files and
directories exist. Writing, the config test and rollback are in ``_apache_change``.
"""

from __future__ import annotations

import os
import re
import typing as t

RHEL_CONFIG = "/etc/httpd/conf/httpd.conf"
DEBIAN_CONFIG = "/etc/apache2/apache2.conf"

# Where the config test programs live when they are not on the module's PATH.
CONFIG_TEST_DIRS = ["/usr/sbin", "/sbin", "/usr/local/sbin", "/usr/bin", "/usr/local/apache2/bin"]

MARKER = "pycgi.hosting pycache"
# Where Debian's a2enconf records who enabled or disabled a conf (a2enmod(8), APACHE_STATE_DIRECTORY).
DEBIAN_STATE_DIR = "/var/lib/apache2"
# The default drop-in names: this prefix, then the root's path with "/" and anything outside
# _NAME_CHARS as "-"; the server-wide block's file is DROP_IN_PREFIX + "-server".
DROP_IN_PREFIX = "pycgi-pycache"
_NAME_CHARS = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-")
CACHE_DIR = "__pycache__"

# PCRE metacharacters, escaped with a backslash. The backslash and the double quote are written
# as hex escapes instead: Apache's quoted-argument parser would eat the backslash of "\\" and
# "\"", and hex escapes keep the regex readable by PCRE alone.
_PCRE_ESCAPES = dict((char, "\\" + char) for char in ".^$*+?()[]{}|")
_PCRE_ESCAPES.update({"\\": "\\x5c", '"': "\\x22"})

# Characters that <Directory> would read as a wildcard or that its quoting cannot carry as
# they are; a root with any of them gets the equivalent <DirectoryMatch> instead.
_NOT_LITERAL_IN_DIRECTORY = set('*?[]"\\')

_ENV_NAME_CHARS = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_")


class ApacheConfigError(ValueError):
    """Input or config content this module cannot handle; the message names what is wrong."""


def normalize_root(path: str) -> str:
    """The CGI root as it appears in the markers and the regex: absolute, no trailing slash,
    no ``.``/``..`` parts. Raises ApacheConfigError for a relative path or control characters."""
    if not path or not path.startswith("/"):
        raise ApacheConfigError("path must be an absolute directory, got %r" % (path,))
    if any(ord(char) < 32 or ord(char) == 127 for char in path):
        raise ApacheConfigError(
            "path %r contains a control character, which an Apache config line cannot hold" % (path,)
        )
    root = os.path.normpath(path)
    # normpath keeps a leading "//" (POSIX allows it a meaning); Apache does not.
    return "/" + root.lstrip("/")


def pcre_escape(text: str) -> str:
    """``text`` as a PCRE pattern that matches exactly it, safe inside a quoted Apache argument."""
    return "".join(_PCRE_ESCAPES.get(char, char) for char in text)


def pycache_regex(root: str) -> str:
    """The <DirectoryMatch> regex for every ``__pycache__`` at or below ``root``.

    Apache 2.4 applies a <DirectoryMatch> only where the regex matches, not to the
    subdirectories of a matching directory, and matches it against the path of the requested
    file itself. So the regex is anchored at the root, accepts any depth of packages before
    ``__pycache__`` and anything after it, and requires ``__pycache__`` to be a whole path
    component.
    """
    return "^%s/(?:.+/)?%s(?:/|$)" % (pcre_escape(root.rstrip("/")), CACHE_DIR)


def markers(root: str) -> tuple[str, str]:
    """The first and last line of the block for ``root`` (without newlines)."""
    return "# BEGIN %s %s" % (MARKER, root), "# END %s %s" % (MARKER, root)


def _directory_section(root: str) -> tuple[str, str]:
    """Opening and closing lines of a section for ``root`` and everything below it."""
    if any(char in _NOT_LITERAL_IN_DIRECTORY for char in root) or "${" in root:
        return '<DirectoryMatch "^%s(?:/|$)">' % pcre_escape(root.rstrip("/")), "</DirectoryMatch>"
    return '<Directory "%s">' % root, "</Directory>"


def _conf_word(value: str) -> str:
    """``value`` as one Apache config argument."""
    if value and all(char.isalnum() or char in "_./:@+-," for char in value):
        return value
    return '"%s"' % value.replace("\\", "\\\\").replace('"', '\\"')


def _check_environment(environment: t.Iterable[tuple[str, str]]) -> None:
    for name, value in environment:
        if not name or name[0].isdigit() or not set(name) <= _ENV_NAME_CHARS:
            raise ApacheConfigError("%r is not a valid environment variable name" % (name,))
        if "${" in value or any(ord(char) < 32 for char in value):
            raise ApacheConfigError("the value of %s cannot be written to an Apache config: %r" % (name, value))


def render_block(root: str, environment: t.Iterable[tuple[str, str]] = ()) -> str:
    """The whole block for ``root`` (normalized), ending with a newline.

    ``environment`` is a sequence of (name, value) pairs set with ``SetEnv`` for the CGI
    scripts of the root (mod_env); an empty sequence adds no section for them.
    """
    _check_environment(environment)
    begin, end = markers(root)
    if root == "/":
        what = [
            "# Managed by pycgi.hosting.httpd_pycache: no Python bytecode cache of this server,",
            "# wherever it is, is ever served or run over HTTP.",
        ]
    else:
        what = [
            "# Managed by pycgi.hosting.httpd_pycache: Python bytecode caches below this CGI root",
            "# are never served or run over HTTP.",
        ]
    lines = (
        [begin]
        + what
        + [
            '<DirectoryMatch "%s">' % pycache_regex(root),
            "    Require all denied",
            "    Options None",
            "    AllowOverride None",
            "</DirectoryMatch>",
        ]
    )
    if environment:
        opening, closing = _directory_section(root)
        lines.append(opening)
        lines.extend("    SetEnv %s %s" % (name, _conf_word(value)) for name, value in environment)
        lines.append(closing)
    lines.append(end)
    return "\n".join(lines) + "\n"


def _split_lines(text: str) -> list[str]:
    """Lines of ``text`` with their newlines; only "\\n" ends a line (joins back to ``text``)."""
    pieces = text.split("\n")
    tail = pieces.pop()
    lines = [piece + "\n" for piece in pieces]
    if tail:
        lines.append(tail)
    return lines


def find_block(lines: list[str], root: str) -> tuple[int, int] | None:
    """(first, last) indexes of the block for ``root`` in ``lines``, or None.

    Raises ApacheConfigError (naming 1-based line numbers) for a marker without its partner
    or for two blocks of the same root, which a person must sort out.
    """
    begin, end = markers(root)
    spans: list[tuple[int, int]] = []
    start: int | None = None
    for index, line in enumerate(lines):
        stripped = line.rstrip("\r\n")
        if stripped == begin:
            if start is not None:
                raise ApacheConfigError(
                    "line %d: %r opens a block again before line %d's block is closed" % (index + 1, begin, start + 1)
                )
            start = index
        elif stripped == end:
            if start is None:
                raise ApacheConfigError("line %d: %r has no %r before it" % (index + 1, end, begin))
            spans.append((start, index))
            start = None
    if start is not None:
        raise ApacheConfigError("line %d: %r has no %r after it" % (start + 1, begin, end))
    if len(spans) > 1:
        raise ApacheConfigError(
            "lines %s: more than one block for %s; remove all but one"
            % (", ".join("%d-%d" % (first + 1, last + 1) for first, last in spans), root)
        )
    return spans[0] if spans else None


def current_block(text: str, root: str) -> str | None:
    """The block for ``root`` as it is in ``text`` (with its newlines), or None."""
    lines = _split_lines(text)
    span = find_block(lines, root)
    if span is None:
        return None
    return "".join(lines[span[0] : span[1] + 1])


def set_block(text: str, root: str, block: str | None) -> str:
    """``text`` with the block for ``root`` replaced by ``block``, appended if missing, or
    removed when ``block`` is None. Everything outside the block is kept byte for byte."""
    lines = _split_lines(text)
    span = find_block(lines, root)
    if span is not None:
        lines[span[0] : span[1] + 1] = [block] if block is not None else []
    elif block is not None:
        if lines and not lines[-1].endswith("\n"):
            lines[-1] += "\n"
        lines.append(block)
    return "".join(lines)


def default_config_path(exists: t.Callable[[str], bool] = os.path.exists) -> str | None:
    """The main config of the host's layout (RHEL family first), or None if neither exists."""
    for path in (RHEL_CONFIG, DEBIAN_CONFIG):
        if exists(path):
            return path
    return None


def config_test_programs(dest: str) -> tuple[str, str]:
    """Names of the programs that run Apache's config test, the layout's own first.

    Debian's ``apache2ctl`` reads /etc/apache2/envvars before it runs the server binary (which
    fails on the config's ${APACHE_*} variables without them); the RHEL family has ``apachectl``.
    """
    if dest.startswith("/etc/apache2/"):
        return ("apache2ctl", "apachectl")
    return ("apachectl", "apache2ctl")


def drop_in_name(root: str) -> str:
    """The default name (without ``.conf``) of the drop-in file for ``root`` (normalized).

    Readable rather than injective: ``/srv/a-b`` and ``/srv/a/b`` share a name. The file holds
    the root's markers, so the module sees such a clash and refuses it (set another name)."""
    if root == "/":
        return DROP_IN_PREFIX + "-server"
    slug = "".join(char if char in _NAME_CHARS and char != "-" else "-" for char in root.strip("/"))
    return "%s-%s" % (DROP_IN_PREFIX, re.sub("-+", "-", slug).strip("-") or "root")


def check_drop_in_name(name: str) -> str:
    """``name`` without a trailing ``.conf``; raises ApacheConfigError unless it is a plain file
    name that a2enconf and an ``Include conf.d/*.conf`` both accept."""
    base = name[: -len(".conf")] if name.endswith(".conf") else name
    if not base or base.startswith(".") or not set(base) <= _NAME_CHARS:
        raise ApacheConfigError(
            "drop_in_name %r must be a file name of letters, digits, '.', '_' and '-' "
            "(not starting with '.'), without a directory" % (name,)
        )
    return base


class DropInLayout(t.NamedTuple):
    """Where a drop-in of the host's layout lives and how Apache is made to load it.

    ``enabled`` is the name Apache loads it by (Debian: the conf-enabled symlink that a2enconf
    makes; RedHat family: the file itself, included by ``IncludeOptional conf.d/*.conf``).
    ``state_dir`` is where a2enconf keeps its records (Debian only), which a rollback restores."""

    family: str
    file: str
    enabled: str
    confdir: str
    state_dir: str | None

    @property
    def uses_a2enconf(self) -> bool:
        return self.family == "debian"


def drop_in_layout(
    main_config: str, name: str, isdir: t.Callable[[str], bool] = os.path.isdir, state_dir: str = DEBIAN_STATE_DIR
) -> DropInLayout:
    """The drop-in layout beside ``main_config`` (the main config's real path).

    Debian: ``conf-available/`` beside it, enabled with a2enconf. RedHat family: ``conf.d/`` in
    the parent of its directory (``/etc/httpd/conf/httpd.conf`` -> ``/etc/httpd/conf.d``), or
    beside it (SUSE, Gentoo). Raises ApacheConfigError naming the places looked at."""
    confdir = os.path.dirname(main_config)
    available = os.path.join(confdir, "conf-available")
    if isdir(available):
        return DropInLayout(
            "debian",
            os.path.join(available, name + ".conf"),
            os.path.join(confdir, "conf-enabled", name + ".conf"),
            confdir,
            state_dir,
        )
    candidates = [os.path.join(os.path.dirname(confdir), "conf.d"), os.path.join(confdir, "conf.d")]
    for directory in candidates:
        if isdir(directory):
            path = os.path.join(directory, name + ".conf")
            return DropInLayout("redhat", path, path, confdir, None)
    raise ApacheConfigError(
        "placement=drop_in needs a drop-in directory beside %s, and none of %s exists; "
        "use placement=block to write into %s itself" % (main_config, ", ".join([available] + candidates), main_config)
    )


_INCLUDED_LINE = re.compile(r"^\s+\((?:\*|\d+)\)\s+(/.*?)\s*$")


def split_dump_includes(output: str) -> tuple[list[str], str]:
    """(included files, the rest) of the output of ``apachectl -t -D DUMP_INCLUDES``.

    Apache lists each file it read as ``  (LINE) /path`` below ``Included configuration files:``;
    the rest (warnings, the syntax error) is what a person needs to read."""
    included, rest = [], []
    for line in output.splitlines():
        match = _INCLUDED_LINE.match(line)
        if match:
            included.append(match.group(1))
        elif line.strip() != "Included configuration files:":
            rest.append(line)
    return included, "\n".join(rest).strip()
