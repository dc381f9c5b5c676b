# Copyright (c) 2026 pycgi.hosting contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""One line per CGI root telling what the cgi_host role's run did to it: the live release and
the one before it, the files sent, the sources compiled, the entry scripts turned into
launchers, and how long each step of the run took. Built on the controller from the results
the role registered, so it costs no round trip to the host."""

from __future__ import annotations

DOCUMENTATION = r"""
name: release_report
short_description: The cgi_host role's report line of each CGI root
version_added: 1.1.0
description:
  - Returns one line per root from the results the role C(pycgi.hosting.cgi_host) registered. For a root pushed as
    releases, the live release, the one live before it, the files and bytes transferred, and the entry scripts
    turned into launchers; for every root, the sources compiled out of those found; then the time of each step of
    the run, measured on the controller for all the roots of the host together.
author: pycgi.hosting contributors (@pycgi)
options:
  _input:
    description: The CGI roots, as the role resolved them (a list of dicts with C(path)).
    type: list
    elements: dict
    required: true
  releases:
    description: The C(results) of the role's task that builds (or rolls back) the releases.
    type: list
    elements: dict
  switches:
    description: The C(results) of the role's task that makes the releases live.
    type: list
    elements: dict
  precompile:
    description: The C(results) of the role's precompile task.
    type: list
    elements: dict
  clock:
    description:
      - The steps' end times, in order, as C([name, seconds since the epoch]) pairs; the first pair is the start.
      - Each step's time is its end minus the end of the step before.
    type: list
    elements: list
"""

EXAMPLES = r"""
- name: Report each root in one line
  ansible.builtin.debug:
    msg: "{{ item }}"
  loop: >-
    {{ roots | pycgi.hosting.release_report(releases=built.results, switches=live.results,
                                             precompile=compiled.results, clock=marks) }}
"""

RETURN = r"""
_value:
  description: One line per root, in the order of the roots.
  type: list
  elements: str
  sample:
    - >-
      /usr/lib/cgi-bin: live 20261204T153000Z-1a2b3c4d (previous 20261204T120000Z-9f8e7d6c), 1 file transferred
      (2.0 KiB), 1 of 310 sources compiled, entry launchers: report.py; steps: release 1.20 s, precompile 0.41 s,
      owner 0.10 s, selinux 0.33 s, switch 0.22 s
"""


def _by_path(results):
    """The results of a loop over roots, keyed by the root's path (skipped items left out)."""
    found = {}
    for result in results or ():
        if not isinstance(result, dict) or result.get("skipped"):
            continue
        item = result.get("item")
        path = item.get("item", {}).get("path") if isinstance(item, dict) and "item" in item else None
        path = path or (item.get("path") if isinstance(item, dict) else None)
        if path:
            found[path] = result
    return found


def human_bytes(size):
    for unit in ("B", "KiB", "MiB"):
        if size < 1024 or unit == "MiB":
            return ("%d %s" % (size, unit)) if unit == "B" else ("%.1f %s" % (size, unit))
        size /= 1024.0
    return "%.1f GiB" % size


def _plural(count, word):
    return "%d %s%s" % (count, word, "" if count == 1 else "s")


def step_times(clock):
    """``[(step, seconds)]`` from ``[[name, end time], ...]`` (the first pair is the start)."""
    marks = [(str(name), float(when)) for name, when in clock or ()]
    return [(name, max(end - marks[i][1], 0.0)) for i, (name, end) in enumerate(marks[1:])]


def _release_part(release, switch):
    if release is None:
        return "in place (no source)"
    if release.get("failed"):
        return "release failed"
    if release.get("release") is None:
        return "no release (check mode: the source would be sent)"
    outcome = switch if switch is not None and "live" in switch else release
    live, previous = outcome.get("live"), outcome.get("previous")
    if live != release.get("release"):
        # Check mode: the release would be built and made live.
        return "release %s would replace %s" % (release["release"], live or "(none)")
    words = "live %s (previous %s)" % (live, previous or "none")
    if release.get("reused") and not release.get("changed"):
        words += ", unchanged"
    transferred = release.get("transferred")
    if transferred is not None:
        words += ", %s transferred (%s)" % (_plural(int(transferred.get("files", 0)), "file"),
                                            human_bytes(int(transferred.get("bytes", 0))))
    return words


def release_report(roots, releases=None, switches=None, precompile=None, clock=None):
    releases, switches, compiled = _by_path(releases), _by_path(switches), _by_path(precompile)
    steps = ", ".join("%s %.2f s" % step for step in step_times(clock))
    lines = []
    for root in roots or ():
        path = root["path"]
        release = releases.get(path)
        parts = [_release_part(release, switches.get(path))]
        stats = (compiled.get(path) or {}).get("stats")
        if stats:
            sources = _plural(int(stats.get("sources", 0)), "source")
            parts.append("%d of %s compiled" % (int(stats.get("compiled", 0)), sources))
        launchers = (release or {}).get("launchers")
        if launchers:
            parts.append("entry launchers: %s" % ", ".join(launchers))
        line = "%s: %s" % (path, ", ".join(parts))
        if steps:
            line += "; steps: " + steps
        lines.append(line)
    return lines


class FilterModule:
    def filters(self):
        return {"release_report": release_report}
