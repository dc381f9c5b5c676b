"""tools/get-pip-offline.py, the pip bootstrap `make sanity` hands to ansible-test, keeps the
machine's pip configuration for the pip install it runs after ensurepip.

A real virtual environment without pip, the real ensurepip and pip; the package it installs is a
wheel built here, reachable only through the pip configuration file the test writes.
"""
import base64
import hashlib
import os
import subprocess
import sys
import zipfile

from conftest import REPO_ROOT

SCRIPT = os.path.join(REPO_ROOT, "tools", "get-pip-offline.py")
PROBE = "pycgi_pip_config_probe"


def _record_line(name, data):
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return "%s,sha256=%s,%d" % (name, digest, len(data))


def _probe_wheel(directory):
    dist_info = "%s-1.0.dist-info" % PROBE
    files = {
        "%s.py" % PROBE: b"FOUND = True\n",
        dist_info + "/METADATA": ("Metadata-Version: 2.1\nName: %s\nVersion: 1.0\n" % PROBE).encode(),
        dist_info + "/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = [_record_line(name, data) for name, data in files.items()] + [dist_info + "/RECORD,,"]
    files[dist_info + "/RECORD"] = ("\n".join(record) + "\n").encode()
    path = os.path.join(str(directory), "%s-1.0-py3-none-any.whl" % PROBE)
    with zipfile.ZipFile(path, "w") as wheel:
        for name, data in files.items():
            wheel.writestr(name, data)
    return path


def test_the_install_after_ensurepip_reads_the_pip_configuration(tmp_path):
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    _probe_wheel(wheels)
    config = tmp_path / "pip.conf"
    config.write_text("[global]\nfind-links = %s\n" % wheels)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env["PIP_CONFIG_FILE"] = str(config)
    # As ansible-test calls it; --no-index leaves the configured find-links as the only source.
    proc = subprocess.run([python, SCRIPT, "--disable-pip-version-check", "--no-index", "--no-setuptools",
                           "--no-wheel", "%s==1.0" % PROBE],
                          env=env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    found = subprocess.run([python, "-c", "import %s; print(%s.FOUND)" % (PROBE, PROBE)],
                           capture_output=True, text=True, check=False)
    assert found.stdout.strip() == "True", found.stdout + found.stderr
