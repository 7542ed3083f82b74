#!/usr/bin/env python3
"""Sweep benchmark on the loopback cluster (tests/cluster), in one run: 100
trivial partitions of one asset, dispatched four ways —

  array          `slurmbook run NB --profile cluster --force` of `%%asset sim
                 --partitions 0..100`: ONE job array (one sbatch, one queue entry)
  grouped        100 trivial assets after one trivial `seed` (connected: the
                 planner groups only connected assets) in one grouped
                 allocation (the default jobs = grouped): one job, each asset
                 an `srun` step
  per-asset      the same 101 assets with SLURMBOOK_JOBS=per-asset: 101 jobs,
                 submitted at once in one SSH round trip
  one-at-a-time  the usual orchestrator loop: submit one job (`ssh ... sbatch
                 --wrap true`), poll `squeue` every 2 s growing x1.5 to 5 s
                 until it ends, then the next

Reports wall time, Slurm jobs created (distinct job ids of the run: for the
array, its array job), submission commands (`sbatch` calls), SSH connections
and remote commands. Not a timed test. Needs the cluster up:
python3 tests/cluster/cluster.py up

    python tests/bench/partitions_bench.py [--binary target/debug/slurmbook] [--modes array,grouped,...]
"""
import argparse
import json
import os
import pathlib
import re
import sqlite3
import subprocess
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[2]
N = 100


def write_notebook(path, sources):
    cells = [{"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None, "source": s}
             for s in sources]
    path.write_text(json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))


def slurm_jobs(d, array):
    """Distinct Slurm jobs of the last run (an array's tasks are one job)."""
    db = sqlite3.connect(d / ".slurmbook" / "state.db")
    try:
        (run,) = db.execute("SELECT max(id) FROM runs").fetchone()
        rows = db.execute("SELECT job_id FROM materializations WHERE run_id = ? AND job_id IS NOT NULL"
                          + (" AND partition IS NOT NULL" if array else ""), (run,)).fetchall()
        return len({j.split("_")[0] for (j,) in rows}), len(rows)
    finally:
        db.close()


def slurmbook(binary, facts, tmp, mode):
    d = tmp / f"sb-{mode}"
    d.mkdir()
    env = dict(os.environ, SLURMBOOK_JOBS="per-asset" if mode == "per-asset" else "grouped")
    (d / "slurmbook.toml").write_text(
        'profile = "cluster"\n[profiles.cluster]\ntarget = "slurm"\n'
        f'host = "{facts["host"]}"\nssh_config = "{facts["ssh_config"]}"\n'
        'remote_dir = "$SCRATCH/slurmbook-bench"\npartition = "debug"\ntime = "00:02:00"\n')
    nb = d / "sweep.ipynb"
    if mode == "array":
        write_notebook(nb, [f"%%asset sim: u64 --partitions 0..{N}\npartition_index as u64"])
    else:
        write_notebook(nb, ["%%asset seed\n0u64"] + [f"%%asset p{i}\nseed + {i}" for i in range(N)])
    # A first (untimed) run builds and uploads the job binary: the timed run measures dispatch.
    first = subprocess.run([binary, "run", nb, "--profile", "cluster", "--force"], capture_output=True,
                           text=True, env=env)
    assert first.returncode == 0, first.stdout + first.stderr
    t = time.perf_counter()
    out = subprocess.run([binary, "run", nb, "--profile", "cluster", "--force"], capture_output=True,
                         text=True, env=env)
    wall = time.perf_counter() - t
    assert out.returncode == 0, out.stdout + out.stderr
    m = re.search(r"ssh: (\d+) connection\(s\), (\d+) remote command\(s\)", out.stdout)
    jobs, computed = slurm_jobs(d, mode == "array")
    assert computed == (N if mode == "array" else N + 1), (mode, computed)
    return {"wall s": wall, "Slurm jobs": jobs, "sbatch calls": jobs,
            "ssh connections": int(m[1]) if m else None, "remote commands": int(m[2]) if m else None}


def one_at_a_time(facts):
    ssh = ["ssh", "-F", facts["ssh_config"], facts["host"]]
    connections = commands = 0
    t = time.perf_counter()
    for i in range(N):
        r = subprocess.run(ssh + [f"sbatch --parsable -p debug -t 00:02:00 -J bench-p{i} --wrap true"],
                           capture_output=True, text=True, check=True)
        connections += 1
        commands += 1
        job = r.stdout.strip().split(";")[0]
        delay = 2.0
        while True:
            time.sleep(delay)
            q = subprocess.run(ssh + [f"squeue -h -j {job} -o %T"], capture_output=True, text=True)
            connections += 1
            commands += 1
            if not q.stdout.strip():
                break
            delay = min(delay * 1.5, 5.0)
    return {"wall s": time.perf_counter() - t, "Slurm jobs": N, "sbatch calls": N,
            "ssh connections": connections, "remote commands": commands}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default=str(ROOT / "target/debug/slurmbook"))
    ap.add_argument("--modes", default="array,grouped,per-asset,one-at-a-time")
    args = ap.parse_args()
    modes = [m for m in args.modes.split(",") if m]
    for m in modes:
        if m not in ("array", "grouped", "per-asset", "one-at-a-time"):
            ap.error(f"--modes: unknown {m!r}")
    cluster_dir = pathlib.Path(os.environ.get("SLURMBOOK_CLUSTER_DIR", "/tmp/slurmbook-cluster"))
    facts = json.loads((cluster_dir / "cluster.json").read_text())
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="sb-partitions-"))
    rows = []
    for mode in modes:
        r = one_at_a_time(facts) if mode == "one-at-a-time" else slurmbook(args.binary, facts, tmp, mode)
        rows.append((mode, r))
        print(f"  measured {mode}: {r['wall s']:.1f} s, {r['Slurm jobs']} job(s)", flush=True)
    by = dict(rows)
    for _, r in rows:
        r["x faster than one-at-a-time"] = by["one-at-a-time"]["wall s"] / r["wall s"] if "one-at-a-time" in by else None
        r["vs grouped"] = r["wall s"] / by["grouped"]["wall s"] if "grouped" in by else None
    keys = ["wall s", "Slurm jobs", "sbatch calls", "x faster than one-at-a-time", "vs grouped",
            "ssh connections", "remote commands"]
    print(f"100 trivial partitions{'':4}" + "".join(f"{k:>28}" for k in keys))
    for name, r in rows:
        cell = lambda v: "-" if v is None else (f"{v:.2f}" if isinstance(v, float) else str(v))
        print(f"{name:26}" + "".join(f"{cell(r[k]):>28}" for k in keys))


if __name__ == "__main__":
    main()
