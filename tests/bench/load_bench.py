#!/usr/bin/env python3
"""Load (issue 18): a notebook of N assets (default 1,000) materialized on the
loopback Slurm cluster, grouped and per-asset, with the bookkeeping checked
exactly: the CLI's summary, one `ok` materialization per asset in the run,
every value stored and right, the run recorded `ok`, no job left in the queue.

The notebook: N/10 roots `r{i}` (a number each), each with 9 dependents
`d{i}_{j} = r{i} * 10 + j`, so values are checkable and the plan has both
fan-out and many independent jobs.

    python tests/bench/load_bench.py [--assets 1000] [--jobs grouped,per-asset]
        [--binary target/debug/slurmbook]

Needs the cluster up (python3 tests/cluster/cluster.py up; SLURMBOOK_CLUSTER_DIR).
Prints one table row per mode: wall time and the Slurm jobs submitted.
"""
import argparse
import json
import os
import pathlib
import sqlite3
import subprocess
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[2]


def notebook(path, n):
    roots = max(1, n // 10)
    sources = []
    for i in range(roots):
        sources.append(f"%%asset r{i}\n{i}u64")
        for j in range(1, 10):
            if len(sources) < n:
                sources.append(f"%%asset d{i}_{j}\nr{i} * 10 + {j}")
    cells = [{"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None, "source": s}
             for s in sources[:n]]
    path.write_text(json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    expected = {}
    for s in sources[:n]:
        name = s.split()[1]
        expected[name] = int(name[1:]) if name.startswith("r") else int(name[1:].split("_")[0]) * 10 + int(name.split("_")[1])
    return expected


def facts():
    d = pathlib.Path(os.environ.get("SLURMBOOK_CLUSTER_DIR", "/tmp/slurmbook-cluster"))
    return json.loads((d / "cluster.json").read_text())


def run_mode(binary, n, jobs, f):
    tmp = pathlib.Path(tempfile.mkdtemp(prefix=f"sb-load-{jobs}-"))
    nb = tmp / "load.ipynb"
    expected = notebook(nb, n)
    remote_dir = f"{f['scratch']}/load-{jobs}-{int(time.time())}"
    (tmp / "slurmbook.toml").write_text(
        'profile = "cluster"\n[profiles.cluster]\ntarget = "slurm"\n'
        f'host = "{f["host"]}"\nssh_config = "{f["ssh_config"]}"\n'
        f'remote_dir = "{remote_dir}"\npartition = "debug"\ntime = "00:10:00"\n')
    start = time.time()
    out = subprocess.run([binary, "run", nb, "--profile", "cluster", "--jobs", jobs],
                         capture_output=True, text=True, timeout=3600)
    wall = time.time() - start
    text = out.stdout + out.stderr
    assert out.returncode == 0, text[-4000:]
    assert f"{n} done, 0 fresh, 0 failed" in text, text[-2000:]
    db = sqlite3.connect(tmp / ".slurmbook" / "state.db")
    (run_id, status), = db.execute("SELECT id, status FROM runs").fetchall()
    assert status == "ok", status
    rows = db.execute("SELECT asset, status, job_id FROM materializations WHERE run_id = ?", (run_id,)).fetchall()
    assert sorted(r[0] for r in rows) == sorted(expected), "one materialization per asset"
    assert all(r[1] == "ok" and r[2] for r in rows), [r for r in rows if r[1] != "ok"][:5]
    job_ids = {r[2] for r in rows}
    # Every value stored on the cluster is right.
    listing = subprocess.run(
        ["ssh", "-F", f["ssh_config"], f["host"],
         f"cd {remote_dir}/values && for v in *.json; do printf '%s ' \"$v\"; cat \"$v\"; echo; done"],
        capture_output=True, text=True, timeout=600)
    assert listing.returncode == 0, listing.stderr
    got = {}
    for line in listing.stdout.splitlines():
        name, value = line.split(" ", 1)
        asset = name.rsplit("-", 1)[0]
        got[asset] = json.loads(value)
    assert got == expected, {k: (got.get(k), v) for k, v in expected.items() if got.get(k) != v}
    queue = subprocess.run(["ssh", "-F", f["ssh_config"], f["host"], "squeue -h -o %i"],
                           capture_output=True, text=True, timeout=60).stdout.split()
    left = sorted(set(queue) & {j.split(".")[0] for j in job_ids})
    assert not left, f"jobs of the run still queued: {left}"
    return wall, len({j.split('.')[0] for j in job_ids})


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--assets", type=int, default=1000)
    p.add_argument("--jobs", default="grouped,per-asset")
    p.add_argument("--binary", default=str(ROOT / "target" / "debug" / "slurmbook"))
    a = p.parse_args()
    f = facts()
    print("| mode | assets | wall s | Slurm jobs | bookkeeping |")
    print("| --- | ---: | ---: | ---: | --- |")
    for jobs in a.jobs.split(","):
        wall, njobs = run_mode(a.binary, a.assets, jobs, f)
        print(f"| {jobs} | {a.assets} | {wall:.1f} | {njobs} | exact |", flush=True)


if __name__ == "__main__":
    main()
