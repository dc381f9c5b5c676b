"""pycgi.hosting.release on 8 hosts in one play (local connections, one root each under tmp_path,
8 forks): the controller hashes the source tree once for all of them, builds one archive for
all, and an edit between two runs is hashed and pushed.

Run through `make playbook-tests` (the built tarball installed in ANSIBLE_COLLECTIONS_PATH).
"""
import hashlib
import json
import os
import subprocess
import sys
import textwrap

import pytest

BIN = os.path.dirname(sys.executable)
ANSIBLE_PYTHON = "/usr/bin/python3"
HOSTS = 8
PACKAGES, MODULES = 100, 27  # 100 packages of an __init__ and 27 modules: 2,800 files


def content(release_id):
    """The manifest-hash part of a release id (``<UTC time>-<hash>``)."""
    return release_id.rpartition("-")[2]


def make_source(root):
    for p in range(PACKAGES):
        package = root / "app" / ("pkg%03d" % p)
        package.mkdir(parents=True)
        (package / "__init__.py").write_text("")
        for m in range(MODULES):
            (package / ("mod%02d.py" % m)).write_text("VALUE = %d\n\ndef f(x):\n    return x + VALUE\n" % (p * 100 + m))
    return root


@pytest.fixture
def fleet(tmp_path):
    if not os.access(ANSIBLE_PYTHON, os.X_OK):
        pytest.skip("no %s for Ansible's module interpreter" % ANSIBLE_PYTHON)
    source = make_source(tmp_path / "source")
    files = sum(len(names) for _d, _s, names in os.walk(str(source)))
    assert files == PACKAGES * (MODULES + 1) == 2800
    hosts = ["web%d" % i for i in range(HOSTS)]
    (tmp_path / "inventory").write_text("[web]\n" + "".join(
        "%s ansible_connection=local ansible_python_interpreter=%s root=%s\n"
        % (h, ANSIBLE_PYTHON, tmp_path / h / "cgi-bin") for h in hosts))
    (tmp_path / "results").mkdir()
    (tmp_path / "play.yml").write_text(textwrap.dedent("""\
        - name: Push one source to every web server
          hosts: web
          gather_facts: false
          tasks:
            - name: Release the source
              pycgi.hosting.release:
                path: "{{{{ root }}}}"
                source: {source}
              register: pushed

            - name: Keep what the task reported, per host
              ansible.builtin.copy:
                content: "{{{{ pushed | to_json }}}}"
                dest: "{results}/{{{{ inventory_hostname }}}}.json"
                mode: "0600"
        """.format(source=source, results=tmp_path / "results")))
    return {"dir": tmp_path, "source": source, "hosts": hosts}


def play(fleet):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONDONTWRITEBYTECODE")}
    env.update(ANSIBLE_NOCOLOR="1", ANSIBLE_RETRY_FILES_ENABLED="0",
               PYCGI_RELEASE_CACHE=str(fleet["dir"] / "controller-cache"))
    proc = subprocess.run([os.path.join(BIN, "ansible-playbook"), "-i", "inventory", "-f", str(HOSTS), "play.yml"],
                          cwd=str(fleet["dir"]), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout
    results = {}
    for host in fleet["hosts"]:
        with open(str(fleet["dir"] / "results" / (host + ".json"))) as handle:
            results[host] = json.load(handle)
    return results


def hashing(results):
    """(sum of files hashed over the hosts, how many hosts hashed, how many reused)"""
    hashed = [r["manifest_hashed"] for r in results.values()]
    states = [r["manifest_cache"] for r in results.values()]
    return sum(hashed), states.count("miss"), states.count("hit")


def test_eight_hosts_cost_one_hash_pass_and_an_edit_is_picked_up(fleet):
    first = play(fleet)
    assert all(r["changed"] for r in first.values()), first
    assert hashing(first) == (2800, 1, HOSTS - 1)
    # One release everywhere: the same contents (a release id is the host's UTC time, then the
    # manifest's hash; hosts may name theirs a second apart).
    assert len({content(r["release"]) for r in first.values()}) == 1
    assert sorted(r["archive_cache"] for r in first.values()) == ["hit"] * (HOSTS - 1) + ["miss"]
    assert {r["transferred"]["files"] for r in first.values()} == {PACKAGES * MODULES + 1}

    again = play(fleet)
    assert not any(r["changed"] for r in again.values()), again
    assert hashing(again) == (0, 0, HOSTS)

    # Same size, same second: only the content differs.
    edited = fleet["source"] / "app" / "pkg042" / "mod07.py"
    old = edited.read_text()
    new = old.replace("VALUE = 4207", "VALUE = 9999")
    assert len(new) == len(old) and new != old
    edited.write_text(new)
    third = play(fleet)
    assert hashing(third) == (1, 1, HOSTS - 1)
    assert all(r["changed"] for r in third.values()), third
    assert {r["transferred"]["bytes"] for r in third.values()} == {len(new)}
    assert len({content(r["release"]) for r in third.values()}) == 1
    assert content(third["web0"]["release"]) != content(first["web0"]["release"])
    digest = hashlib.sha256(new.encode()).hexdigest()
    for host in fleet["hosts"]:
        live = fleet["dir"] / host / "cgi-bin" / "app" / "pkg042" / "mod07.py"
        assert hashlib.sha256(live.read_bytes()).hexdigest() == digest, host


def test_an_unchanged_source_sends_only_its_hash_and_the_host_checks_it(fleet):
    first = play(fleet)
    assert all(r["changed"] and r["manifest_sent"] for r in first.values()), first
    digest = first["web0"]["digest"]
    assert len(digest) == 64 and {r["digest"] for r in first.values()} == {digest}

    again = play(fleet)
    for host, r in again.items():
        assert (r["changed"], r["manifest_sent"], r["module_calls"]) == (False, False, 1), (host, r)
        assert r["release"] == first[host]["release"] and r["transferred"] == {"files": 0, "bytes": 0}

    # The controller's cache deleted: the manifest is sent again, nothing changes on the hosts.
    import shutil
    shutil.rmtree(str(fleet["dir"] / "controller-cache"))
    lost = play(fleet)
    for host, r in lost.items():
        assert (r["changed"], r["manifest_sent"], r["module_calls"]) == (False, True, 1), (host, r)

    # Behind the controller's back: a file of web0's live release edited, web1's releases deleted
    # by hand, web2's release record edited so that it claims another content.
    edited = fleet["dir"] / "web0" / "cgi-bin" / "app" / "pkg001" / "mod01.py"
    pushed = edited.read_text()
    os.unlink(str(edited))
    edited.write_text("VALUE = 'edited on the host'\n")
    shutil.rmtree(str(fleet["dir"] / "web1" / ".cgi-bin.releases"))
    meta_path = fleet["dir"] / "web2" / ".cgi-bin.releases" / ".meta" / (first["web2"]["release"] + ".json")
    meta = json.loads(meta_path.read_text())
    meta["manifest"]["app/pkg001/mod01.py"][3] = hashlib.sha256(b"VALUE = 1\n").hexdigest()
    meta_path.write_text(json.dumps(meta))
    behind = play(fleet)
    for host in ("web0", "web1", "web2"):
        r = behind[host]
        assert r["manifest_sent"] and r["changed"] and r["module_calls"] == 3, (host, r)
        assert r["release"] != first[host]["release"], (host, r)
        live = fleet["dir"] / host / "cgi-bin" / "app" / "pkg001" / "mod01.py"
        assert live.read_text() == pushed, host
    for host in fleet["hosts"][3:]:
        assert (behind[host]["changed"], behind[host]["manifest_sent"]) == (False, False), (host, behind[host])


def test_a_change_travels_with_the_manifest_and_a_host_that_lacks_more_asks(fleet):
    import shutil
    first = play(fleet)
    assert all(r["module_calls"] == 2 for r in first.values()), first  # nothing known: ask, then send

    # The controller knows the manifest live on every host: the changed contents go with the
    # manifest, one call per host, one archive for all.
    edited = fleet["source"] / "app" / "pkg007" / "mod03.py"
    edited.write_text("VALUE = 'two'\n")
    second = play(fleet)
    for host, r in second.items():
        assert (r["changed"], r["module_calls"], r["transferred"]["files"]) == (True, 1, 1), (host, r)
        assert r["previous"] == first[host]["release"], (host, r)
    assert sorted(r["archive_cache"] for r in second.values()) == ["hit"] * (HOSTS - 1) + ["miss"]

    # web3's releases deleted by hand (the live link now dangles): it lacks every content, not
    # only the changed one. It builds nothing from the partial archive, asks for the rest, and
    # ends with the same contents as the others.
    shutil.rmtree(str(fleet["dir"] / "web3" / ".cgi-bin.releases"))
    edited.write_text("VALUE = 'three'\n")
    third = play(fleet)
    assert (third["web3"]["module_calls"], third["web3"]["transferred"]["files"]) == (2, PACKAGES * MODULES + 1)
    for host in fleet["hosts"]:
        assert third[host]["changed"], (host, third[host])
        if host != "web3":
            assert (third[host]["module_calls"], third[host]["transferred"]["files"]) == (1, 1), (host, third[host])
        live = fleet["dir"] / host / "cgi-bin" / "app" / "pkg007" / "mod03.py"
        assert live.read_text() == "VALUE = 'three'\n", host
    assert len({content(r["release"]) for r in third.values()}) == 1
