"""The floor of a no-change re-run: the least any tool must do to know a tree is current.

Walks the tree once, stats every `.py` source and reads the 16-byte header of its `.pyc`
for this interpreter (magic number, flags, source mtime and size). Nothing else: no
options, no reporting, no pruning. With --compile it also compiles the sources whose header
does not match (the reference for a code push: this walk plus compiling the changed files).

Run it with the interpreter being compared: python3 floor.py [--compile] TREE
Prints the number of stale sources and the walk's own time (without the interpreter's start).
"""
import importlib.util
import os
import py_compile
import struct
import sys
import time

MAGIC = importlib.util.MAGIC_NUMBER
TAG = sys.implementation.cache_tag


def stale_sources(tree):
    sources = stale = 0
    for directory, subdirs, files in os.walk(tree):
        if "__pycache__" in subdirs:
            subdirs.remove("__pycache__")
        for name in files:
            if not name.endswith(".py"):
                continue
            sources += 1
            source = os.path.join(directory, name)
            st = os.stat(source)
            cached = os.path.join(directory, "__pycache__", "%s.%s.pyc" % (name[:-3], TAG))
            try:
                with open(cached, "rb") as handle:
                    header = handle.read(16)
            except OSError:
                header = b""
            current = (len(header) == 16 and header[:4] == MAGIC
                       and struct.unpack("<III", header[4:16]) == (0, int(st.st_mtime) & 0xFFFFFFFF,
                                                                   st.st_size & 0xFFFFFFFF))
            if not current:
                stale += 1
                yield source
    sys.stderr.write("%d sources\n" % sources)


def main(argv):
    start = time.perf_counter()
    compile_stale = "--compile" in argv
    tree = [a for a in argv[1:] if not a.startswith("--")][0]
    stale = 0
    for source in stale_sources(tree):
        stale += 1
        if compile_stale:
            try:
                py_compile.compile(source, doraise=True)
            except py_compile.PyCompileError:
                pass
    print("%d stale" % stale)
    print("in-process %.6f" % (time.perf_counter() - start))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
