"""The data the page shows: a small, fixed rack inventory and its totals."""
from collections import OrderedDict

_INVENTORY = (
    ("web-01", "server", "r1", 310),
    ("web-02", "server", "r1", 305),
    ("db-01", "server", "r2", 520),
    ("sw-core", "switch", "r1", 150),
    ("sw-edge", "switch", "r2", 90),
    ("ups-a", "power", "r1", 45),
    ("ups-b", "power", "r2", 45),
)


def load_inventory():
    return [dict(zip(("name", "kind", "rack", "watts"), row)) for row in _INVENTORY]


def summarize(items, group_by="kind"):
    totals = OrderedDict()
    for item in items:
        group = totals.setdefault(item[group_by], {"count": 0, "watts": 0})
        group["count"] += 1
        group["watts"] += item["watts"]
    return totals
