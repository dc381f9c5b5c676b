"""The Molecule verifier must fail when it finds no tests (pytest alone exits 5, which the
testinfra verifier would accept): molecule/conftest.py turns that into a failure."""
import os
import shutil
import subprocess
import sys

from conftest import REPO_ROOT


def _pytest(tree, target):
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", target],
                          cwd=str(tree), capture_output=True, text=True, check=False)


def _scenario_tree(tmp_path):
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    shutil.copy(os.path.join(REPO_ROOT, "molecule", "conftest.py"), str(tmp_path / "molecule"))
    return tmp_path


def test_a_tests_directory_without_tests_fails(tmp_path):
    (tmp_path / "molecule" / "shared" / "tests").mkdir(parents=True)
    tree = _scenario_tree(tmp_path)
    proc = _pytest(tree, "molecule/shared/tests")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "no tests ran" in proc.stdout


def test_a_tests_directory_with_a_passing_test_passes(tmp_path):
    tests = tmp_path / "molecule" / "shared" / "tests"
    tests.mkdir(parents=True)
    (tests / "test_one.py").write_text("def test_one():\n    assert 1 + 1 == 2\n")
    tree = _scenario_tree(tmp_path)
    proc = _pytest(tree, "molecule/shared/tests")
    assert proc.returncode == 0, proc.stdout + proc.stderr
