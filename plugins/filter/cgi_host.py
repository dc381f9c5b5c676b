# Copyright (c) 2026 pycgi.hosting contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The checks the cgi_host role makes on its settings before it changes anything on a host.

Everything here is decided from the settings alone, on the controller: a bad or contradictory
setting fails the play before the first change (changed=0), naming the setting. What can only
be known on the host (does an interpreter exist, is a root a symbolic link) the modules check
themselves, also before they change anything.
"""

from __future__ import annotations

import posixpath

from ansible_collections.pycgi.hosting.plugins.module_utils._paths import SYSTEM_PATHS

DOCUMENTATION = r"""
name: cgi_host_problems
short_description: The problems of the cgi_host role's settings, before anything changes
version_added: 1.1.0
description:
  - Returns a list of messages, one per bad or contradictory setting, each naming the setting; an empty
    list when the settings are fine. Used by the role C(pycgi.hosting.cgi_host) as its first check.
author: pycgi.hosting contributors (@pycgi)
options:
  _input:
    description: The CGI roots, as the role resolved them (a list of dicts with C(path)).
    type: list
    elements: dict
    required: true
  cache_mode:
    description: C(pycgi_cache_mode).
    type: str
    required: true
  pycache_prefix:
    description: C(pycgi_pycache_prefix).
    type: str
  source:
    description: C(pycgi_source).
    type: str
  explicit_roots:
    description: Whether C(pycgi_roots) was set (rather than the stock root).
    type: bool
  interpreters:
    description: C(pycgi_interpreters).
    type: list
    elements: str
  keep_releases:
    description: C(pycgi_keep_releases).
    type: int
  shared_paths:
    description: C(pycgi_shared_paths).
    type: list
    elements: str
"""

EXAMPLES = r"""
- name: Check the settings before anything changes
  ansible.builtin.assert:
    that: problems | length == 0
    fail_msg: "{{ problems | join('; ') }}"
  vars:
    problems: "{{ roots | pycgi.hosting.cgi_host_problems(cache_mode='writable') }}"
"""

RETURN = r"""
_value:
  description: One message per problem, naming the setting; empty when there is none.
  type: list
  elements: str
"""


def path_problem(value, setting):
    """Why ``value`` cannot be a root or cache directory of the role (named ``setting``), or None."""
    if not isinstance(value, str) or not value.strip():
        return "%s is empty: it must name an absolute directory" % setting
    if not value.startswith("/"):
        return "%s %r is not an absolute path (paths are taken literally: no ~ or $VAR expansion)" % (setting, value)
    path = "/" + posixpath.normpath(value).lstrip("/")
    if path == "/":
        return "%s %r is the whole file system" % (setting, value)
    if path in SYSTEM_PATHS:
        return "%s %r is a system directory, which the role never takes as a root (refused: %s)" % (
            setting, value, ", ".join(SYSTEM_PATHS))
    return None


def _within(inner, outer):
    return (inner.rstrip("/") + "/").startswith(outer.rstrip("/") + "/")


def release_problems(keep_releases, shared_paths):
    """The messages for bad release settings (pycgi_keep_releases, pycgi_shared_paths)."""
    problems = []
    if keep_releases is not None and keep_releases < 2:
        problems.append("pycgi_keep_releases is %d: at least 2 releases are kept (the live one and the one before "
                        "it, for a rollback)" % keep_releases)
    for index, shared in enumerate(shared_paths or ()):
        setting = "pycgi_shared_paths[%d]" % index
        if not isinstance(shared, str) or not shared.strip("/ "):
            problems.append("%s is empty: it must be a path relative to the root" % setting)
        elif shared.startswith("/"):
            problems.append("%s %r is absolute: shared paths are relative to the root" % (setting, shared))
        elif ".." in shared.split("/") or posixpath.normpath(shared).startswith(".."):
            problems.append("%s %r leaves the root (..)" % (setting, shared))
    return problems


def cgi_host_problems(roots, cache_mode, pycache_prefix=None, source="", explicit_roots=False, interpreters=(),
                      keep_releases=None, shared_paths=()):
    """The messages for every bad or contradictory setting of the role; [] when there is none."""
    problems = []
    if not isinstance(roots, list) or not roots:
        return ["pycgi_roots must list at least one root ({path: ...})"]
    paths = []
    for index, root in enumerate(roots):
        setting = "pycgi_roots[%d].path" % index
        if not isinstance(root, dict) or "path" not in root:
            problems.append("pycgi_roots[%d] has no path: each root is {path: /absolute/dir, source: ...}" % index)
            continue
        problem = path_problem(root["path"], setting)
        if problem:
            problems.append(problem)
            continue
        path = "/" + posixpath.normpath(root["path"]).lstrip("/")
        for other_index, other in paths:
            if other == path:
                problems.append("%s and pycgi_roots[%d].path name the same directory %s" % (setting, other_index, path))
        paths.append((index, path))
    if cache_mode == "prefix":
        problem = path_problem(pycache_prefix, "pycgi_pycache_prefix")
        if problem:
            problems.append(problem + " (pycgi_cache_mode is prefix)")
        else:
            prefix = "/" + posixpath.normpath(pycache_prefix).lstrip("/")
            for index, path in paths:
                if _within(prefix, path):
                    problems.append("pycgi_pycache_prefix %s is inside pycgi_roots[%d].path %s: the caches must live "
                                    "outside the CGI roots, where the web server cannot serve them" % (prefix, index, path))
                elif _within(path, prefix):
                    problems.append("pycgi_roots[%d].path %s is inside pycgi_pycache_prefix %s: the cache directory "
                                    "would be given to the web server user with the code in it" % (index, path, prefix))
    if explicit_roots and source:
        problems.append("pycgi_source is only the source of the stock root; with pycgi_roots set it would be ignored: "
                        "give the root its source (pycgi_roots[].source) instead")
    for index, interpreter in enumerate(interpreters or ()):
        if not isinstance(interpreter, str) or not interpreter.startswith("/"):
            problems.append("pycgi_interpreters[%d] %r is not an absolute path" % (index, interpreter))
    return problems + release_problems(keep_releases, shared_paths)


class FilterModule:
    def filters(self):
        return {"cgi_host_problems": cgi_host_problems}
