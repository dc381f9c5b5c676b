# Copyright (c) 2026 pycgi.hosting contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Controller side of pycgi.hosting.release: the source's manifest (hashed once while the tree
does not change, shared by all forks through a locked cache file), the module call that asks the
host what it lacks, and one archive of those contents sent with the connection's put_file."""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import tarfile

from ansible import constants as C
from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase

from ansible.module_utils.parsing.convert_bool import boolean

from ansible_collections.pycgi.hosting.plugins.module_utils._release import (
    ReleaseError,
    encode_manifest,
    manifest_digest,
)
from ansible_collections.pycgi.hosting.plugins.plugin_utils._release_cache import (
    expected_lacking,
    record_digest,
    recorded_digest,
    remember_commit,
    remember_contents,
    resolved_commit,
    shared_archive,
    source_manifest,
)

MODULE = "pycgi.hosting.release"
# Options the module reads on the host; source, version and exclude are the controller's.
CONTROLLER_ONLY = ("version", "exclude")
SHA_RE = re.compile(r"^[0-9a-f]{7,40}$")


def cache_dir():
    """Manifests kept across runs (validated by the tree's stat signature) for this user."""
    return os.path.expanduser(os.environ.get("PYCGI_RELEASE_CACHE", "~/.ansible/pycgi-release"))


def _git(args, cwd=None):
    proc = subprocess.run(["git"] + args, cwd=cwd, capture_output=True, check=False)
    if proc.returncode != 0:
        raise ReleaseError("git %s failed: %s" % (" ".join(args), proc.stderr.decode("utf-8", "replace").strip()))
    return proc.stdout


def git_export(source, version, workdir):
    """Exports ``version`` of the git repository ``source`` (URL or path) into a directory under
    ``workdir`` (one per commit, shared by forks under a lock); returns (directory, commit).
    ``workdir`` lives as long as the run: ``version`` is resolved once for all its hosts.
    The repository's working tree is never used."""
    os.makedirs(workdir, mode=0o700, exist_ok=True)
    key = hashlib.sha256(json.dumps([source, version]).encode()).hexdigest()[:24]
    with open(os.path.join(workdir, key + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        clone = os.path.join(workdir, key + ".git")
        commit = resolved_commit(workdir, key)
        if commit and os.path.isdir(os.path.join(workdir, "export-" + commit)):
            return os.path.join(workdir, "export-" + commit), commit
        if not os.path.isdir(clone):
            _git(["clone", "--quiet", "--bare", "--", source, clone])
        else:
            _git(["--git-dir", clone, "fetch", "--quiet", "--force", "--", source,
                  "+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*"])
        try:
            commit = _git(["--git-dir", clone, "rev-parse", "--verify", "--quiet", version + "^{commit}"])
        except ReleaseError:
            raise ReleaseError("version %s is not a branch, tag or commit of %s" % (version, source))
        commit = commit.decode().strip()
        export = os.path.join(workdir, "export-" + commit)
        if not os.path.isdir(export):
            partial = export + ".partial"
            shutil.rmtree(partial, ignore_errors=True)
            os.mkdir(partial, 0o700)
            tar = _git(["--git-dir", clone, "archive", "--format=tar", commit])
            tar_path = partial + ".tar"
            with open(tar_path, "wb") as handle:
                handle.write(tar)
            try:
                with tarfile.open(tar_path) as archive:
                    for member in archive.getmembers():
                        if member.name.startswith("/") or ".." in member.name.split("/") or not (
                                member.isreg() or member.isdir() or member.issym()):
                            raise ReleaseError("git archive of %s holds %s: refused" % (commit, member.name))
                    archive.extractall(partial, filter="tar") if hasattr(tarfile, "data_filter") \
                        else archive.extractall(partial)
            finally:
                os.unlink(tar_path)
            os.rename(partial, export)
        remember_commit(workdir, key, commit)
        return export, commit


class ActionModule(ActionBase):
    TRANSFERS_FILES = True

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        del tmp
        args = dict(self._task.args)
        source = args.get("source")
        if not source or args.get("state") == "rolled_back":
            for key in CONTROLLER_ONLY:
                args.pop(key, None)
            result.update(self._execute_module(module_name=MODULE, module_args=args, task_vars=task_vars))
            return result
        try:
            try:
                source_dir, commit = self._source_dir(source, args.get("version"))
                exclude = list(args.get("exclude") or [])
                manifest, cache_info = source_manifest(source_dir, exclude, cache_dir(), commit)
            except ReleaseError as exc:
                raise AnsibleActionFail(str(exc))
            for key in CONTROLLER_ONLY:
                args.pop(key, None)
            if commit:
                args["commit"] = commit
            host = task_vars.get("inventory_hostname") or self._play_context.remote_addr or ""
            record = (host, str(args.get("path")), args.get("releases_dir"))
            digest = self._digest(manifest, args)
            recorded = recorded_digest(cache_dir(), *record) if digest else None
            calls = 0
            first = None
            if recorded is not None and recorded == digest:
                # Seen live there before: the hash alone, checked by the host against its record.
                first = self._execute_module(module_name=MODULE, module_args=dict(args, digest=digest),
                                             task_vars=task_vars)
                calls = 1
                if first.get("failed") or first.get("need_manifest"):
                    first = None
            manifest_sent = first is None
            if first is None:
                args["manifest"] = encode_manifest(manifest)
                call_args = args
                guess = None
                if recorded is not None and recorded != digest and not self._play_context.check_mode:
                    # Another manifest was seen live there: the contents it lacks travel with the
                    # manifest, in the same call. The host checks the guess and asks again if it
                    # lacks more.
                    guess = expected_lacking(cache_dir(), recorded, manifest)
                sent = None
                if guess:
                    sent = self._send_archive(source_dir, manifest, guess)
                    call_args = dict(args, archive=sent[0], speculative=True)
                first = self._execute_module(module_name=MODULE, module_args=call_args, task_vars=task_vars)
                calls += 1
                if sent and not first.get("failed") and not first.get("need_archive"):
                    first["transferred"] = {"files": sent[1], "bytes": sent[2]}
                    first["archive_cache"] = sent[3]
            final = first
            if first.get("need_archive") and not first.get("failed"):
                remote, files, size, archive_state = self._send_archive(source_dir, manifest, first["lacking"])
                args["archive"] = remote
                final = self._execute_module(module_name=MODULE, module_args=args, task_vars=task_vars)
                calls += 1
                if not final.get("failed"):
                    final["transferred"] = {"files": files, "bytes": size}
                    final["archive_cache"] = archive_state
            final.pop("need_archive", None)
            final.pop("need_manifest", None)
            # The manifest is for the module, not for the task's output.
            invocation = final.get("invocation", {}).get("module_args", {})
            if "manifest" in invocation:
                invocation["manifest"] = "(%d entries)" % len(manifest)
            final.update(manifest_cache=cache_info["state"], manifest_hashed=cache_info["hashed"], module_calls=calls,
                         manifest_sent=manifest_sent)
            if not self._play_context.check_mode:
                # Only a digest the host computed the same way and holds now is kept; anything
                # else (a failure, a different hash) forgets the record.
                seen = final.get("digest") if not final.get("failed") and final.get("digest") == digest else None
                record_digest(cache_dir(), record[0], record[1], record[2], seen)
                if seen:
                    remember_contents(cache_dir(), seen, manifest)
            if commit:
                final["commit"] = commit
            result.update(final)
            return result
        finally:
            self._remove_tmp_path(self._connection._shell.tmpdir)

    def _send_archive(self, source_dir, manifest, lacking):
        """Puts the archive of the ``lacking`` contents on the host (one transfer); returns
        (its path there, files, bytes, archive cache state)."""
        try:
            archive, files, size, archive_state = shared_archive(source_dir, manifest, lacking, cache_dir())
        except ReleaseError as exc:
            raise AnsibleActionFail(str(exc))
        remote_tmp = self._connection._shell.tmpdir or self._make_tmp_path()
        remote = self._connection._shell.join_path(remote_tmp, "release.tar")
        self._transfer_file(archive, remote)
        self._fixup_perms2((remote_tmp, remote), execute=False)
        return remote, files, size, archive_state

    @staticmethod
    def _digest(manifest, args):
        """The manifest's hash as the host computes it, or None when the options are not in
        their final form here (the host's answer then is the only one)."""
        shared = args.get("shared_paths") or []
        launchers = args.get("entry_launchers", False)
        if not isinstance(shared, list) or not all(isinstance(s, str) for s in shared):
            return None
        try:
            launchers = boolean(launchers, strict=True)
        except TypeError:
            return None
        try:
            return manifest_digest(manifest, shared, launchers)
        except (TypeError, ValueError):
            return None

    def _source_dir(self, source, version):
        if version:
            if not SHA_RE.match(version) and version.startswith("-"):
                raise ReleaseError("version %s is not a branch, tag or commit" % version)
            if "://" not in source and ":" not in source.split("/")[0]:
                source = os.path.abspath(os.path.expanduser(source))
            return git_export(source, version, os.path.join(C.DEFAULT_LOCAL_TMP, "pycgi-release-git"))
        source = os.path.expanduser(source)
        if not os.path.isabs(source):
            source = self._find_needle("files", source) if not os.path.isdir(source) else os.path.abspath(source)
        if not os.path.isdir(source):
            raise ReleaseError("source %s is not a directory on the controller" % source)
        return source, None
