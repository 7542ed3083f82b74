#!/usr/bin/env python3
"""Job environment benchmark on the loopback cluster (tests/cluster), with the
pack tests' fixture environment (target/debug/examples/make_test_env: three
small conda packages in a local channel):

  pack          `slurmbook-env pack` of the environment for linux-64 (native
                packing): wall time and archive size
  cold          `slurmbook run NB --profile cluster --force` with a fresh
                remote_dir and no local archive: pack, upload slurmbook-env,
                the archive and the job binary, the first job unpacks
  warm          the same again: the cluster has everything

"to job start" is from launching `slurmbook run` to the asset's first line of
code in the job (it prints the wall clock; the cluster is this machine, so one
clock), i.e. after unpacking and activation. The job binary is built once
before timing (a warm local build cache). Needs the cluster up and
`cargo build --workspace --all-targets`.

    python tests/bench/env_bench.py [--cold 2] [--warm 3]
"""
import argparse
import json
import pathlib
import re
import statistics
import subprocess
import tempfile
import time
import uuid

ROOT = pathlib.Path(__file__).resolve().parents[2]
BINARY = ROOT / "target" / "debug" / "slurmbook"
ENV_TOOL = ROOT / "target" / "debug" / "slurmbook-env"
MAKE_TEST_ENV = ROOT / "target" / "debug" / "examples" / "make_test_env"
CLUSTER = pathlib.Path("/tmp/slurmbook-cluster/cluster.json")
STATS = re.compile(r"ssh: (\d+) connection\(s\), (\d+) remote command\(s\), (\d+) byte\(s\) uploaded")

CELL = (
    "%%asset started: u128\n"
    "let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis();\n"
    "println!(\"started_ms={now}\");\n"
    "let out = std::process::Command::new(\"hello-tool\").output().expect(\"hello-tool runs\");\n"
    "assert!(out.status.success());\n"
    "now"
)


def write_config(project, facts, remote_dir):
    (project / "slurmbook.toml").write_text(
        'profile = "cluster"\n[profiles.cluster]\ntarget = "slurm"\n'
        f'host = "{facts["host"]}"\nssh_config = "{facts["ssh_config"]}"\n'
        f'remote_dir = "{remote_dir}"\npartition = "debug"\ntime = "00:05:00"\n')


def timed_run(nb):
    t0 = time.time()
    out = subprocess.run([BINARY, "run", nb, "--profile", "cluster", "--force"],
                         capture_output=True, text=True, timeout=600)
    text = out.stdout + out.stderr
    assert out.returncode == 0, text
    started = int(re.search(r"started_ms=(\d+)", text).group(1)) / 1000
    stats = STATS.search(text)
    return {"to_job_start": started - t0, "wall": time.time() - t0, "bytes": int(stats.group(3))}


def local_archive(key):
    envs = pathlib.Path.home() / ".cache" / "slurmbook" / "build" / "envs"
    return [envs / f"slurmbook-env-{key}.tar", envs / f"slurmbook-env-{key}.json"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cold", type=int, default=2)
    ap.add_argument("--warm", type=int, default=3)
    args = ap.parse_args()
    facts = json.loads(CLUSTER.read_text())
    with tempfile.TemporaryDirectory(prefix="env-bench-") as tmp:
        tmp = pathlib.Path(tmp)
        project = tmp / "project"
        subprocess.run([MAKE_TEST_ENV, project], check=True, capture_output=True)
        nb = project / "bench.ipynb"
        nb.write_text(json.dumps({"cells": [{"cell_type": "code", "metadata": {}, "outputs": [],
                                             "execution_count": None, "source": CELL}],
                                  "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
        key = subprocess.run([ENV_TOOL, "key", "--dir", project, "--platform", "linux-64"],
                             check=True, capture_output=True, text=True).stdout.strip().split()[-1]

        # pack, natively, into a scratch directory
        packs = []
        for _ in range(3):
            out_dir = tmp / f"pack-{uuid.uuid4().hex[:6]}"
            t = time.perf_counter()
            subprocess.run([ENV_TOOL, "pack", "--dir", project, "--platform", "linux-64", "--out-dir", out_dir],
                           check=True, capture_output=True)
            packs.append(time.perf_counter() - t)
        archive_size = (out_dir / f"slurmbook-env-{key}.tar").stat().st_size

        # build the job binary once (a throwaway remote_dir), so timings exclude cargo
        scratch = facts["scratch"]
        write_config(project, facts, f"{scratch}/env-bench-{uuid.uuid4().hex[:8]}")
        timed_run(nb)

        cold, warm = [], []
        for _ in range(args.cold):
            for f in local_archive(key):
                f.unlink(missing_ok=True)
            write_config(project, facts, f"{scratch}/env-bench-{uuid.uuid4().hex[:8]}")
            cold.append(timed_run(nb))
        for _ in range(args.warm):
            warm.append(timed_run(nb))

    med = lambda xs: statistics.median(xs)  # noqa: E731
    print("| measure | value |")
    print("|---|---|")
    print(f"| pack (slurmbook-env pack, native, 3 packages), median of {len(packs)} | {med(packs):.2f} s |")
    print(f"| archive size | {archive_size} bytes |")
    print(f"| cold: run start -> job start (fresh remote_dir, no local archive), median of {len(cold)} "
          f"| {med([c['to_job_start'] for c in cold]):.2f} s (whole run {med([c['wall'] for c in cold]):.2f} s) |")
    print(f"| cold: bytes uploaded (slurmbook-env + archive + job binary) | {cold[-1]['bytes']} |")
    print(f"| warm: run start -> job start, median of {len(warm)} "
          f"| {med([w['to_job_start'] for w in warm]):.2f} s (whole run {med([w['wall'] for w in warm]):.2f} s) |")
    print(f"| warm: bytes uploaded (goal 0) | {', '.join(str(w['bytes']) for w in warm)} |")


if __name__ == "__main__":
    main()
