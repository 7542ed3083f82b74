#!/usr/bin/env python3
"""Slurm dispatch benchmark on the loopback cluster (tests/cluster), in one run:

  grouped      `slurmbook run NB --profile cluster --force` with jobs = grouped (the
               default): compatible assets share one allocation, each an `srun` step
  per-asset    the same with SLURMBOOK_JOBS=per-asset: one job per asset, the whole
               subgraph submitted at once over one SSH master (afterok chain)
  one-at-a-time  the usual orchestrator loop: submit one job (`ssh ... sbatch --wrap true`),
               poll `squeue` every 2 s growing x1.5 to 5 s until it ends, then the next

for a 20-asset chain and a 50-asset fan-in of trivial assets, against each cluster of
--clusters (the harness's tuned scheduler settings and Slurm's defaults side by side, see
tests/bench/slurm_common.py). Reports wall time, SSH connections, remote commands and
Slurm jobs (distinct job ids of the run in the state database). Not a timed test; a
column that fails is reported and the others go on (exit 1). Needs the cluster(s) up
(python3 tests/cluster/cluster.py up), or --up.

    python tests/bench/slurm_dispatch_bench.py [--binary target/debug/slurmbook]
        [--jobs grouped,per-asset,one-at-a-time] [--kinds chain,fan-in]
        [--clusters tuned=DIR1,default=DIR2] [--up]
"""
import argparse
import os
import pathlib
import sqlite3
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import slurm_common as common  # noqa: E402

JOBS = ("grouped", "per-asset", "one-at-a-time")
KINDS = ("chain", "fan-in")


def graph(kind):
    """The notebook's cell sources and its assets in order."""
    if kind == "chain":
        sources = ["%%asset a0\n1u64"] + [f"%%asset a{i}\na{i - 1} + 1" for i in range(1, 20)]
        return sources, [f"a{i}" for i in range(20)]
    sources = [f"%%asset p{i}\n{i}u64" for i in range(49)]
    sources.append("%%asset sink\n" + " + ".join(f"p{i}" for i in range(49)))
    return sources, [f"p{i}" for i in range(49)] + ["sink"]


def jobs_of_last_run(d):
    db = sqlite3.connect(d / ".slurmbook" / "state.db")
    try:
        (run,) = db.execute("SELECT max(run_id) FROM run_jobs").fetchone()
        (n,) = db.execute("SELECT count(DISTINCT job_id) FROM run_jobs WHERE run_id = ?", (run,)).fetchone()
        return n
    finally:
        db.close()


def slurmbook(binary, facts, kind, d, jobs, step_time):
    d.mkdir()
    env = dict(os.environ, SLURMBOOK_JOBS=jobs)
    common.write_profile(d, facts, step_time)
    nb = d / f"{kind}.ipynb"
    common.write_notebook(nb, graph(kind)[0])
    # the timed run is a repeat: its upload counter is the repeat dispatch's
    wall, _, counters = common.timed_run(binary, nb, env)
    return dict(counters, **{"wall s": wall, "Slurm jobs": jobs_of_last_run(d)})


def one_at_a_time(facts, kind):
    r = common.one_at_a_time(facts, graph(kind)[1], "00:05:00")
    r["bytes uploaded (repeat)"] = None
    return r


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    common.add_cluster_args(ap)
    ap.add_argument("--jobs", default=",".join(JOBS),
                    help="columns to measure: grouped, per-asset, one-at-a-time (comma-separated)")
    ap.add_argument("--time", default="00:02:00",
                    help="the profile's --time per asset; a group's time is the sum along its longest path, "
                         "split at the debug partition's 1 h limit (00:05:00 x 20 splits the chain in two)")
    ap.add_argument("--kinds", default=",".join(KINDS), help="graphs: chain (20 assets), fan-in (50 assets)")
    args = ap.parse_args()
    modes = common.parse_modes(ap, "--jobs", args.jobs, JOBS)
    kinds = common.parse_modes(ap, "--kinds", args.kinds, KINDS)
    if not common.TIME.fullmatch(args.time):
        ap.error(f"--time {args.time!r}: a Slurm time such as 00:02:00")
    rows = {}
    with common.clusters(ap, args, "sb-dispatch-") as (clusters, tmp):
        labels = [label for label, _ in clusters]
        for kind in kinds:
            for mode in modes:
                # each cluster in turn, so a change of the machine's load weighs on all alike
                for label, facts in clusters:
                    if mode == "one-at-a-time":
                        common.measure(rows, f"{kind}: {mode}", label, one_at_a_time, facts, kind)
                    else:
                        common.measure(rows, f"{kind}: {mode}", label, slurmbook, args.binary, facts, kind,
                                       tmp / f"sb-{label}-{kind}-{mode}", mode, args.time)
            common.relative(rows, [f"{kind}: {m}" for m in modes], labels, f"{kind}: one-at-a-time", None)
    ok = common.print_table("", rows, labels, ["wall s", "Slurm jobs", "x faster than one-at-a-time",
                                               "ssh connections", "remote commands", "bytes uploaded (repeat)"],
                            shared={"Slurm jobs", "bytes uploaded (repeat)"})
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
