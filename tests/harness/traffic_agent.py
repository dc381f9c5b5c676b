"""The load generator that runs inside a container (standard library only): threads request URLs
on the container's own network until told to stop, and every response is recorded.

tests/harness/traffic.py copies this file into the container and drives it from the tests; a
driver that must react to responses as they come (tests/container/test_reload_under_traffic.py)
imports it in the container and uses LoadGenerator directly.

Each response is recorded as [start, end, status, complete, version, elapsed, url, tail]: its
start and end (wall clock), the HTTP status (0 when nothing answered), whether the body ended
with the `end` marker, the version the body printed (an index into the summary's `versions`,
None when it printed none), the seconds it took, the URL (an index into `urls`) and None for a
good response, the end of its body for any other. The version of a body is every match of the
`version` pattern, each match's groups joined by "=", the matches joined by spaces. A response
is good when its status is 200, it is complete, and it printed a version (when a pattern is
given). The judging is the test's.
"""
import json
import os
import re
import sys
import threading
import time
import urllib.error
import urllib.request


class LoadGenerator:
    """Requests ``urls`` (in turn) from ``threads`` threads, each resting ``pause`` seconds after
    a response, until stop() is called, ``stop_file`` exists, ``max_requests`` were sent or
    ``max_seconds`` passed: bounded both ways, so an action that hangs cannot make it run on."""

    def __init__(self, urls, version=None, end=None, threads=2, pause=0.0, max_requests=1000, max_seconds=60.0,
                 stop_file=None, timeout=30.0):
        self.urls = list(urls)
        self.version = re.compile(version, re.M) if version else None
        self.end = end
        self.threads = threads
        self.pause = pause
        self.max_requests = max_requests
        self.max_seconds = max_seconds
        self.stop_file = stop_file
        self.timeout = timeout
        self.records = []
        self.versions = {}
        self._sent = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._pool = []
        self._t0 = None
        self._seconds = None

    def start(self):
        self._t0 = time.monotonic()
        self._pool = [threading.Thread(target=self._worker) for _index in range(self.threads)]
        for thread in self._pool:
            thread.start()

    def stop(self):
        """Stops the threads (each finishes its request) and waits for them."""
        self._stop.set()
        self.join()

    def join(self):
        for thread in self._pool:
            thread.join()
        if self._seconds is None:
            self._seconds = time.monotonic() - self._t0

    def wait_for(self, count, timeout):
        """Waits until ``count`` responses were recorded; False when ``timeout`` passed first."""
        deadline = time.monotonic() + timeout
        while len(self.records) < count:
            if time.monotonic() > deadline or not any(t.is_alive() for t in self._pool):
                return len(self.records) >= count
            time.sleep(0.02)
        return True

    def elapsed(self):
        return time.monotonic() - self._t0

    def seen(self, version):
        """Whether a response printed this version."""
        return version in self.versions

    def summary(self):
        with self._lock:
            versions = sorted(self.versions, key=self.versions.get)
            return {"records": list(self.records), "versions": versions, "urls": self.urls,
                    "seconds": self._seconds if self._seconds is not None else self.elapsed()}

    def _done(self):
        return (self._stop.is_set() or time.monotonic() - self._t0 > self.max_seconds
                or (self.stop_file is not None and os.path.exists(self.stop_file)))

    def _worker(self):
        while True:
            with self._lock:
                if self._sent >= self.max_requests:
                    return
                url_index = self._sent % len(self.urls)
                self._sent += 1
            if self._done():
                return
            self._request(url_index)
            if self.pause:
                time.sleep(self.pause)

    def _request(self, url_index):
        start, begin = time.time(), time.monotonic()
        try:
            with urllib.request.urlopen(self.urls[url_index], timeout=self.timeout) as response:
                status, body = response.status, response.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as exc:
            status, body = exc.code, exc.read().decode("utf-8", "replace")
        except Exception as exc:  # a refused or reset connection is a response too: status 0
            status, body = 0, repr(exc)
        elapsed = time.monotonic() - begin
        complete = self.end is None or body.rstrip().endswith(self.end)
        version = None
        if self.version is not None:
            found = ["=".join(match) if isinstance(match, tuple) else match for match in self.version.findall(body)]
            version = " ".join(found) if found else None
        good = status == 200 and complete and (self.version is None or version is not None)
        with self._lock:
            index = None if version is None else self.versions.setdefault(version, len(self.versions))
            self.records.append([start, time.time(), status, complete, index, elapsed, url_index,
                                 None if good else body[-400:]])


def main(argv):
    """Runs a LoadGenerator from a JSON object of its settings plus `started_file` (created once
    `started_after` responses were recorded) and `out_file` (the summary, written at the end by
    a rename, so that it is whole once it exists)."""
    settings = json.loads(argv[1])
    started_file, started_after = settings.pop("started_file"), settings.pop("started_after", 3)
    out_file = settings.pop("out_file")
    load = LoadGenerator(**settings)
    load.start()
    if load.wait_for(started_after, load.max_seconds):
        open(started_file, "w").close()
    load.join()
    with open(out_file + ".tmp", "w") as handle:
        json.dump(load.summary(), handle)
    os.rename(out_file + ".tmp", out_file)


if __name__ == "__main__":
    main(sys.argv)
