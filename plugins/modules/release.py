#!/usr/bin/python
# Copyright (c) 2026 pycgi.hosting contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: release
short_description: Push a CGI tree as a release directory and make it live with one atomic rename
version_added: 1.1.0
description:
  - Deploys the controller directory O(source) (or a git commit of it, with O(version)) to the CGI root O(path)
    as releases, the way Capistrano does, in one or two round trips whatever the number of files.
  - The controller (this module's action plugin) computes a manifest of the source (relative path, type, size,
    mode, sha256) and sends it; the host answers which contents it lacks (a file it can hard-link or copy from
    any release already on the host is not lacking); one tar archive carries only the lacking contents,
    sent with the connection's own file transfer (ssh, local, podman, ... and V(become) work as for
    M(ansible.builtin.copy)); a second call builds the release. A push with nothing changed is one call and
    reports C(changed=false).
  - When the controller knows the manifest live on the host (it pushed it there before), the archive of the
    contents that manifest lacks goes with the new manifest in one call; the host checks that guess and, only if
    it lacks more, asks for the rest in a second call.
  - "Host layout, for O(path)=C(/usr/lib/cgi-bin): C(/usr/lib/cgi-bin) is a symlink to
    C(.cgi-bin.releases/<id>); each release is a directory C(/usr/lib/.cgi-bin.releases/<id>); what the
    module knows about a release (its manifest, the git commit, the time) is in
    C(/usr/lib/.cgi-bin.releases/.meta/<id>.json), outside the served tree; shared paths live in
    C(/usr/lib/.cgi-bin.shared/<relative path>). Apache's configuration and the URLs stay as they were."
  - A release id is a UTC time and a short hash, C(20261204T153000Z-1a2b3c4d); the hash is that of the
    manifest, or the commit for a git source. A source whose manifest equals that of a release still on the host reuses
    that release (two pushes of the same source give the same release; a normal run after a rollback brings
    the source's release back).
  - A release is built in C(.<id>.partial) beside the others, from hard links into existing releases (with
    copies of the C(__pycache__) files of an unchanged source, which stay current since the source is the
    same inode; copies, so that a cache the web server may write belongs to one release only),
    local copies where only the mode differs, and the archive's contents (checked against their sha256),
    then renamed to C(<id>). Files are never written through a symlink. A failure removes the partial
    directory and leaves the live release alone.
  - Going live is a new symlink beside O(path) renamed over it, one C(rename), so a request sees the old
    release or the new one. CPython sets C(sys.path[0]) of a script to the real path of its directory
    (checked for 3.6 to 3.13), so the modules a request imports come from the release it started in.
  - "A plain directory at O(path) (the layout before releases) is migrated on the first switch; the new
    release's symlink and the directory swap names in one atomic C(renameat2) with C(RENAME_EXCHANGE). Where the
    kernel or file system lacks it, the directory is renamed away and the link renamed in right after, a gap
    of microseconds in which O(path) does not exist. Where the directory cannot be renamed at all (a
    directory of an overlayfs lower layer, as in a container made from an image: C(EXDEV)), it is copied,
    then removed and replaced by the link; requests in that gap (the time the removal takes) answer 404.
    C(method) of RV(migrated) says which happened. The old directory is kept as release C(migrated-<time>); its
    files that the source lacks are reported (a warning) and kept there."
author: pycgi.hosting contributors (@pycgi)
extends_documentation_fragment:
  - pycgi.hosting.attributes
  - pycgi.hosting.paths
attributes:
  action:
    description: Indicates this has a corresponding action plugin so some parts of the options can be executed on the controller.
    support: full
  check_mode:
    support: full
    details:
      - Reports the files that would be transferred and whether a release would be made, switched or
        pruned; transfers and writes nothing.
  diff_mode:
    support: full
    details:
      - Lists the files added, changed and removed from the live release to the one made live.
  platform:
    platforms: posix
options:
  path:
    description:
      - The CGI root, for example C(/usr/lib/cgi-bin). It becomes a symlink to the live release.
      - Taken literally, absolute, not a system directory (see O(allow_system_path)).
    type: str
    required: true
  source:
    description:
      - A directory on the controller (C(~) expanded) whose tree is the release; with O(version), a git
        repository (a URL or a path) whose commit is the release.
      - Leaving out C(.git), C(__pycache__), C(*.pyc) and the O(exclude) patterns. Symlinks are kept as links
        (never followed); one whose target leaves the source is an error naming it. Anything else that is
        neither a file nor a directory is an error.
      - Required with O(state=switched) or O(state=prepared) unless O(release) names a release on the host.
    type: str
  version:
    description:
      - A branch, tag or commit of the git repository O(source). The commit is exported on the controller
        (C(git archive), never a working tree) and recorded with the release; its short hash names the release.
    type: str
  exclude:
    description:
      - Glob patterns left out of the source, matched against the path relative to O(source) (C(*) crosses
        C(/)); a pattern without C(/) also matches a file or directory name at any depth.
    type: list
    elements: str
    default: []
  state:
    description:
      - V(switched) builds (or reuses) the source's release and makes it live, or makes O(release) live.
      - V(prepared) builds (or reuses) the release and returns its path, live unchanged; make it live later
        with O(state=switched) and O(release).
      - V(rolled_back) makes live the release that was live before the current one (no transfer); run again,
        it changes nothing, it does not walk further back. With O(release), that release.
      - V(discarded) deals with the release O(release) whose checks failed after O(state=prepared) (a compile,
        owner or label step). One that has never been live is removed; one that has been (the live one, or one a
        rollback may go back to) is kept and its record marked with O(reason). Either way the failure is logged
        in C(.meta/failures.json). Run again, it changes nothing. The live release is never touched.
    type: str
    choices: [switched, prepared, rolled_back, discarded]
    default: switched
  release:
    description:
      - The id of a release on the host to switch or roll back to, or to discard, as returned in RV(release).
      - Required with O(state=discarded).
    type: str
  reason:
    description:
      - Why the release is discarded (O(state=discarded)), recorded on the host; for example the failing
        step's message.
    type: str
  releases_dir:
    description:
      - The directory of the releases. It must be on the file system of O(path).
      - Defaults to C(.<name>.releases) beside O(path).
      - Taken literally, absolute.
    type: str
  pycache_prefix:
    description:
      - The C(PYTHONPYCACHEPREFIX) the web server runs the scripts with (the C(prefix) cache mode of
        M(pycgi.hosting.precompile) and M(pycgi.hosting.httpd_pycache)). The caches of the sources a new
        release takes unchanged are then copied below it, to the new release's path, and a pruned
        release's caches there are removed with it.
      - Without it the caches are copied from the C(__pycache__) directories of the release they come from.
    type: str
  migration_grace:
    description:
      - Seconds to wait, on the first push into a root that is a plain directory, between turning
        that directory into the release C(migrated-<time>) (the root then a symlink to the same
        tree) and switching to the new release. A request that was already running when the
        directory was migrated finds its files through the root's path, so a switch within its
        lifetime could give it modules of the new release; requests that start after the migration
        are pinned to the tree they started in. Only the first push waits, and not when the directory
        was empty.
    type: float
    default: 3.0
  keep:
    description:
      - Releases kept on the host after a switch; older ones are removed, never the live one or the one
        live before it.
    type: int
    default: 5
  shared_paths:
    description:
      - Paths relative to the root that persist across releases; each is a directory
        C(.<name>.shared/<path>) beside O(path) (created if missing) and a symlink to it in every release.
      - A source file at a shared path is an error naming it.
    type: list
    elements: str
    default: []
  shared_owner:
    description: The owner of shared directories the module creates (the web server user, usually).
    type: str
  shared_group:
    description: The group of shared directories the module creates.
    type: str
  entry_launchers:
    description:
      - Turn the entry scripts of a release built by this task into launchers, as M(pycgi.hosting.entry_launcher)
        does, inside the new release before it is renamed into place, so that Python caches their bytecode.
      - An entry script is a file of the source with an execute bit whose first line is a python shebang and that
        is not a launcher already; its code goes to C(_<stem>_main.py) beside it. A script with a syntax error, or a
        source that already holds a file of the module's name, fails the task naming the file; nothing is built.
      - Only the new release is written. The source, the live release and the files it shares with the new one
        (hard links) are never changed; the script as pushed is kept in C(.meta/<id>.entry/), so that later pushes
        still link its content instead of sending it.
      - Part of what a release is; a source pushed with and without it gives two releases. A reused release is not
        split again.
    type: bool
    default: false
  manifest:
    description:
      - Set by the action plugin (the source's manifest as JSON, or zlib-compressed JSON in base64 after
        C(zlib:)); not for playbooks.
    type: str
  digest:
    description:
      - Set by the action plugin instead of O(manifest) when the controller saw this source's manifest hash live on
        the host before; not for playbooks. The host answers with the release whose record holds that hash (once
        the recorded manifest hashes to it and the release's files are intact) or asks for the manifest.
    type: str
  archive:
    description:
      - Set by the action plugin (the host path of the archive of lacking contents); not for playbooks.
    type: path
  speculative:
    description:
      - Set by the action plugin with O(archive) and O(manifest) in one call, when the archive holds the contents
        that the controller expects the host to lack (those of the manifest it last saw live there); not for
        playbooks. Contents the host already holds are skipped; when the host lacks more than the archive holds,
        nothing is built and the module asks for the archive of what it lacks.
    type: bool
    default: false
  commit:
    description:
      - Set by the action plugin (the commit of a git source); not for playbooks.
    type: str
notes:
  - "What an application must not do to stay unmixed: put O(path) itself (the link) on C(sys.path) or in a
    C(.pth) file, or import through an absolute path under O(path), since that path follows the switch while
    a request runs; use paths relative to C(__file__) or C(sys.path[0]). Files the application writes at run
    time belong in O(shared_paths), or they stay behind in the release that was live."
  - "A request that starts in the instant of a switch may have Python resolve its script's directory from one
    release and read the script from the next: the two lookups are microseconds apart at interpreter start."
  - Hard links share an inode between releases, so editing a file in place on the host changes every release
    that links it; such a file is no longer used as a link source (its recorded size, mode or mtime differ).
seealso:
  - module: pycgi.hosting.precompile
  - module: pycgi.hosting.pycache_owner
"""

EXAMPLES = r"""
- name: Push the application and make it live
  pycgi.hosting.release:
    path: /usr/lib/cgi-bin
    source: "{{ playbook_dir }}/app"
    exclude: ["*.log", "tests"]
    shared_paths: [data]
    shared_owner: www-data
    shared_group: www-data

- name: Build a release from a tag, not live yet
  pycgi.hosting.release:
    path: /var/www/cgi-bin
    source: https://git.example.com/app.git
    version: v2.3.0
    state: prepared
  register: prepared

- name: Compile it before it goes live
  pycgi.hosting.precompile:
    path: "{{ prepared.release_path }}"

- name: Make it live
  pycgi.hosting.release:
    path: /var/www/cgi-bin
    release: "{{ prepared.release }}"

- name: Roll back to the release live before
  pycgi.hosting.release:
    path: /usr/lib/cgi-bin
    state: rolled_back

- name: Remove a prepared release whose compile failed
  pycgi.hosting.release:
    path: /var/www/cgi-bin
    release: "{{ prepared.release }}"
    state: discarded
    reason: "{{ compile_result.msg }}"
"""

RETURN = r"""
release:
  description: The id of the release built, reused, switched to or rolled back to.
  returned: success
  type: str
  sample: 20261204T153000Z-1a2b3c4d
release_path:
  description: Its directory.
  returned: success
  type: str
  sample: /usr/lib/.cgi-bin.releases/20261204T153000Z-1a2b3c4d
live:
  description: The live release after the task.
  returned: success
  type: str
previous:
  description: The release that was live before the live one (the target of a rollback), or null.
  returned: success
  type: str
reused:
  description: Whether an identical release on the host was used instead of building one.
  returned: when a source was pushed
  type: bool
switched:
  description: Whether the root's symlink was changed.
  returned: success
  type: bool
transferred:
  description: Contents sent in the archive (one per distinct content) and their bytes.
  returned: when a source was pushed
  type: dict
  sample: {files: 1, bytes: 2048}
linked:
  description:
    - Files hard-linked from releases on the host (C(files)), the C(__pycache__) files of those copied with
      them (C(pycache)), and copies made on the host of contents it had with another mode (C(copied)).
  returned: when a release was built
  type: dict
  sample: {files: 309, pycache: 309, copied: 0}
files:
  description: Files added, changed and removed from the live release to this one.
  returned: when a source was pushed
  type: dict
  sample: {added: [], changed: [hello.py], removed: [old.py]}
pruned:
  description: Releases removed (or that would be) to keep O(keep).
  returned: success
  type: list
  elements: str
shared_created:
  description: Shared directories created.
  returned: success
  type: list
  elements: str
migrated:
  description:
    - When O(path) was a plain directory, the release it became (C(id)), how it was replaced (C(method), one
      of C(exchange), one atomic swap; C(rename), two renames; C(copy), copied then removed) and its files
      that the source lacks (C(kept_files)), kept in that release.
  returned: when O(path) was a plain directory
  type: dict
lacking:
  description: Content hashes the host lacks (the action plugin sends them); empty once the release exists.
  returned: when a source was pushed
  type: list
  elements: str
manifest_cache:
  description:
    - Whether the controller reused its stored hashes of the source (V(hit)) or hashed some of its files (V(miss)).
    - The hashes are kept per file under C(~/.ansible/pycgi-release) (or E(PYCGI_RELEASE_CACHE)) with each file's stat
      (size, mode, mtime, ctime, inode), and shared by the forks under a lock, so one host of a play hashes and the
      others wait and reuse; a git O(version) is hashed once per commit.
  returned: when a source was pushed
  type: str
manifest_hashed:
  description: Files of the source this task hashed on the controller (0 when another host or an earlier run did).
  returned: when a source was pushed
  type: int
archive_cache:
  description:
    - Whether the archive of the lacking contents was built for this host (V(miss)) or reused from another host
      lacking the same contents (V(hit)).
  returned: when an archive was sent
  type: str
launchers:
  description: The entry scripts (relative paths) turned into launchers in the release built.
  returned: when a release was built with O(entry_launchers=true)
  type: list
  elements: str
  sample: [report.py]
module_calls:
  description: Round trips to the host this task made (1 when nothing had to be sent).
  returned: when a source was pushed
  type: int
digest:
  description:
    - The hash of the source's manifest (with O(shared_paths) and O(entry_launchers)), recorded with its release.
    - After a successful run the controller keeps it per inventory host and O(path) under
      C(~/.ansible/pycgi-release/hosts) (or E(PYCGI_RELEASE_CACHE)); the next run of an unchanged source sends
      only this hash, and the host checks it against the release's record and files, asking for the full manifest
      when they do not match (a release changed or deleted on the host, a record edited by hand).
  returned: when a source was pushed
  type: str
manifest_sent:
  description: Whether the task sent the source's manifest (V(false) when the hash alone was enough).
  returned: when a source was pushed
  type: bool
commit:
  description: The commit of a git source.
  returned: with O(version)
  type: str
discarded:
  description:
    - With O(state=discarded), what happened to O(release). V(removed) (it had never been live), V(marked) (kept,
      its record marked) or V(absent) (not on the host, nothing done).
  returned: with O(state=discarded)
  type: str
  sample: removed
"""

import grp
import os
import pwd
import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.pycgi.hosting.plugins.module_utils._launcher import apply as apply_launcher
from ansible_collections.pycgi.hosting.plugins.module_utils._launcher import check_syntax
from ansible_collections.pycgi.hosting.plugins.module_utils._launcher import plan as plan_launcher
from ansible_collections.pycgi.hosting.plugins.module_utils._paths import PathError, keep_paths_literal, literal_root
from ansible_collections.pycgi.hosting.plugins.module_utils._release import (
    RELEASE_ID_RE,
    Layout,
    ReleaseError,
    archive_contents,
    build_release,
    decode_manifest,
    discard,
    ensure_shared,
    files_not_in,
    lock_layout,
    manifest_diff,
    migrate_directory,
    new_release_id,
    plan_release,
    point_at,
    previous_release,
    prune,
    read_json,
    release_with_digest,
    remove_partials,
)


def _ids(name, kind):
    if name is None:
        return None
    try:
        return (pwd.getpwnam(name).pw_uid if kind == "user" else grp.getgrnam(name).gr_gid)
    except KeyError:
        raise ReleaseError("%s %s does not exist on the host" % (kind, name))


def _manifest_of(layout, release_id):
    if not release_id:
        return None
    meta = read_json(layout.meta_path(release_id), default=None) or {}
    return meta.get("manifest")


def _diff(layout, live, target, files):
    before = ["release: %s" % (live or "(none)")] + ["  %s" % f for f in files["changed"] + files["removed"]]
    after = ["release: %s" % target] + ["  %s" % f for f in files["changed"] + files["added"]]
    return {"before_header": layout.path, "after_header": layout.path,
            "before": "\n".join(before) + "\n", "after": "\n".join(after) + "\n"}


def entry_splitter(module):
    """``split_entry`` for build_release: the entry_launcher module's plan and apply for one
    script of the partial release, with its syntax checked by the script's own interpreter."""
    def split(path):
        todo = plan_launcher(path, None, "present", lambda *args: check_syntax(module.run_command, *args))
        for warning in todo.warnings:
            module.warn(warning)
        if not todo.changed:
            return None
        apply_launcher(todo)
        return todo.module
    return split


def go_live(module, layout, kind, live, target, manifest, result):
    """Points the root at ``target`` (migrating a plain directory) and prunes. Returns whether
    the link changed."""
    check = module.check_mode
    if kind == "directory":
        kept = files_not_in(layout.path, manifest or {})
        result["migrated"] = {"kept_files": kept, "id": None, "method": None}
        if kept:
            module.warn("%d files of the directory %s are not in the source; they are kept in the migrated "
                        "release under %s: %s" % (len(kept), layout.path, layout.releases, ", ".join(kept[:20])))
        if not check:
            # An empty directory (the one a web server package creates) serves no request.
            grace = module.params["migration_grace"] if os.listdir(layout.path) else 0
            migrated, method = migrate_directory(layout)
            result["migrated"].update(id=migrated, method=method)
            layout.record_live(migrated, "migrated")
            if target != migrated:
                # Requests that started before the migration resolved the root as a directory:
                # they find their files through the root's path, now the link to the migrated
                # tree, until the switch below. Let them end first.
                time.sleep(grace)
                point_at(layout, target)
                layout.record_live(target, "switch")
        return True
    if live == target and kind == "link":
        return False
    if not check:
        point_at(layout, target)
        layout.record_live(target, "switch")
    return True


def run(module):
    p = module.params
    check = module.check_mode
    layout = Layout(p["path"], p["releases_dir"])
    result = {"changed": False, "pruned": [], "shared_created": []}
    lock = None
    if not check:
        os.makedirs(layout.releases, mode=0o755, exist_ok=True)
        lock = lock_layout(layout)
        remove_partials(layout)
    kind, live = layout.live()
    previous = previous_release(layout, live) if live else None
    state = p["state"]

    if state == "discarded":
        outcome = discard(layout, p["release"], p["reason"] or "not given", p["pycache_prefix"], check_mode=check)
        result.update(changed=outcome != "absent", discarded=outcome, release=p["release"],
                      release_path=layout.release_path(p["release"]), live=live, previous=previous, switched=False)
        return result

    if state == "rolled_back":
        history = layout.history()
        if p["release"]:
            target = p["release"]
        elif history and history[-1]["how"] == "rollback" and history[-1]["id"] == live:
            target = live
        else:
            target = previous
        if not target:
            raise ReleaseError("no release to roll back to: %s has no release live before %s" % (layout.path, live))
        if not os.path.isdir(layout.release_path(target)):
            raise ReleaseError("release %s is not on the host (in %s)" % (target, layout.releases))
        changed = kind != "link" or live != target
        if changed and not check:
            if kind != "link":
                migrate_directory(layout)
            point_at(layout, target)
            layout.record_live(target, "rollback")
        if module._diff:
            files = manifest_diff(_manifest_of(layout, live), _manifest_of(layout, target) or {})
            result["diff"] = _diff(layout, live, target, files)
        result.update(changed=changed, switched=changed, release=target, release_path=layout.release_path(target),
                      live=target if changed else live, previous=live if changed else previous)
        return result

    built = False
    manifest = None
    if p["manifest"] is None and p["digest"] is not None:
        # The controller saw this manifest live here before and sends only its hash.
        target, manifest = release_with_digest(layout, p["digest"], p["shared_paths"], p["entry_launchers"],
                                               prefer=live)
        if target is None:
            result.update(need_manifest=True, release=None)
            if lock:
                lock.close()
            return result
        result.update(lacking=[], transferred={"files": 0, "bytes": 0}, reused=True, commit=p["commit"],
                      digest=p["digest"], files=manifest_diff(manifest if target == live else _manifest_of(layout, live),
                                                              manifest))
    elif p["manifest"] is not None:
        manifest = decode_manifest(p["manifest"])
        plan = plan_release(layout, manifest, p["shared_paths"], p["entry_launchers"])
        result.update(lacking=plan["lacking"], transferred={"files": len(plan["lacking"]), "bytes": plan["lacking_bytes"]},
                      reused=bool(plan["reuse"]), commit=p["commit"], digest=plan["digest"])
        if plan["reuse"]:
            target = plan["reuse"]
        elif plan["lacking"] and not check and (
            not p["archive"] or (p["speculative"] and not set(plan["lacking"]) <= archive_contents(p["archive"]))
        ):
            # The controller sends the archive of what is lacking and calls again. The files'
            # diff is left to that call.
            result.update(need_archive=True, release=None)
            if lock:
                lock.close()
            return result
        else:
            target = new_release_id(plan["digest"], p["commit"])
            built = True
            if not check:
                counts = build_release(layout, manifest, target, plan["digest"], archive=p["archive"],
                                       shared_paths=p["shared_paths"], commit=p["commit"], source_label=p["source"],
                                       pycache_prefix=p["pycache_prefix"],
                                       split_entry=entry_splitter(module) if p["entry_launchers"] else None,
                                       archive_extra_ok=p["speculative"], validated=True)
                result["linked"] = {"files": counts["linked"], "pycache": counts["pycache_copied"],
                                    "copied": counts["copied"]}
                if p["entry_launchers"]:
                    result["launchers"] = counts["launchers"]
                result["lacking"] = []
            else:
                result["linked"] = {"files": plan["linked"], "pycache": 0, "copied": plan["copied"]}
        result["files"] = manifest_diff(_manifest_of(layout, live), manifest)
    elif p["release"]:
        target = p["release"]
        if not os.path.isdir(layout.release_path(target)):
            raise ReleaseError("release %s is not on the host (in %s)" % (target, layout.releases))
        manifest = _manifest_of(layout, target)
    else:
        raise ReleaseError("give source (a directory or git repository on the controller) or release")

    created = ensure_shared(layout, p["shared_paths"], _ids(p["shared_owner"], "user"),
                            _ids(p["shared_group"], "group"), check_mode=check)
    result["shared_created"] = created
    switched = False
    if state == "switched":
        switched = go_live(module, layout, kind, live, target, manifest, result)
        protect = {target}
        if switched:
            previous = (result.get("migrated") or {}).get("id") or live
            protect.add(previous)
        elif previous:
            protect.add(previous)
        result["pruned"] = prune(layout, p["keep"], protect, check_mode=check, adding=int(built and check),
                                 pycache_prefix=p["pycache_prefix"])
    if module._diff and "files" in result:
        result["diff"] = _diff(layout, live, target, result["files"])
    result.update(changed=built or switched or bool(created) or bool(result["pruned"]), switched=switched,
                  release=target, release_path=layout.release_path(target),
                  live=target if switched else live, previous=previous)
    if lock:
        lock.close()
    return result


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="str", required=True),
            source=dict(type="str"),
            version=dict(type="str"),
            exclude=dict(type="list", elements="str", default=[]),
            state=dict(type="str", choices=["switched", "prepared", "rolled_back", "discarded"], default="switched"),
            release=dict(type="str"),
            reason=dict(type="str"),
            releases_dir=dict(type="str"),
            keep=dict(type="int", default=5),
            shared_paths=dict(type="list", elements="str", default=[]),
            shared_owner=dict(type="str"),
            shared_group=dict(type="str"),
            manifest=dict(type="str"),
            digest=dict(type="str"),
            archive=dict(type="path"),
            speculative=dict(type="bool", default=False),
            commit=dict(type="str"),
            entry_launchers=dict(type="bool", default=False),
            allow_system_path=dict(type="bool", default=False),
            pycache_prefix=dict(type="str"),
            migration_grace=dict(type="float", default=3.0),
        ),
        required_if=[("state", "discarded", ["release"])],
        supports_check_mode=True,
    )
    keep_paths_literal(module)
    try:
        module.params["path"] = literal_root(module.params["path"], "path", module.params["allow_system_path"])
        if module.params["pycache_prefix"] is not None:
            module.params["pycache_prefix"] = literal_root(module.params["pycache_prefix"], "pycache_prefix",
                                                           module.params["allow_system_path"])
        if module.params["releases_dir"] is not None:
            module.params["releases_dir"] = literal_root(module.params["releases_dir"], "releases_dir",
                                                         module.params["allow_system_path"])
    except PathError as exc:
        module.fail_json(msg=str(exc))
    if module.params["release"] is not None and not RELEASE_ID_RE.match(module.params["release"]):
        module.fail_json(msg="release %r is not a release id (letters, digits, '.', '_', '-')" % module.params["release"])
    if module.params["keep"] < 2:
        module.fail_json(msg="keep must be at least 2 (the live release and the one before it)")
    try:
        result = run(module)
        # The manifest is for the host, not for the task's output: not sent back.
        args = dict(module.params)
        if args["manifest"] is not None:
            args["manifest"] = "(%d characters)" % len(args["manifest"])
        result["invocation"] = {"module_args": args}
    except ReleaseError as exc:
        module.fail_json(msg=str(exc))
    except OSError as exc:
        module.fail_json(msg="%s: %s" % (getattr(exc, "filename", None) or module.params["path"], exc.strerror or exc))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
