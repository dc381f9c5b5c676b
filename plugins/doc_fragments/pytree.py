# Copyright (c) 2026 pycgi.hosting contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations


class ModuleDocFragment:
    # The options of the modules that walk a CGI tree for a set of interpreters
    # (pycgi.hosting.precompile, pycgi.hosting.pycache_info). Their types, choices and defaults
    # are one contract, kept here. Each module describes them itself: one writes caches and the
    # other only reads them, so the same option does different things (a module's keys win over
    # a fragment's when Ansible merges them).
    DOCUMENTATION = r"""
options:
  path:
    type: str
    required: true
  interpreters:
    type: list
    elements: str
  optimize:
    type: list
    elements: int
    choices: [0, 1, 2]
    default: [0]
  exclude:
    type: list
    elements: str
    default: []
  pycache_prefix:
    type: str
"""
