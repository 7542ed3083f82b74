"""What the Slurm benchmarks on the loopback cluster (tests/cluster) share:
the clusters to measure against (`--clusters`, `--up`), the notebook and
profile writer, the timed `slurmbook run`, the one-at-a-time dispatcher loop
and the side-by-side table.

The benchmarks run as scripts (`python tests/bench/X.py`) and import this
module from their own directory.

Clusters: `--clusters tuned=DIR1,default=DIR2` measures every mode against each
cluster, labelled by the name before `=`; without it, the one cluster in
$SLURMBOOK_CLUSTER_DIR (default /tmp/slurmbook-cluster), labelled by its
cluster.json's "scheduler" ("tuned" when the field is missing). A label
"tuned" or "default" must match the cluster's "scheduler". `--up` brings the
clusters up itself (tests/cluster/cluster.py up, SLURMBOOK_CLUSTER_SCHEDULER
from the label, which must then be "tuned" or "default"; a bare label, or
plain `--up`, gets a fresh /tmp dir) and down at the end -- only those it
started: a cluster already running in a named dir is used and left running.
"""
import contextlib
import json
import os
import pathlib
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[2]
CLUSTER_PY = ROOT / "tests" / "cluster" / "cluster.py"
SETTINGS = ("tuned", "default")  # cluster.py's SLURMBOOK_CLUSTER_SCHEDULER settings
SAFE = re.compile(r"[A-Za-z0-9_.-]+")  # what may go into a remote command line (also quoted)
TIME = re.compile(r"(\d+-)?\d{1,2}(:\d{2}){0,2}")  # a Slurm --time value


class ModeFailed(Exception):
    """A mode's run failed or counted wrong: reported in the table, the others go on."""


def add_cluster_args(ap):
    ap.add_argument("--binary", default=str(ROOT / "target/debug/slurmbook"))
    ap.add_argument("--clusters", default=None,
                    help="LABEL=DIR,... clusters to measure side by side, e.g. tuned=/tmp/a,default=/tmp/b "
                         "(default: $SLURMBOOK_CLUSTER_DIR, labelled by its cluster.json's scheduler); "
                         "with --up a bare LABEL (tuned or default) gets a fresh /tmp dir")
    ap.add_argument("--up", action="store_true",
                    help="bring the clusters up (cluster.py up, SLURMBOOK_CLUSTER_SCHEDULER from the label; "
                         "default: tuned and default) and down at the end")


def parse_modes(ap, option, text, known):
    modes = [m for m in text.split(",") if m]
    for m in modes:
        if m not in known:
            ap.error(f"{option}: unknown {m!r} (known: {', '.join(known)})")
    return modes


def parse_clusters(ap, args):
    """[(label, dir or None)] from --clusters / --up / $SLURMBOOK_CLUSTER_DIR."""
    if args.clusters is None:
        if args.up:
            return [(s, None) for s in SETTINGS]
        return [(None, pathlib.Path(os.environ.get("SLURMBOOK_CLUSTER_DIR", "/tmp/slurmbook-cluster")))]
    out = []
    for item in (i for i in args.clusters.split(",") if i):
        label, eq, d = item.partition("=")
        if not SAFE.fullmatch(label):
            ap.error(f"--clusters: label {label!r}: letters, digits, _ . - only")
        if args.up and label not in SETTINGS:
            ap.error(f"--clusters with --up: label {label!r} must be one of {', '.join(SETTINGS)} "
                     "(it is the SLURMBOOK_CLUSTER_SCHEDULER setting)")
        if not eq and not args.up:
            ap.error(f"--clusters: {item!r}: LABEL=DIR (a bare LABEL only with --up)")
        if any(label == l for l, _ in out):
            ap.error(f"--clusters: label {label!r} twice")
        out.append((label, pathlib.Path(d).absolute() if d else None))
    if not out:
        ap.error("--clusters: empty")
    return out


def _cluster_py(command, d, setting=None):
    env = dict(os.environ)
    if setting is not None:
        env["SLURMBOOK_CLUSTER_SCHEDULER"] = setting
    print(f"  cluster.py {command} --dir {d}" + (f" (scheduler {setting})" if setting else ""), flush=True)
    r = subprocess.run([sys.executable, str(CLUSTER_PY), command, "--dir", str(d)], env=env,
                       capture_output=True, text=True)
    if r.returncode != 0:
        return f"cluster.py {command} --dir {d} failed ({r.returncode}):\n{r.stderr[-3000:]}"
    return None


@contextlib.contextmanager
def clusters(ap, args, projects_prefix):
    """Yields ([(label, facts)], a fresh temp dir for the benchmark's projects, kept for a
    look at their state); with --up, brings the clusters up first and down after (also on
    Ctrl-C or SIGTERM)."""
    started, temp_parents = [], []
    if args.up:
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the finally below
    try:
        out = []
        for label, d in parse_clusters(ap, args):
            if args.up:
                if d is None:
                    parent = pathlib.Path(tempfile.mkdtemp(prefix=f"sb-bench-{label}-"))
                    parent.chmod(0o755)  # munged wants world-searchable dirs above its socket
                    temp_parents.append(parent)
                    d = parent / "cluster"
                fresh = not (d / "cluster.json").exists()
                error = _cluster_py("up", d, label)
                if fresh and not error:
                    started.append(d)
                if error:
                    raise SystemExit(error)
            try:
                facts = json.loads((d / "cluster.json").read_text())
            except (OSError, ValueError) as e:
                raise SystemExit(f"no cluster in {d} ({e}): python3 tests/cluster/cluster.py up --dir {d}, "
                                 "or --up")
            scheduler = facts.get("scheduler", "tuned")
            if label is None:
                label = scheduler
            elif label in SETTINGS and label != scheduler:
                raise SystemExit(f"--clusters: {label}={d} but that cluster's scheduler is {scheduler!r}")
            out.append((label, facts))
        projects = pathlib.Path(tempfile.mkdtemp(prefix=projects_prefix))
        print(f"  projects (kept, with their state db) in {projects}", flush=True)
        yield out, projects
    finally:
        for d in started:
            error = _cluster_py("down", d)
            if error:
                print(error, file=sys.stderr, flush=True)
        for parent in temp_parents:
            with contextlib.suppress(OSError):
                parent.rmdir()  # empty unless a failed `up` left its logs there


def write_notebook(path, sources):
    cells = [{"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None, "source": s}
             for s in sources]
    path.write_text(json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))


def write_profile(d, facts, step_time):
    """slurmbook.toml of a project dir: the profile `cluster` on the facts' host."""
    if not TIME.fullmatch(step_time):
        raise ValueError(f"--time {step_time!r} is not a Slurm time")
    s = json.dumps  # a JSON string is a TOML basic string (escapes included)
    (d / "slurmbook.toml").write_text(
        'profile = "cluster"\n[profiles.cluster]\ntarget = "slurm"\n'
        f'host = {s(facts["host"])}\nssh_config = {s(facts["ssh_config"])}\n'
        f'remote_dir = "$SCRATCH/slurmbook-bench"\npartition = "debug"\ntime = {s(step_time)}\n')


def timed_run(binary, nb, env):
    """`slurmbook run NB --profile cluster --force` twice: a first (untimed) run builds and
    uploads the job binary, so the timed second run measures dispatch. Returns (wall s,
    stdout of the timed run, its counters)."""
    cmd = [binary, "run", str(nb), "--profile", "cluster", "--force"]
    for timed in (False, True):
        t = time.perf_counter()
        out = subprocess.run(cmd, capture_output=True, text=True, env=env)
        wall = time.perf_counter() - t
        if out.returncode != 0:
            lines = [line[:400] for line in (out.stdout + out.stderr).splitlines() if line.strip()] or [""]
            raise ModeFailed(f"{'timed' if timed else 'first'} run exited {out.returncode}: {lines[-1][:160]}\n"
                             + "\n".join(lines[-12:]))
    m = re.search(r"ssh: (\d+) connection\(s\), (\d+) remote command\(s\)", out.stdout)
    up = re.search(r"(\d+) byte\(s\) uploaded", out.stdout)
    return wall, out.stdout, {"ssh connections": int(m[1]) if m else None,
                              "remote commands": int(m[2]) if m else None,
                              "bytes uploaded (repeat)": int(up[1]) if up else None}


def one_at_a_time(facts, names, step_time):
    """The usual orchestrator loop: submit one job (`ssh ... sbatch --wrap true`), poll
    `squeue` every 2 s growing x1.5 to 5 s until it ends, then the next."""
    for n in names:
        if not SAFE.fullmatch(n):
            raise ValueError(f"job name {n!r}")
    if not TIME.fullmatch(step_time):
        raise ValueError(f"time {step_time!r}")
    ssh = ["ssh", "-F", facts["ssh_config"], facts["host"]]
    connections = commands = 0
    t = time.perf_counter()
    for name in names:
        r = subprocess.run(ssh + [shlex.join(["sbatch", "--parsable", "-p", "debug", "-t", step_time,
                                              "-J", f"bench-{name}", "--wrap", "true"])],
                           capture_output=True, text=True, check=True)
        connections += 1
        commands += 1
        job = r.stdout.strip().split(";")[0]
        if not job.isdigit():
            raise ModeFailed(f"sbatch printed {r.stdout!r}")
        delay = 2.0
        while True:
            time.sleep(delay)
            q = subprocess.run(ssh + [f"squeue -h -j {job} -o %T"], capture_output=True, text=True)
            connections += 1
            commands += 1
            if not q.stdout.strip():
                break
            delay = min(delay * 1.5, 5.0)
    return {"wall s": time.perf_counter() - t, "Slurm jobs": len(names), "sbatch calls": len(names),
            "ssh connections": connections, "remote commands": commands}


def measure(rows, name, label, fn, *fn_args):
    """rows[name][label] = fn(*fn_args), or the failure (the benchmark goes on with the next)."""
    try:
        r = fn(*fn_args)
        print(f"  measured {name} [{label}]: {r['wall s']:.1f} s, {r['Slurm jobs']} job(s)", flush=True)
    except subprocess.CalledProcessError as e:
        r = {"failed": f"{e}\n{e.stderr}".strip()}
    except (ModeFailed, AssertionError) as e:
        r = {"failed": f"{type(e).__name__}: {e}"}
    if "failed" in r:
        print(f"  FAILED {name} [{label}]: {r['failed'].splitlines()[0][:200]}", flush=True)
    rows.setdefault(name, {})[label] = r


def relative(rows, names, labels, one_at_a_time_name, grouped_name):
    """x faster than one-at-a-time and vs grouped, each within its own cluster."""
    for label in labels:
        base = (rows.get(one_at_a_time_name) or {}).get(label, {}).get("wall s")
        grouped = (rows.get(grouped_name) or {}).get(label, {}).get("wall s")
        for name in names:
            r = rows[name].get(label)
            if r is None or "failed" in r:
                continue
            r["x faster than one-at-a-time"] = base / r["wall s"] if base else None
            r["vs grouped"] = r["wall s"] / grouped if grouped else None


def print_table(title, rows, labels, keys, shared=()):
    """One table: a row per mode, a column per key and cluster, side by side (`wall s
    (tuned)`, `wall s (default)`); a key in shared once (its clusters' values joined by
    ' / ' where they differ). '-': not measured or not applicable. Then the failures;
    returns whether there were none."""
    def cell(rs, label, k):
        r = rs.get(label, {})
        v = "failed" if "failed" in r else r.get(k)
        return "-" if v is None else (f"{v:.2f}" if isinstance(v, float) else str(v))

    heads = []  # (header, key, the clusters it shows)
    for k in keys:
        if k in shared or len(labels) == 1:
            heads.append((k, k, labels))
        else:
            heads += [(f"{k} ({label})", k, [label]) for label in labels]

    def joined(rs, k, ls):  # a shared key: the values of the clusters where the mode ran
        ran = [label for label in ls if "failed" not in rs.get(label, {})] or ls
        return " / ".join(dict.fromkeys(cell(rs, label, k) for label in ran))

    table = [[title] + [h for h, _, _ in heads]]
    for name, rs in rows.items():
        table.append([name] + [joined(rs, k, ls) for _, k, ls in heads])
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    for row in table:
        print(f"{row[0]:{widths[0]}}" + "".join(f"{c:>{w + 2}}" for c, w in zip(row[1:], widths[1:])))
    failures = [(n, label, r["failed"]) for n, rs in rows.items() for label, r in rs.items() if "failed" in r]
    for n, label, why in failures:
        print(f"\n{n} [{label}] failed: {why}")
    return not failures
