"""The ansible-core versions pycgi.hosting supports, each proven by one session: the unit
tests, the playbook tests (the built tarball driven by ansible-playbook) and ansible-test
sanity, under that ansible-core with a controller Python it supports.

    make matrix                          every session
    make matrix NOX_ARGS="-s core-2.16"  one of them

A session per minor version, as antsibull-nox sets them up; plain nox here, because
antsibull-nox installs ansible-core's branches from GitHub, which machines that only reach
the package index cannot do.
"""
import glob
import os

import nox

REPO = os.path.dirname(os.path.abspath(__file__))
# ansible-core minor -> the controller Python its session runs on (each within the range
# that ansible-core release supports on the controller).
CORES = {
    "2.16": "3.12",
    "2.17": "3.12",
    "2.18": "3.13",
    "2.19": "3.13",
    "2.20": "3.13",
    "2.21": "3.13",
}
OLDEST, NEWEST = min(CORES, key=lambda v: tuple(map(int, v.split(".")))), max(CORES, key=lambda v: tuple(map(int, v.split("."))))

# Tests that meet a limit of an older ansible-core, each documented as a known issue in the
# changelog: ansible-core 2.16's argument validation fails with a traceback instead of its
# message when a list of integers holds a value outside its choices (precompile's optimize=[3]);
# 2.17 fixed it.
KNOWN_LIMITS = {
    "2.16": ["tests/unit/plugins/modules/test_precompile.py::test_optimize_levels_and_workers"],
}
# ansible-test 2.16 still checks the Python 2 boilerplate (removed in 2.17); the collection's
# modules need Python 3.7 or later (`from __future__ import annotations`), so those two do not apply.
SANITY_SKIPS = {
    "2.16": ["future-import-boilerplate", "metaclass-boilerplate"],
}

nox.options.sessions = ["core-%s" % core for core in CORES]
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = True


def _pyenv_bins():
    """pyenv keeps its interpreters off PATH but for the default one: nox looks them up by name."""
    root = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    return sorted(glob.glob(os.path.join(root, "versions", "3.*", "bin")))


os.environ["PATH"] = os.pathsep.join([os.environ.get("PATH", "")] + _pyenv_bins())


def _tests(session, core):
    session.install("ansible-core==%s.*" % core, "pytest>=8.0,<10", "PyYAML>=6,<7", "ansible-builder>=3.1,<4")
    work = os.path.abspath(session.create_tmp())
    src = os.path.join(work, "src")
    link = os.path.join(src, "ansible_collections", "pycgi", "hosting")
    if not os.path.islink(link):
        os.makedirs(os.path.dirname(link), exist_ok=True)
        os.symlink(REPO, link)
    collections = os.path.join(work, "collections")
    session.run("ansible-galaxy", "collection", "build", "--force", "--output-path", work, REPO, silent=True)
    (tarball,) = glob.glob(os.path.join(work, "pycgi-hosting-*.tar.gz"))
    session.run("ansible-galaxy", "collection", "install", "--force", "-p", collections, tarball, silent=True)
    env = {"ANSIBLE_COLLECTIONS_PATH": collections, "ANSIBLE_NOCOLOR": "1"}
    deselect = ["--deselect=%s" % test for test in KNOWN_LIMITS.get(core, [])]
    session.run("pytest", "-q", "-p", "no:cacheprovider", "tests/unit", *deselect, *session.posargs,
                env=dict(env, PYTHONPATH=src))
    session.run("pytest", "-q", "-p", "no:cacheprovider", "tests/playbook", *session.posargs,
                env=dict(env, PYTHONPATH=os.pathsep.join([src, os.path.join(REPO, "tests")])))
    # Outside the checkout, as `make sanity` does it; one copy per session.
    sanity_root = os.path.join(os.environ.get("TMPDIR", "/tmp"), "pycgi-hosting-sanity-%s" % core)
    session.run(os.path.join(REPO, "tools", "run-sanity"), session.bin, sanity_root,
                os.path.join(work, "ansible-test-home"),
                *["--skip-test=%s" % test for test in SANITY_SKIPS.get(core, [])], external=True)


for _core, _python in CORES.items():
    def _session(session, core=_core):
        _tests(session, core)

    _session.__doc__ = "ansible-core %s.x on Python %s: unit, playbook and sanity tests" % (_core, _python)
    nox.session(name="core-%s" % _core, python=_python, venv_backend="venv")(_session)
