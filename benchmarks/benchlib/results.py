"""What a benchmark records: timings per variant, and ratios checked against targets."""
import statistics


def summary(times):
    return {"median": statistics.median(times), "min": min(times), "max": max(times), "n": len(times)}


class Bench:
    """One benchmark id (B0 ... B6): its timed variants and its ratios.

    Variants are keyed "group: name", the group being the tree or case (e.g. "django").
    A ratio divides the median of one variant by the median of another (or by the best of
    several: the alternative at its best); `op` is "<=" or ">=" against `target`."""

    def __init__(self, bid, title, compared_with, target_text):
        self.id = bid
        self.title = title
        self.compared_with = compared_with
        self.target_text = target_text
        self.times = {}
        self.ratios = []
        self.notes = []
        self.facts = {}
        self.skipped = None
        self.checks = []

    def add(self, group, times):
        for name, values in times.items():
            self.times["%s: %s" % (group, name) if group else name] = list(values)

    def median(self, key):
        return statistics.median(self.times[key])

    def ratio(self, label, numerator, denominator, op, target, scope=True):
        """Records median(numerator) / median(denominator); a list as denominator means the
        fastest of those variants. `scope` False marks an informative ratio (no target)."""
        if isinstance(denominator, (list, tuple)):
            best = min(denominator, key=self.median)
            den_value, den_key = self.median(best), best
        else:
            den_value, den_key = self.median(denominator), denominator
        value = self.median(numerator) / den_value
        entry = {"label": label, "numerator": numerator, "denominator": den_key,
                 "value": value, "op": op if scope else None, "target": target if scope else None}
        if scope:
            entry["met"] = value <= target if op == "<=" else value >= target
        self.ratios.append(entry)
        return entry

    def note(self, text):
        self.notes.append(text)

    def to_dict(self):
        return {"id": self.id, "title": self.title, "compared_with": self.compared_with,
                "target": self.target_text, "skipped": self.skipped, "facts": self.facts,
                "times": {k: {"values": v, **summary(v)} for k, v in self.times.items()},
                "ratios": self.ratios, "checks": self.checks, "notes": self.notes}
