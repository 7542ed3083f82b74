#!/usr/bin/env python3
"""Kernel protocol benchmark: slurmbook vs evcxr_jupyter vs ipykernel, in one run.

For each kernel: start -> first kernel_info_reply, first cell (`1 + 2`),
warm cell median, empty-cell round trip median, kernel_info round trip median.
Kernels are started through jupyter_client from temporary kernelspecs, so the
exact binaries are measured:

    python tests/bench/kernel_bench.py [--slurmbook PATH] [--evcxr PATH] [--runs N]

evcxr_jupyter: `cargo install evcxr_jupyter --version 0.22.0 --locked --root DIR`
(the default PATH is /work/bench-tools/bin/evcxr_jupyter). A kernel whose
binary is missing is reported as such, not silently dropped.
"""
import argparse
import json
import os
import pathlib
import shutil
import statistics
import sys
import tempfile
import time

from jupyter_client import KernelManager

ROOT = pathlib.Path(__file__).resolve().parents[2]


def spec_dir(tmp, name, argv, language):
    d = pathlib.Path(tmp) / "kernels" / name
    d.mkdir(parents=True)
    (d / "kernel.json").write_text(json.dumps({"argv": argv, "display_name": name, "language": language}))
    return name


def wait_reply(kc, msg_id, timeout=300):
    while True:
        msg = kc.get_shell_msg(timeout=timeout)
        if msg["parent_header"].get("msg_id") == msg_id:
            return msg


def wait_idle(kc, msg_id, timeout=300):
    while True:
        msg = kc.get_iopub_msg(timeout=timeout)
        if msg["parent_header"].get("msg_id") == msg_id and msg["msg_type"] == "status" \
                and msg["content"]["execution_state"] == "idle":
            return


def execute(kc, code):
    t = time.perf_counter()
    msg_id = kc.execute(code)
    reply = wait_reply(kc, msg_id)
    wait_idle(kc, msg_id)
    elapsed = time.perf_counter() - t
    assert reply["content"]["status"] == "ok", reply["content"]
    return elapsed


def measure(kernel_name, cell, runs):
    km = KernelManager(kernel_name=kernel_name)
    t0 = time.perf_counter()
    km.start_kernel()
    kc = km.client()
    kc.start_channels()
    # start -> first kernel_info_reply (polling as clients do)
    while True:
        msg_id = kc.kernel_info()
        try:
            wait_reply(kc, msg_id, timeout=0.5)
            break
        except Exception:
            continue
    start = time.perf_counter() - t0
    time.sleep(0.3)
    first = execute(kc, cell)
    warm = [execute(kc, cell) for _ in range(runs)]
    empty = [execute(kc, "") for _ in range(runs * 4)]
    info = []
    for _ in range(runs * 4):
        t = time.perf_counter()
        wait_reply(kc, kc.kernel_info())
        info.append(time.perf_counter() - t)
    kc.stop_channels()
    km.shutdown_kernel(now=True)
    return {
        "start to kernel_info_reply": start,
        "first cell": first,
        "warm cell (median)": statistics.median(warm),
        "empty cell round trip (median)": statistics.median(empty),
        "kernel_info round trip (median)": statistics.median(info),
    }


def fmt(seconds):
    return f"{seconds * 1000:9.2f} ms" if seconds < 10 else f"{seconds:9.2f} s "


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--slurmbook", default=str(ROOT / "target/release/slurmbook"))
    ap.add_argument("--evcxr", default="/work/bench-tools/bin/evcxr_jupyter")
    ap.add_argument("--runs", type=int, default=10)
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="sb-bench-")
    os.environ["JUPYTER_PATH"] = tmp
    kernels = []
    if os.path.exists(args.slurmbook):
        kernels.append(("slurmbook", spec_dir(tmp, "bench-slurmbook", [args.slurmbook, "kernel", "--connection-file", "{connection_file}"], "rust"), "1 + 2"))
    else:
        print(f"slurmbook binary missing: {args.slurmbook}")
    if os.path.exists(args.evcxr):
        kernels.append(("evcxr_jupyter 0.22", spec_dir(tmp, "bench-evcxr", [args.evcxr, "--control_file", "{connection_file}"], "rust"), "1 + 2"))
    else:
        print(f"evcxr_jupyter binary missing: {args.evcxr}")
    kernels.append(("ipykernel", spec_dir(tmp, "bench-ipykernel", [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"], "python"), "1 + 2"))
    results = {}
    for label, name, cell in kernels:
        print(f"measuring {label} ...", flush=True)
        results[label] = measure(name, cell, args.runs)
    labels = list(results)
    metrics = list(next(iter(results.values())))
    print()
    print(f"{'metric':34}" + "".join(f"{l:>22}" for l in labels))
    for m in metrics:
        print(f"{m:34}" + "".join(f"{fmt(results[l][m]):>22}" for l in labels))
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
