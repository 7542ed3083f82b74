"""Faults of Slurm's own daemons (issue 18), each on a cluster of its own
(tests/cluster/cluster.py in its own directory, with its own ports and
munged), never the shared one the rest of the suite uses: the module's
fixture brings it up and always takes it down again, and each test
restarts what it stopped.

* slurmctld stopped for 30 s in the middle of a run, then started again:
  the run says "Slurm controller unreachable, retrying", follows the jobs
  again once it is back, finishes, and shows every line exactly once.

The fault is the same over either transport, so it runs over SSH only."""
import os
import shutil
import signal
import subprocess
import sys
import threading
import time

import pytest

from conftest import Cluster
from nbrun import ROOT, db_rows
from test_slurm_control import LINES, ticker_notebook

sys.path.insert(0, str(ROOT / "tests" / "cluster"))
import cluster as cluster_py  # noqa: E402
import harness  # noqa: E402

BINARY = ROOT / "target" / "debug" / "slurmbook"
OWN_DIR = f"/tmp/sb-daemons-{os.getpid()}"
OUTAGE_S = 30


@pytest.fixture(scope="module")
def own_cluster():
    facts = harness.up(OWN_DIR)
    try:
        yield Cluster("ssh", facts)
    finally:
        harness.down(OWN_DIR)


def daemon_pid(name):
    layout = cluster_py.Layout(cluster_py.Path(OWN_DIR))
    pid = cluster_py.read_pid(layout.pid_file(name))
    return pid if cluster_py.ours(pid, layout) else None


def stop_slurmctld():
    pid = daemon_pid("slurmctld")
    assert pid, "slurmctld of the test's own cluster is not running"
    os.kill(pid, signal.SIGTERM)
    harness.wait_until(lambda: not os.path.exists(f"/proc/{pid}"), timeout=60, what="slurmctld to stop")


def start_slurmctld():
    layout = cluster_py.Layout(cluster_py.Path(OWN_DIR))
    binary = shutil.which("slurmctld", path=cluster_py._path())
    cluster_py.start_daemon("slurmctld", [binary, "-f", str(layout.slurm_conf)], layout)


def test_slurmctld_stopped_for_30_s_mid_run(tmp_path, own_cluster):
    path = ticker_notebook(tmp_path, own_cluster, seconds_per_line=1.0)
    proc = subprocess.Popen([BINARY, "run", path, "--profile", "cluster", "--jobs", "per-asset"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
    reader.start()
    stopped = False
    try:
        harness.wait_until(lambda: any("[ticker] line 3" in l for l in lines), timeout=300,
                           what="the ticker's line 3")
        stop_slurmctld()
        stopped = True
        stopped_at = time.monotonic()
        harness.wait_until(lambda: any("Slurm controller unreachable, retrying" in l for l in lines),
                           timeout=60, what="the notice")
        time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - stopped_at)))
        # Output goes on while the controller is away.
        during = [l for l in lines if l.startswith("[ticker] line ")]
        start_slurmctld()
        stopped = False
        assert proc.wait(timeout=300) == 0, "".join(lines)
    finally:
        if stopped:
            start_slurmctld()
        if proc.poll() is None:
            proc.kill()
        reader.join(timeout=30)
    out = "".join(lines)
    assert len(during) > 4, out
    assert out.count("Slurm controller unreachable, retrying") == 1, out
    assert "Slurm controller reachable again after" in out, out
    shown = [l for l in out.splitlines() if l.startswith("[ticker] line ")]
    assert shown == [f"[ticker] line {i}" for i in range(LINES)], out
    assert "2 done, 0 fresh, 0 failed" in out, out
    assert db_rows(path, "SELECT status FROM runs") == [("ok",)]
    assert sorted(db_rows(path, "SELECT asset, status FROM materializations")) == [
        ("after_ticker", "ok"), ("ticker", "ok")]
