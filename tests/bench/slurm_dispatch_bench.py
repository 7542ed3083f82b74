#!/usr/bin/env python3
"""Slurm dispatch benchmark on the loopback cluster (tests/cluster), in one run:

  grouped      `slurmbook run NB --profile cluster --force` with jobs = grouped (the
               default): compatible assets share one allocation, each an `srun` step
  per-asset    the same with SLURMBOOK_JOBS=per-asset: one job per asset, the whole
               subgraph submitted at once over one SSH master (afterok chain)
  one-at-a-time  the usual orchestrator loop: submit one job (`ssh ... sbatch --wrap true`),
               poll `squeue` every 2 s growing x1.5 to 5 s until it ends, then the next

for a 20-asset chain and a 50-asset fan-in of trivial assets. Reports wall time, SSH
connections, remote commands and Slurm jobs (distinct job ids of the run in the state
database). Needs the cluster up: python3 tests/cluster/cluster.py up

    python tests/bench/slurm_dispatch_bench.py [--binary target/debug/slurmbook]
        [--jobs grouped,per-asset,one-at-a-time] [--kinds chain,fan-in]
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


def notebook(path, kind):
    if kind == "chain":
        sources = ["%%asset a0\n1u64"] + [f"%%asset a{i}\na{i - 1} + 1" for i in range(1, 20)]
    else:
        sources = [f"%%asset p{i}\n{i}u64" for i in range(49)]
        sources.append("%%asset sink\n" + " + ".join(f"p{i}" for i in range(49)))
    cells = [{"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None, "source": s} for s in sources]
    path.write_text(json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    return len(sources), ([(f"a{i}", [f"a{i - 1}"] if i else []) for i in range(20)] if kind == "chain"
                          else [(f"p{i}", []) for i in range(49)] + [("sink", [f"p{i}" for i in range(49)])])


def jobs_of_last_run(d):
    db = sqlite3.connect(d / ".slurmbook" / "state.db")
    try:
        (run,) = db.execute("SELECT max(run_id) FROM run_jobs").fetchone()
        (n,) = db.execute("SELECT count(DISTINCT job_id) FROM run_jobs WHERE run_id = ?", (run,)).fetchone()
        return n
    finally:
        db.close()


def slurmbook(binary, facts, kind, tmp, jobs, step_time):
    d = tmp / f"sb-{kind}-{jobs}"
    d.mkdir()
    env = dict(os.environ, SLURMBOOK_JOBS=jobs)
    (d / "slurmbook.toml").write_text(
        'profile = "cluster"\n[profiles.cluster]\ntarget = "slurm"\n'
        f'host = "{facts["host"]}"\nssh_config = "{facts["ssh_config"]}"\n'
        'remote_dir = "$SCRATCH/slurmbook-bench"\npartition = "debug"\n'
        f'time = "{step_time}"\n')
    nb = d / f"{kind}.ipynb"
    notebook(nb, kind)
    # a first (untimed) run builds and uploads the job binary, so the timed run measures
    # dispatch; its upload counter is the repeat dispatch's
    first = subprocess.run([binary, "run", nb, "--profile", "cluster", "--force"], capture_output=True, text=True, env=env)
    assert first.returncode == 0, first.stdout + first.stderr
    t = time.perf_counter()
    out = subprocess.run([binary, "run", nb, "--profile", "cluster", "--force"], capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t
    assert out.returncode == 0, out.stdout + out.stderr
    m = re.search(r"ssh: (\d+) connection\(s\), (\d+) remote command\(s\), (\d+) byte", out.stdout)
    slurm_jobs = jobs_of_last_run(d)
    m2 = re.search(r"(\d+) byte\(s\) uploaded", out.stdout)
    return {"wall s": wall, "Slurm jobs": slurm_jobs, "ssh connections": int(m[1]), "remote commands": int(m[2]),
            "bytes uploaded (repeat)": int(m2[1]) if m2 else None}


def one_at_a_time(facts, kind):
    ssh = ["ssh", "-F", facts["ssh_config"], facts["host"]]
    n, order = notebook(pathlib.Path(tempfile.mktemp(suffix=".ipynb")), kind)
    connections = commands = 0
    t = time.perf_counter()
    for asset, _ in order:
        r = subprocess.run(ssh + [f"sbatch --parsable -p debug -t 00:05:00 -J bench-{asset} --wrap true"],
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
    return {"wall s": time.perf_counter() - t, "Slurm jobs": len(order), "ssh connections": connections,
            "remote commands": commands, "bytes uploaded (repeat)": None}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default=str(ROOT / "target/debug/slurmbook"))
    ap.add_argument("--jobs", default="grouped,per-asset,one-at-a-time",
                    help="columns to measure: grouped, per-asset, one-at-a-time (comma-separated)")
    ap.add_argument("--time", default="00:02:00",
                    help="the profile's --time per asset; a group's time is the sum along its longest path, "
                         "split at the debug partition's 1 h limit (00:05:00 x 20 splits the chain in two)")
    ap.add_argument("--kinds", default="chain,fan-in", help="graphs: chain (20 assets), fan-in (50 assets)")
    args = ap.parse_args()
    modes = [m for m in args.jobs.split(",") if m]
    for m in modes:
        if m not in ("grouped", "per-asset", "one-at-a-time"):
            ap.error(f"--jobs: unknown {m!r}")
    cluster_dir = pathlib.Path(os.environ.get("SLURMBOOK_CLUSTER_DIR", "/tmp/slurmbook-cluster"))
    facts = json.loads((cluster_dir / "cluster.json").read_text())
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="sb-dispatch-"))
    rows = []
    for kind in [k for k in args.kinds.split(",") if k]:
        for mode in modes:
            if mode == "one-at-a-time":
                r = one_at_a_time(facts, kind)
            else:
                r = slurmbook(args.binary, facts, kind, tmp, mode, args.time)
            rows.append((f"{kind}: {mode}", r))
            print(f"  measured {kind}: {mode}: {r['wall s']:.1f} s, {r['Slurm jobs']} job(s)", flush=True)
        base = next((r for n, r in rows if n == f"{kind}: one-at-a-time"), None)
        if base:
            for n, r in rows:
                if n.startswith(f"{kind}:"):
                    r["x faster than one-at-a-time"] = base["wall s"] / r["wall s"]
    keys = ["wall s", "Slurm jobs", "x faster than one-at-a-time", "ssh connections", "remote commands",
            "bytes uploaded (repeat)"]
    for r in (r for _, r in rows):
        r.setdefault("x faster than one-at-a-time", None)
    print(f"{'':28}" + "".join(f"{k:>30}" for k in keys))
    for name, r in rows:
        print(f"{name:28}" + "".join(f"{('-' if r[k] is None else (f'{r[k]:.1f}' if isinstance(r[k], float) else r[k])):>30}" for k in keys))


if __name__ == "__main__":
    main()
