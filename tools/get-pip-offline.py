"""Pip bootstrap for ansible-test's virtual environments.

ansible-test fetches a get-pip script from a host that is not reachable from machines whose
only outside access is the package index. This stands in for it: pip comes from Python's own
ensurepip, then the pip release ansible-test asks for is installed from the package index.
`make sanity` places it where ansible-test looks for its cached copy (in a HOME of its own).
"""
import ensurepip
import subprocess
import sys

GET_PIP_ONLY_FLAGS = ("--no-setuptools", "--no-wheel")

ensurepip.bootstrap(upgrade=True)
pip_args = [arg for arg in sys.argv[1:] if arg not in GET_PIP_ONLY_FLAGS]
sys.exit(subprocess.call([sys.executable, "-m", "pip", "install"] + pip_args))
