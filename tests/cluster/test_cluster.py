"""Tests of the loopback Slurm + sshd test cluster (tests/cluster/cluster.py).

Everything goes through `ssh -F <dir>/ssh_config slurmbook-test`, the way slurmbook
reaches a cluster.  The session fixture brings the shared cluster up only if it is not
running, and takes it down at the end only if it brought it up.  The last test runs a
second, private cluster in its own --dir to check `down` and `up` from scratch, and
never touches the shared one.
"""
from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402

DAEMONS = ["munged", "slurmctld", "slurmd", "sshd"]


@pytest.fixture(scope="session")
def cluster():
    started = False
    if not harness.is_running():
        harness.up()
        started = True
    yield harness.facts()
    if started:
        harness.down()


@pytest.fixture
def workdir(cluster):
    """A fresh directory on the cluster for one test's job files."""
    d = f"{cluster['scratch']}/{uuid.uuid4().hex[:12]}"
    harness.ssh(["mkdir", "-p", d], check=True)
    return d


def read_remote(path: str) -> str | None:
    p = harness.ssh(["cat", path])
    return p.stdout if p.returncode == 0 else None


def pid_alive(pid: int) -> bool:
    try:
        st = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return st not in ("Z", "X")


def node_states(cluster, dir=None) -> dict[str, set[str]]:
    p = harness.ssh(["sinfo", "-h", "-N", "-o", "%N|%t|%P"], dir=dir, check=True)
    out: dict[str, set[str]] = {}
    for line in p.stdout.split():
        node, state, part = line.split("|")
        out.setdefault(part.rstrip("*"), set()).add(f"{node}:{state}")
    return out


# ----------------------------------------------------------------------------- facts

def test_facts_describe_a_usable_cluster(cluster):
    for key in ("ssh_config", "host", "port", "user", "identity_file", "known_hosts", "node",
                "partitions", "slurm_conf", "env", "dir", "scratch", "pids", "pid_files"):
        assert key in cluster, key
    assert cluster["host"] == "slurmbook-test"
    assert cluster["user"] == "root"
    assert isinstance(cluster["port"], int) and 1024 < cluster["port"] < 65536
    assert {"debug", "long"} <= set(cluster["partitions"])
    assert cluster["default_partition"] == "debug"
    assert cluster["env"]["SLURM_CONF"] == cluster["slurm_conf"]
    for key in ("ssh_config", "identity_file", "known_hosts", "slurm_conf"):
        assert Path(cluster[key]).is_file(), key
    known = Path(cluster["known_hosts"]).read_text().split()
    assert known[0] == f"[127.0.0.1]:{cluster['port']}"
    assert " ".join(known[1:3]) == " ".join(cluster["host_key_pub"].split()[:2])
    cfg = Path(cluster["ssh_config"]).read_text()
    for line in ("Host slurmbook-test", "HostName 127.0.0.1", f"Port {cluster['port']}", "User root",
                 "IdentitiesOnly yes", "StrictHostKeyChecking yes"):
        assert line in cfg, line
    conf = Path(cluster["slurm_conf"]).read_text()
    assert f"NodeName={cluster['node']} NodeAddr=127.0.0.1" in conf
    assert "PartitionName=debug" in conf and "MaxTime=01:00:00" in conf
    assert "PartitionName=long" in conf and "MaxTime=7-00:00:00" in conf
    # the JSON file is exactly what `up` prints
    assert json.loads(Path(cluster["dir"], "cluster.json").read_text())["port"] == cluster["port"]


def test_status_reports_running(cluster):
    p = harness.cluster("status")
    assert p.returncode == 0, p.stderr
    st = json.loads(p.stdout.strip().splitlines()[-1])
    assert st["running"] is True
    assert st["alive"] == {d: True for d in DAEMONS}


# ------------------------------------------------------------------------ ssh + sinfo

def test_sinfo_over_ssh_shows_node_idle_in_both_partitions(cluster):
    node = cluster["node"]

    def idle():
        states = node_states(cluster)
        return states if states.get("debug") == {f"{node}:idle"} and states.get("long") == {f"{node}:idle"} else None

    states = harness.wait_until(idle, timeout=60, what="node idle (earlier jobs still running?)")
    assert set(states) >= {"debug", "long"}


def test_remote_session_finds_slurm_conf(cluster):
    p = harness.ssh('echo "$SLURM_CONF"; echo "$SCRATCH"; scontrol show config | grep -E "^ClusterName"',
                    check=True)
    lines = p.stdout.splitlines()
    assert lines[0] == cluster["slurm_conf"]
    assert lines[1] == cluster["scratch"] == cluster["remote_env"]["SCRATCH"]
    assert "slurmbook" in lines[2]


def test_local_clients_work_with_env(cluster):
    p = subprocess.run(["sinfo", "-h", "-N", "-o", "%N"], env=harness.local_env(), capture_output=True,
                       text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    assert cluster["node"] in p.stdout.split()


def test_many_sessions_over_one_master_connection(cluster, tmp_path):
    """slurmbook multiplexes many channels over one ControlMaster connection."""
    sock = str(tmp_path / "cm")
    base = ["ssh", "-F", cluster["ssh_config"], "-o", f"ControlPath={sock}"]
    subprocess.run([*base, "-o", "ControlMaster=yes", "-o", "ControlPersist=yes", "-f", "-N", "slurmbook-test"],
                   check=True, timeout=30, stdin=subprocess.DEVNULL)
    try:
        procs = [subprocess.Popen([*base, "-o", "ControlMaster=no", "slurmbook-test", "--", f"echo chan-{i}"],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for i in range(24)]
        outs = [p.communicate(timeout=60) for p in procs]
        assert [p.returncode for p in procs] == [0] * 24, [o[1] for o in outs]
        assert sorted(o[0].strip() for o in outs) == sorted(f"chan-{i}" for i in range(24))
    finally:
        subprocess.run([*base, "-O", "exit", "slurmbook-test"], capture_output=True, timeout=30)


def test_host_key_checking_is_on(cluster, tmp_path):
    # positive control: the pinned key works
    good = harness.ssh(["echo", "pinned-ok"])
    assert good.returncode == 0 and good.stdout.strip() == "pinned-ok", good.stderr
    # a known_hosts with a different key for [127.0.0.1]:port must be refused
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "other")], check=True)
    wrong = tmp_path / "known_hosts_wrong"
    wrong.write_text(f"[127.0.0.1]:{cluster['port']} {(tmp_path / 'other.pub').read_text().split()[0]} "
                     f"{(tmp_path / 'other.pub').read_text().split()[1]}\n")
    p = subprocess.run(["ssh", "-F", cluster["ssh_config"], "-o", f"UserKnownHostsFile={wrong}",
                        "slurmbook-test", "--", "echo", "should-not-run"],
                       capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    assert p.returncode == 255
    assert "should-not-run" not in p.stdout
    assert "Host key verification failed" in p.stderr or "IDENTIFICATION HAS CHANGED" in p.stderr, p.stderr
    # an unknown host is refused too (StrictHostKeyChecking yes never adds keys)
    empty = tmp_path / "known_hosts_empty"
    empty.write_text("")
    p = subprocess.run(["ssh", "-F", cluster["ssh_config"], "-o", f"UserKnownHostsFile={empty}",
                        "slurmbook-test", "--", "echo", "should-not-run"],
                       capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    assert p.returncode == 255 and "should-not-run" not in p.stdout
    assert empty.read_text() == ""
    # and the effective client config says so
    g = subprocess.run(["ssh", "-F", cluster["ssh_config"], "-G", "slurmbook-test"], capture_output=True,
                       text=True, check=True, timeout=30).stdout.lower().splitlines()
    assert "stricthostkeychecking true" in g
    assert f"userknownhostsfile {cluster['known_hosts']}".lower() in g


# ------------------------------------------------------------------------------ jobs

def test_sbatch_wrap_output_file_appears(cluster, workdir):
    token = uuid.uuid4().hex
    job = harness.sbatch(["--chdir", workdir, "-o", "out.txt", "-J", "wrap-test",
                          "--wrap", f"echo hello-{token}; echo \"node=$SLURMD_NODENAME\""])
    out = harness.wait_until(lambda: (t := read_remote(f"{workdir}/out.txt")) and "node=" in t and t,
                             timeout=60, what="job output file")
    assert f"hello-{token}" in out
    assert f"node={cluster['node']}" in out
    info = harness.wait_job(job)
    assert info["JobState"] == "COMPLETED"
    assert info["ExitCode"] == "0:0"
    assert info["Partition"] == "debug"


def test_afterok_chain_runs_in_order(cluster, workdir):
    a = harness.sbatch(["--chdir", workdir, "-o", "a.log", "--wrap",
                        "date +%s.%N > a.start; sleep 2; date +%s.%N > a.end"])
    b = harness.sbatch(["--chdir", workdir, "-o", "b.log", f"--dependency=afterok:{a}", "--kill-on-invalid-dep=yes",
                        "--wrap", "test -f a.end && date +%s.%N > b.start"])
    # b must wait for a
    early = harness.job_info(b)
    assert early["JobState"] == "PENDING", early
    info_b = harness.wait_job(b, timeout=90)
    info_a = harness.job_info(a)
    assert info_a["JobState"] == "COMPLETED", info_a
    assert info_b["JobState"] == "COMPLETED", info_b
    a_end = float(read_remote(f"{workdir}/a.end"))
    b_start = float(read_remote(f"{workdir}/b.start"))
    assert b_start >= a_end
    assert info_b["StartTime"] >= info_a["EndTime"]  # ISO timestamps sort as strings
    print(f"afterok hop latency: {b_start - a_end:.2f}s")
    assert b_start - a_end < 30, "dependent took too long to start after its parent"


def test_failed_parent_cancels_dependent(cluster, workdir):
    a = harness.sbatch(["--chdir", workdir, "-o", "a.log", "--wrap", "exit 3"])
    b = harness.sbatch(["--chdir", workdir, "-o", "b.log", f"--dependency=afterok:{a}", "--kill-on-invalid-dep=yes",
                        "--wrap", "touch b.ran"])
    info_b = harness.wait_job(b, timeout=90)
    info_a = harness.job_info(a)
    assert info_a["JobState"] == "FAILED", info_a
    assert info_a["ExitCode"] == "3:0", info_a
    assert info_b["JobState"] == "CANCELLED", info_b
    assert info_b["Reason"] == "DependencyNeverSatisfied", info_b
    assert harness.squeue_all().get(b) == "CANCELLED"
    assert harness.ssh(["test", "-e", f"{workdir}/b.ran"]).returncode == 1


def test_scancel_running_job(cluster, workdir):
    job = harness.sbatch(["--chdir", workdir, "-o", "sleep.log", "--wrap", "echo $$ > pid; exec sleep 300"])
    harness.wait_job(job, {"RUNNING"}, timeout=60)
    pid = int(harness.wait_until(lambda: (read_remote(f"{workdir}/pid") or "").strip(), timeout=30,
                                 what="job pid file"))
    assert pid_alive(pid)  # the cluster runs on this machine
    p = harness.ssh(["scancel", str(job)])
    assert p.returncode == 0, p.stderr
    info = harness.wait_job(job, timeout=60)
    assert info["JobState"] == "CANCELLED", info
    harness.wait_until(lambda: not pid_alive(pid), timeout=30, what=f"job process {pid} to end")
    assert harness.squeue_all().get(job) == "CANCELLED"


def test_long_partition_and_partition_limits(cluster, workdir):
    job = harness.sbatch(["-p", "long", "--time=2-00:00:00", "--chdir", workdir, "-o", "long.log",
                          "--wrap", "echo \"partition=$SLURM_JOB_PARTITION\""])
    info = harness.wait_job(job)
    assert info["JobState"] == "COMPLETED", info
    assert info["Partition"] == "long"
    assert info["TimeLimit"] == "2-00:00:00"
    assert "partition=long" in read_remote(f"{workdir}/long.log")
    # debug has MaxTime=01:00:00: a 2 h job is rejected at submit time
    p = harness.ssh(["sbatch", "--parsable", "-p", "debug", "--time=02:00:00", "--chdir", workdir, "--wrap", "true"])
    assert p.returncode != 0
    assert "time limit" in p.stderr.lower(), p.stderr
    # and the same job goes into long
    job = harness.sbatch(["-p", "long", "--time=02:00:00", "--chdir", workdir, "-o", "long2.log", "--wrap", "true"])
    assert harness.wait_job(job)["JobState"] == "COMPLETED"


def test_up_twice_is_safe(cluster):
    before = harness.facts()
    p = harness.cluster("up")
    assert p.returncode == 0, p.stderr
    last = json.loads(p.stdout.strip().splitlines()[-1])
    assert last["port"] == before["port"]
    assert last["pids"] == before["pids"]
    assert "already running" in p.stderr
    assert harness.ssh(["sinfo", "-h"]).returncode == 0


def test_refuses_foreign_dirs_and_down_of_missing_dir_is_ok(tmp_path):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "precious.txt").write_text("keep me")
    for cmd in ("up", "down"):
        p = harness.cluster(cmd, foreign, timeout=120)
        assert p.returncode != 0
        assert "not a slurmbook cluster dir" in p.stderr
    assert (foreign / "precious.txt").read_text() == "keep me"
    p = harness.cluster("down", tmp_path / "never-existed", timeout=60)
    assert p.returncode == 0, p.stderr
    p = harness.cluster("status", tmp_path / "never-existed", timeout=60)
    assert p.returncode == 3


# ------------------------------------------------- down/up of a private cluster (last)

def _harness_processes(run_dir: Path) -> list[str]:
    """Live processes that reference run_dir in their command line or environment."""
    found = []
    me = os.getpid()
    for e in os.listdir("/proc"):
        if not e.isdigit() or int(e) == me or not pid_alive(int(e)):
            continue
        try:
            cmd = Path(f"/proc/{e}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            env = Path(f"/proc/{e}/environ").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if "cluster.py" in cmd or "pytest" in cmd:
            continue
        if str(run_dir) + "/" in cmd or f"SLURMBOOK_CLUSTER_RUN={run_dir}\0" in env + "\0":
            found.append(f"{e} {cmd.strip()}")
    return found


def test_down_stops_everything_and_up_again_from_scratch(cluster, tmp_path_factory):
    private = tmp_path_factory.mktemp("private") / "run"
    shared_before = harness.facts()

    f1 = harness.up(private)
    assert f1["dir"] == str(private)
    assert f1["port"] != cluster["port"]
    assert "idle" in harness.ssh(["sinfo", "-h", "-o", "%t"], dir=private, check=True).stdout
    # a running job makes down deal with slurmstepd and the job's processes too
    job = harness.sbatch(["--chdir", f1["scratch"], "-o", "s.log", "--wrap", "echo $$ > pid; exec sleep 300"],
                         dir=private)
    harness.wait_job(job, {"RUNNING"}, timeout=60, dir=private)
    job_pid = int(harness.wait_until(lambda: (read_remote_in(private, f"{f1['scratch']}/pid") or "").strip(),
                                     timeout=30, what="job pid"))
    pids = {d: int(Path(f1["pid_files"][d]).read_text().split()[0]) for d in DAEMONS}
    assert pids == f1["pids"]
    assert all(pid_alive(p) for p in [*pids.values(), job_pid])

    harness.down(private)
    assert not private.exists()
    dead = [p for p in [*pids.values(), job_pid] if pid_alive(p)]
    assert dead == [], f"still alive after down: {dead}"
    assert _harness_processes(private) == []
    assert harness.cluster("status", private).returncode == 3
    # the shared cluster was not touched
    assert harness.is_running()
    assert harness.facts()["pids"] == shared_before["pids"]

    # up again from nothing, in the same dir
    f2 = harness.up(private)
    try:
        assert f2["host_key_pub"] != f1["host_key_pub"]  # fresh keys
        j = harness.sbatch(["--chdir", f2["scratch"], "-o", "again.log", "--wrap", "echo again"], dir=private)
        assert harness.wait_job(j, dir=private)["JobState"] == "COMPLETED"
        assert "again" in read_remote_in(private, f"{f2['scratch']}/again.log")
    finally:
        harness.down(private)
    assert not private.exists()
    assert all(not pid_alive(p) for p in f2["pids"].values())
    assert _harness_processes(private) == []
    assert harness.is_running()


def read_remote_in(dir, path: str) -> str | None:
    p = harness.ssh(["cat", path], dir=dir)
    return p.stdout if p.returncode == 0 else None
