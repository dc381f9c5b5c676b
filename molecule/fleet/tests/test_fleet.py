"""The fleet: eight web servers in two inventory groups (web_a, web_b), the collection's one play
(site.yml) run against them the way a fleet user runs it, and the release each host serves
checked from outside, over HTTP from the controller to the container's address.

Run by the scenario's verify step (`make fleet`), after converge deployed the application's
first release (every module at version 1) on every host. The tests run in file order, each
starting where the one before ended:

1. a release rolled out four hosts at a time (pycgi_serial=4) while a load generator in every
   host requests the application: no failed and no mixed-version response, every host on the
   new release, and a re-run changes nothing;
2. one host's releases file system full (its tmpfs filled) before a push in batches of four with
   the default pycgi_max_fail_percentage (0): the rollout stops after that host's batch, the
   host keeps serving its old release (under traffic, every response of it is the old one), the
   other hosts of its batch serve the new one, the hosts of the batch not reached keep the old
   one, and the play says in one line which host failed, at which step and why;
3. the same host still broken, the push again with pycgi_max_fail_percentage=25: the rollout
   goes on past it, the hosts behind (the second batch) change, the switched ones do not;
4. the host repaired, a re-run converges and changes that host only.

The application is a package of twelve modules, each holding nothing but its VERSION, and a
CGI script printing every module's VERSION: a response that imported modules of two releases
is told apart from one of either release.
"""
import os
import re
import urllib.request

import pytest
import yaml

from harness import traffic
from harness.podman import Container, podman
from harness.site import hosts_of, run_playbook
from harness.traffic import Traffic

SCENARIO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
APP = os.path.join(os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", ""), "app")
MODULES = ["m%02d" % number for number in range(12)]
PATH = "/cgi-bin/versions.py"
END = "end of page"
RELEASES = "/usr/lib/.cgi-bin.releases"
FILLER = RELEASES + "/.filler"
VERSION_LINES = r"^(m\d{2}) (\S+)$"
# Eight generators share two cores with the deploy: one thread each, a second between requests.
PAUSE = 1.0
STEPS = ("Build the release of each root with a source", "Precompile the CGI trees",
         "Set the owner and modes of the caches", "Give the CGI trees and their caches their SELinux contexts",
         "Make the checked releases live")


def platforms():
    """The scenario's hosts in inventory order, and the web_* group of each (from molecule.yml)."""
    with open(os.path.join(SCENARIO, "molecule.yml")) as handle:
        config = yaml.safe_load(handle)
    names = [platform["name"] for platform in config["platforms"]]
    groups = {}
    for platform in config["platforms"]:
        for group in platform["groups"]:
            if group != "webservers":
                groups.setdefault(group, []).append(platform["name"])
    return names, groups


def signature(version):
    """What the load generator records for a page of the release whose modules are all at ``version``."""
    return " ".join("%s=%s" % (name, version) for name in MODULES)


def set_version(version):
    for name in MODULES:
        with open(os.path.join(APP, "liveapp", name + ".py"), "w") as handle:
            handle.write('"""Module %s of the liveapp package."""\nVERSION = "%s"\n' % (name, version))


class Fleet:
    def __init__(self):
        self.names, self.groups = platforms()
        self.containers = dict((name, Container(name)) for name in self.names)
        self.address = dict((name, podman("inspect", "-f", "{{.NetworkSettings.IPAddress}}", name).stdout.strip())
                            for name in self.names)

    def play(self, **extra):
        variables = {"pycgi_source": APP, "pycgi_report": False,
                     "pycgi_smoke_urls": [{"url": "http://localhost" + PATH, "contains": END}]}
        variables.update(extra)
        return run_playbook(hosts_of(self.names), extra_vars=variables, groups=self.groups)

    def served(self, name):
        """The release the host serves, asked from the controller over HTTP: its modules' versions."""
        with urllib.request.urlopen("http://%s%s" % (self.address[name], PATH), timeout=30) as response:
            body = response.read().decode()
        assert response.status == 200 and body.rstrip("\n").endswith(END), (name, body[-500:])
        return " ".join("=".join(match) for match in re.findall(VERSION_LINES, body, re.M))

    def releases(self, name):
        """The release directories on the host."""
        found = self.containers[name].exec("ls", "-A", RELEASES).stdout.split()
        return sorted(entry for entry in found if not entry.startswith("."))

    def break_host(self, name):
        """Fills the host's releases file system (its own 16 MiB tmpfs)."""
        self.containers[name].exec("dd", "if=/dev/zero", "of=" + FILLER, "bs=64k", check=False)
        free = self.containers[name].exec("df", "--output=avail", "-k", RELEASES).stdout.split()[-1]
        assert int(free) == 0, free

    def repair(self, name):
        self.containers[name].exec("rm", "-f", FILLER)


@pytest.fixture(scope="module")
def fleet():
    assert os.path.isdir(APP), "run through the scenario (make fleet): %s is missing" % APP
    fleet = Fleet()
    assert len(fleet.names) == 8 and sorted(fleet.groups) == ["web_a", "web_b"], fleet.groups
    for name in fleet.names:
        assert fleet.served(name) == signature("1"), name
    return fleet


def loads(fleet):
    return [Traffic(fleet.containers[name], "http://localhost" + PATH, version=VERSION_LINES, end="\n" + END,
                    threads=1, pause=PAUSE, max_requests=100000, max_seconds=600)
            for name in fleet.names]


def judge(fleet, summaries, expected, capsys, label):
    """Prints each host's numbers; checks that every response was a complete page of a release
    ``expected`` names ({name: {signature: label}}): 0 failed, 0 mixed. Returns each host's kinds."""
    kinds = {}
    with capsys.disabled():
        print()
        for name, summary in zip(fleet.names, summaries):
            print(summary.describe("%s %s" % (label, name), expected[name]))
    for name, summary in zip(fleet.names, summaries):
        assert summary.failed == [], (name, [(r.status, r.tail[-200:]) for r in summary.failed[:3]])
        seen = summary.kinds(expected[name])
        assert "mixed or other" not in seen, (name, sorted(set(r.version for r in summary.records))[:3])
        assert len(seen) >= 5, (name, len(seen))
        kinds[name] = seen
    return kinds


def recap(run, name):
    counts = run.recap.get(name)
    assert counts is not None, (name, run.output[-3000:])
    return counts


def test_rollout_in_batches_under_traffic_then_a_rerun_changes_nothing(fleet, capsys):
    set_version("2")
    run, summaries, ended = traffic.under_traffic(loads(fleet), lambda: fleet.play(pycgi_serial=4), settle=2.0)
    assert run.rc == 0, run.output[-4000:]
    # One PLAY header per batch of four.
    assert run.output.count("PLAY [Serve Python CGI scripts") == 2, run.output[-4000:]
    old, new = signature("1"), signature("2")
    kinds = judge(fleet, summaries, dict((name, {old: "old", new: "new"}) for name in fleet.names), capsys,
                  "rollout in batches of 4")
    for name, summary in zip(fleet.names, summaries):
        assert recap(run, name)["failures"] == 0 and recap(run, name)["changed"] > 0
        after = [kind for record, kind in zip(summary.records, kinds[name]) if record.start > ended]
        assert after and set(after) == {"new"}, (name, after)
        assert fleet.served(name) == new, name
    again = fleet.play()
    assert again.rc == 0, again.output[-4000:]
    for name in fleet.names:
        assert recap(again, name)["changed"] == 0 and recap(again, name)["failures"] == 0, (name, recap(again, name))
        assert fleet.served(name) == new


def failure_lines(output, name):
    """The failed host's one-line report, from the role's rescue."""
    return re.findall(r"pycgi\.hosting\.cgi_host failed on %s at step '([^']+)' \(root ([^)]+)\): ([^\n]+)"
                      % re.escape(name), output)


def test_a_host_failing_mid_rollout_stops_it_and_keeps_serving_its_old_release(fleet, capsys):
    bad = fleet.names[2]
    first, second = fleet.names[:4], fleet.names[4:]
    before = fleet.releases(bad)
    fleet.break_host(bad)
    set_version("3")
    run, summaries, ended = traffic.under_traffic(loads(fleet), lambda: fleet.play(pycgi_serial=4), settle=2.0)
    with capsys.disabled():
        print("\n" + "\n".join(line for line in run.output.splitlines() if "cgi_host failed on" in line))
    assert run.rc != 0, run.output[-4000:]
    old, new = signature("2"), signature("3")
    expected = dict((name, {old: "old", new: "new"} if name in first and name != bad else {old: "old"})
                    for name in fleet.names)
    kinds = judge(fleet, summaries, expected, capsys, "push with %s full, default fail percentage" % bad)
    assert set(kinds[bad]) == {"old"}
    # The report: host, step, root and reason in one line.
    lines = failure_lines(run.output, bad)
    assert lines, run.output[-4000:]
    step, root, reason = lines[0]
    assert step.startswith(STEPS) and root == "/usr/lib/cgi-bin", lines
    assert "No space left on device" in reason or "ENOSPC" in reason, lines
    # Nothing half-switched: the failing host serves its old release and has no release more.
    assert fleet.served(bad) == old
    assert fleet.releases(bad) == before
    assert recap(run, bad)["failures"] == 1
    for name in first:
        if name != bad:
            assert fleet.served(name) == new, name
    # The rollout stopped after the first batch: the second was never reached.
    for name in second:
        assert fleet.served(name) == old, name
        assert name not in run.recap, (name, run.recap.get(name))


def test_a_fail_percentage_lets_the_rollout_go_on_past_the_bad_host(fleet):
    bad = fleet.names[2]
    first, second = fleet.names[:4], fleet.names[4:]
    run = fleet.play(pycgi_serial=4, pycgi_max_fail_percentage=25)
    assert run.rc != 0, run.output[-4000:]
    new = signature("3")
    # Two PLAY headers: the second batch ran.
    assert run.output.count("PLAY [Serve Python CGI scripts") == 2, run.output[-4000:]
    assert recap(run, bad)["failures"] == 1
    assert fleet.served(bad) == signature("2")
    # The play's report at the end of the second batch: one line for the bad host.
    report = re.findall(r'"msg": "%s failed at step \'([^\']+)\' \(root ([^)]+)\): ([^\n]+)"' % re.escape(bad),
                        run.output)
    assert report and report[-1][0].startswith(STEPS) and report[-1][1] == "/usr/lib/cgi-bin", run.output[-4000:]
    for name in first:
        if name != bad:
            assert recap(run, name)["changed"] == 0, (name, recap(run, name))
            assert fleet.served(name) == new
    for name in second:
        assert recap(run, name)["changed"] > 0 and recap(run, name)["failures"] == 0, (name, recap(run, name))
        assert fleet.served(name) == new


def test_the_repaired_host_converges_and_only_it_changes(fleet):
    bad = fleet.names[2]
    fleet.repair(bad)
    run = fleet.play()
    assert run.rc == 0, run.output[-4000:]
    for name in fleet.names:
        counts = recap(run, name)
        assert counts["failures"] == 0, (name, counts)
        assert (counts["changed"] > 0) == (name == bad), (name, counts)
        assert fleet.served(name) == signature("3"), name
