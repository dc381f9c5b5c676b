# Copyright (c) 2026 pycgi.hosting contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations


class ModuleDocFragment:
    # How every module of the collection reads the paths it is given and writes the paths it
    # returns (plugins/module_utils/_paths.py), and the option that lets a root be a system
    # directory.
    DOCUMENTATION = r"""
options:
  allow_system_path:
    description:
      - Accept a root that is a system directory. Without it, these are refused (compared after
        resolving symbolic links and C(..)); C(/), C(/bin), C(/boot), C(/dev), C(/etc), C(/home),
        C(/lib), C(/lib32), C(/lib64), C(/libx32), C(/media), C(/mnt), C(/opt), C(/proc),
        C(/root), C(/run), C(/sbin), C(/srv), C(/sys), C(/tmp), C(/usr), C(/usr/bin),
        C(/usr/include), C(/usr/lib), C(/usr/lib32), C(/usr/lib64), C(/usr/libexec),
        C(/usr/local), C(/usr/local/bin), C(/usr/local/lib), C(/usr/local/sbin),
        C(/usr/local/share), C(/usr/sbin), C(/usr/share), C(/usr/src), C(/var), C(/var/cache),
        C(/var/lib), C(/var/local), C(/var/log), C(/var/mail), C(/var/opt), C(/var/run),
        C(/var/spool), C(/var/tmp), C(/var/www).
      - Only these directories themselves are refused, not the directories below them
        (C(/usr/lib/cgi-bin) and C(/var/www/cgi-bin) are fine).
      - C(/) is refused whatever this says.
    type: bool
    default: false
notes:
  - Paths are taken literally. C($VAR) and C(~) are not expanded (the options are strings, not
    Ansible's C(path) type), so C(/srv/a$HOME/cgi) names a directory called C(a$HOME); a root must
    be an absolute path, and C(~/cgi-bin) is refused naming the option. Use Jinja
    (C({{ ansible_env.HOME }})) to build a path from a variable.
  - Returned paths and messages are JSON-safe. A file name that is not valid UTF-8 (Linux allows
    any bytes) is returned with each byte that is not part of valid UTF-8 written as C(\xNN),
    for example C(/var/www/cgi-bin/\xff\xfe_bad.py); such files are handled like any other.
"""
