#!/usr/bin/env python3
"""Kernel protocol benchmark: slurmbook vs evcxr_jupyter vs ipykernel, in one run.

For each kernel, over --starts fresh kernel processes (medians reported):
- start -> kernel_info_reply: from launching the process to the first
  kernel_info_reply (requests resent every 0.5 s, as clients poll);
- start -> first result: from launching the process to the execute_reply of
  `1 + 2`, sent right after that first kernel_info_reply (its execute_result
  `3` is checked), i.e. what a user who runs a cell at once waits;
- first cell: that first cell's own round trip (send -> reply and idle);
- warm cell, empty-cell round trip and kernel_info round trip medians
  (over all starts).

slurmbook is measured with a cold persistent cache (its cache directory
emptied before each start) and with a warm one (a start that already ran the
same cells came before: a notebook run again after a restart), and warm with
a first cell no start ran before (`1 + 2 + 0 * <nonce>`, a new notebook). The
cache lives in a temporary SLURMBOOK_CACHE_DIR under ~/.cache, never the
user's. --slurmbook-before adds another
slurmbook binary (e.g. a build of an older commit) as its own column.

Kernels are started through jupyter_client from temporary kernelspecs, so the
exact binaries are measured:

    python tests/bench/kernel_bench.py [--slurmbook PATH] [--slurmbook-before PATH]
        [--evcxr PATH] [--starts N] [--runs N] [--json FILE]

evcxr_jupyter: `cargo install evcxr_jupyter --version 0.22.0 --locked --root DIR`
(the default PATH is /work/bench-tools/bin/evcxr_jupyter). A kernel whose
binary is missing is reported as such, not silently dropped.
"""
import argparse
import json
import os
import pathlib
import queue
import shutil
import statistics
import sys
import tempfile
import time

from jupyter_client import KernelManager

ROOT = pathlib.Path(__file__).resolve().parents[2]
CELL = "1 + 2"


def spec_dir(tmp, name, argv, language, env=None):
    d = pathlib.Path(tmp) / "kernels" / name
    d.mkdir(parents=True)
    spec = {"argv": argv, "display_name": name, "language": language}
    if env:
        spec["env"] = env
    (d / "kernel.json").write_text(json.dumps(spec))
    return name


def wait_reply(kc, msg_id, timeout=300):
    while True:
        msg = kc.get_shell_msg(timeout=timeout)
        if msg["parent_header"].get("msg_id") == msg_id:
            return msg


def collect_iopub(kc, msg_id, timeout=300):
    """The iopub messages of one request, up to its idle status."""
    msgs = []
    deadline = time.monotonic() + timeout
    while True:
        msg = kc.get_iopub_msg(timeout=max(0.01, deadline - time.monotonic()))
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        msgs.append(msg)
        if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            return msgs


def execute(kc, code):
    t = time.perf_counter()
    msg_id = kc.execute(code)
    reply = wait_reply(kc, msg_id)
    collect_iopub(kc, msg_id)
    elapsed = time.perf_counter() - t
    assert reply["content"]["status"] == "ok", reply["content"]
    return elapsed


def one_start(kernel_name, runs, samples, first_cell=CELL):
    km = KernelManager(kernel_name=kernel_name)
    t0 = time.perf_counter()
    km.start_kernel()
    kc = km.client()
    kc.start_channels()
    try:
        while True:
            msg_id = kc.kernel_info()
            try:
                wait_reply(kc, msg_id, timeout=0.5)
                break
            except queue.Empty:
                continue
        samples["start to kernel_info_reply"].append(time.perf_counter() - t0)
        t1 = time.perf_counter()
        msg_id = kc.execute(first_cell)
        reply = wait_reply(kc, msg_id)
        now = time.perf_counter()
        assert reply["content"]["status"] == "ok", reply["content"]
        samples["start to first result"].append(now - t0)
        try:
            msgs = collect_iopub(kc, msg_id, timeout=30)
            results = [m["content"]["data"].get("text/plain") for m in msgs if m["msg_type"] == "execute_result"]
            assert results == ["3"], f"first cell's results: {results}"
        except queue.Empty:
            print("  (iopub missed the first cell's idle: result not checked)", flush=True)
        samples["first cell"].append(now - t1)
        samples["warm cell (median)"] += [execute(kc, CELL) for _ in range(runs)]
        samples["empty cell round trip (median)"] += [execute(kc, "") for _ in range(runs * 4)]
        for _ in range(runs * 4):
            t = time.perf_counter()
            wait_reply(kc, kc.kernel_info())
            samples["kernel_info round trip (median)"].append(time.perf_counter() - t)
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


METRICS = [
    "start to kernel_info_reply",
    "start to first result",
    "first cell",
    "warm cell (median)",
    "empty cell round trip (median)",
    "kernel_info round trip (median)",
]


def first_cell(new):
    # A new first cell is one no earlier start ran (its value is still 3).
    return f"1 + 2 + 0 * {time.time_ns() % 1_000_000}" if new else CELL


def fmt(seconds):
    return f"{seconds * 1000:9.2f} ms" if seconds < 10 else f"{seconds:9.2f} s "


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--slurmbook", default=str(ROOT / "target/release/slurmbook"))
    ap.add_argument("--slurmbook-before", help="another slurmbook binary, measured as 'slurmbook before'")
    ap.add_argument("--evcxr", default="/work/bench-tools/bin/evcxr_jupyter")
    ap.add_argument("--no-ipykernel", action="store_true")
    ap.add_argument("--starts", type=int, default=3, help="kernel processes started per kernel")
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--json", help="write every sample here")
    ap.add_argument("--only", help="comma-separated parts of kernel labels to measure (e.g. 'before,cold')")
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="sb-bench-")
    os.environ["JUPYTER_PATH"] = tmp
    # Under the user's cache directory, where the real one lives (its depth
    # matters to the libraries evcxr builds), but not the real one.
    user_cache = pathlib.Path(os.environ.get("XDG_CACHE_HOME", pathlib.Path.home() / ".cache"))
    user_cache.mkdir(parents=True, exist_ok=True)
    cache = pathlib.Path(tempfile.mkdtemp(prefix="slurmbook-bench-", dir=user_cache))

    def clear_cache():
        shutil.rmtree(cache, ignore_errors=True)

    kernels = []  # (label, kernelspec name, hook run before each start)
    if args.slurmbook_before:
        if os.path.exists(args.slurmbook_before):
            argv = [args.slurmbook_before, "kernel", "--connection-file", "{connection_file}"]
            kernels.append(("slurmbook before", spec_dir(tmp, "bench-slurmbook-before", argv, "rust"), None))
        else:
            print(f"slurmbook (before) binary missing: {args.slurmbook_before}")
    if os.path.exists(args.slurmbook):
        argv = [args.slurmbook, "kernel", "--connection-file", "{connection_file}"]
        name = spec_dir(tmp, "bench-slurmbook", argv, "rust", {"SLURMBOOK_CACHE_DIR": str(cache)})
        kernels.append(("slurmbook cold cache", name, clear_cache))
        kernels.append(("slurmbook warm cache", name, None))
        kernels.append(("slurmbook warm, new cell", name, None))
    else:
        print(f"slurmbook binary missing: {args.slurmbook}")
    if os.path.exists(args.evcxr):
        kernels.append(("evcxr_jupyter 0.22", spec_dir(tmp, "bench-evcxr", [args.evcxr, "--control_file", "{connection_file}"], "rust"), None))
    else:
        print(f"evcxr_jupyter binary missing: {args.evcxr}")
    if not args.no_ipykernel:
        kernels.append(("ipykernel", spec_dir(tmp, "bench-ipykernel", [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"], "python"), None))
    if args.only:
        wanted = [w.strip() for w in args.only.split(",")]
        kernels = [k for k in kernels if any(w in k[0] for w in wanted)]
    # Rounds: each kernel starts once per round, in this order, so that load
    # from elsewhere on the machine falls on all of them alike. The cold start
    # of a round leaves the cache warm for the warm starts after it.
    raw = {label: {m: [] for m in METRICS} for label, _, _ in kernels}
    labels = [label for label, _, _ in kernels]
    warm = [name for label, name, _ in kernels if label.startswith("slurmbook warm")]
    if warm and "slurmbook cold cache" not in labels:
        print("warming the cache (not measured) ...", flush=True)
        clear_cache()
        one_start(warm[0], 1, {m: [] for m in METRICS})
    for round_ in range(args.starts):
        for label, name, hook in kernels:
            print(f"round {round_ + 1}/{args.starts}: {label} ...", flush=True)
            if hook:
                hook()
            one_start(name, args.runs, raw[label], first_cell(label.endswith("new cell")))
    results = {label: {m: statistics.median(v) for m, v in samples.items()} for label, samples in raw.items()}
    labels = list(results)
    print()
    print(f"medians over {args.starts} rounds, one start of each kernel per round ({args.runs} warm cells, "
          f"{args.runs * 4} empty cells and kernel_info round trips per start)")
    width = max(14, *(len(l) + 2 for l in labels))
    print(f"{'metric':34}" + "".join(f"{l:>{width}}" for l in labels))
    for m in METRICS:
        print(f"{m:34}" + "".join(f"{fmt(results[l][m]):>{width}}" for l in labels))
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps({"medians": results, "samples": raw}, indent=1))
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.rmtree(cache, ignore_errors=True)


if __name__ == "__main__":
    main()
