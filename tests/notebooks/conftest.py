"""What the notebook tests on the loopback Slurm cluster (tests/cluster) share.

`facts`: the cluster's cluster.json (a test fails, never skips, when the
cluster is not up).

`transport`: runs a test once per way of reaching the cluster:

* `ssh`: the profile has `host` and `ssh_config`; the kernel and the CLI
  reach the cluster over SSH, as from a laptop.
* `local`: the profile has no `host`; the kernel and the CLI run sbatch,
  squeue, ... themselves, as on a login node or a JupyterHub on the cluster.
  The cluster's `remote_env` (SLURM_CONF, SCRATCH: what a submit host's
  users have) is put into this process's environment before anything is
  started, so every kernel (nbclient, jupyter_client) and CLI the test
  starts inherits it; an `ssh` that fails loudly and logs its use is first
  on PATH, and the test fails if anything ran it.

`Cluster.shell(script)` runs a shell command where the jobs run: through
`ssh` for `ssh`, as a local `sh -c` with the same environment for `local`.
"""
import json
import os
import pathlib
import re
import subprocess
import time
from dataclasses import dataclass

import pytest

CLUSTER_DIR = pathlib.Path(os.environ.get("SLURMBOOK_CLUSTER_DIR", "/tmp/slurmbook-cluster"))
TRANSPORTS = ["ssh", "local"]
ENDED = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "PREEMPTED",
         "BOOT_FAIL", "DEADLINE"}


@pytest.fixture(scope="session")
def facts():
    path = CLUSTER_DIR / "cluster.json"
    assert path.exists(), f"the loopback cluster is not up ({path} missing): run python3 tests/cluster/cluster.py up"
    return json.loads(path.read_text())


@dataclass
class Stats:
    """The CLI's transport line: `ssh: C connection(s), N remote command(s), B byte(s) uploaded`
    or `local: N command(s), B byte(s) copied` (connections: 0)."""
    connections: int
    commands: int
    bytes: int


SSH_STATS = re.compile(r"ssh: (\d+) connection\(s\), (\d+) remote command\(s\), (\d+) byte\(s\) uploaded")
LOCAL_STATS = re.compile(r"local: (\d+) command\(s\), (\d+) byte\(s\) copied")


class Cluster:
    """The loopback cluster as reached through one transport (`ssh` or `local`)."""

    def __init__(self, name, facts):
        assert name in TRANSPORTS, name
        self.name = name
        self.facts = facts
        self.local = name == "local"

    def __repr__(self):
        return f"Cluster({self.name})"

    @property
    def connection(self):
        """The profile lines that choose the transport: host + ssh_config, or none."""
        if self.local:
            return ""
        return f'host = "{self.facts["host"]}"\nssh_config = "{self.facts["ssh_config"]}"\n'

    def slurmbook_toml(self, remote_dir="$SCRATCH/slurmbook", extra=""):
        """A slurmbook.toml whose default profile `cluster` reaches the cluster this way."""
        return ('profile = "cluster"\n[profiles.cluster]\ntarget = "slurm"\n' + self.connection
                + f'remote_dir = "{remote_dir}"\npartition = "debug"\ntime = "00:10:00"\n' + extra)

    def env(self):
        """The environment of a local command: this process's plus the cluster's remote_env."""
        return {**os.environ, **self.facts["remote_env"]}

    def shell(self, script, timeout=120):
        """Run a shell command line where the jobs run (ssh, or sh -c here)."""
        if self.local:
            return subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=timeout,
                                  env=self.env(), stdin=subprocess.DEVNULL)
        ssh = ["ssh", "-F", self.facts["ssh_config"], self.facts["host"]]
        return subprocess.run(ssh + [script], capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)

    def job_state(self, job):
        out = self.shell(f"scontrol show job -o {int(job)}")
        m = re.search(r"JobState=(\S+)", out.stdout)
        assert m, out.stdout + out.stderr
        return m.group(1)

    def final_state(self, job, timeout=60):
        """The job's state once it has ended (a cancelled job is COMPLETING
        while its processes are killed, then CANCELLED)."""
        deadline = time.time() + timeout
        while True:
            state = self.job_state(job)
            if state in ENDED:
                return state
            assert time.time() < deadline, f"job {job} still {state} after {timeout} s"
            time.sleep(0.5)

    def stats(self, output):
        """The CLI's transport counters; fails when its line for this transport is missing."""
        if self.local:
            assert not SSH_STATS.search(output), output
            m = LOCAL_STATS.search(output)
            assert m, output
            return Stats(0, int(m.group(1)), int(m.group(2)))
        assert not LOCAL_STATS.search(output), output
        m = SSH_STATS.search(output)
        assert m, output
        return Stats(int(m.group(1)), int(m.group(2)), int(m.group(3)))


NO_SSH = """#!/bin/sh
echo "ssh $*" >> "{log}"
echo "ssh was run on a host-less (local) profile: $*" >&2
exit 255
"""


def reach(name, facts, monkeypatch, tmp_path_factory):
    """The cluster through `name`; for `local`, this process's environment
    prepared (see the module docs) and checked for ssh use at the end."""
    cluster = Cluster(name, facts)
    if not cluster.local:
        yield cluster
        return
    for key, value in facts["remote_env"].items():
        monkeypatch.setenv(key, value)
    bin_dir = tmp_path_factory.mktemp("no-ssh")
    log = bin_dir / "ssh.log"
    (bin_dir / "ssh").write_text(NO_SSH.format(log=log))
    (bin_dir / "ssh").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    yield cluster
    assert not log.exists(), f"ssh ran on a local profile:\n{log.read_text()}"


@pytest.fixture(params=TRANSPORTS)
def transport(request, facts, monkeypatch, tmp_path_factory):
    yield from reach(request.param, facts, monkeypatch, tmp_path_factory)


@pytest.fixture
def local_transport(facts, monkeypatch, tmp_path_factory):
    """For what only a submit host has (a kernel inside a job, no sbatch)."""
    yield from reach("local", facts, monkeypatch, tmp_path_factory)


@pytest.fixture
def ssh_transport(facts):
    """For what only SSH has (its master connection)."""
    return Cluster("ssh", facts)
