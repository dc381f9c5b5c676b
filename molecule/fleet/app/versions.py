#!/usr/bin/python3
"""Prints the VERSION of every module of the liveapp package: a page of one release only."""
import importlib

NAMES = ["m%02d" % number for number in range(12)]
modules = [importlib.import_module("liveapp." + name) for name in NAMES]
print("Content-Type: text/plain")
print()
for name, module in zip(NAMES, modules):
    print(name, module.VERSION)
print("end of page")
