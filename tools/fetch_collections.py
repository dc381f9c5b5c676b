"""Unpacks the collections the tests need (containers.podman for Molecule's podman driver,
community.general for the benchmark's builtin-recipe playbook) from the `ansible` wheel on
PyPI into a collections path. Ansible Galaxy is not reachable from the CI machines, PyPI is.

Usage: python tools/fetch_collections.py DEST_COLLECTIONS_PATH CACHE_DIR
"""
import glob
import os
import shutil
import subprocess
import sys
import zipfile

ANSIBLE_RELEASE = "ansible>=12,<15"
WANTED = ("containers/podman/", "community/general/")


def main(dest, cache):
    os.makedirs(cache, exist_ok=True)
    done = [os.path.join(dest, "ansible_collections", w, "MANIFEST.json") for w in WANTED]
    if all(os.path.exists(p) for p in done):
        return 0
    wheels = sorted(glob.glob(os.path.join(cache, "ansible-*.whl")))
    if not wheels:
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                        "--only-binary=:all:", "-d", cache, ANSIBLE_RELEASE], check=True)
        wheels = sorted(glob.glob(os.path.join(cache, "ansible-*.whl")))
    with zipfile.ZipFile(wheels[-1]) as wheel:
        for wanted in WANTED:
            prefix = "ansible_collections/" + wanted
            target = os.path.join(dest, prefix)
            shutil.rmtree(target, ignore_errors=True)
            for member in wheel.namelist():
                if member.startswith(prefix) and not member.endswith("/"):
                    wheel.extract(member, dest)
    print("collections unpacked from", os.path.basename(wheels[-1]))
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
