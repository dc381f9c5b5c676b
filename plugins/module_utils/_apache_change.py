# Copyright (c) 2026 pycgi.hosting contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Putting a root's ``__pycache__`` stanza in place on the host, as one change that Apache's
config test accepts or that is undone byte for byte.

``converge()`` does what the httpd_pycache module promises: it reads the main config and the
drop-in, plans which files change, runs the config test before (nothing is touched if it
already fails) and after the change, and restores every file it touched (the main config, the
drop-in, and on Debian what a2enconf/a2disconf changed) when the test fails. Everything it
does on the host goes through a ``Host`` object: the module passes one around AnsibleModule,
the unit tests one that answers with recorded command outputs.
"""

from __future__ import annotations

import os
import stat
import tempfile
import typing as t

from ansible_collections.pycgi.hosting.plugins.module_utils._apache import (
    CONFIG_TEST_DIRS,
    ApacheConfigError,
    DropInLayout,
    config_test_programs,
    current_block,
    set_block,
    split_dump_includes,
)

PLACEMENTS = ("drop_in", "block")


class Host:
    """What converge() needs from the host; the module's is built on AnsibleModule."""

    check_mode = False
    diff = False

    def run(self, argv: list[str], environ: dict[str, str]) -> tuple[int, str, str]:
        """Runs a command (argument list, never a shell); (rc, stdout, stderr)."""
        raise NotImplementedError

    def find_program(self, name: str, dirs: list[str]) -> str | None:
        """The path of program ``name`` on PATH or in ``dirs``, or None."""
        raise NotImplementedError

    def move(self, src: str, dest: str) -> None:
        """Renames ``src`` over ``dest``, keeping the attributes of an existing ``dest``."""
        raise NotImplementedError

    def backup(self, path: str) -> str:
        """A timestamped copy of ``path``; returns its name."""
        raise NotImplementedError


class Request(t.NamedTuple):
    """What the task asks for one root."""

    root: str
    block: str | None  # None: state=absent
    placement: str  # "drop_in" or "block"
    main_config: str  # real path of the main config
    layout: DropInLayout | None  # None where the host has no drop-in directory (placement=block only)
    validate: bool = True
    backup: bool = False


class Edit(t.NamedTuple):
    """One file's change: ``after`` None removes it."""

    path: str
    before: bytes | None
    after: bytes | None


class Plan(t.NamedTuple):
    edits: list[Edit]
    enable: bool  # run a2enconf after writing the drop-in
    disable: bool  # run a2disconf before removing the drop-in
    stanza_file: str  # where the stanza is when the task is done (or would have been)


class ChangeFailed(Exception):
    """The task fails; ``msg`` says why and what was left as it was."""

    def __init__(self, msg: str, changed: bool = False):
        super().__init__(msg)
        self.msg = msg
        self.changed = changed


def _read(path: str) -> bytes | None:
    if not os.path.lexists(path):
        return None
    if not os.path.isfile(path):
        raise ChangeFailed("%s is not a regular file" % path)
    with open(path, "rb") as handle:
        return handle.read()


def _text(data: bytes) -> str:
    return data.decode("utf-8", "surrogateescape")


def _block_in(path: str, data: bytes | None, root: str) -> str | None:
    if data is None:
        return None
    try:
        return current_block(_text(data), root)
    except ApacheConfigError as exc:
        raise ChangeFailed("%s: %s" % (path, exc))


def _enabled(layout: DropInLayout) -> bool:
    """Whether Apache loads the drop-in by the name the layout gives it."""
    if not layout.uses_a2enconf:
        return os.path.isfile(layout.file)
    return os.path.islink(layout.enabled) and os.path.realpath(layout.enabled) == os.path.realpath(layout.file)


def plan(request: Request) -> Plan:
    """The files that change so that the root's stanza is only where ``placement`` puts it.

    ``drop_in`` also takes an old block for the root out of the main config, ``block`` also
    removes the root's drop-in, and ``state=absent`` (``block`` None) removes both."""
    root, block, layout = request.root, request.block, request.layout
    main = _read(request.main_config)
    if main is None and (block is not None and request.placement == "block"):
        raise ChangeFailed("%s does not exist; dest must name an existing Apache config file" % request.main_config)
    main_block = _block_in(request.main_config, main, root)
    edits = []
    enable = disable = False

    drop_in = drop_in_block = None
    if layout is not None:
        drop_in = _read(layout.file)
        drop_in_block = _block_in(layout.file, drop_in, root)
        if drop_in is not None and drop_in_block is None and (request.placement == "drop_in" and block is not None):
            raise ChangeFailed(
                "%s exists and does not hold the block for %s (another root's or a file of its own); "
                "it was left as it is: set drop_in_name to another name" % (layout.file, root)
            )

    want_drop_in = block is not None and request.placement == "drop_in"
    want_main_block = block is not None and request.placement == "block"

    if main_block is not None and not want_main_block or want_main_block and main_block != block:
        updated = set_block(_text(t.cast(bytes, main)), root, block if want_main_block else None).encode(
            "utf-8", "surrogateescape"
        )
        edits.append(Edit(request.main_config, main, updated))

    if layout is not None:
        if want_drop_in:
            wanted = t.cast(str, block).encode("utf-8", "surrogateescape")
            if drop_in != wanted:
                edits.append(Edit(layout.file, drop_in, wanted))
            enable = layout.uses_a2enconf and not _enabled(layout)
        elif drop_in_block is not None:
            # Only a file that holds this root's block is ours to remove.
            disable = layout.uses_a2enconf and os.path.lexists(layout.enabled)
            edits.append(Edit(layout.file, drop_in, None))

    stanza_file = layout.file if request.placement == "drop_in" and layout is not None else request.main_config
    return Plan(edits, enable, disable, stanza_file)


def diffs(request: Request, change: Plan) -> list[dict[str, str]]:
    """One before/after per file, each showing the root's stanza as the file holds it."""
    out = []
    for edit in change.edits:
        whole_file = request.layout is not None and edit.path == request.layout.file
        before, after = (
            (_text(edit.before or b""), _text(edit.after or b""))
            if whole_file
            else (
                current_block(_text(edit.before or b""), request.root) or "",
                current_block(_text(edit.after or b""), request.root) or "",
            )
        )
        header = "%s (%s for %s)" % (edit.path, "drop-in" if whole_file else "block", request.root)
        if whole_file and edit.after is None:
            header = "%s (drop-in for %s, removed)" % (edit.path, request.root)
        out.append(dict(before=before, after=after, before_header=header, after_header=header))
    return out


class _Snapshot:
    """Every file, symlink and directory at and below one path, to put back exactly.

    For what a2enconf/a2disconf change (the conf-enabled symlink, its records below
    /var/lib/apache2/conf), which are not ours to write but are ours to restore."""

    def __init__(self, path: str):
        self.path = path
        self.entries: dict[str, tuple[str, t.Any, int, int, int, int]] = {}
        self._record(path)

    def _record(self, path: str) -> None:
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return
        mode = stat.S_IMODE(st.st_mode)
        if stat.S_ISLNK(st.st_mode):
            self.entries[path] = ("link", os.readlink(path), mode, st.st_uid, st.st_gid, st.st_mtime_ns)
        elif stat.S_ISDIR(st.st_mode):
            self.entries[path] = ("dir", None, mode, st.st_uid, st.st_gid, st.st_mtime_ns)
            for name in sorted(os.listdir(path)):
                self._record(os.path.join(path, name))
        else:
            with open(path, "rb") as handle:
                self.entries[path] = ("file", handle.read(), mode, st.st_uid, st.st_gid, st.st_mtime_ns)

    def restore(self) -> None:
        now = _Snapshot(self.path).entries
        # What appeared, deepest first; what changed kind is removed and made again below.
        for path in sorted(now, key=len, reverse=True):
            if path not in self.entries or self.entries[path][0] != now[path][0]:
                if now[path][0] == "dir":
                    os.rmdir(path)
                else:
                    os.unlink(path)
        for path in sorted(self.entries, key=len):
            kind, data, mode, uid, gid, mtime = self.entries[path]
            current = now.get(path)
            if current is not None and current[0] == kind and current[1:5] == (data, mode, uid, gid):
                continue
            if kind == "link":
                if os.path.lexists(path):
                    os.unlink(path)
                os.symlink(data, path)
                os.lchown(path, uid, gid)
                continue
            if kind == "dir":
                if not os.path.isdir(path):
                    os.mkdir(path)
            else:
                with open(path, "wb") as handle:
                    handle.write(data)
                os.utime(path, ns=(mtime, mtime))
            os.chown(path, uid, gid)
            os.chmod(path, mode)


class _Files:
    """Writes and removals whose originals (the inodes themselves, kept under a second name)
    can be put back, and the snapshots of what commands change."""

    def __init__(self, host: Host):
        self.host = host
        self.kept: list[tuple[str, str | None]] = []
        self.snapshots: list[_Snapshot] = []

    def _keep(self, path: str) -> None:
        if not os.path.lexists(path):
            self.kept.append((path, None))
            return
        directory, name = os.path.split(path)
        fd, kept = tempfile.mkstemp(dir=directory, prefix=".%s." % name, suffix=".original")
        os.close(fd)
        os.unlink(kept)
        os.link(path, kept)
        self.kept.append((path, kept))

    def write(self, path: str, content: bytes) -> None:
        directory, name = os.path.split(path)
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".%s." % name)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(content)
            self._keep(path)
            self.host.move(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    def remove(self, path: str) -> None:
        self._keep(path)
        os.unlink(path)

    def snapshot(self, path: str) -> None:
        self.snapshots.append(_Snapshot(path))

    def rollback(self) -> None:
        for snapshot in reversed(self.snapshots):
            snapshot.restore()
        for path, kept in reversed(self.kept):
            if kept is None:
                if os.path.lexists(path):
                    os.unlink(path)
            else:
                os.rename(kept, path)
        self.kept = []

    def commit(self) -> None:
        for _path, kept in self.kept:
            if kept is not None:
                os.unlink(kept)
        self.kept = []


def _output(out: str, err: str) -> str:
    return "\n".join(part.strip() for part in (out, err) if part.strip())


class ConfigTest:
    """The host's Apache config test: ``apachectl -t``; for a new drop-in also with
    ``-D DUMP_INCLUDES``, which lists every file Apache read, so a drop-in that Apache does
    not load (a conf.d that no Include names) fails the test instead of protecting nothing."""

    def __init__(self, host: Host, program: str, dump_includes: bool):
        self.host, self.program, self.dump_includes = host, program, dump_includes
        self.argv = [program, "-t"] + (["-D", "DUMP_INCLUDES"] if dump_includes else [])

    @property
    def name(self) -> str:
        return "%s -t" % self.program

    def run(self) -> tuple[bool, str, list[str]]:
        """(passed, output to show, files Apache read)."""
        rc, out, err = self.host.run(self.argv, {"LC_ALL": "C"})
        if not self.dump_includes:
            return rc == 0, _output(out, err), []
        included, rest = split_dump_includes(out)
        return rc == 0, _output(rest, err), included


def find_config_test(host: Host, main_config: str, layout: DropInLayout | None = None) -> str:
    """The config test program of the layout: Debian's apache2ctl where the layout is Debian's."""
    programs = config_test_programs(main_config)
    if layout is not None and layout.uses_a2enconf:
        programs = ("apache2ctl", "apachectl")
    for name in programs:
        path = host.find_program(name, CONFIG_TEST_DIRS)
        if path:
            return path
    raise ChangeFailed(
        "validate=true needs Apache's config test program (%s) and none was found in PATH or %s; "
        "install Apache or set validate=false" % (" or ".join(programs), ", ".join(CONFIG_TEST_DIRS))
    )


def config_test_for(host: Host, request: Request) -> ConfigTest:
    """The config test of the change: with the list of included files where a drop-in is
    written, so that the test shows Apache reads it.

    Debian's apache2ctl passes ``-D DUMP_INCLUDES`` on to the server (after reading its
    envvars). The RHEL family's apachectl refuses any argument after ``-t`` ("Passing
    arguments to httpd using apachectl is no longer supported") and itself runs ``httpd -t``,
    so there the server binary is asked directly; where it cannot be found, ``apachectl -t``
    runs without the list."""
    layout = request.layout
    wants_list = request.placement == "drop_in" and request.block is not None and layout is not None
    if wants_list and layout is not None and not layout.uses_a2enconf:
        server = host.find_program("httpd", CONFIG_TEST_DIRS)
        if server:
            return ConfigTest(host, server, True)
        wants_list = False
    return ConfigTest(host, find_config_test(host, request.main_config, layout), wants_list)


def _a2conf(host: Host, layout: DropInLayout, program: str) -> None:
    path = host.find_program(program, CONFIG_TEST_DIRS)
    if not path:
        raise ChangeFailed(
            "%s is not installed, and Debian's layout enables a drop-in with it; nothing was changed" % program
        )
    name = os.path.basename(layout.file)[: -len(".conf")]
    environ = {"LC_ALL": "C", "APACHE_CONFDIR": layout.confdir}
    if layout.state_dir:
        environ["APACHE_STATE_DIRECTORY"] = layout.state_dir
    rc, out, err = host.run([path, "-q", name], environ)
    if rc != 0:
        raise RuntimeError("%s %s failed (rc=%d): %s" % (program, name, rc, _output(out, err)))


def _apply(host: Host, request: Request, change: Plan, test: ConfigTest | None) -> str | None:
    """Makes the planned change and runs ``test``; returns None when the change stands, else
    why it was undone (every touched file is back byte for byte)."""
    files = _Files(host)
    layout = request.layout
    if layout is not None and layout.uses_a2enconf and (change.enable or change.disable):
        files.snapshot(layout.enabled)
        if layout.state_dir:
            files.snapshot(os.path.join(layout.state_dir, "conf"))
    try:
        if change.disable:
            _a2conf(host, t.cast(DropInLayout, layout), "a2disconf")
        for edit in change.edits:
            if edit.after is None:
                files.remove(edit.path)
            else:
                files.write(edit.path, edit.after)
        if change.enable:
            _a2conf(host, t.cast(DropInLayout, layout), "a2enconf")
        if test is not None:
            passed, output, included = test.run()
            if not passed:
                files.rollback()
                return "Apache's config test (%s) fails with the block for %s in place, so %s: %s" % (
                    test.name,
                    request.root,
                    _touched(change, "restored byte for byte", "restored byte for byte"),
                    output,
                )
            loaded = set(os.path.realpath(path) for path in included)
            if test.dump_includes and os.path.realpath(t.cast(DropInLayout, layout).file) not in loaded:
                files.rollback()
                return (
                    "Apache's config test (%s) passes but Apache does not read %s (no Include names it), so the "
                    "block for %s would protect nothing; %s"
                    % (
                        test.name,
                        t.cast(DropInLayout, layout).enabled,
                        request.root,
                        _touched(change, "restored byte for byte", "restored byte for byte"),
                    )
                )
    except BaseException as exc:
        files.rollback()
        if isinstance(exc, (OSError, RuntimeError)):
            what = "cannot change the Apache config: " if isinstance(exc, OSError) else ""
            return "%s%s; %s" % (what, exc, _touched(change, "restored byte for byte", "restored byte for byte"))
        raise
    files.commit()
    return None


def _touched(change: Plan, one: str, several: str) -> str:
    """ "X was <one>" or "X and Y were <several>" for the files the change touches."""
    paths = [edit.path for edit in change.edits]
    if change.enable or change.disable:
        paths.append("what a2enconf/a2disconf changed")
    if len(paths) > 1:
        return "%s were %s" % (" and ".join(paths), several)
    return "%s was %s" % (paths[0] if paths else "nothing", one)


def converge(host: Host, request: Request) -> dict[str, t.Any]:
    """Runs the task on the host; returns the module's result (``failed``/``msg`` on failure)."""
    result: dict[str, t.Any] = dict(
        changed=False, dest=request.main_config, placement=request.placement, main_config=request.main_config
    )
    try:
        change = plan(request)
        result["dest"] = change.stanza_file
        if not change.edits and not change.enable and not change.disable:
            return result
        result["changed"] = True
        if host.diff:
            found = diffs(request, change)
            if change.enable and not found:
                enabled = t.cast(DropInLayout, request.layout).enabled
                header = "%s (enabled for %s)" % (enabled, request.root)
                found = [dict(before="", after=enabled + "\n", before_header=header, after_header=header)]
            result["diff"] = found[0] if len(found) == 1 else found
        test = None
        if request.validate:
            test = config_test_for(host, request)
            passed, output, _included = test.run()
            if not passed:
                raise ChangeFailed(
                    "Apache's config test (%s) already fails before any change, so %s: %s"
                    % (test.name, _touched(change, "left as it is", "left as they are"), output)
                )
        if host.check_mode:
            return result
        if request.backup:
            backups = [host.backup(edit.path) for edit in change.edits if edit.before is not None]
            if backups:
                result["backup_file"] = backups[0]
                result["backup_files"] = backups
        failure = _apply(host, request, change, test)
        if failure is not None:
            for path in result.pop("backup_files", []):
                os.unlink(path)
            result.pop("backup_file", None)
            raise ChangeFailed(failure)
    except ChangeFailed as exc:
        result["changed"] = exc.changed
        result.pop("diff", None)
        result.update(failed=True, msg=exc.msg)
    return result
