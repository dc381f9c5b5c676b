"""Live traffic around an action: load generators inside containers request URLs on each
container's loopback while the test runs a deploy, a reload or anything else, and every response
is recorded (status, whether the page was complete, the version it printed, its duration).

    load = Traffic(container, "http://localhost/cgi-bin/hello.py", version=r"application (\\S+) on")
    run, summary, ended = under_traffic(load, lambda: container.run_site(variables))
    print(summary.describe("code push", {"1.0": "old", "1.1": "new"}))

Several containers at once (a fleet) take a list of Traffic and get a list of summaries. The
generator itself is tests/harness/traffic_agent.py (standard library only), copied into each
container; the judging (which versions may answer, and when) is the test's.
"""
import collections
import json
import os
import time

from harness.podman import podman

AGENT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "traffic_agent.py")
# Where the agent lives in a container; a driver running there can import it from this directory.
AGENT_DIR = "/usr/local/lib/pycgi-test"
AGENT_PATH = AGENT_DIR + "/traffic_agent.py"

# One recorded response (tests/harness/traffic_agent.py describes the fields); `version` is the
# string the page printed (None when it printed none), `url` the URL requested, `tail` None for a
# good response and the end of the body for any other.
_Response = collections.namedtuple("_Response", "start end status complete version elapsed url tail")


class Response(_Response):
    __slots__ = ()

    @property
    def good(self):
        """A complete 200 page that printed a version (when the generator looks for one)."""
        return self.tail is None


class Summary:
    """What one load generator recorded."""

    def __init__(self, data):
        versions, urls = data["versions"], data["urls"]
        self.records = [Response(start, end, status, complete, None if index is None else versions[index], elapsed,
                                 urls[url], tail)
                        for start, end, status, complete, index, elapsed, url, tail in data["records"]]
        self.seconds = data["seconds"]
        self.urls = urls

    @property
    def served(self):
        """How many requests got a response (of any kind)."""
        return len(self.records)

    @property
    def failed(self):
        """The responses that are not good: another status, an incomplete page, no version."""
        return [r for r in self.records if not r.good]

    @property
    def slowest(self):
        return max((r.elapsed for r in self.records), default=None)

    @property
    def versions(self):
        """How many responses printed each version (None: printed none)."""
        return collections.Counter(r.version for r in self.records)

    def kinds(self, expected):
        """Each response's kind: "failed" when it is not good, else the label ``expected`` gives
        its version ({version: label}), or "mixed or other" for a version it does not know."""
        return ["failed" if not r.good else expected.get(r.version, "mixed or other") for r in self.records]

    def started_after(self, moment):
        """The responses to requests started after ``moment`` (time.time())."""
        return [r for r in self.records if r.start > moment]

    def ended_after(self, moment):
        """The responses that ended after ``moment`` (time.time())."""
        return [r for r in self.records if r.end > moment]

    def describe(self, label, expected=None):
        """One line with the numbers: requests served, failed, mixed (good responses of a version
        ``expected`` does not name; only with ``expected``), the slowest, and the responses of
        each kind (with ``expected``) or version (without; only how many versions past eight)."""
        text = "%s: %d requests served, %d failed" % (label, self.served, len(self.failed))
        if expected is None:
            counts = dict(self.versions)
            if len(counts) > 8:
                counts = "%d versions" % len(counts)
        else:
            kinds = self.kinds(expected)
            counts = dict((kind, kinds.count(kind)) for kind in sorted(set(kinds)))
            text += ", %d mixed" % counts.get("mixed or other", 0)
        slowest = self.slowest
        text += ", slowest %s, %s, %.1f s of traffic" % ("-" if slowest is None else "%.3f s" % slowest, counts,
                                                         self.seconds)
        return text


def install_agent(container):
    """Copies the agent into the container (once); returns its path there."""
    if container.exec("test", "-e", AGENT_PATH, check=False).returncode != 0:
        container.copy_in(AGENT, AGENT_PATH)
    return AGENT_PATH


class Traffic:
    """One load generator in one container, requesting ``urls`` (one URL or a list, in turn) from
    ``threads`` threads, each resting ``pause`` seconds between requests (so that the action is
    not starved of CPU), at most ``max_requests`` requests or ``max_seconds``. ``version`` is a
    regular expression for the version a page prints, ``end`` the text a complete page ends with."""

    def __init__(self, container, urls, version=None, end=None, threads=2, pause=0.05, max_requests=1500,
                 max_seconds=90, started_after=3):
        self.container = container
        self.settings = {"urls": [urls] if isinstance(urls, str) else list(urls), "version": version, "end": end,
                         "threads": threads, "pause": pause, "max_requests": max_requests,
                         "max_seconds": max_seconds, "started_after": started_after}
        self.run_dir = None

    def start(self, timeout=30):
        """Starts the generator (detached) and waits until it has its first responses."""
        agent = install_agent(self.container)
        self.run_dir = "/tmp/load-%d" % time.monotonic_ns()
        self.container.exec("mkdir", "-p", self.run_dir)
        settings = dict(self.settings, stop_file=self.run_dir + "/stop", started_file=self.run_dir + "/started",
                        out_file=self.run_dir + "/summary.json")
        podman("exec", "-d", self.container.name, "python3", agent, json.dumps(settings))
        deadline = time.monotonic() + timeout
        while self.container.exec("test", "-e", settings["started_file"], check=False).returncode != 0:
            assert time.monotonic() < deadline, "the load generator in %s did not get going" % self.container.name
            time.sleep(0.1)

    def signal_stop(self):
        self.container.exec("touch", self.run_dir + "/stop")

    def collect(self):
        """Waits for the generator's summary (it stops at the stop file or its own bounds)."""
        out = self.run_dir + "/summary.json"
        deadline = time.monotonic() + self.settings["max_seconds"] + 40
        while self.container.exec("test", "-e", out, check=False).returncode != 0:
            assert time.monotonic() < deadline, "the load generator in %s did not finish" % self.container.name
            time.sleep(0.2)
        return Summary(json.loads(self.container.read_file(out)))

    def stop(self):
        """Stops the generator; returns its Summary."""
        self.signal_stop()
        return self.collect()


def under_traffic(loads, action, settle=2.0):
    """Runs ``action()`` while the load generators ``loads`` (a Traffic, or a list of them for
    several containers) request their URLs; lets them go on ``settle`` seconds against what the
    action left, then stops them. Returns (the action's result, the Summary, or the list of them,
    the time.time() at which the action ended)."""
    many = isinstance(loads, (list, tuple))
    loads = list(loads) if many else [loads]
    started = []
    try:
        for load in loads:
            load.start()
            started.append(load)
        result = action()
        ended = time.time()
        time.sleep(settle)
    finally:
        for load in started:
            load.signal_stop()
    summaries = [load.collect() for load in loads]
    return result, (summaries if many else summaries[0]), ended
