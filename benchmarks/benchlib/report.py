"""benchmarks/results/latest.md and latest.png from the results document."""

ORDER = ("B0", "B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8")
MET, MISSED, INFO = "#2e7d32", "#c62828", "#9e9e9e"


def fmt_seconds(value):
    if value >= 10:
        return "%.1f s" % value
    if value >= 1:
        return "%.2f s" % value
    return "%.0f ms" % (value * 1000) if value >= 0.01 else "%.1f ms" % (value * 1000)


def fmt_ratio(value):
    return "%.2f×" % value if value < 10 else "%.1f×" % value


def verdict(ratio):
    if ratio["op"] is None:
        return "informative"
    return "**met**" if ratio["met"] else "**missed**"


def target_text(ratio):
    return "" if ratio["op"] is None else "%s %s×" % ("≤" if ratio["op"] == "<=" else "≥", ("%g" % ratio["target"]))


def write_markdown(document, path):
    run, benches = document["run"], document["benches"]
    out = ["# pycgi.hosting benchmarks: latest results", "",
           "Written by `make bench` (`benchmarks/run.py`); how to read it: [../README.md](../README.md).",
           "Ratios compare medians measured in the same run, the compared commands interleaved.", ""]
    out += ["## Machine", "", "| | |", "|---|---|"]
    for key, value in run["machine"].items():
        out.append("| %s | %s |" % (key, value))
    out.append("| mode | %s (rounds: %s), whole run %.0f s |" % (
        run["mode"], ", ".join("%s %d" % kv for kv in sorted(run["rounds"].items())), run["duration"]))
    out += ["", "## Trees", "", "| tree | Python sources | lines | bytes | directories |", "|---|---:|---:|---:|---:|"]
    for name, info in run["trees"].items():
        out.append("| %s | %d | %d | %d | %d |" % (name, info["sources"], info["lines"], info["bytes"], info["dirs"]))
    out += ["", "django: Django's source distribution from PyPI (package, tests, scripts; one test file holds a "
            "deliberate syntax error, so every tool reports one error on it). synthetic: 10,000 generated "
            "modules in 100 nested packages.", ""]

    out += ["## Summary", "", "| id | ratio (medians) | measured | target | result |", "|---|---|---:|---:|---|"]
    for bid in ORDER:
        bench = benches.get(bid)
        if not bench:
            continue
        if bench["skipped"]:
            out.append("| %s | %s | | | |" % (bid, bench["skipped"]))
            continue
        for ratio in bench["ratios"]:
            out.append("| %s | %s | %s | %s | %s |"
                       % (bid, ratio["label"], fmt_ratio(ratio["value"]), target_text(ratio), verdict(ratio)))
        for check in bench.get("checks", []):
            informative = check.get("informative")
            result = "informative" if informative else ("**met**" if check["met"] else "**missed**")
            out.append("| %s | %s | %s | %s | %s |"
                       % (bid, check["label"], check["value"], "" if informative else "yes", result))
    out.append("")

    for bid in ORDER:
        bench = benches.get(bid)
        if not bench:
            continue
        out += ["## %s: %s" % (bid, bench["title"] or "")]
        if bench["skipped"]:
            out += ["", bench["skipped"], ""] + bench["notes"] + [""]
            continue
        out += ["", "Compared with: %s. Target: %s. Measured %s." % (bench["compared_with"], bench["target"],
                                                                     bench.get("run", "")), "",
                "| variant | median | min | max | runs |", "|---|---:|---:|---:|---:|"]
        for key, stats in bench["times"].items():
            out.append("| %s | %s | %s | %s | %d |" % (key, fmt_seconds(stats["median"]), fmt_seconds(stats["min"]),
                                                       fmt_seconds(stats["max"]), stats["n"]))
        out += ["", "| ratio | = median / median | measured | target | result |", "|---|---|---:|---:|---|"]
        for ratio in bench["ratios"]:
            out.append("| %s | %s / %s | %s | %s | %s |"
                       % (ratio["label"], ratio["numerator"], ratio["denominator"], fmt_ratio(ratio["value"]),
                          target_text(ratio), verdict(ratio)))
        if bench["facts"]:
            out += [""] + ["- %s: %s" % item for item in bench["facts"].items()]
        if bench["notes"]:
            out += [""] + bench["notes"]
        out.append("")
    with open(path, "w") as handle:
        handle.write("\n".join(out).rstrip() + "\n")


def _score(ratio):
    """How the measured ratio stands against its target: above 1 met (by that factor), below
    1 missed (by that factor), whichever way the target points."""
    if ratio["op"] == "<=":
        return ratio["target"] / ratio["value"]
    return ratio["value"] / ratio["target"]


def write_chart(document, path):
    """One horizontal bar per target of the suite, on one scale: the bar's length is how far
    the result is from its target (right of the line: met, by that factor; left: missed),
    the label gives the measured ratio and the target. Informative ratios stay in the table."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    rows = []  # (label, score or None, text, color)
    for bid in ORDER:
        bench = document["benches"].get(bid)
        if not bench:
            continue
        if bench["skipped"]:
            rows.append(("%s %s" % (bid, bench["title"] or ""), None, bench["skipped"], MISSED))
            continue
        for ratio in bench["ratios"]:
            if ratio["op"] is None:
                continue
            score = _score(ratio)
            rows.append(("%s %s" % (bid, ratio["label"]), score,
                         "%s (target %s)" % (fmt_ratio(ratio["value"]), target_text(ratio)),
                         MET if ratio["met"] else MISSED))
        for check in bench.get("checks", []):
            if not check.get("informative"):
                rows.append(("%s %s" % (bid, check["label"]), None,
                             ("yes (%s)" if check["met"] else "NO (%s)") % check["value"],
                             MET if check["met"] else MISSED))
    scores = [r[1] for r in rows if r[1]]
    low = min([0.4] + [x / 1.6 for x in scores])
    high = max([3.0] + [x * 1.6 for x in scores])
    fig, ax = plt.subplots(figsize=(13, 1.6 + 0.36 * len(rows)))
    positions = list(range(len(rows)))[::-1]
    for y, (label, score, text, color) in zip(positions, rows):
        if score is None:
            ax.annotate(text, (1.0, y), xytext=(8, 0), textcoords="offset points", va="center",
                        fontsize=9, color=color, fontweight="bold")
            continue
        left, width = (1.0, score - 1.0) if score >= 1 else (score, 1.0 - score)
        ax.barh(y, width, left=left, color=color, height=0.62)
        end = score
        ax.annotate(text, (end, y), xytext=(5 if score >= 1 else -5, 0), textcoords="offset points",
                    va="center", ha="left" if score >= 1 else "right", fontsize=8.5)
    ax.axvline(1.0, color="black", linewidth=1.4)
    ax.set_xscale("log")
    ax.set_xlim(low, high)
    ticks = [t for t in (0.25, 0.5, 1, 2, 4, 8, 16, 32) if low <= t <= high]
    ax.set_xticks(ticks)
    ax.set_xticklabels(["%g×" % t for t in ticks])
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel("result against its target (log scale): 1× = exactly on target", fontsize=9)
    ax.set_yticks(positions)
    ax.set_yticklabels([r[0] for r in rows], fontsize=8.5)
    ax.set_ylim(-0.7, len(rows) - 0.3)
    ax.grid(axis="x", alpha=0.3)
    ax.text(0.995, 1.005, "target met: better than needed by this factor  →", transform=ax.transAxes,
            ha="right", va="bottom", fontsize=9, color=MET)
    ax.text(0.005, 1.005, "←  target missed by this factor", transform=ax.transAxes,
            ha="left", va="bottom", fontsize=9, color=MISSED)
    # Separate the benchmarks with light lines.
    previous = None
    for y, row in zip(positions, rows):
        bid = row[0].split(" ", 1)[0]
        if previous is not None and bid != previous:
            ax.axhline(y + 0.5, color="#bbbbbb", linewidth=0.8)
        previous = bid
    machine = document["run"]["machine"]
    met = sum(1 for r in rows if r[3] == MET)
    ax.set_title("pycgi.hosting benchmarks, %s: %d of %d targets met\n"
                 "each bar: a ratio of medians from one run against its target (the line); "
                 "labels give the measured ratio\n%s; %s"
                 % (machine["date"], met, len(rows), machine["cpu"], machine["target interpreter"]),
                 fontsize=10, pad=18)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
