"""A host-less Slurm profile on a submit host (the loopback cluster,
tests/cluster), beyond what the parametrized suites cover:

* the kernel itself running inside a Slurm job (as batchspawner or Open
  OnDemand start it): the jobs it submits do not inherit the enclosing job's
  SLURM_*/SBATCH_* variables, and a run it left running when its job ended
  keeps running and can be attached to from outside;
* `sbatch` missing on PATH: the error names the profile and suggests `host`;
* a Slurm that refuses a job (bad partition): Slurm's own message, and
  nothing half-recorded.
"""
import json
import os
import re
import subprocess
import sys
import time

import nbformat

from nbrun import ROOT, db_rows, errors_of, execute

BINARY = ROOT / "target" / "debug" / "slurmbook"
HERE = os.path.dirname(os.path.abspath(__file__))
SLURM_CLIENTS = {"sbatch", "squeue", "scontrol", "sacct", "scancel", "sinfo", "srun", "salloc", "sattach", "sstat"}

# The enclosing job's distinctive requests: 1 CPU (the node has 2; the
# assets' jobs get the other) and 1234M of memory, the latter asked for with
# SBATCH_MEM_PER_NODE in the environment, as a site's spawner might: sbatch
# exports it into the job, where a careless kernel would hand it on to every
# job it submits.
ENCLOSING_MEM = "1234"

ENV_PROBE = (
    "let mut vars: Vec<(String, String)> = std::env::vars()\n"
    "    .filter(|(k, _)| k.starts_with(\"SLURM_\") || k.starts_with(\"SBATCH_\")).collect();\n"
    "vars.sort();\n"
    "for (k, v) in &vars { println!(\"ENV {k}={v}\"); }\n"
)


def env_lines(text, asset):
    """{variable: value} printed by `asset`'s ENV lines in a stream text."""
    found = {}
    for line in text.splitlines():
        m = re.match(rf"\[{asset}\] ENV ([A-Z0-9_]+)=(.*)$", line)
        if m:
            found[m.group(1)] = m.group(2)
    return found


def wait_for(pred, timeout, what, interval=1.0):
    deadline = time.time() + timeout
    while True:
        value = pred()
        if value:
            return value
        assert time.time() < deadline, f"timed out after {timeout} s waiting for {what}"
        time.sleep(interval)


def read_json(path):
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def test_the_kernel_inside_a_slurm_job_submits_clean_independent_jobs(tmp_path, local_transport):
    """The kernel runs in a job submitted here with `sbatch --wrap 'python
    kernel_in_job.py ...'`, which starts it with jupyter_client's
    KernelManager and drives it (as a notebook server that batchspawner or
    Open OnDemand started in a job would; batchspawner itself is not used).
    It materializes a grouped run, a per-asset run, then a slow run; the
    test cancels the enclosing job while the slow run's job runs, and
    attaches to that run from outside."""
    cluster = local_transport
    (tmp_path / "slurmbook.toml").write_text(cluster.slurmbook_toml(remote_dir="$SCRATCH/slurmbook-in-job"))
    path = tmp_path / "in_job.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in [
        "%%asset env_first\n" + ENV_PROBE + "1u32",
        "%%asset env_second\n" + ENV_PROBE + "env_first + 1",
        "%%asset slow\n"
        "for i in 0..20 { println!(\"tick {i}\"); std::thread::sleep(std::time::Duration::from_secs(1)); }\n"
        "20u32",
    ]]), path)
    results = tmp_path / "results.json"
    out = tmp_path / "enclosing.out"
    submit = subprocess.run(
        ["sbatch", "--parsable", "--job-name=sb-test-enclosing", "--partition=debug", "--time=00:20:00",
         "--cpus-per-task=1", f"--output={out}", f"--chdir={tmp_path}",
         f"--wrap=exec {sys.executable} {HERE}/kernel_in_job.py {path} {results}"],
        capture_output=True, text=True, timeout=60,
        env={**cluster.env(), "SBATCH_MEM_PER_NODE": f"{ENCLOSING_MEM}M"})
    assert submit.returncode == 0, submit.stderr
    enclosing = submit.stdout.strip().split(";")[0]
    try:
        in_job(cluster, path, enclosing, results, out)
    finally:
        # Whatever happened, the enclosing job (whose driver waits forever) ends.
        cluster.shell(f"scancel {enclosing}")


def in_job(cluster, path, enclosing, results, out):
    def progress():
        r = read_json(results)
        if r and r.get("waiting"):
            return r
        state = cluster.job_state(enclosing)
        assert state in ("PENDING", "RUNNING", "CONFIGURING"), \
            f"the enclosing job ended ({state}):\n{out.read_text() if out.exists() else ''}\n{r}"
        return None
    r = wait_for(progress, 900, "the kernel in the job to reach the slow run")

    # The enclosing job's own environment has what must not be handed on.
    job_env = r["job_env"]
    assert job_env["SLURM_JOB_ID"] == enclosing, job_env
    assert job_env["SLURM_MEM_PER_NODE"] == ENCLOSING_MEM, job_env
    assert job_env["SLURM_CPUS_PER_TASK"] == "1", job_env
    assert job_env["SBATCH_MEM_PER_NODE"] == f"{ENCLOSING_MEM}M", job_env

    steps = r["steps"]
    assert "transport: local (no SSH) (Slurm runs)" in steps["config"]["text"], steps["config"]
    for name in ["grouped", "per_asset"]:
        step = steps[name]
        assert step["status"] == "ok" and not step["errors"], step
        assert "2 done, 0 fresh, 0 failed" in step["text"], step["text"]
    rows = db_rows(path, "SELECT run_id, asset, job_id FROM materializations WHERE status = 'ok' ORDER BY id")
    jobs = {}
    for run_id, asset, job in rows:
        jobs.setdefault(run_id, {})[asset] = job
    assert len(jobs) == 2, rows
    grouped, per_asset = jobs[1], jobs[2]
    assert grouped["env_first"] == grouped["env_second"], "grouped: one allocation"
    assert per_asset["env_first"] != per_asset["env_second"], "per-asset: one job each"

    for name, submitted in [("grouped", grouped), ("per_asset", per_asset)]:
        for asset, job in submitted.items():
            env = env_lines(steps[name]["text"], asset)
            where = f"{name} {asset}: {env}"
            assert env.get("SLURM_JOB_ID") == job, where
            assert env.get("SLURM_CONF") == cluster.facts["remote_env"]["SLURM_CONF"], where
            assert not [k for k in env if k.startswith("SBATCH_")], where
            assert env.get("SLURM_MEM_PER_NODE") != ENCLOSING_MEM, where
            # Grouped: the allocation's and step's own request (1 CPU); per
            # asset: the assets ask for no CPUs, so no SLURM_CPUS_PER_TASK
            # unless inherited.
            if name == "grouped":
                assert env.get("SLURM_CPUS_PER_TASK") == "1", where
            else:
                assert "SLURM_CPUS_PER_TASK" not in env, where
            # What Slurm allocated: the default memory, not the enclosing job's.
            info = cluster.shell(f"scontrol show job -o {job}").stdout
            assert f"MinMemoryNode={ENCLOSING_MEM}M" not in info, info
            assert re.search(r"MinMemory(CPU|Node)=\S+", info), info

    # The enclosing job ends (cancelled, as when a spawner's job hits its
    # limit or the user stops the server) while `slow` runs in its own job.
    slow_job = db_rows(path, "SELECT job_id FROM materializations WHERE asset = 'slow'")[0][0]
    assert steps["slow"]["status"] == "still running", steps["slow"]
    cancel = cluster.shell(f"scancel {enclosing}")
    assert cancel.returncode == 0, cancel.stderr
    wait_for(lambda: cluster.job_state(enclosing) == "CANCELLED", 60, "the enclosing job to be cancelled")

    def kernel_gone():
        try:
            os.kill(r["kernel_pid"], 0)
            return False
        except ProcessLookupError:
            return True
    wait_for(kernel_gone, 60, "the kernel to end with its job")
    assert cluster.job_state(slow_job) in ("RUNNING", "COMPLETING", "COMPLETED"), cluster.job_state(slow_job)
    assert db_rows(path, "SELECT status FROM runs WHERE id = 3") == [("running",)]
    # From outside (a new kernel or the CLI), the run is followed to its end.
    attach = subprocess.run([BINARY, "attach", path], capture_output=True, text=True, timeout=300)
    assert attach.returncode == 0, attach.stdout + attach.stderr
    assert "[slow] tick 19" in attach.stdout, attach.stdout
    assert "1 done, 0 fresh, 0 failed" in attach.stdout, attach.stdout
    assert cluster.final_state(slow_job) == "COMPLETED"
    assert db_rows(path, "SELECT status FROM runs WHERE id = 3") == [("ok",)]


def without_slurm_clients(tmp_path):
    """PATH with every directory that holds a Slurm client replaced by a copy
    of it (symlinks) without the Slurm clients: a machine with no Slurm."""
    dirs = []
    for i, d in enumerate(os.environ["PATH"].split(os.pathsep)):
        if not any(os.path.exists(os.path.join(d, c)) for c in SLURM_CLIENTS):
            dirs.append(d)
            continue
        shadow = tmp_path / f"path-{i}"
        shadow.mkdir()
        for name in os.listdir(d):
            if name not in SLURM_CLIENTS:
                (shadow / name).symlink_to(os.path.join(d, name))
        dirs.append(str(shadow))
    return os.pathsep.join(dirs)


def test_sbatch_missing_names_the_profile_and_suggests_a_host(tmp_path, local_transport, monkeypatch):
    (tmp_path / "slurmbook.toml").write_text(local_transport.slurmbook_toml())
    path = tmp_path / "nosbatch.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("%%asset answer\n6u32 * 7")]), path)
    monkeypatch.setenv("PATH", without_slurm_clients(tmp_path))
    assert subprocess.run(["sh", "-c", "command -v sbatch"]).returncode != 0
    for jobs in ["per-asset", "grouped"]:
        run = subprocess.run([BINARY, "run", path, "--profile", "cluster", "--jobs", jobs],
                             capture_output=True, text=True, timeout=600)
        out = run.stdout + run.stderr
        assert run.returncode != 0, out
        # Grouped runs ask sinfo for the partitions' limits first.
        program = "sbatch" if jobs == "per-asset" else "sinfo"
        assert f"`{program}` is not on this machine's PATH: profile `cluster` has no `host`" in out, out
        assert "set `host = ...`" in out, out
    # The kernel says the same in the cell.
    nb = execute(path, cells=["%materialize --target slurm --jobs per-asset"], allow_errors=True)
    err = errors_of(nb.cells[0].outputs)
    assert err, nb.cells[0].outputs
    message = err[0]["evalue"] + "\n".join(err[0]["traceback"])
    assert "`sbatch` is not on this machine's PATH: profile `cluster` has no `host`" in message, message
    assert "set `host = ...`" in message, message
    # Nothing was submitted; the runs that started ended failed.
    assert db_rows(path, "SELECT count(*) FROM materializations") == [(0,)]
    assert set(db_rows(path, "SELECT status FROM runs")) <= {("failed",)}


def test_a_refused_job_shows_slurms_message_and_records_nothing_half(tmp_path, transport):
    (tmp_path / "slurmbook.toml").write_text(transport.slurmbook_toml(remote_dir="$SCRATCH/slurmbook-refused"))
    path = tmp_path / "refused.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in [
        "%%asset first\nstd::thread::sleep(std::time::Duration::from_secs(30));\n1u32",
        "%%asset second --partition=nosuchpartition\nfirst + 1",
    ]]), path)
    nb = execute(path, cells=["%materialize --target slurm --jobs per-asset", "%runs"], allow_errors=True)
    out = nb.cells[0].outputs
    err = errors_of(out)
    assert err, out
    message = err[0]["evalue"] + "\n".join(err[0]["traceback"])
    # Slurm's own words (sbatch: error: invalid partition specified: ...).
    assert "sbatch failed for asset `second`" in message, message
    assert "invalid partition specified: nosuchpartition" in message, message
    cancelled = re.search(r"the 1 job\(s\) already submitted were cancelled: (\d+)", message)
    assert cancelled, message
    assert transport.final_state(cancelled.group(1)) == "CANCELLED"
    # Nothing half-recorded: the run ended failed, with no materialization,
    # no job to follow and nothing left for %attach.
    assert db_rows(path, "SELECT status, remote IS NULL FROM runs") == [("failed", 1)]
    assert db_rows(path, "SELECT count(*) FROM materializations") == [(0,)]
    assert db_rows(path, "SELECT count(*) FROM run_jobs") == [(0,)]
    runs = nb.cells[1].outputs[0]["data"]["text/plain"]
    assert re.search(r"^\s*1\s.*\sslurm\s+failed\s+0 ok, 0 failed, 0 skipped, 0 running", runs, re.M), runs
