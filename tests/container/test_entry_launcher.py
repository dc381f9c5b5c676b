"""pycgi.hosting.entry_launcher on a real Apache (Debian, mod_cgid) in a container.

A generated entry script of a few thousand lines answers real requests before and after its
code is moved into a module: status, the headers it sets and the body are byte-identical. The
request latency of the uncached script and of its launcher with a warm cache is measured with
interleaved requests and printed (run with -s to see it).
"""
import base64
import json
import statistics

import pytest

CGI = "/usr/lib/cgi-bin"
SCRIPT = CGI + "/report.py"
MODULE = CGI + "/_report_main.py"
# The same script, never split: the baseline measured in turn with the launcher.
PLAIN = CGI + "/report_plain.py"
# Split too, but its module is never compiled and the web server cannot write __pycache__
# (root-owned): the control that shows the gain comes from the cache, not from the split.
NOCACHE = CGI + "/report_nocache.py"
# The cost of starting Python for a CGI request at all.
HELLO = CGI + "/hello.py"
FUNCTIONS = 300
REQUESTS = 20


def entry_script(functions=FUNCTIONS):
    """A CGI script of about 11 lines per function, with a main guard, that reads the request."""
    lines = ['#!/usr/bin/python3', '"""A report page: one long entry script, as they grow."""',
             'import json', 'import os', 'import sys', '']
    for n in range(functions):
        lines += [
            "def rule_%04d(value, weight=%d):" % (n, n % 7 + 1),
            "    total = 0",
            "    for step in range(3):",
            "        total += (value * step + %d) %% (weight + 2)" % n,
            "    record = {'rule': 'rule_%04d', 'total': total, 'flags': [value %% 2 == 0, total > %d]}" % (n, n % 5),
            "    if record['flags'][1]:",
            "        return total * weight - %d" % (n % 3),
            "    elif value < 0:",
            "        raise ValueError('negative value for rule_%04d: %%r' %% value)" % n,
            "    return total",
            "",
        ]
    lines += [
        "RULES = [%s]" % ", ".join("rule_%04d" % n for n in range(functions)),
        "",
        "",
        "def main():",
        "    query = os.environ.get('QUERY_STRING', '')",
        "    posted = sys.stdin.read(int(os.environ.get('CONTENT_LENGTH') or 0))",
        "    seed = len(query) + len(posted)",
        "    scores = [rule(seed + i) for i, rule in enumerate(RULES)]",
        "    sys.stdout.write('Status: 200 OK\\r\\n')",
        "    sys.stdout.write('Content-Type: application/json; charset=utf-8\\r\\n')",
        "    sys.stdout.write('X-Report-Rules: %d\\r\\n' % len(RULES))",
        "    sys.stdout.write('X-Report-Score: %d\\r\\n\\r\\n' % sum(scores))",
        "    sys.stdout.write(json.dumps({'method': os.environ.get('REQUEST_METHOD'), 'query': query,",
        "                                 'posted': posted, 'scores': scores[:20], 'total': sum(scores)},",
        "                                sort_keys=True))",
        "",
        "",
        "if __name__ == '__main__':",
        "    main()",
        "",
    ]
    return "\n".join(lines)


HELLO_SCRIPT = "#!/usr/bin/python3\nprint('Content-Type: text/plain')\nprint()\nprint('hello')\n"

# Timed in the container, so podman's own overhead is not in the numbers.
TIMER = r"""
import json, sys, time, urllib.request
urls, rounds = sys.argv[2:], int(sys.argv[1])
times = {url: [] for url in urls}
for _ in range(rounds):
    for url in urls:
        start = time.perf_counter()
        with urllib.request.urlopen("http://localhost" + url) as response:
            response.read()
        times[url].append(time.perf_counter() - start)
print(json.dumps(times))
"""


APACHE_HEADERS = (b"date:", b"server:", b"transfer-encoding:", b"content-length:", b"connection:", b"keep-alive:")


def request(container, url, data=None):
    """(status line and the headers the script controls, body) of a real request, as bytes.

    Left out: the date, the server banner and the framing Apache picks by how the script's output
    reaches it (chunked or Content-Length, depending on timing); curl decodes either to the same
    body, which is compared whole."""
    argv = ["curl", "-s", "-i", "-o", "/tmp/response", "http://localhost" + url]
    if data is not None:
        argv += ["--data-binary", data]
    container.exec(*argv)
    raw = base64.b64decode(container.exec("base64", "-w0", "/tmp/response").stdout)
    head, _separator, body = raw.partition(b"\r\n\r\n")
    kept = [line for line in head.split(b"\r\n") if not line.lower().startswith(APACHE_HEADERS)]
    return kept, body


def requests(container):
    return [request(container, "/cgi-bin/report.py?year=2026&q=a%20b"),
            request(container, "/cgi-bin/report.py", data="posted=form&x=1")]


def sha256(container, path):
    return container.exec("sha256sum", path).stdout.split()[0]


def attributes(container, path):
    return container.exec("stat", "-c", "%U:%G %a", path).stdout.strip()


@pytest.fixture(scope="module")
def web(module_container):
    container = module_container
    script = entry_script()
    container.put_file(SCRIPT, script, mode=0o755)
    container.put_file(PLAIN, script, mode=0o755)
    container.put_file(NOCACHE, script, mode=0o755)
    container.put_file(HELLO, HELLO_SCRIPT, mode=0o755)
    container.exec("a2enmod", "cgid")
    container.exec("systemctl", "start", "apache2")
    return container


def test_split_keeps_every_request_byte_identical_and_can_be_undone(web):
    assert len(entry_script().splitlines()) > 3000
    before = requests(web)
    assert before[0][0][0] == b"HTTP/1.1 200 OK" and b"X-Report-Rules: %d" % FUNCTIONS in before[0][0], before[0][0]
    assert b'"method": "POST"' in before[1][1] and b'"query": "year=2026&q=a%20b"' in before[0][1]
    original = sha256(web, SCRIPT)

    checked = web.run_module("entry_launcher", dict(path=SCRIPT), check_mode=True)
    assert checked["changed"] is True and not checked["failed"], checked
    assert sha256(web, SCRIPT) == original

    result = web.run_module("entry_launcher", dict(path=SCRIPT))
    assert result["changed"] is True and not result["failed"], result
    assert result["module"] == MODULE
    assert web.run_module("entry_launcher", dict(path=SCRIPT))["changed"] is False
    assert len(web.read_file(SCRIPT).splitlines()) < 15
    assert attributes(web, SCRIPT) == "root:root 755" and attributes(web, MODULE) == "root:root 644"

    assert requests(web) == before
    # Read-only caches made at deploy time, as the role's readonly mode does.
    web.exec("python3", "-m", "py_compile", MODULE)
    assert requests(web) == before

    back = web.run_module("entry_launcher", dict(path=SCRIPT, state="absent"))
    assert back["changed"] is True and not back["failed"], back
    assert sha256(web, SCRIPT) == original
    assert web.exec("ls", CGI + "/__pycache__").stdout.split() == []
    assert requests(web) == before


def test_the_web_server_user_loads_the_module_from_its_cache(web):
    assert web.run_module("entry_launcher", dict(path=SCRIPT))["changed"] is True
    web.exec("python3", "-m", "py_compile", MODULE)
    pyc = CGI + "/__pycache__/_report_main.cpython-311.pyc"
    assert attributes(web, pyc) == "root:root 644"
    run = web.exec("python3", "-v", SCRIPT, user="www-data", env={"QUERY_STRING": "x=1"}, workdir=CGI)
    assert "# code object from '%s'" % pyc in run.stderr
    assert "X-Report-Rules: %d" % FUNCTIONS in run.stdout


def test_latency_before_and_after(web):
    """Median request latency: the uncached entry script against its launcher with a warm cache."""
    if web.run_module("entry_launcher", dict(path=SCRIPT))["changed"]:
        web.exec("python3", "-m", "py_compile", MODULE)
    assert web.run_module("entry_launcher", dict(path=NOCACHE))["changed"] is True
    assert attributes(web, CGI + "/__pycache__") == "root:root 755"
    urls = {"hello (Python start-up floor)": "/cgi-bin/hello.py",
            "entry script, uncached (before)": "/cgi-bin/report_plain.py",
            "launcher, warm cache (after)": "/cgi-bin/report.py",
            "launcher, no cache (control)": "/cgi-bin/report_nocache.py"}
    # Two warm-up rounds (Apache's cgid daemon, the page cache), then interleaved rounds.
    web.exec("python3", "-c", TIMER, "2", *urls.values())
    times = json.loads(web.exec("python3", "-c", TIMER, str(REQUESTS), *urls.values()).stdout)
    medians = {label: statistics.median(times[url]) * 1000 for label, url in urls.items()}
    lines = ["%-35s median %6.1f ms  (min %.1f, max %.1f, n=%d)" % (
        label, medians[label], min(times[url]) * 1000, max(times[url]) * 1000, len(times[url]))
        for label, url in urls.items()]
    print("\nentry_launcher latency, %d-line entry script, Apache mod_cgid, Python 3.11:\n%s" % (
        len(entry_script().splitlines()), "\n".join(lines)))
    before = medians["entry script, uncached (before)"]
    after = medians["launcher, warm cache (after)"]
    floor = medians["hello (Python start-up floor)"]
    control = medians["launcher, no cache (control)"]
    print("after/before %.2f; above the start-up floor: before %.1f ms, after %.1f ms" % (
        after / before, before - floor, after - floor))
    assert floor < after < 0.8 * before, medians
    assert after < 0.8 * control, medians
    assert not [n for n in web.exec("ls", CGI + "/__pycache__").stdout.split() if "nocache" in n]
