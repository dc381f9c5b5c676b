"""Before and after: the ratios and medians two `make bench` runs have in common.

    python benchmarks/compare.py BEFORE.json AFTER.json [--title TEXT] [--out FILE.md]

Each run's ratios come from its own interleaved measurements, so comparing a ratio across two
runs is fair where comparing absolute times is not (the machine's load differs between runs);
the medians are listed too, for the variants whose own time changed.
"""
import argparse
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from benchlib.report import ORDER, fmt_ratio, fmt_seconds, target_text  # noqa: E402


def load(path):
    with open(path) as handle:
        return json.load(handle)


def result(ratio):
    if ratio.get("op") is None:
        return "informative"
    return "met" if ratio["met"] else "missed"


def compare(before, after, title):
    out = ["# %s" % title, "",
           "Before: `make bench` of %s; after: of %s (same machine, %s). Ratios compare medians of the "
           "same run; medians across runs drift with the machine's load."
           % (before["run"]["machine"]["date"], after["run"]["machine"]["date"], after["run"]["machine"]["cpu"]), "",
           "## Ratios", "", "| id | ratio | before | after | target | before → after |", "|---|---|---:|---:|---:|---|"]
    for bid in ORDER:
        old, new = before["benches"].get(bid), after["benches"].get(bid)
        if not old or not new or old.get("skipped") or new.get("skipped"):
            continue
        previous = {r["label"]: r for r in old["ratios"]}
        for ratio in new["ratios"]:
            was = previous.get(ratio["label"])
            if was is None:
                continue
            out.append("| %s | %s | %s | %s | %s | %s → %s |" % (
                bid, ratio["label"], fmt_ratio(was["value"]), fmt_ratio(ratio["value"]), target_text(ratio),
                result(was), result(ratio)))
    out += ["", "## Medians of the collection's own variants", "",
            "| id | variant | before | after | after / before |", "|---|---|---:|---:|---:|"]
    for bid in ORDER:
        old, new = before["benches"].get(bid), after["benches"].get(bid)
        if not old or not new or old.get("skipped") or new.get("skipped"):
            continue
        for name, times in new["times"].items():
            was = old["times"].get(name)
            if was is None or not own_variant(name):
                continue
            out.append("| %s | %s | %s | %s | %.2f |" % (
                bid, name, fmt_seconds(was["median"]), fmt_seconds(times["median"]), times["median"] / was["median"]))
    return "\n".join(out) + "\n"


def own_variant(name):
    """The variants that run the collection's code (not compileall, chown, find or the recipe)."""
    return any(word in name for word in ("precompile", "pycache_owner", "fix_ownership", "module", "entry point",
                                         "site.yml", "cached (Apache)"))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before")
    parser.add_argument("after")
    parser.add_argument("--title", default="pycgi.hosting benchmarks: before and after")
    parser.add_argument("--out")
    args = parser.parse_args(argv)
    text = compare(load(args.before), load(args.after), args.title)
    if args.out:
        with open(args.out, "w") as handle:
            handle.write(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
