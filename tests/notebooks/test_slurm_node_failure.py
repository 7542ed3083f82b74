"""The node-failure row of the fault matrix (issue 18), on a cluster of its
own (tests/cluster/cluster.py in its own directory): killing slurmd must
never disturb the shared cluster the rest of the suite uses. The module's
fixture brings the cluster up and always takes it down again; the `node`
fixture always brings slurmd back and resumes the node, and checks that the
cluster runs a job again, whatever the test did.

The fault is injected as a real node failure: slurmd and the job's
processes (its slurmstepd and everything it runs) are frozen at once, the
node is set DOWN the way slurmctld marks a node that stopped responding
(`scontrol update state=down`; waiting SlurmdTimeout=300 s would be too
slow), then everything frozen is killed, so attempt 1 can never write
another byte. Then slurmd is started again and the node resumed, so a
requeued job can run again.

* `--requeue`, in a kernel (a job per asset, and steps of one allocation):
  the cell says the node failed (in Slurm's words),
  attempt 2's output starts after a marked line and follows attempt 1's
  without interleaving, the asset ends done with attempt 2's value, and the
  state database records it done.
* `--no-requeue`, with the CLI: the asset fails with "node failure
  (NODE_FAIL)", the node's state and reason, and a hint; its dependent is
  cancelled; nothing stays "running".

The fault is the same over either transport, so it runs over SSH only."""
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import nbformat
import pytest

from conftest import Cluster
from nbrun import ROOT, db_rows
from test_slurm_control import reply_of, start_kernel, streamed

sys.path.insert(0, str(ROOT / "tests" / "cluster"))
import cluster as cluster_py  # noqa: E402
import harness  # noqa: E402

BINARY = ROOT / "target" / "debug" / "slurmbook"
OWN_DIR = f"/tmp/sb-nodefail-{os.getpid()}"
REASON = "slurmbook test: node failure"
LINES = 20


@pytest.fixture(scope="module")
def own_cluster():
    facts = harness.up(OWN_DIR)
    try:
        yield Cluster("ssh", facts)
    finally:
        harness.down(OWN_DIR)


def layout():
    return cluster_py.Layout(cluster_py.Path(OWN_DIR))


def scontrol(*args):
    return subprocess.run(["scontrol", *args], env=cluster_py.client_env(layout()),
                          capture_output=True, text=True, timeout=60)


def node_state(node):
    out = subprocess.run(["sinfo", "--noheader", "--Node", f"--nodes={node}", "--format=%T"],
                         env=cluster_py.client_env(layout()), capture_output=True, text=True, timeout=60)
    return out.stdout.strip()


def slurmd_pid():
    pid = cluster_py.read_pid(layout().pid_file("slurmd"))
    return pid if cluster_py.ours(pid, layout()) else None


def start_slurmd(node):
    binary = shutil.which("slurmd", path=cluster_py._path())
    cluster_py.start_daemon("slurmd", [binary, "-f", str(layout().slurm_conf), "-N", node], layout())


def restore(node):
    """slurmd running and the node back in service (idle), whatever happened."""
    if not slurmd_pid():
        start_slurmd(node)
    harness.wait_until(lambda: not node_state(node).endswith("*"), timeout=120,
                       what=f"slurmd of node {node} to register")
    if re.match(r"(down|drain|fail)", node_state(node)):
        scontrol("update", f"nodename={node}", "state=resume")
    cluster_py.wait_node_idle(layout(), node, timeout=120)


@pytest.fixture
def node(own_cluster):
    """The cluster's node; afterwards slurmd runs and the node is idle and runs a job."""
    name = own_cluster.facts["node"]
    try:
        yield name
    finally:
        restore(name)
    job = harness.sbatch(["--wrap", "true"], dir=OWN_DIR)
    assert harness.wait_job(job, timeout=120, dir=OWN_DIR)["JobState"] == "COMPLETED"


def job_processes(job):
    """Processes of job `job` of this cluster: its slurmstepd and what it runs."""
    found = []
    for e in os.listdir("/proc"):
        if not e.isdigit():
            continue
        pid = int(e)
        if cluster_py.marked(pid, layout()) and cluster_py.proc_environ(pid).get("SLURM_JOB_ID") == str(job):
            found.append(pid)
        elif (cluster_py.proc_cmdline(pid).startswith(f"slurmstepd: [{job}.")
              and cluster_py.uses_dir(pid, layout())):
            found += [pid, *cluster_py.descendants(pid)]
    return sorted(set(found))


def fail_node(node, job):
    """The node dies under job `job`: slurmd and the job's processes are
    frozen, the node is set DOWN, then all of them are killed."""
    pids = [slurmd_pid(), *job_processes(job)]
    assert pids[0] and len(pids) > 2, f"slurmd and job {job}'s processes: {pids}"
    for p in pids:
        os.kill(p, signal.SIGSTOP)
    try:
        out = scontrol("update", f"nodename={node}", "state=down", f"reason={REASON}")
        assert out.returncode == 0, out.stderr
    finally:
        for p in pids:
            os.kill(p, signal.SIGKILL)
    harness.wait_until(lambda: not any(cluster_py.alive(p) for p in pids), timeout=30,
                       what="the failed node's processes to end")


def notebook(tmp_path, cluster, requeue_flag):
    (tmp_path / "slurmbook.toml").write_text(cluster.slurmbook_toml())
    path = tmp_path / "nodefail.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in [
        f"%%asset sq {requeue_flag}\n"
        "eprintln!(\"sq: working\");\n"
        f"for i in 0..{LINES} {{\n"
        "    println!(\"sq {i}\");\n"
        "    std::thread::sleep(std::time::Duration::from_millis(500));\n"
        "}\n"
        "42u64",
        # The same --requeue: a grouped run may put both in one allocation.
        f"%%asset after_sq {requeue_flag}\nprintln!(\"after {{}}\", sq + 1);\nsq + 1",
    ]]), path)
    return path


def job_of(path, asset):
    (job,) = db_rows(path, "SELECT job_id FROM materializations WHERE asset = ?", asset)[0]
    return int(job)


@pytest.mark.parametrize("jobs", ["per-asset", "grouped"])
def test_requeued_job_restarts_marked_and_ends_done(tmp_path, own_cluster, node, monkeypatch, jobs):
    """per-asset: `sq` is a job of its own; grouped: `sq` and `after_sq`
    are steps of one allocation, which Slurm requeues as a whole."""
    path = notebook(tmp_path, own_cluster, "--requeue")
    km, kc = start_kernel(path, tmp_path, monkeypatch)
    failed = False
    try:
        msg = kc.execute(f"%materialize --target slurm --jobs {jobs}")
        text = streamed(kc, msg, until=lambda t: "[sq] sq 3\n" in t, timeout=600)
        job = job_of(path, "sq")
        fail_node(node, job)
        failed = True
        text += streamed(kc, msg, until=lambda t: "Slurm requeued job" in t, timeout=120)
        restore(node)
        text += streamed(kc, msg, timeout=600)
        content = reply_of(kc, msg)
    finally:
        if failed:
            restore(node)
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    assert content["status"] == "ok", (content, text)
    # The cell says the node failed, in Slurm's words, once.
    # (`down*` once slurmctld noticed that slurmd does not respond, `down` before.)
    notice = re.escape(f"sq: Slurm requeued job {job} (its node failed: node {node} is down") \
        + r"\*? " + re.escape(f"(reason: {REASON}))")
    assert len(re.findall(notice, text)) == 1, text
    assert "starts again from scratch as attempt 2" in text, text
    # Attempt 1's lines, one marker, then all of attempt 2's: not interleaved.
    lines = [l for l in text.splitlines() if re.fullmatch(r"\[sq\] (sq \d+|── .*)", l)]
    assert text.count("[sq] sq: working\n") == 2, text  # stderr, once per attempt
    marker = "[sq] ── attempt 2 (requeued after node failure) ──"
    assert lines.count(marker) == 1, text
    cut = lines.index(marker)
    first, second = lines[:cut], lines[cut + 1:]
    assert len(first) >= 4 and first == [f"[sq] sq {i}" for i in range(len(first))], text
    assert second == [f"[sq] sq {i}" for i in range(LINES)], text
    assert "\\x1e" not in text and "SLURMBOOK" not in text, text
    # attempt 2's value went downstream; the run and both assets are recorded done.
    assert "[after_sq] after 43" in text, text
    assert "2 done, 0 fresh, 0 failed" in text, text
    assert db_rows(path, "SELECT status FROM runs") == [("ok",)]
    assert sorted(db_rows(path, "SELECT asset, status FROM materializations")) == [
        ("after_sq", "ok"), ("sq", "ok")]
    assert harness.job_info(job, dir=OWN_DIR)["Restarts"] == "1"
    # grouped: both were steps of the one requeued allocation.
    assert (job_of(path, "after_sq") == job) == (jobs == "grouped")


def test_node_failure_without_requeue_fails_with_slurms_words_and_a_hint(tmp_path, own_cluster, node):
    path = notebook(tmp_path, own_cluster, "--no-requeue")
    proc = subprocess.Popen([BINARY, "run", path, "--profile", "cluster", "--jobs", "per-asset"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out = ""
    job = None
    try:
        for line in proc.stdout:
            out += line
            if job is None and "[sq] sq 3" in line:
                job = job_of(path, "sq")
                fail_node(node, job)
        err = proc.stderr.read()
        code = proc.wait(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert job, out
    assert code == 1, out + err
    said = re.escape(f"node failure (NODE_FAIL): node {node} is down") + r"\*? " \
        + re.escape(f"(reason: {REASON})")
    assert re.search(r"sq  failed: " + said, out), out
    assert re.search(r"after_sq  cancelled: upstream sq failed", out), out
    assert "[after_sq]" not in out, out
    assert re.search("sq failed:\n  " + said, err), err
    assert "sq: working" in err, err
    assert "hint: the node it ran on failed, not the code" in err and "--requeue" in err, err
    assert "attempt 2" not in out + err
    # Nothing stuck "running": the run and both assets have their final state.
    assert db_rows(path, "SELECT status FROM runs") == [("failed",)]
    assert sorted(db_rows(path, "SELECT asset, status FROM materializations")) == [
        ("after_sq", "cancelled"), ("sq", "failed")]
    assert harness.job_info(job, dir=OWN_DIR)["JobState"] == "NODE_FAIL"
