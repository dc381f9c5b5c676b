"""Pip bootstrap for ansible-test's virtual environments.

ansible-test fetches a get-pip script from a host that is not reachable from machines whose
only outside access is the package index. This stands in for it: pip comes from Python's own
ensurepip, then the pip release ansible-test asks for is installed from the package index.
`make sanity` places it where ansible-test looks for its cached copy (in a HOME of its own).

ensurepip runs in a child process of its own: `ensurepip.bootstrap()` sets PIP_CONFIG_FILE to
/dev/null in the environment of the process that calls it, and every pip started after it would
inherit that and ignore the machine's pip configuration (its index, mirrors, certificates).
"""
import subprocess
import sys

GET_PIP_ONLY_FLAGS = ("--no-setuptools", "--no-wheel")

status = subprocess.call([sys.executable, "-m", "ensurepip", "--upgrade"])
if status:
    sys.exit("ensurepip failed (exit %d) for %s" % (status, sys.executable))
pip_args = [arg for arg in sys.argv[1:] if arg not in GET_PIP_ONLY_FLAGS]
sys.exit(subprocess.call([sys.executable, "-m", "pip", "install"] + pip_args))
