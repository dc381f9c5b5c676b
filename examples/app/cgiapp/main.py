"""Request handling: read the CGI environment, build the page, write the response."""
import os
import sys

from cgiapp import __version__
from cgiapp.inventory import load_inventory, summarize
from cgiapp.render import html_page, table


def cache_report():
    """Which of the application's modules were loaded from a bytecode cache."""
    rows = []
    for name in sorted(sys.modules):
        if name == "cgiapp" or name.startswith("cgiapp."):
            module = sys.modules[name]
            cached = getattr(module, "__cached__", None)
            rows.append((name, "yes" if cached and os.path.exists(cached) else "no"))
    return rows


def run(environ=None, out=None):
    environ = os.environ if environ is None else environ
    out = sys.stdout if out is None else out
    query = environ.get("QUERY_STRING", "")
    items = load_inventory()
    totals = summarize(items, group_by="rack" if "by=rack" in query else "kind")
    body = [
        "<p>pycgi example application %s on Python %d.%d</p>" % ((__version__,) + sys.version_info[:2]),
        table(("group", "items", "watts"), [(k, v["count"], v["watts"]) for k, v in sorted(totals.items())]),
        table(("module", "from cache"), cache_report()),
    ]
    out.write("Content-Type: text/html; charset=utf-8\r\n\r\n")
    out.write(html_page("Rack inventory", "\n".join(body)))
    out.flush()
