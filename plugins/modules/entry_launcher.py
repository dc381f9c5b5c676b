#!/usr/bin/python
# Copyright (c) 2026 pycgi.hosting contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: entry_launcher
short_description: Let Python cache the bytecode of a CGI entry script by moving its code into a module
version_added: 1.0.0
description:
  - Python caches the bytecode of the modules a script imports, never of the script it is asked to
    run, so an entry script that Apache runs directly is compiled whole on every request.
  - With O(state=present), moves the code of the script at O(path) into a module beside it
    (O(module_name)) and leaves at O(path) a launcher of a few lines that keeps the script's shebang
    line, owner, group, mode and URL. The launcher loads the module through Python's own source
    loader, which reads (and, where it may, writes) the module's C(__pycache__) entry, and executes it
    as C(__main__) in the launcher's namespace.
  - The script behaves as before. C(__name__) is C(__main__), so an C(if __name__ == "__main__":) block
    runs; C(__file__), C(sys.argv), C(sys.path[0]), standard input and the environment are unchanged;
    C(sys.modules["__main__"]) holds the script's names, so pickling and C(import __main__) work.
    Only code objects name the module's file (tracebacks, C(inspect)); their line numbers are the
    script's.
  - The module is the script byte for byte followed by one comment line naming the script. That line
    is how a later run tells its own module from someone else's file of the same name, and how
    O(state=absent) restores the script exactly.
  - A file at O(path) that is not a launcher is taken as code, so a new version of the script pushed over
    the launcher is moved into the module again on the next run (the module and its caches are replaced).
  - Refuses, changing nothing, a file whose first line is not a python shebang, a script with a
    syntax error (checked with the interpreter its shebang names, when that is on the host, and reported
    with its line), and a O(module_name) whose file exists and is not the moved code of this script.
  - Every file is written atomically (a temporary file in the same directory, renamed), in an order
    that keeps the URL working at every moment; a failure undoes the steps already taken.
author: pycgi.hosting contributors (@pycgi)
extends_documentation_fragment:
  - pycgi.hosting.attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details:
      - The diff shows the script before and after (the full script and the launcher) and the module
        written or removed.
  platform:
    platforms: posix
options:
  path:
    description:
      - The entry script, for example C(/usr/lib/cgi-bin/report.py) or an extensionless C(/var/www/cgi-bin/report).
      - It must be a regular file (not a symlink) whose first line is a python shebang.
      - An absolute path, taken literally (no C(~) or C($VAR) expansion), like every path of this collection.
    type: str
    required: true
  module_name:
    description:
      - The name of the module the code is moved into, in the script's directory; a module name, without C(.py).
      - Defaults to the module the launcher at O(path) already runs, else C(_<stem>_main), where the stem
        is the script's file name without its extension (C(report.py) and C(report) give C(_report_main)).
      - Changing it for a script that is already launched renames the module.
      - Names of standard library or installed modules, and of a directory beside the script, are refused,
        since the script's directory comes first on the C(sys.path) of every script in it.
    type: str
  state:
    description:
      - V(present) puts the launcher at O(path) and the code in the module.
      - V(absent) puts the script's code back at O(path) byte for byte and removes the module and its
        C(__pycache__) files. A module left over from before a new version was pushed over the launcher is
        removed too.
    type: str
    choices: [present, absent]
    default: present
  backup:
    description:
      - Keep a copy of the file at O(path) before it is replaced, named with a timestamp beside it.
      - The copy keeps the script's mode, so inside a CGI directory it is itself runnable at its own URL;
        move it out of the web tree.
    type: bool
    default: false
notes:
  - The cache only helps once it exists and the web server can read it. Run M(pycgi.hosting.precompile)
    (or let the web server write C(__pycache__), see M(pycgi.hosting.pycache_owner)) after this module; the
    module is given the script's owner and group and its mode without the execute bits, so whoever could
    read the script can read the module, and a request for the module's own URL is not run as a CGI script.
  - C(__file__) stays the script's path, so paths relative to it still work; the module lives in the same
    directory. C(sys.modules) gains C(importlib.machinery) (one more import at start-up, included in
    the request times of benchmarks/results/entry_launcher.md in the collection's repository), and a
    traceback shows one more frame, the launcher's.
  - A C(SyntaxWarning) is printed when the module is compiled, no longer on every request.
  - Caches kept under C(PYTHONPYCACHEPREFIX) are not removed by O(state=absent); they are only ever used
    for a source that matches them.
seealso:
  - module: pycgi.hosting.precompile
  - module: pycgi.hosting.pycache_owner
"""

EXAMPLES = r"""
- name: Let Python cache the code of the report script (the module is _report_main.py)
  pycgi.hosting.entry_launcher:
    path: /usr/lib/cgi-bin/report.py

- name: An extensionless script, its code in a module named by hand
  pycgi.hosting.entry_launcher:
    path: /var/www/cgi-bin/name1
    module_name: name1_code

- name: Compile the moved code so that the first request finds it cached
  pycgi.hosting.precompile:
    path: /usr/lib/cgi-bin

- name: Put the original script back
  pycgi.hosting.entry_launcher:
    path: /usr/lib/cgi-bin/report.py
    state: absent
"""

RETURN = r"""
launcher:
  description: The script's path, where the launcher is (or, with O(state=absent), the script is back).
  returned: always
  type: str
  sample: /usr/lib/cgi-bin/report.py
module:
  description: The module that holds (or held) the script's code.
  returned: always
  type: str
  sample: /usr/lib/cgi-bin/_report_main.py
removed:
  description: Files removed (in check mode, that would be), such as the module and its stale caches.
  returned: always
  type: list
  elements: str
  sample: [/usr/lib/cgi-bin/__pycache__/_report_main.cpython-311.pyc]
backup_file:
  description: The copy of the file at O(path) made before it was replaced.
  returned: when O(backup=true) and the file at O(path) was replaced
  type: str
  sample: /usr/lib/cgi-bin/report.py.2051.2026-01-20@10:22:33~
"""

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.pycgi.hosting.plugins.module_utils._launcher import (
    LauncherError,
    apply,
    check_syntax,
    plan,
)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="str", required=True),
            module_name=dict(type="str"),
            state=dict(type="str", choices=["present", "absent"], default="present"),
            backup=dict(type="bool", default=False),
        ),
        supports_check_mode=True,
    )
    params = module.params

    def syntax_check(*args):
        return check_syntax(module.run_command, *args)

    try:
        if not os.path.isabs(params["path"]):
            module.fail_json(msg="path %s is not an absolute path (paths are taken literally: no ~ or $VAR expansion)"
                                 % params["path"])
        todo = plan(params["path"], params["module_name"], params["state"], syntax_check)
    except LauncherError as error:
        module.fail_json(msg=str(error))
    for warning in todo.warnings:
        module.warn(warning)

    result = dict(changed=todo.changed, launcher=todo.launcher, module=todo.module, removed=todo.removed)
    if module._diff:
        result["diff"] = todo.diff
    if todo.changed and not module.check_mode:
        if params["backup"] and todo.rewrites_script:
            result["backup_file"] = module.backup_local(todo.launcher)
        try:
            apply(todo)
        except LauncherError as error:
            result.pop("diff", None)
            result["changed"] = False
            module.fail_json(msg=str(error), **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
