# Copyright (c) 2026 pycgi.hosting contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""How every module of the collection takes a path from its arguments and gives one back.

Plain functions, no Ansible objects.

* Paths are literal. The options are declared ``type: str``, not ``type: path``: Ansible's
  ``path`` type expands ``$VAR`` and ``~``, so ``/srv/a$HOME/cgi`` would name
  ``/srv/a/root/cgi``. Here ``$`` and ``~`` are characters of the name like any other, and a
  root must be absolute (``~/cgi-bin`` is refused, naming the option).
* A root that is a system directory (:data:`SYSTEM_PATHS`, compared after resolving symbolic
  links and ``..``) is refused unless the caller allows it explicitly: ``scope=tree`` on
  ``/etc`` would give every file of it to the web server user.
* Results are JSON-safe: a file name that is not valid UTF-8 (a Linux name is any bytes) is
  returned with each byte that is not part of valid UTF-8 written as ``\\xNN``, for example
  ``/srv/cgi/\\xff\\xfe_bad.py``; Ansible refuses a result holding the raw bytes.
"""

from __future__ import annotations

import os
from typing import Any

# Directories whose whole content belongs to the system. Only these exact directories are
# refused, not what lies below them (Debian's CGI root is /usr/lib/cgi-bin).
SYSTEM_PATHS = (
    "/",
    "/bin",
    "/boot",
    "/dev",
    "/etc",
    "/home",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/media",
    "/mnt",
    "/opt",
    "/proc",
    "/root",
    "/run",
    "/sbin",
    "/srv",
    "/sys",
    "/tmp",
    "/usr",
    "/usr/bin",
    "/usr/include",
    "/usr/lib",
    "/usr/lib32",
    "/usr/lib64",
    "/usr/libexec",
    "/usr/local",
    "/usr/local/bin",
    "/usr/local/lib",
    "/usr/local/sbin",
    "/usr/local/share",
    "/usr/sbin",
    "/usr/share",
    "/usr/src",
    "/var",
    "/var/cache",
    "/var/lib",
    "/var/local",
    "/var/log",
    "/var/mail",
    "/var/opt",
    "/var/run",
    "/var/spool",
    "/var/tmp",
    "/var/www",
)


class PathError(ValueError):
    """A path argument that is refused; the message names the option."""


def literal_root(value: str | None, option: str = "path", allow_system_path: bool = False) -> str:
    """``value`` (a module argument, taken literally) as a normalized absolute path.

    Raises PathError naming ``option`` when it is empty, relative (``~`` included), the whole
    file system, or, unless ``allow_system_path``, one of :data:`SYSTEM_PATHS` (after resolving
    symbolic links).
    """
    if value is None or not str(value).strip():
        raise PathError("%s is empty; name an absolute directory" % option)
    if not os.path.isabs(value):
        raise PathError(
            "%s %s is not an absolute path (paths are taken literally: no ~ or $VAR expansion)"
            % (option, display(value))
        )
    path = os.path.normpath(value)
    if path.startswith("//"):
        path = "/" + path.lstrip("/")
    if os.path.realpath(path) == os.sep:
        raise PathError("%s %s is the whole file system; name the CGI root" % (option, display(path)))
    if not allow_system_path:
        system = system_path(path)
        if system is not None:
            shown = path if system == path else "%s (%s)" % (path, system)
            raise PathError(
                "%s %s is a system directory; name the CGI root itself, or set allow_system_path=true"
                " if this is really meant (refused: %s)" % (option, display(shown), ", ".join(SYSTEM_PATHS))
            )
    return path


def system_path(path: str) -> str | None:
    """The system directory that ``path`` is (itself or through symbolic links), or None."""
    for candidate in (os.path.normpath(path), os.path.realpath(path)):
        if candidate.startswith("//"):
            candidate = "/" + candidate.lstrip("/")
        if candidate in SYSTEM_PATHS:
            return candidate
    return None


def display(text: str | bytes) -> str:
    """``text`` with what is not valid UTF-8 written as ``\\xNN`` (JSON- and Ansible-safe)."""
    if isinstance(text, bytes):
        return text.decode("utf-8", "backslashreplace")
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        pass
    try:
        # The undecodable bytes of a file name come back from os functions as lone surrogates.
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


def json_safe(value: Any) -> Any:
    """``value`` (dicts, lists, tuples, strings...) with every string passed through :func:`display`."""
    if isinstance(value, (str, bytes)):
        return display(value)
    if isinstance(value, dict):
        return dict((json_safe(key), json_safe(item)) for key, item in value.items())
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
    return value


def keep_paths_literal(module: Any) -> None:
    """Stops ``module`` (an AnsibleModule) from reading a returned ``path``/``dest`` with
    ``$VAR`` and ``~`` expanded.

    AnsibleModule adds the owner and mode of a returned ``path`` (or ``dest``) to the result,
    looking it up with ``$VAR`` and ``~`` expanded: for a literal ``/srv/a$HOME`` it would stat
    ``/srv/a/root`` and crash when that does not exist. Such a path gets no added file facts.
    """
    add_path_info = module.add_path_info

    def literal_add_path_info(kwargs: dict[str, Any]) -> dict[str, Any]:
        path = kwargs.get("path", kwargs.get("dest"))
        if isinstance(path, str) and ("$" in path or "~" in path):
            return kwargs
        return add_path_info(kwargs)

    module.add_path_info = literal_add_path_info
