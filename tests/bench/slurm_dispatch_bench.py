#!/usr/bin/env python3
"""Slurm dispatch benchmark on the loopback cluster (tests/cluster), in one run:

  slurmbook    `slurmbook run NB --profile cluster --force`: the whole subgraph submitted at
               once over one SSH master (afterok chain), output streamed
  one-at-a-time  the usual orchestrator loop: submit one job (`ssh ... sbatch --wrap true`),
               poll `squeue` every 2 s growing x1.5 to 5 s until it ends, then the next

for a 20-asset chain and a 50-asset fan-in of trivial assets. Reports wall time, SSH
connections and remote commands. Needs the cluster up: python3 tests/cluster/cluster.py up

    python tests/bench/slurm_dispatch_bench.py [--binary target/debug/slurmbook]
"""
import argparse
import json
import os
import pathlib
import re
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


def slurmbook(binary, facts, kind, tmp):
    d = tmp / f"sb-{kind}"
    d.mkdir()
    (d / "slurmbook.toml").write_text(
        'profile = "cluster"\n[profiles.cluster]\ntarget = "slurm"\n'
        f'host = "{facts["host"]}"\nssh_config = "{facts["ssh_config"]}"\n'
        'remote_dir = "$SCRATCH/slurmbook-bench"\npartition = "debug"\ntime = "00:05:00"\n')
    nb = d / f"{kind}.ipynb"
    notebook(nb, kind)
    # build the job binary first, so the timed run measures dispatch (a warm build cache)
    subprocess.run([binary, "run", nb, "--profile", "cluster", "--dry-run"], check=True, capture_output=True)
    t = time.perf_counter()
    out = subprocess.run([binary, "run", nb, "--profile", "cluster", "--force"], capture_output=True, text=True)
    wall = time.perf_counter() - t
    assert out.returncode == 0, out.stdout + out.stderr
    m = re.search(r"ssh: (\d+) connection\(s\), (\d+) remote command\(s\), (\d+) byte", out.stdout)
    again = subprocess.run([binary, "run", nb, "--profile", "cluster", "--force"], capture_output=True, text=True)
    m2 = re.search(r"(\d+) byte\(s\) uploaded", again.stdout)
    return {"wall s": wall, "ssh connections": int(m[1]), "remote commands": int(m[2]),
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
    return {"wall s": time.perf_counter() - t, "ssh connections": connections, "remote commands": commands,
            "bytes uploaded (repeat)": None}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default=str(ROOT / "target/debug/slurmbook"))
    args = ap.parse_args()
    cluster_dir = pathlib.Path(os.environ.get("SLURMBOOK_CLUSTER_DIR", "/tmp/slurmbook-cluster"))
    facts = json.loads((cluster_dir / "cluster.json").read_text())
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="sb-dispatch-"))
    rows = []
    for kind in ["chain", "fan-in"]:
        rows.append((f"{kind}: slurmbook", slurmbook(args.binary, facts, kind, tmp)))
        rows.append((f"{kind}: one-at-a-time", one_at_a_time(facts, kind)))
    keys = ["wall s", "ssh connections", "remote commands", "bytes uploaded (repeat)"]
    print(f"{'':28}" + "".join(f"{k:>26}" for k in keys))
    for name, r in rows:
        print(f"{name:28}" + "".join(f"{('-' if r[k] is None else (f'{r[k]:.1f}' if isinstance(r[k], float) else r[k])):>26}" for k in keys))


if __name__ == "__main__":
    main()
