# Copyright (c) 2026 pycgi.hosting contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The compile program. It runs under each TARGET interpreter, not under Ansible's.

A ``.pyc`` is only valid for the interpreter that wrote it, so the driver (``_precompile``)
starts ``INTERPRETER -I -S -B -c SOURCE-OF-THIS-FILE`` once per interpreter. The program:

1. writes one line of JSON describing the interpreter (:func:`probe`; with the argument
   ``--module-dirs``, also the directories of the interpreter's own modules);
2. reads one JSON job from stdin (empty input: stop without doing anything);
3. writes one JSON result to stdout (:func:`run`).

It must run on Python 3.6 through 3.13 with the standard library only, and import nothing
from Ansible or from this collection.

Job::

    {"dirs": [[directory, [source file names]], ...],
     "invalidation_mode": "timestamp" | "checked_hash" | "unchecked_hash",
     "optimize": [0, 1, 2],
     "check": false,            # true: compile in memory to find errors, write nothing
     "workers": 0,              # processes that compile; 0: one per CPU
     "pycache_prefix": null,    # a directory: write where PYTHONPYCACHEPREFIX reads (3.8+)
     "roots": [directory, ...], # a source is read only if the file opened lies below one of
                                # these (symbolic links resolved); null: no such check
     "trusted_dirs": [directory, ...]}  # source directories exempt from that check (the
                                        # interpreter's own, root's: their links are the system's)

Result::

    {"fresh": number of sources whose every .pyc was current,
     "pycs": [[source, pyc, "missing" | "stale", written (bool)], ...],
     "errors": [[path, line or null, message], ...],
     "failed_dirs": [source directories whose cache directory cannot be used],
     "executables": [sources with an execute bit]}

or ``{"fatal": message}`` when the job cannot be done at all (nothing was written).

:class:`Job` and :class:`Result` below give these shapes to the type checker. They exist for it
alone: at run time the job and the result are the plain dicts that JSON gives and takes.
"""

import errno
import importlib.util
import json
import marshal
import os
import struct
import sys
import warnings

# Python 3.6 runs this program too, and it imports nothing it does not use: the types below
# exist for the type checker only, which treats TYPE_CHECKING as true.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, TypedDict, TypeVar, Union

    _T = TypeVar("_T")
    _R = TypeVar("_R")
    # [directory, [source file names]]
    SourceDir = Tuple[str, List[str]]
    # [path, line or None, message]
    ErrorEntry = List[Any]
    # [source, pyc, "missing" | "stale", written]
    PycEntry = List[Any]
    # (level, pyc name, "missing" | "stale")
    StaleCache = Tuple[int, str, str]
    # (directory, cache directory, source name, (mtime, size), [StaleCache]): a source with
    # at least one .pyc that is not current.
    PlanItem = Tuple[str, str, str, Tuple[int, int], List[StaleCache]]

    class _JobRequired(TypedDict):
        dirs: List[SourceDir]
        invalidation_mode: str  # "timestamp" | "checked_hash" | "unchecked_hash"
        optimize: List[int]
        check: bool  # true: compile in memory to find errors, write nothing

    class Job(_JobRequired, total=False):
        """The job the driver sends (the module docstring says what each key means)."""

        workers: int
        pycache_prefix: Optional[str]
        roots: Optional[List[str]]
        trusted_dirs: List[str]

    class Plan(TypedDict):
        """What :func:`plan` found: the sources to compile and the rest of the result."""

        items: List[PlanItem]
        fresh: int
        errors: List[ErrorEntry]
        failed_dirs: List[str]
        executables: List[str]

    class Compiled(TypedDict):
        """What :func:`compile_items` did."""

        pycs: List[PycEntry]
        errors: List[ErrorEntry]

    class Result(TypedDict):
        """The result of a job that could be done."""

        fresh: int
        pycs: List[PycEntry]
        errors: List[ErrorEntry]
        failed_dirs: List[str]
        executables: List[str]

    class Fatal(TypedDict):
        """The result of a job that cannot be done at all (nothing was written)."""

        fatal: str


# Our temporary files inside __pycache__; the driver prunes leftovers of interrupted runs.
TMP_SUFFIX = ".pycgi-tmp"
MODE_FLAGS = {"timestamp": 0, "unchecked_hash": 1, "checked_hash": 3}
PYC_MODE = 0o644
DIR_MODE = 0o755
MAGIC = importlib.util.MAGIC_NUMBER
CACHE_TAG = sys.implementation.cache_tag
# PEP 552 (3.7) added a flags word: 16 header bytes instead of 12.
HASH_PYC = sys.version_info >= (3, 7)
HEADER_LEN = 16 if HASH_PYC else 12
# Forking pays off only with enough to compile: a fork, the per-process file handling and
# reading the results back have a fixed cost that the compile work must outweigh. Work is
# weighed as source bytes plus a fixed cost per .pyc written. Benchmark B1 (cold precompile
# against compileall -j0 and -j1, benchmarks/results/latest.md) holds the timings these
# thresholds are checked against.
PER_PYC_WEIGHT = 4096
PARALLEL_MIN_WEIGHT = 96 * PER_PYC_WEIGHT
# Reading a header is cheap next to a fork: only a large tree pays for one (benchmark B2, the
# no-change re-run against the floor walk, benchmarks/results/latest.md).
PARALLEL_MIN_SOURCES = 2000
O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | O_CLOEXEC
TMP_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | O_CLOEXEC
READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | O_CLOEXEC


def cpu_count() -> "int":
    """CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def probe(with_module_dirs: "bool" = False) -> "Dict[str, Any]":
    """What the driver needs to know about this interpreter; with ``with_module_dirs`` (the
    program's argument ``--module-dirs``) also its ``module_dirs``, which costs imports."""
    found = {
        "executable": sys.executable,
        "version": "%d.%d.%d" % sys.version_info[:3],
        "version_info": list(sys.version_info[:2]),
        "implementation": sys.implementation.name,
        "cache_tag": CACHE_TAG,
        "magic": MAGIC.hex(),
        "hash_pyc": HASH_PYC,
        "pycache_prefix": hasattr(sys, "pycache_prefix"),
        "cpus": cpu_count(),
    }
    if with_module_dirs:
        found["module_dirs"] = module_dirs()
    return found


def module_dirs() -> "List[str]":
    """Where this interpreter finds its own modules when it runs a script: the standard
    library and the site-packages directories, as a script run without -S has them on
    sys.path. Worked out without running site's .pth files (this program runs with -S)."""
    import site
    import sysconfig

    paths = sysconfig.get_paths()
    found = [paths.get(key) for key in ("stdlib", "platstdlib", "purelib", "platlib")]
    getsitepackages = getattr(site, "getsitepackages", None)
    if getsitepackages is not None:
        found.extend(getsitepackages())
    unique = []
    for path in found:
        if path and path not in unique:
            unique.append(path)
    return unique


def pyc_name(source_name: "str", level: "int") -> "str":
    """``mod.py`` -> ``mod.cpython-312.pyc`` / ``mod.cpython-312.opt-1.pyc``.

    The name importlib.util.cache_from_source gives, without its per-call overhead.
    """
    if level:
        return "%s.%s.opt-%d.pyc" % (source_name[:-3], CACHE_TAG, level)
    return "%s.%s.pyc" % (source_name[:-3], CACHE_TAG)


def cache_dir_of(directory: "str", prefix: "Optional[str]") -> "str":
    """Where the caches of the sources in ``directory`` live."""
    if prefix:
        return os.path.join(prefix, directory.lstrip(os.sep))
    return os.path.join(directory, "__pycache__")


def timestamp_header(mtime: "int", size: "int") -> "bytes":
    fields = struct.pack("<II", mtime & 0xFFFFFFFF, size & 0xFFFFFFFF)
    if HASH_PYC:
        return MAGIC + b"\0\0\0\0" + fields
    return MAGIC + fields


def hash_header(flags: "int", source: "bytes") -> "bytes":
    return MAGIC + struct.pack("<I", flags) + importlib.util.source_hash(source)


def pyc_mode(source_mode: "int") -> "int":
    """The mode of a new .pyc: PYC_MODE without the read bits its source lacks.

    Python's own import system gives a .pyc its source's mode for the same reason: a cache
    holds the source's code (its strings, names, constants) and must be no easier to read.
    """
    return PYC_MODE & ~(0o444 & ~source_mode)


def pyc_state(dir_fd: "Optional[int]", name: "str", header: "bytes", source_mode: "int" = 0o777) -> "str":
    """``current`` when the .pyc starts with exactly ``header``, holds code after it, and is
    no more readable than its source (``source_mode``).

    A symbolic link is never current (it is replaced, never read through).
    """
    if dir_fd is None:
        return "missing"
    try:
        fd = os.open(name, READ_FLAGS, dir_fd=dir_fd)
    except OSError as exc:
        return "missing" if exc.errno == errno.ENOENT else "stale"
    try:
        if os.fstat(fd).st_mode & 0o444 & ~source_mode:
            return "stale"
        data = os.read(fd, HEADER_LEN + 1)
    except OSError:
        return "stale"
    finally:
        os.close(fd)
    return "current" if len(data) > HEADER_LEN and data[:HEADER_LEN] == header else "stale"


def is_executable(path: "str") -> "bool":
    try:
        return bool(os.stat(path).st_mode & 0o111)
    except (OSError, ValueError):
        return False


class OutsideTheTree(OSError):
    """A source that resolves to a file outside the roots of the job (a symbolic link swapped in)."""


def opened_path(fd: "int", path: "str") -> "str":
    """The path of the file open as ``fd`` (symbolic links resolved)."""
    try:
        return os.readlink("/proc/self/fd/%d" % fd)
    except OSError:
        return os.path.realpath(path)


def read_source(path: "str", roots: "Optional[Sequence[str]]" = None) -> "Tuple[bytes, int]":
    """``(content, st_mode)`` of the source ``path``.

    With ``roots``, the file actually opened must lie below one of them: checked on the open
    descriptor, so a link swapped in after the walk is not read either.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | O_CLOEXEC)
    try:
        if roots is not None:
            real = opened_path(fd, path)
            if not any(real.startswith(root) for root in roots):
                raise OutsideTheTree(errno.EPERM, "resolves to %s, outside the tree: not read" % real)
        st = os.fstat(fd)
        chunks = []
        chunk = os.read(fd, 1 << 20)
        while chunk:
            chunks.append(chunk)
            chunk = os.read(fd, 1 << 20)
        return b"".join(chunks), st.st_mode
    finally:
        os.close(fd)


def describe(exc: "BaseException") -> "Tuple[Optional[int], str]":
    """``(line, message)`` of an error met while reading or compiling a source."""
    if isinstance(exc, SyntaxError):
        return exc.lineno or None, "%s: %s" % (type(exc).__name__, exc.msg)
    if isinstance(exc, OSError):
        return None, "%s: %s" % (type(exc).__name__, exc.strerror or exc)
    return None, "%s: %s" % (type(exc).__name__, exc)


def dir_error(path: "str", exc: "BaseException") -> "str":
    code = getattr(exc, "errno", None)
    if code in (errno.ENOTDIR, errno.ELOOP) and os.path.islink(path):
        return "is a symbolic link: bytecode is never written through it"
    if code == errno.ENOTDIR:
        return "is not a directory"
    return "cannot open the cache directory: %s" % (getattr(exc, "strerror", None) or exc)


def open_cache_dir(path: "str", create: "bool", prefix: "Optional[str]") -> "Optional[int]":
    """A descriptor of the cache directory ``path``, created when missing and ``create``.

    None when it is missing and not created. Opened without following a symbolic link, so
    that nothing is ever written through one.
    """
    try:
        return os.open(path, DIR_FLAGS)
    except OSError as exc:
        if exc.errno != errno.ENOENT or not create:
            if exc.errno == errno.ENOENT:
                return None
            raise
    try:
        if prefix:
            os.makedirs(path, DIR_MODE)
        else:
            os.mkdir(path, DIR_MODE)
    except OSError as exc:
        if exc.errno != errno.EEXIST:
            raise
        return os.open(path, DIR_FLAGS)
    fd = os.open(path, DIR_FLAGS)
    try:
        # The web server must be able to enter it, whatever the umask of this run.
        os.fchmod(fd, DIR_MODE)
    except OSError:
        os.close(fd)
        raise
    return fd


def write_pyc(dir_fd: "int", name: "str", data: "bytes", fix_mode: "bool", mode: "int" = PYC_MODE) -> "None":
    """Writes ``data`` as ``name`` in the directory ``dir_fd``, atomically.

    A new temporary file (O_EXCL|O_NOFOLLOW, so never an existing file or a link's target)
    is filled and then renamed over ``name``: a reader sees the old file or the new one.
    """
    tmp = "%s.%d%s" % (name, os.getpid(), TMP_SUFFIX)
    try:
        fd = os.open(tmp, TMP_FLAGS, mode, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno != errno.EEXIST:
            raise
        # A leftover of an interrupted run with our pid, or something planted: not ours to keep.
        os.unlink(tmp, dir_fd=dir_fd)
        fd = os.open(tmp, TMP_FLAGS, mode, dir_fd=dir_fd)
    try:
        try:
            if fix_mode:
                os.fchmod(fd, mode)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
        os.replace(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        try:
            os.unlink(tmp, dir_fd=dir_fd)
        except OSError:
            pass
        raise


def plan(job: "Job", dirs: "Sequence[SourceDir]") -> "Plan":
    """Reads the .pyc headers of the sources in ``dirs`` (``[[directory, [names]]]``).

    Returns a dict: ``items``, ``(directory, cache_dir, name, (mtime, size), [(level, pyc
    name, state)])`` for each source with at least one .pyc that is not current; ``fresh``,
    the number of the others; ``errors``; ``failed_dirs``, the source directories whose cache
    directory cannot be used (each reported once in ``errors``); ``executables``, the sources
    with an execute bit.
    """
    flags = MODE_FLAGS[job["invalidation_mode"]]
    levels = job["optimize"]
    prefix = job.get("pycache_prefix")
    roots = job.get("roots")
    trusted = frozenset(job.get("trusted_dirs") or ())
    items: List[PlanItem] = []
    errors: List[ErrorEntry] = []
    failed_dirs: List[str] = []
    executables: List[str] = []
    fresh = 0
    for directory, names in dirs:
        checked = None if directory in trusted else roots
        cache_dir = cache_dir_of(directory, prefix)
        head = os.path.join(directory, "")
        try:
            dir_fd = open_cache_dir(cache_dir, False, prefix)
        except (OSError, ValueError) as exc:
            # ValueError: a name this interpreter cannot encode (Python 3.6 in the C locale).
            errors.append([cache_dir, None, dir_error(cache_dir, exc)])
            failed_dirs.append(directory)
            executables.extend(head + name for name in names if is_executable(head + name))
            continue
        try:
            for name in names:
                source = head + name
                try:
                    st = os.stat(source)
                    meta = (int(st.st_mtime), st.st_size)
                    if flags:
                        header = hash_header(flags, read_source(source, checked)[0])
                    else:
                        header = timestamp_header(meta[0], meta[1])
                except (OSError, ValueError) as exc:
                    line, msg = describe(exc)
                    errors.append([source, line, msg])
                    continue
                if st.st_mode & 0o111:
                    executables.append(source)
                stale = []
                for level in levels:
                    pyc = pyc_name(name, level)
                    state = pyc_state(dir_fd, pyc, header, st.st_mode)
                    if state != "current":
                        stale.append((level, pyc, state))
                if stale:
                    items.append((directory, cache_dir, name, meta, stale))
                else:
                    fresh += 1
        finally:
            if dir_fd is not None:
                os.close(dir_fd)
    return {"items": items, "fresh": fresh, "errors": errors, "failed_dirs": failed_dirs, "executables": executables}


def compile_items(job: "Job", items: "Sequence[PlanItem]") -> "Compiled":
    """Compiles (and unless checking, writes) the stale .pyc files of ``items`` (see plan).

    Returns ``{"pycs": [[source, pyc, state, written]], "errors": [...]}``.
    """
    flags = MODE_FLAGS[job["invalidation_mode"]]
    check = job["check"]
    prefix = job.get("pycache_prefix")
    roots = job.get("roots")
    trusted = frozenset(job.get("trusted_dirs") or ())
    umask = os.umask(0o022)
    os.umask(umask)
    fix_mode = bool(umask & PYC_MODE)
    pycs, errors = [], []
    open_dir, dir_fd, dir_failed = None, None, False
    try:
        for directory, cache_dir, name, meta, stale in items:
            if cache_dir != open_dir:
                if dir_fd is not None:
                    os.close(dir_fd)
                open_dir, dir_fd, dir_failed = cache_dir, None, False
            source = os.path.join(directory, name)
            written = not dir_failed
            mode = PYC_MODE
            try:
                data, source_mode = read_source(source, None if directory in trusted else roots)
                mode = pyc_mode(source_mode)
            except OSError as exc:
                line, msg = describe(exc)
                errors.append([source, line, msg])
                written = False
            header = None
            for level, pyc, state in stale:
                if written:
                    try:
                        code = compile(data, source, "exec", dont_inherit=True, optimize=level)
                    except Exception as exc:
                        # SyntaxError, ValueError (null bytes), RecursionError...: reported
                        # as py_compile would, with the line when there is one.
                        line, msg = describe(exc)
                        errors.append([source, line, msg])
                        written = False
                if written and not check and dir_fd is None:
                    # Opened (created) only now: a directory whose sources all fail gets no
                    # empty cache directory.
                    try:
                        dir_fd = open_cache_dir(cache_dir, True, prefix)
                    except OSError as exc:
                        errors.append([cache_dir, None, dir_error(cache_dir, exc)])
                        dir_failed = True
                        written = False
                if written and not check:
                    if header is None:
                        header = hash_header(flags, data) if flags else timestamp_header(*meta)
                    try:
                        # dir_fd is open here: opened above, or written is False.
                        write_pyc(dir_fd, pyc, header + marshal.dumps(code), fix_mode, mode)  # type: ignore[arg-type]
                    except OSError as exc:
                        errors.append([os.path.join(cache_dir, pyc), None, "cannot write: %s" % (exc.strerror or exc)])
                        written = False
                pycs.append([source, os.path.join(cache_dir, pyc), state, written])
    finally:
        if dir_fd is not None:
            os.close(dir_fd)
    return {"pycs": pycs, "errors": errors}


def split(weighted: "Sequence[Tuple[int, _T]]", parts: "int") -> "List[List[_T]]":
    """``[(weight, x)]`` cut into at most ``parts`` contiguous runs of about equal weight.

    Contiguous, so that each process mostly works in its own directories.
    """
    share = float(sum(weight for weight, _x in weighted)) / parts
    chunks: List[List[_T]] = []
    current: List[_T] = []
    done = 0
    for weight, thing in weighted:
        current.append(thing)
        done += weight
        if done >= share * (len(chunks) + 1) and len(chunks) < parts - 1:
            chunks.append(current)
            current = []
    chunks.append(current)
    return [chunk for chunk in chunks if chunk]


def in_parallel(function: "Callable[[Job, List[_T]], _R]", job: "Job", chunks: "Sequence[List[_T]]") -> "List[_R]":
    """``[function(job, chunk) for chunk in chunks]``, the first in this process and each
    other one in a forked child that sends its (JSON) result back through a pipe.

    A child that fails has its chunk done again here, so the outcome never depends on it.
    """
    children = []
    for chunk in chunks[1:]:
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:
            status = 1
            try:
                os.close(read_end)
                view = memoryview(json.dumps(function(job, chunk)).encode("ascii"))
                while view:
                    view = view[os.write(write_end, view) :]
                status = 0
            except BaseException as exc:
                sys.stderr.write("compile process %d: %r\n" % (os.getpid(), exc))
            finally:
                os._exit(status)
        os.close(write_end)
        children.append((pid, read_end, chunk))
    results = [function(job, chunks[0])]
    for pid, read_end, chunk in children:
        payload = []
        block = os.read(read_end, 1 << 16)
        while block:
            payload.append(block)
            block = os.read(read_end, 1 << 16)
        os.close(read_end)
        status = os.waitpid(pid, 0)[1]
        result = None
        if status == 0:
            try:
                result = json.loads(b"".join(payload).decode("ascii"))
            except ValueError:
                pass
        results.append(function(job, chunk) if result is None else result)
    return results


def run(job: "Job") -> "Union[Result, Fatal]":
    """Does one job; returns the result (see the module docstring)."""
    if job["invalidation_mode"] != "timestamp" and not HASH_PYC:
        return {
            "fatal": "invalidation_mode %s needs Python 3.7 or later (hash-based .pyc files)" % job["invalidation_mode"]
        }
    if job.get("pycache_prefix") and not hasattr(sys, "pycache_prefix"):
        return {"fatal": "pycache_prefix needs Python 3.8 or later"}
    warnings.simplefilter("ignore")
    workers = job.get("workers") or cpu_count()

    dirs = job["dirs"]
    sources = sum(len(names) for _d, names in dirs)
    if workers > 1 and sources >= PARALLEL_MIN_SOURCES:
        plans = in_parallel(plan, job, split([(len(d[1]), d) for d in dirs], workers))
    else:
        plans = [plan(job, dirs)]
    result: Result = {"fresh": 0, "pycs": [], "errors": [], "failed_dirs": [], "executables": []}
    items: List[PlanItem] = []
    for part in plans:
        items.extend(part["items"])
        result["fresh"] += part["fresh"]
        result["errors"] += part["errors"]
        result["failed_dirs"] += part["failed_dirs"]
        result["executables"] += part["executables"]

    # An item's weight: its source size plus a fixed cost per .pyc it needs.
    weighted = [(item[3][1] + PER_PYC_WEIGHT * len(item[4]), item) for item in items]
    if workers > 1 and len(items) > 1 and sum(w for w, _i in weighted) >= PARALLEL_MIN_WEIGHT:
        compiled = in_parallel(compile_items, job, split(weighted, workers))
    else:
        compiled = [compile_items(job, items)]
    for done in compiled:
        result["pycs"] += done["pycs"]
        result["errors"] += done["errors"]
    return result


def main() -> "None":
    sys.stdout.write(json.dumps(probe("--module-dirs" in sys.argv[1:])) + "\n")
    sys.stdout.flush()
    raw = sys.stdin.buffer.read()
    if not raw.strip():
        return
    result = run(json.loads(raw.decode("utf-8")))
    sys.stdout.write(json.dumps(result))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
