#!/usr/bin/env python3
"""Overhead of %materialize on top of the evcxr evaluations themselves, for a
20-asset chain of trivial assets, in one warm kernel:

  A: `%materialize --force` of the chain (plan, state database, status table, value per asset)
  B: the same 20 bindings as plain cells (`let a1 = { a0 + 1 };` ...), i.e. evcxr alone

    python tests/bench/materialize_bench.py [--kernel slurmbook] [--n 20] [--repeat 3]
"""
import argparse
import json
import os
import statistics
import sys
import tempfile
import time

from jupyter_client.manager import start_new_kernel


def run(kc, code, timeout=600):
    t = time.perf_counter()
    msg_id = kc.execute(code)
    while True:
        reply = kc.get_shell_msg(timeout=timeout)
        if reply["parent_header"].get("msg_id") == msg_id:
            break
    elapsed = time.perf_counter() - t
    assert reply["content"]["status"] == "ok", reply["content"]
    return elapsed


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kernel", default="slurmbook")
    ap.add_argument("--n", type=int, default=20)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="sb-matbench-")
    bodies = ["1u64"] + [f"a{i - 1} + 1" for i in range(1, args.n)]
    cells = [{"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None,
              "source": f"%%asset a{i}\n{body}"} for i, body in enumerate(bodies)]
    path = os.path.join(tmp, "chain.ipynb")
    with open(path, "w") as f:
        json.dump({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}, f)
    os.environ["JPY_SESSION_NAME"] = path
    km, kc = start_new_kernel(kernel_name=args.kernel, cwd=tmp, startup_timeout=120)
    run(kc, "1")  # warm up evcxr
    run(kc, "%materialize --force")  # warm up the state database and caches
    mat, plain = [], []
    for _ in range(args.repeat):
        mat.append(run(kc, "%materialize --force"))
        t = 0.0
        for i, body in enumerate(bodies):
            t += run(kc, f"let a{i} = {{ {body} }};")
        plain.append(t)
    kc.stop_channels()
    km.shutdown_kernel(now=True)
    m, p = statistics.median(mat), statistics.median(plain)
    print(f"{'':42}{'median s':>10}{'per asset ms':>14}")
    print(f"{'A  %materialize --force (' + str(args.n) + ' assets)':42}{m:>10.2f}{m / args.n * 1000:>14.1f}")
    print(f"{'B  the same ' + str(args.n) + ' evaluations as plain cells':42}{p:>10.2f}{p / args.n * 1000:>14.1f}")
    print(f"{'overhead A - B':42}{m - p:>10.2f}{(m - p) / args.n * 1000:>14.1f}")


if __name__ == "__main__":
    sys.exit(main())
