#!/usr/bin/env python3
"""Streaming latency of Slurm job output on the loopback cluster (tests/cluster):
a job prints a line with its wall-clock timestamp every 100 ms for 10 s; the
benchmark runs `%materialize --target slurm` through the real kernel
(jupyter_client) and, for every line that reaches the client as an iopub
`stream` message, measures arrival time minus the line's timestamp (one
machine, one clock). Reports p50 / p95 / max over all lines.

    python tests/bench/slurm_stream_bench.py [--lines 100] [--every-ms 100]

Needs the cluster up (python3 tests/cluster/cluster.py up) and the kernelspec
installed (target/debug/slurmbook install --sys-prefix in the test virtualenv).
"""
import argparse
import json
import os
import pathlib
import re
import statistics
import tempfile
import time

from jupyter_client.manager import start_new_kernel

LINE = re.compile(r"\[stamps\] stamp (\d+) (\d+)")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lines", type=int, default=100)
    ap.add_argument("--every-ms", type=int, default=100)
    args = ap.parse_args()
    facts = json.loads((pathlib.Path(os.environ.get("SLURMBOOK_CLUSTER_DIR", "/tmp/slurmbook-cluster"))
                        / "cluster.json").read_text())
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        (tmp / "slurmbook.toml").write_text(
            'profile = "cluster"\n[profiles.cluster]\ntarget = "slurm"\n'
            f'host = "{facts["host"]}"\nssh_config = "{facts["ssh_config"]}"\n'
            'remote_dir = "$SCRATCH/slurmbook-bench"\npartition = "debug"\ntime = "00:05:00"\n')
        source = (
            "%%asset stamps\n"
            f"for i in 0..{args.lines} {{\n"
            "    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();\n"
            "    println!(\"stamp {i} {}\", now.as_nanos());\n"
            f"    std::thread::sleep(std::time::Duration::from_millis({args.every_ms}));\n"
            "}\n"
            f"{args.lines}u32")
        nb = {"cells": [{"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None,
                         "source": source}], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
        path = tmp / "stream.ipynb"
        path.write_text(json.dumps(nb))
        os.environ["JPY_SESSION_NAME"] = str(path)
        km, kc = start_new_kernel(kernel_name="slurmbook", cwd=str(tmp), startup_timeout=120)
        try:
            # First run builds and uploads; the measured run is a --force repeat.
            for label in ["warm-up", "measured"]:
                msg_id = kc.execute("%materialize --target slurm --force")
                latencies = {}
                while True:
                    msg = kc.get_iopub_msg(timeout=600)
                    arrived = time.time_ns()
                    if msg["parent_header"].get("msg_id") != msg_id:
                        continue
                    if msg["msg_type"] == "stream":
                        for m in LINE.finditer(msg["content"]["text"]):
                            latencies[int(m.group(1))] = (arrived - int(m.group(2))) / 1e6
                    if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                        break
            ms = sorted(latencies.values())
            if len(ms) != args.lines:
                raise SystemExit(f"only {len(ms)} of {args.lines} lines arrived")
            p95 = ms[max(0, int(round(0.95 * len(ms))) - 1)]
            print("| metric | value |\n| --- | --- |")
            print(f"| lines | {len(ms)} (one every {args.every_ms} ms) |")
            print(f"| p50 remote line -> client | {statistics.median(ms):.0f} ms |")
            print(f"| p95 remote line -> client | {p95:.0f} ms |")
            print(f"| max | {ms[-1]:.0f} ms |")
        finally:
            kc.stop_channels()
            km.shutdown_kernel(now=True)


if __name__ == "__main__":
    main()
