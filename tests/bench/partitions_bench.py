#!/usr/bin/env python3
"""Sweep benchmark on the loopback cluster (tests/cluster), in one run: N (100)
trivial partitions of one asset, dispatched five ways --

  array          `slurmbook run NB --profile cluster --force` of `%%asset sim
                 --partitions 0..N` (`--per-task` auto, the default: short
                 partitions bundled into array tasks from the last run's
                 measured durations): ONE job array (one sbatch, one queue entry)
  array-1        the same with `--per-task 1`: one partition per array task
                 (Slurm's classic layout)
  grouped        N trivial assets after one trivial `seed` (connected: the
                 planner groups only connected assets) in one grouped
                 allocation (the default jobs = grouped): one job, each asset
                 an `srun` step
  per-asset      the same N+1 assets with SLURMBOOK_JOBS=per-asset: N+1 jobs,
                 submitted at once in one SSH round trip
  one-at-a-time  the usual orchestrator loop: submit one job (`ssh ... sbatch
                 --wrap true`), poll `squeue` every 2 s growing x1.5 to 5 s
                 until it ends, then the next

against each cluster of --clusters (the harness's tuned scheduler settings and
Slurm's defaults side by side, see tests/bench/slurm_common.py). Reports wall
time, Slurm jobs created (distinct job ids of the run: for an array, its array
job), array tasks (distinct job ids of the run's partitions: several
partitions of one bundled task share its id), submission commands (`sbatch`
calls), SSH connections and remote commands. Not a timed test: it asserts the
counts only; a mode that fails is reported and the others go on (exit 1).
Needs the cluster(s) up (python3 tests/cluster/cluster.py up), or --up.

    python tests/bench/partitions_bench.py [--binary target/debug/slurmbook] [--n 100]
        [--modes array,array-1,grouped,per-asset,one-at-a-time]
        [--clusters tuned=DIR1,default=DIR2] [--up]
"""
import argparse
import os
import pathlib
import sqlite3
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import slurm_common as common  # noqa: E402

MODES = ("array", "array-1", "grouped", "per-asset", "one-at-a-time")
ARRAYS = {"array": "", "array-1": " --per-task 1"}  # array mode -> its extra asset options
STEP_TIME = "00:02:00"


def slurm_jobs(d, array):
    """(distinct Slurm jobs, distinct job ids, rows computed) of the last run; an array's
    tasks are one job, and the job ids of an array's partitions are its tasks."""
    db = sqlite3.connect(d / ".slurmbook" / "state.db")
    try:
        (run,) = db.execute("SELECT max(id) FROM runs").fetchone()
        rows = db.execute("SELECT job_id FROM materializations WHERE run_id = ? AND job_id IS NOT NULL"
                          + (" AND partition IS NOT NULL" if array else ""), (run,)).fetchall()
        return len({j.split("_")[0] for (j,) in rows}), len({j for (j,) in rows}), len(rows)
    finally:
        db.close()


def slurmbook(binary, facts, d, mode, n):
    d.mkdir()
    env = dict(os.environ, SLURMBOOK_JOBS="per-asset" if mode == "per-asset" else "grouped")
    common.write_profile(d, facts, STEP_TIME)
    nb = d / "sweep.ipynb"
    if mode in ARRAYS:
        common.write_notebook(nb, [f"%%asset sim: u64 --partitions 0..{n}{ARRAYS[mode]}\npartition_index as u64"])
    else:
        common.write_notebook(nb, ["%%asset seed\n0u64"] + [f"%%asset p{i}\nseed + {i}" for i in range(n)])
    wall, _, counters = common.timed_run(binary, nb, env)
    jobs, tasks, computed = slurm_jobs(d, mode in ARRAYS)
    assert computed == (n if mode in ARRAYS else n + 1), (mode, computed)
    assert mode != "array-1" or tasks == n, (mode, "array tasks", tasks)
    return {"wall s": wall, "Slurm jobs": jobs, "sbatch calls": jobs,
            "array tasks": tasks if mode in ARRAYS else None,
            "ssh connections": counters["ssh connections"], "remote commands": counters["remote commands"]}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    common.add_cluster_args(ap)
    ap.add_argument("--modes", default=",".join(MODES), help="comma-separated: " + ", ".join(MODES))
    ap.add_argument("--n", type=int, default=100, help="partitions (and assets of grouped/per-asset, "
                                                       "jobs of one-at-a-time); default 100")
    args = ap.parse_args()
    modes = common.parse_modes(ap, "--modes", args.modes, MODES)
    if args.n < 1:
        ap.error("--n: at least 1")
    rows = {}
    with common.clusters(ap, args, "sb-partitions-") as (clusters, tmp):
        labels = [label for label, _ in clusters]
        # every mode against each cluster in turn, so a change of the machine's load
        # weighs on all clusters alike
        for mode in modes:
            for label, facts in clusters:
                if mode == "one-at-a-time":
                    common.measure(rows, mode, label, common.one_at_a_time, facts,
                                   [f"p{i}" for i in range(args.n)], STEP_TIME)
                else:
                    common.measure(rows, mode, label, slurmbook, args.binary, facts, tmp / f"sb-{label}-{mode}",
                                   mode, args.n)
    common.relative(rows, modes, labels, "one-at-a-time", "grouped")
    ok = common.print_table(
        f"{args.n} trivial partitions", rows, labels,
        ["wall s", "Slurm jobs", "sbatch calls", "array tasks", "x faster than one-at-a-time", "vs grouped",
         "ssh connections", "remote commands"],
        shared={"Slurm jobs", "sbatch calls", "array tasks"})
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
