#!/usr/bin/python
# Copyright (c) 2026 pycgi.hosting contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: precompile
short_description: Compile the Python bytecode caches of a CGI tree with the interpreters that run it
version_added: 1.0.0
description:
  - Writes the C(__pycache__/*.pyc) files of every Python source below O(path), compiled by each
    target interpreter itself (a C(.pyc) is only valid for the interpreter that wrote it), so that
    Apache's CGI requests import warm caches instead of recompiling, and never need to write them.
  - The target interpreters may differ from the Python that runs Ansible's modules, and may be as
    old as Python 3.6. Each one runs a small compile program once for the whole tree.
  - A C(.pyc) is current when its header has the interpreter's magic number, the flags of
    O(invalidation_mode), and the source's modification time and size (or its hash). A current file
    is left untouched, so a second run reports no change and a code push recompiles exactly the
    changed sources. New files are written to a temporary file in the same directory and renamed,
    so a request running during a deployment reads the old file or the new one, never a torn one.
  - Nothing is written outside the C(__pycache__) directories of the tree (or the O(pycache_prefix) tree), no source is ever
    modified, symbolic links to directories are not followed, and a C(__pycache__) that is a
    symbolic link is reported as an error and never written through. A source that is a dangling
    symbolic link or a loop of them is reported as an error (Python could not import it).
  - A source that is a symbolic link to a file outside O(path) is neither read nor compiled (a
    warning names it, and RV(outside_links) lists it), unless O(follow_outside_links=true). The task
    runs as root, and the cache it would write holds the linked file's code where the web server user
    can read it. Its old caches are pruned. The check is made on the file actually opened, so a link
    swapped in during the run is not read either.
  - A new C(.pyc) never has a read permission that its source lacks (Python's own import system
    copies the source's mode the same way); a C(.pyc) that has one is written again.
  - Reports the entry scripts that Apache runs directly. Python never caches the bytecode of the
    script it runs, only of what it imports, so a large script is recompiled on every request;
    moving its code into an imported module fixes that.
author: pycgi.hosting contributors (@pycgi)
extends_documentation_fragment:
  - pycgi.hosting.attributes
  - pycgi.hosting.pytree
  - pycgi.hosting.paths
attributes:
  check_mode:
    support: full
    details:
      - Returns the changes it would make without writing anything.
  diff_mode:
    support: full
    details:
      - Returns the state of each cache file that changes, before and after.
  platform:
    platforms: posix
options:
  path:
    description:
      - The CGI tree, for example C(/var/www/cgi-bin). C(/) and system directories are refused
        (see O(allow_system_path)).
  interpreters:
    description:
      - Paths of the Python interpreters to compile for.
      - When not set, the interpreters named by the C(#!) lines of the tree's entry scripts, with
        C(#!/usr/bin/env python3) looked up in the PATH of the managed host; C(/usr/bin/python3)
        when no entry script names one.
      - An entry script is a file, with or without C(.py), that has an execute bit and whose first
        line runs Python, that is, a script Apache can run.
      - An interpreter that does not exist or is not a working Python 3.6 or later is an error
        that names it, raised before anything is written.
  invalidation_mode:
    description:
      - How the interpreters decide that a C(.pyc) is current (PEP 552).
      - V(timestamp) compares the source's modification time and size.
      - V(checked_hash) compares a hash of the source on every import.
      - V(unchecked_hash) trusts the C(.pyc) until it is compiled again, which this module does
        whenever the source changes.
      - The hash-based modes need Python 3.7 or later; with an older interpreter the task fails
        before anything is written. Switching modes recompiles every file.
    type: str
    choices: [timestamp, checked_hash, unchecked_hash]
    default: timestamp
  optimize:
    description:
      - Optimization levels to write caches for. V(0) is what C(python) reads, V(1) what
        C(python -O) reads (C(.opt-1.pyc)), V(2) what C(python -OO) reads (C(.opt-2.pyc)).
  workers:
    description:
      - Processes that compile in parallel for each interpreter. V(0) means one per CPU.
      - A few files are compiled in one process whatever this says, since starting more would
        cost more than it saves.
    type: int
    default: 0
  exclude:
    description:
      - Shell globs matched against paths relative to O(path); a matching directory is skipped
        with everything below it, for example V(tests), V(vendor/*), V(*/migrations/*.py).
      - Caches of excluded sources are neither compiled nor pruned.
  prune:
    description:
      - Remove, inside the tree's C(__pycache__) directories only (with O(pycache_prefix), inside
        the prefix's copy of the tree only), the C(.pyc) files whose source
        is gone, those of cache tags that no listed interpreter uses (the leftovers of a Python
        upgrade, for example C(cpython-36) after moving to 3.12), and temporary files of
        interrupted writes.
    type: bool
    default: true
  pycache_prefix:
    description:
      - Write the caches below this directory instead of into C(__pycache__) directories of the
        tree, where Python 3.8 and later look for them when C(PYTHONPYCACHEPREFIX) (or
        C(-X pycache_prefix)) names it, as the prefix, then the source's absolute directory, then
        C(name.CACHE_TAG.pyc), for example C(/var/cache/pycgi/var/www/cgi-bin/app/views.cpython-312.pyc).
      - The CGI tree then holds no C(__pycache__) at all. The scripts must run with
        C(PYTHONPYCACHEPREFIX) set to the same directory; M(pycgi.hosting.httpd_pycache) sets it
        for Apache with its O(pycgi.hosting.httpd_pycache#module:pycache_prefix) option.
      - Freshness is judged and O(prune) works in that tree, and only below the prefix plus
        O(path), so one prefix can serve several CGI trees.
      - Must be an absolute path outside O(path); missing directories are created (mode 0755).
        An interpreter older than Python 3.8 is an error that names it, raised before anything
        is written.
  interpreter_modules:
    description:
      - With O(pycache_prefix), also write into the prefix the caches of each interpreter's own
        modules, its standard library and site-packages directories (as C(sysconfig) and
        C(site.getsitepackages()) name them). Once C(PYTHONPYCACHEPREFIX) is set, Python looks
        for those caches in the prefix as well, so without them the first requests compile the
        standard library modules they import and the web server user writes their caches.
      - The first run compiles a few thousand files once; a re-run only compares their headers.
        A module of the interpreter that does not compile is counted in
        RV(interpreter_modules[].errors), never an error of the task, and its source is never
        touched. Nothing is pruned there.
      - Directories inside O(path) or the prefix are left out. Without O(pycache_prefix) this is
        an error.
    type: bool
    default: false
  follow_outside_links:
    description:
      - Compile sources that are symbolic links to files outside O(path), for trees that link
        shared code in on purpose. Only for trees whose every writer is trusted, since whoever can
        write in the tree can then make root read any file into a cache.
    type: bool
    default: false
  on_error:
    description:
      - What a source that cannot be compiled (a syntax error, an undecodable or unreadable file)
        or a cache that cannot be written does to the task. Every other file is compiled either way.
      - V(fail) fails the task listing them; V(warn) returns them as warnings.
    type: str
    choices: [fail, warn]
    default: fail
notes:
  - The compile program runs as C(INTERPRETER -I -S -B), so the C(PYTHON*) environment variables
    of the host, such as C(PYTHONDONTWRITEBYTECODE), and its C(.pth) files play no part.
  - New C(.pyc) files get mode 0644 (without the read bits their source lacks) and belong to the user the task runs as; the
    M(pycgi.hosting.pycache_owner) module gives them to the web server user.
seealso:
  - module: pycgi.hosting.pycache_owner
  - module: pycgi.hosting.httpd_pycache
  - name: PEP 3147 (PYC repository directories)
    description: Where the caches live and how they are named.
    link: https://peps.python.org/pep-3147/
  - name: PEP 552 (deterministic pycs)
    description: The timestamp and hash-based invalidation modes.
    link: https://peps.python.org/pep-0552/
"""

EXAMPLES = r"""
- name: Compile with the interpreters named by the scripts' shebang lines
  pycgi.hosting.precompile:
    path: /var/www/cgi-bin

- name: Compile for two interpreters, hash-based, skipping the tests
  pycgi.hosting.precompile:
    path: /srv/app/cgi-bin
    interpreters:
      - /usr/bin/python3.9
      - /usr/bin/python3.12
    invalidation_mode: checked_hash
    exclude:
      - tests
      - "*/fixtures/*"

- name: Keep the caches out of the CGI tree, below a prefix (Python 3.8+)
  pycgi.hosting.precompile:
    path: /var/www/cgi-bin
    pycache_prefix: /var/cache/pycgi

- name: The same, with the standard library's caches in the prefix too
  pycgi.hosting.precompile:
    path: /var/www/cgi-bin
    pycache_prefix: /var/cache/pycgi
    interpreter_modules: true

- name: Report what would change, with the state of each cache
  pycgi.hosting.precompile:
    path: /var/www/cgi-bin
  check_mode: true
  diff: true
  register: caches

- name: Keep going when a source has a syntax error
  pycgi.hosting.precompile:
    path: /var/www/cgi-bin
    on_error: warn
"""

RETURN = r"""
compiled:
  description: Sources for which at least one C(.pyc) was written (or would be, in check mode).
  returned: always
  type: list
  elements: str
  sample: [/var/www/cgi-bin/app/models.py]
pruned:
  description: C(.pyc) and temporary files removed (or that would be, in check mode).
  returned: always
  type: list
  elements: str
  sample: [/var/www/cgi-bin/app/__pycache__/models.cpython-36.pyc]
errors:
  description: Files that could not be compiled or written, and directories that could not be read.
  returned: always
  type: list
  elements: dict
  contains:
    path:
      description: The source, cache file or directory.
      type: str
      sample: /var/www/cgi-bin/app/broken.py
    line:
      description: The line of a syntax error, or null.
      type: int
      sample: 12
    msg:
      description: What went wrong.
      type: str
      sample: "SyntaxError: invalid syntax"
    interpreters:
      description: The interpreters that met the error.
      type: list
      elements: str
      sample: [/usr/bin/python3]
interpreters:
  description: The interpreters compiled for.
  returned: always
  type: list
  elements: dict
  contains:
    path:
      description: The interpreter, as listed or named by a C(#!) line (resolved through PATH for C(env)).
      type: str
      sample: /usr/bin/python3
    version:
      description: Its Python version.
      type: str
      sample: 3.12.1
    cache_tag:
      description: The tag in the names of the caches it writes and reads.
      type: str
      sample: cpython-312
entry_scripts:
  description:
    - Scripts that Apache runs directly (executable, with a Python C(#!) line). Python never caches
      their own bytecode, only that of the modules they import.
  returned: always
  type: list
  elements: str
  sample: [/var/www/cgi-bin/index.py]
symlinks_skipped:
  description: Symbolic links to directories found in the tree, which are not followed.
  returned: always
  type: list
  elements: str
  sample: [/var/www/cgi-bin/shared]
outside_links:
  description: Sources that are symbolic links to files outside O(path), not read or compiled.
  returned: always
  type: list
  elements: str
  sample: [/var/www/cgi-bin/app/config.py]
interpreter_modules:
  description:
    - With O(interpreter_modules), per interpreter, its own modules' caches in the prefix.
  returned: always (an empty list unless O(interpreter_modules) is set)
  type: list
  elements: dict
  contains:
    interpreter:
      description: The interpreter.
      type: str
    dirs:
      description: Its module directories that were compiled.
      type: list
      elements: str
    sources:
      description: Python sources in those directories.
      type: int
    fresh:
      description: Sources whose caches were all current.
      type: int
    compiled:
      description: Sources compiled by this run (or, in check mode, that would be).
      type: int
    errors:
      description: Sources that do not compile with this interpreter, or whose cache cannot be written.
      type: int
    failed:
      description: The first ten of those sources.
      type: list
      elements: str
  sample:
    - interpreter: /usr/bin/python3
      dirs: [/usr/lib/python3.11, /usr/lib/python3/dist-packages]
      sources: 1282
      fresh: 1282
      compiled: 0
      errors: 0
      failed: []
stats:
  description: Counts.
  returned: always
  type: dict
  contains:
    sources:
      description: Python sources in the tree (excluded ones not counted).
      type: int
    fresh:
      description: Sources whose caches were all current for every interpreter.
      type: int
    compiled:
      description: Sources compiled (the length of RV(compiled)).
      type: int
    pruned:
      description: Files pruned.
      type: int
    errors:
      description: Errors (the length of RV(errors)).
      type: int
  sample: {sources: 120, fresh: 118, compiled: 2, pruned: 1, errors: 0}
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.pycgi.hosting.plugins.module_utils._paths import PathError, display, json_safe, literal_root
from ansible_collections.pycgi.hosting.plugins.module_utils._precompile import (
    INVALIDATION_MODES,
    OPTIMIZE_LEVELS,
    PrecompileError,
    precompile,
)


def describe_error(error):
    if error["line"]:
        return "%s:%d: %s" % (error["path"], error["line"], error["msg"])
    return "%s: %s" % (error["path"], error["msg"])


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="str", required=True),
            interpreters=dict(type="list", elements="str"),
            invalidation_mode=dict(type="str", default="timestamp", choices=list(INVALIDATION_MODES)),
            optimize=dict(type="list", elements="int", default=[0], choices=list(OPTIMIZE_LEVELS)),
            workers=dict(type="int", default=0),
            exclude=dict(type="list", elements="str", default=[]),
            prune=dict(type="bool", default=True),
            on_error=dict(type="str", default="fail", choices=["fail", "warn"]),
            pycache_prefix=dict(type="str"),
            interpreter_modules=dict(type="bool", default=False),
            follow_outside_links=dict(type="bool", default=False),
            allow_system_path=dict(type="bool", default=False),
        ),
        supports_check_mode=True,
    )
    params = module.params
    try:
        path = literal_root(params["path"], "path", params["allow_system_path"])
        prefix = params["pycache_prefix"]
        if prefix:
            prefix = literal_root(prefix, "pycache_prefix", params["allow_system_path"])
    except PathError as exc:
        module.fail_json(msg=str(exc))
    try:
        result = precompile(
            path,
            interpreters=params["interpreters"],
            invalidation_mode=params["invalidation_mode"],
            optimize=params["optimize"],
            workers=params["workers"],
            exclude=params["exclude"],
            prune=params["prune"],
            check_mode=module.check_mode,
            diff=module._diff,
            pycache_prefix=prefix,
            interpreter_modules=params["interpreter_modules"],
            follow_outside_links=params["follow_outside_links"],
        )
    except PrecompileError as exc:
        # A failure after caches were written says which.
        module.fail_json(msg=display(str(exc)), changed=bool(exc.written), compiled=json_safe(exc.written))

    # Names that are not UTF-8 are returned escaped: Ansible refuses a result holding them.
    result = json_safe(result)
    for warning in result.pop("warnings"):
        module.warn(warning)
    errors = result["errors"]
    if errors and params["on_error"] == "fail":
        # Failed, yet the caches in compiled and pruned were written: the result says so.
        module.fail_json(
            msg="%d error(s) in %s: %s" % (len(errors), display(path), "; ".join(describe_error(e) for e in errors)),
            **result
        )
    for error in errors:
        module.warn(describe_error(error))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
