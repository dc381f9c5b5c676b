"""benchmarks/results/latest.md and latest.png from the results document."""
import math
import textwrap

ORDER = ("B0", "B1", "B2", "B3", "B4", "B5", "B6")
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
            out.append("| %s | %s | %s | %s | %s |" % (bid, ratio["label"], fmt_ratio(ratio["value"]),
                                                        target_text(ratio), verdict(ratio)))
        for check in bench.get("checks", []):
            out.append("| %s | %s | %s | %s | %s |" % (bid, check["label"], check["value"], "" if check.get("informative") else "yes",
                                                        "informative" if check.get("informative") else
                                                        ("**met**" if check["met"] else "**missed**")))
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
            out.append("| %s | %s / %s | %s | %s | %s |" % (ratio["label"], ratio["numerator"], ratio["denominator"],
                                                             fmt_ratio(ratio["value"]), target_text(ratio), verdict(ratio)))
        if bench["facts"]:
            out += [""] + ["- %s: %s" % item for item in bench["facts"].items()]
        if bench["notes"]:
            out += [""] + bench["notes"]
        out.append("")
    with open(path, "w") as handle:
        handle.write("\n".join(out).rstrip() + "\n")


def _short(label):
    return "\n".join(textwrap.wrap(label, 24))


def write_chart(document, path):
    """One panel per benchmark: a bar per ratio (green met, red missed, grey informative),
    the target drawn as a dashed line, each panel in its own units of 'times'."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    benches = [document["benches"][b] for b in ORDER if b in document["benches"]]
    columns = 4
    rows = max(1, int(math.ceil(len(benches) / float(columns))))
    fig, axes = plt.subplots(rows, columns, figsize=(5.2 * columns, 5.6 * rows), squeeze=False)
    for ax in axes.flat[len(benches):]:
        ax.axis("off")
    for ax, bench in zip(axes.flat, benches):
        title = "%s: %s" % (bench["id"], bench["title"])
        ax.set_title("\n".join(textwrap.wrap(title, 44)), fontsize=10, fontweight="bold", loc="left")
        if bench["skipped"]:
            ax.text(0.5, 0.5, "\n".join(textwrap.wrap(bench["skipped"], 40)), ha="center", va="center",
                    fontsize=9, transform=ax.transAxes)
            ax.set_xticks([])
            ax.set_yticks([])
            continue
        ratios = bench["ratios"]
        values = [r["value"] for r in ratios]
        colors = [INFO if r["op"] is None else (MET if r["met"] else MISSED) for r in ratios]
        positions = range(len(ratios))
        bars = ax.bar(positions, values, color=colors, width=0.7)
        for bar, ratio in zip(bars, ratios):
            ax.annotate(fmt_ratio(ratio["value"]), (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                        ha="center", va="bottom", fontsize=8, xytext=(0, 2), textcoords="offset points")
            if ratio["op"] is not None:
                left, right = bar.get_x() - 0.08, bar.get_x() + bar.get_width() + 0.08
                ax.plot([left, right], [ratio["target"]] * 2, color="black", linestyle="--", linewidth=1.3)
                ax.annotate("target %s" % target_text(ratio), (right, ratio["target"]), fontsize=7,
                            va="bottom", ha="right", xytext=(0, 2), textcoords="offset points")
        top = max(values + [r["target"] for r in ratios if r["target"]])
        ax.set_ylim(0, top * 1.22)
        ax.set_xticks(list(positions))
        ax.set_xticklabels([_short(r["label"]) for r in ratios], fontsize=6.5, rotation=0)
        ax.set_ylabel("ratio of medians (×)", fontsize=8)
        ax.tick_params(axis="y", labelsize=8)
        ax.grid(axis="y", alpha=0.3)
        checks = [c for c in bench.get("checks", []) if not c.get("informative")]
        if checks:
            text = "; ".join("%s: %s" % (c["label"], "yes" if c["met"] else "NO (%s)" % c["value"]) for c in checks)
            ax.text(0.02, 0.97, "\n".join(textwrap.wrap(text, 48)), transform=ax.transAxes, fontsize=7.5,
                    va="top", color=MET if all(c["met"] for c in checks) else MISSED)
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in (MET, MISSED, INFO)]
    handles.append(plt.Line2D([0], [0], color="black", linestyle="--"))
    fig.legend(handles, ["target met", "target missed", "informative (no target)", "target"],
               loc="lower right", ncol=4, fontsize=9, frameon=False)
    machine = document["run"]["machine"]
    fig.suptitle("pycgi.hosting benchmarks, %s: each bar is a ratio of medians from the same run "
                 "(≤ targets: lower is better; ≥ targets: higher is better)\n%s; %s"
                 % (machine["date"], machine["cpu"], machine["target interpreter"]), fontsize=11)
    fig.tight_layout(rect=(0, 0.03, 1, 0.94))
    fig.savefig(path, dpi=110)
    plt.close(fig)
