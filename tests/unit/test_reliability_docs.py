"""docs/reliability.md lists every reliability test with what it checks (its docstring)."""
import os
import subprocess
import sys

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_the_document_is_in_step_with_the_tests():
    proc = subprocess.run([sys.executable, os.path.join(REPO_ROOT, "tools", "reliability_doc.py"), "--check"],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr + proc.stdout
