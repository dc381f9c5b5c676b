"""The source trees the benchmarks run on.

- `django`: Django's source distribution from PyPI (the package, its tests and scripts: a
  real code base of a few thousand modules that nobody here wrote), downloaded once into
  the cache directory and unpacked for every run.
- `synthetic`: 10,000 small modules in 100 nested packages, generated deterministically
  (the same bytes on every machine and every run).
- the B0 application: the example CGI application plus a generated package of a few
  thousand lines that its entry script imports.
"""
import glob
import os
import random
import shutil
import subprocess
import sys
import tarfile
import time

DJANGO_REQUIREMENT = "Django==5.2.19"
SYNTHETIC_TOP = 10
SYNTHETIC_SUB = 10
SYNTHETIC_MODULES_PER_PACKAGE = 100


def django_sdist(cache_dir):
    """The cached Django sdist, downloaded with pip the first time."""
    os.makedirs(cache_dir, exist_ok=True)
    found = sorted(glob.glob(os.path.join(cache_dir, "django-*.tar.gz")))
    if not found:
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                        "--no-binary=:all:", "-d", cache_dir, DJANGO_REQUIREMENT], check=True)
        found = sorted(glob.glob(os.path.join(cache_dir, "django-*.tar.gz")))
    return found[-1]


def unpack_django(cache_dir, dest):
    """Unpacks the sdist into `dest` (replaced); returns `dest`."""
    shutil.rmtree(dest, ignore_errors=True)
    os.makedirs(dest)
    with tarfile.open(django_sdist(cache_dir)) as archive:
        members = [m for m in archive.getmembers() if m.isfile() or m.isdir()]
        if sys.version_info >= (3, 12):
            archive.extractall(dest, members=members, filter="data")
        else:
            archive.extractall(dest, members=members)
    return dest


def _module_text(rng, package, index):
    """One small module: constants, a function, a class; plausible code of varied length."""
    name = "Item%d" % index
    lines = [
        '"""Generated module %s.m%03d."""' % (package, index),
        "import os",
        "import re" if index % 3 else "import json",
        "",
        "LIMIT = %d" % rng.randint(1, 10000),
        "NAMES = (%s)" % ", ".join(repr("n%d" % rng.randint(0, 999)) for _name in range(rng.randint(2, 6))),
        "",
        "",
        "def compute_%d(values, factor=%d):" % (index, rng.randint(1, 9)),
        "    total = 0",
        "    for position, value in enumerate(values):",
        "        if position %% %d == 0:" % rng.randint(2, 5),
        "            total += value * factor",
        "        else:",
        "            total -= value // (factor + 1)",
        "    return min(total, LIMIT)",
        "",
        "",
        "class %s(object):" % name,
        '    """A record with %d fields."""' % rng.randint(2, 8),
        "",
        "    def __init__(self, key, payload=None):",
        "        self.key = key",
        "        self.payload = dict(payload or {})",
        "",
    ]
    for method in range(rng.randint(1, 4)):
        lines += [
            "    def method_%d(self, other):" % method,
            "        if other in self.payload:",
            "            return self.payload[other] + %d" % rng.randint(0, 99),
            "        return os.path.join(str(self.key), str(other))",
            "",
        ]
    return "\n".join(lines) + "\n"


def generate_synthetic(dest):
    """10,000 modules in 10 x 10 nested packages (plus their __init__.py); deterministic."""
    shutil.rmtree(dest, ignore_errors=True)
    rng = random.Random(20240601)
    for top in range(SYNTHETIC_TOP):
        top_dir = os.path.join(dest, "pkg%02d" % top)
        os.makedirs(top_dir)
        with open(os.path.join(top_dir, "__init__.py"), "w") as handle:
            handle.write('"""Synthetic package %d."""\n' % top)
        for sub in range(SYNTHETIC_SUB):
            sub_dir = os.path.join(top_dir, "sub%02d" % sub)
            os.makedirs(sub_dir)
            package = "pkg%02d.sub%02d" % (top, sub)
            with open(os.path.join(sub_dir, "__init__.py"), "w") as handle:
                handle.write('"""Synthetic package %s."""\n' % package)
            for index in range(SYNTHETIC_MODULES_PER_PACKAGE):
                with open(os.path.join(sub_dir, "m%03d.py" % index), "w") as handle:
                    handle.write(_module_text(rng, package, index))
    return dest


def python_sources(tree):
    found = []
    for directory, subdirs, files in os.walk(tree):
        subdirs[:] = sorted(d for d in subdirs if d != "__pycache__")
        found.extend(os.path.join(directory, f) for f in sorted(files) if f.endswith(".py"))
    return found


def tree_stats(tree):
    """Counts of .py sources, their lines and bytes, and directories."""
    sources = python_sources(tree)
    lines = size = 0
    for path in sources:
        with open(path, "rb") as handle:
            data = handle.read()
        size += len(data)
        lines += data.count(b"\n")
    dirs = sum(1 for _walked in os.walk(tree))
    return {"sources": len(sources), "lines": lines, "bytes": size, "dirs": dirs}


def remove_caches(tree):
    """Deletes every __pycache__ below `tree` (the state before a cold compile)."""
    for directory, subdirs, _files in os.walk(tree):
        if "__pycache__" in subdirs:
            shutil.rmtree(os.path.join(directory, "__pycache__"))
            subdirs.remove("__pycache__")


class CodePush:
    """Changes 1% of the sources of a tree, a different edit every time it is applied.

    Every 100th source (in sorted order) gets a new last line, one byte longer than the
    previous push's, and an mtime at least one second after the previous push's: two
    pushes within the same second with the same size would leave a timestamp-based .pyc
    looking current (Python's own limit), and no tool would see the change."""

    def __init__(self, tree, percent=1):
        sources = python_sources(tree)
        step = max(1, int(round(100 / percent)))
        self.targets = sources[::step]
        self.originals = {}
        for path in self.targets:
            with open(path, "rb") as handle:
                self.originals[path] = handle.read()
        self.count = 0
        self.mtime = 0

    def __call__(self):
        self.count += 1
        self.mtime = max(int(time.time()), self.mtime + 1)
        line = b"# push %d %s\n" % (self.count, b"." * self.count)
        for path in self.targets:
            with open(path, "wb") as handle:
                handle.write(self.originals[path] + line)
            os.utime(path, (self.mtime, self.mtime))


# --- B0: the example application, extended ------------------------------------------------

def _app_module_text(rng, index, functions):
    lines = ['"""Report helpers, part %d (generated for the B0 benchmark)."""' % index,
             "import re", "from collections import OrderedDict", "",
             "PATTERN = re.compile(r'^[a-z]+-%d$')" % index, "",
             "TABLE = OrderedDict([%s])" % ", ".join("(%r, %d)" % ("k%d" % k, rng.randint(0, 999))
                                                     for k in range(12)), "", ""]
    for number in range(functions):
        lines += [
            "def transform_%d(rows, scale=%d):" % (number, rng.randint(1, 9)),
            '    """Scales, filters and totals a list of (name, value) rows."""',
            "    result = []",
            "    for name, value in rows:",
            "        if PATTERN.match(name) or value %% %d == 0:" % rng.randint(2, 7),
            "            result.append((name.upper(), value * scale))",
            "        elif value > TABLE.get(name, %d):" % rng.randint(0, 500),
            "            result.append((name, value - scale))",
            "        else:",
            "            result.append((name, {'v': value, 's': scale, 'n': len(name)}))",
            "    return result",
            "",
            "",
        ]
    lines += ["class Report%d(object):" % index,
              "    def __init__(self, rows):", "        self.rows = list(rows)", "",
              "    def total(self):",
              "        return sum(v for _, v in self.rows if isinstance(v, int))", ""]
    return "\n".join(lines) + "\n"


B0_ENTRY = '''#!/usr/bin/python3
"""B0 entry script: the example application with a few thousand lines of imported code."""
import cgiapp.main
import cgireports

if __name__ == "__main__":
    cgiapp.main.run()
'''


def build_b0_app(example_app, dest, modules=24, functions=12):
    """Copies the example application to `dest` and adds the `cgireports` package
    (`modules` modules of about 160 lines each) that its entry script `bench.py` imports."""
    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(example_app, dest, ignore=shutil.ignore_patterns("__pycache__"))
    rng = random.Random(6)
    package = os.path.join(dest, "cgireports")
    os.makedirs(package)
    names = []
    for index in range(modules):
        names.append("part%02d" % index)
        with open(os.path.join(package, "part%02d.py" % index), "w") as handle:
            handle.write(_app_module_text(rng, index, functions))
    with open(os.path.join(package, "__init__.py"), "w") as handle:
        handle.write('"""Generated report helpers."""\n')
        for name in names:
            handle.write("from cgireports import %s\n" % name)
    entry = os.path.join(dest, "bench.py")
    with open(entry, "w") as handle:
        handle.write(B0_ENTRY)
    os.chmod(entry, 0o755)
    return entry
