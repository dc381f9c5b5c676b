"""Times a module's domain code alone: its module_utils entry point, called in-process.

    python3 entry_point.py RUNTIME_DIR precompile|pycache_owner JSON_ARGS

Prints {"seconds": ..., "stats": ...}: the time of the call only (no interpreter start, no
Ansible import), to set beside the floor walk's own in-process time. Standard library only.
"""
import json
import sys
import time


def main(argv):
    runtime, module, args = argv[1], argv[2], json.loads(argv[3])
    sys.path.insert(0, runtime)
    if module == "precompile":
        from ansible_collections.pycgi.hosting.plugins.module_utils._precompile import precompile
        start = time.perf_counter()
        result = precompile(args["path"], interpreters=args.get("interpreters"))
        seconds = time.perf_counter() - start
        stats = result["stats"]
    elif module == "pycache_owner":
        from ansible_collections.pycgi.hosting.plugins.module_utils import _ownership
        uid, gid = _ownership.resolve_user(args["owner"]), _ownership.resolve_group(args["group"])
        start = time.perf_counter()
        report = _ownership.fix_ownership(args["path"], uid, gid, scope=args.get("scope", "pycache"))
        seconds = time.perf_counter() - start
        stats = {"examined": report.examined, "changed": len(report.changes)}
    else:
        raise SystemExit("unknown module %s" % module)
    print(json.dumps({"seconds": seconds, "stats": stats}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
