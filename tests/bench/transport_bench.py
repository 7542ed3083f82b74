#!/usr/bin/env python3
"""Local transport vs SSH to the same machine, on the loopback cluster (tests/cluster),
in one run, side by side:

  local   a profile without `host`: slurmbook runs sbatch, squeue, ... itself (a kernel
          on the submit host), with the cluster's remote_env (SLURM_CONF, SCRATCH)
  ssh     the same profile with host + ssh_config: every command over one SSH master

for a 20-asset chain and a 50-asset fan-in of trivial assets, grouped (one allocation,
`srun` steps) and per-asset (one job each, afterok). Each configuration runs
`slurmbook run NB --profile cluster --jobs MODE --force` three times: untimed (builds
and uploads the job binary), timed, and under `strace -f -e trace=execve` (to count
the processes it starts). Reported per configuration:

  wall s            the timed run, from starting the CLI to its exit
  first submit s    from starting the CLI to the first job recorded as submitted (the
                    state db's materializations.started_at, written when sbatch returned)
  commands          the CLI's own count (`local: N command(s)` / `ssh: ... N remote command(s)`)
  ssh conns         SSH master connections (local: 0)
  processes         successful execve calls of the CLI and all its descendants (cargo's
                    up-to-date check included); in brackets those of ssh/Slurm clients
  transport ms      the local transport's own cost: commands x the measured cost of
                    starting and reaping one process here (fork/exec/wait of `true`,
                    median of 200) + bytes copied / measured copy rate; for ssh, not
                    estimated (its commands are round trips over the master)

Needs the cluster up (python3 tests/cluster/cluster.py up) and strace.

    python tests/bench/transport_bench.py [--binary target/debug/slurmbook]
        [--kinds chain,fan-in] [--jobs grouped,per-asset] [--transports local,ssh]
"""
import argparse
import datetime
import json
import os
import pathlib
import re
import shutil
import sqlite3
import statistics
import subprocess
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[2]
CLIENTS = {"ssh", "sbatch", "squeue", "scontrol", "sacct", "scancel", "sinfo", "srun"}


def notebook(path, kind):
    if kind == "chain":
        sources = ["%%asset a0\n1u64"] + [f"%%asset a{i}\na{i - 1} + 1" for i in range(1, 20)]
    else:
        sources = [f"%%asset p{i}\n{i}u64" for i in range(49)]
        sources.append("%%asset sink\n" + " + ".join(f"p{i}" for i in range(49)))
    cells = [{"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None, "source": s}
             for s in sources]
    path.write_text(json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))


def stats(out, transport):
    if transport == "local":
        m = re.search(r"local: (\d+) command\(s\), (\d+) byte\(s\) copied", out)
        assert m, out
        return 0, int(m[1]), int(m[2])
    m = re.search(r"ssh: (\d+) connection\(s\), (\d+) remote command\(s\), (\d+) byte\(s\) uploaded", out)
    assert m, out
    return int(m[1]), int(m[2]), int(m[3])


def first_submit(d):
    """Unix time of the last run's first recorded submission."""
    db = sqlite3.connect(d / ".slurmbook" / "state.db")
    try:
        (run,) = db.execute("SELECT max(id) FROM runs").fetchone()
        (ts,) = db.execute("SELECT min(started_at) FROM materializations WHERE run_id = ?", (run,)).fetchone()
    finally:
        db.close()
    return datetime.datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


def spawn_cost():
    """Median seconds to start and reap one process here."""
    true = shutil.which("true")
    times = []
    for _ in range(200):
        t = time.perf_counter()
        subprocess.run([true])
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def copy_rate():
    """Bytes per second of writing a file here (what an upload becomes locally)."""
    data = os.urandom(32 << 20)
    with tempfile.TemporaryDirectory() as d:
        t = time.perf_counter()
        p = pathlib.Path(d) / "x"
        p.write_bytes(data)
        os.fsync(os.open(p, os.O_RDONLY))
        return len(data) / (time.perf_counter() - t)


def processes(trace):
    """(all, ssh/Slurm clients) successful execve calls in an strace -f log."""
    total = clients = 0
    for line in pathlib.Path(trace).read_text().splitlines():
        m = re.search(r'execve\("([^"]+)".* = 0$', line)
        if m:
            total += 1
            clients += os.path.basename(m[1]) in CLIENTS
    return total, clients


def measure(binary, facts, tmp, kind, mode, transport, step_time, spawn_s, rate):
    d = tmp / f"{kind}-{mode}-{transport}"
    d.mkdir()
    connection = "" if transport == "local" else \
        f'host = "{facts["host"]}"\nssh_config = "{facts["ssh_config"]}"\n'
    (d / "slurmbook.toml").write_text(
        'profile = "cluster"\n[profiles.cluster]\ntarget = "slurm"\n' + connection +
        'remote_dir = "$SCRATCH/slurmbook-transport-bench"\npartition = "debug"\n'
        f'time = "{step_time}"\n')
    nb = d / f"{kind}.ipynb"
    notebook(nb, kind)
    env = dict(os.environ, **facts["remote_env"]) if transport == "local" else dict(os.environ)
    argv = [binary, "run", nb, "--profile", "cluster", "--jobs", mode, "--force"]
    warm = subprocess.run(argv, capture_output=True, text=True, env=env)
    assert warm.returncode == 0, warm.stdout + warm.stderr
    start = time.time()
    t = time.perf_counter()
    out = subprocess.run(argv, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t
    assert out.returncode == 0, out.stdout + out.stderr
    to_first = first_submit(d) - start
    conns, commands, sent = stats(out.stdout, transport)
    trace = d / "strace.log"
    traced = subprocess.run(["strace", "-f", "-qq", "-e", "trace=execve", "-e", "signal=none", "-o", trace, *argv],
                            capture_output=True, text=True, env=env)
    assert traced.returncode == 0, traced.stdout + traced.stderr
    procs, clients = processes(trace)
    own = (commands * spawn_s + sent / rate) * 1000 if transport == "local" else None
    return {"wall s": wall, "first submit s": to_first, "commands": commands, "ssh conns": conns,
            "processes": f"{procs} ({clients})", "transport ms": own}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default=str(ROOT / "target/debug/slurmbook"))
    ap.add_argument("--kinds", default="chain,fan-in")
    ap.add_argument("--jobs", default="grouped,per-asset")
    ap.add_argument("--transports", default="local,ssh")
    ap.add_argument("--time", default="00:02:00", help="the profile's --time per asset")
    args = ap.parse_args()
    assert shutil.which("strace"), "strace is needed to count processes"
    cluster_dir = pathlib.Path(os.environ.get("SLURMBOOK_CLUSTER_DIR", "/tmp/slurmbook-cluster"))
    facts = json.loads((cluster_dir / "cluster.json").read_text())
    spawn_s, rate = spawn_cost(), copy_rate()
    print(f"  one process started and reaped: {spawn_s * 1000:.2f} ms (median of 200); "
          f"copy rate {rate / 1e6:.0f} MB/s", flush=True)
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="sb-transport-"))
    rows = []
    for kind in args.kinds.split(","):
        for mode in args.jobs.split(","):
            for transport in args.transports.split(","):
                r = measure(args.binary, facts, tmp, kind, mode, transport, args.time, spawn_s, rate)
                name = f"{kind} {mode} {transport}"
                rows.append((name, r))
                print(f"  measured {name}: {r['wall s']:.1f} s", flush=True)
    keys = ["wall s", "first submit s", "commands", "ssh conns", "processes", "transport ms"]
    print("| run | " + " | ".join(keys) + " |")
    print("| --- |" + " ---: |" * len(keys))
    for name, r in rows:
        cells = []
        for k in keys:
            v = r[k]
            cells.append("-" if v is None else f"{v:.0f}" if k == "transport ms" else
                         f"{v:.2f}" if isinstance(v, float) else str(v))
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
