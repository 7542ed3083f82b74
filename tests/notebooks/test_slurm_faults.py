"""The fault matrix (issue 18) on the shared loopback cluster: faults that
leave the cluster's daemons alone. Each is injected for real (a job running
past its --time, an `scancel` typed in a terminal, a request no node can
satisfy, a remote_dir that cannot be created, a remote disk that fills up)
and the test checks what the
user sees and that nothing is lost or half-recorded. The faults are the
same over either transport, so these run over SSH only (`ssh_transport`).
Faults that stop or kill Slurm's daemons are in test_slurm_daemons.py, on
clusters of their own."""
import re
import subprocess

import nbformat

from nbrun import ROOT, db_rows

BINARY = ROOT / "target" / "debug" / "slurmbook"


def notebook(tmp_path, transport, cells, remote_dir="$SCRATCH/slurmbook"):
    (tmp_path / "slurmbook.toml").write_text(transport.slurmbook_toml(remote_dir=remote_dir))
    path = tmp_path / "faults.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in cells]), path)
    return path


def run_cli(path, *args, timeout=600):
    return subprocess.run([BINARY, "run", path, "--profile", "cluster", *args],
                          capture_output=True, text=True, timeout=timeout)


def statuses(path):
    return dict(db_rows(path, "SELECT asset, status FROM materializations"))


SLEEPER = ("%%asset {name}{opts}\n"
           "eprintln!(\"{name}: working\");\n"
           "for i in 0..600 {{\n"
           "    println!(\"{name} {{i}}\");\n"
           "    std::thread::sleep(std::time::Duration::from_secs(1));\n"
           "}}\n"
           "1u32")


def test_time_limit_and_an_outside_scancel_are_explained_and_recorded(tmp_path, ssh_transport):
    """`slow` runs past --time=00:01:00 (Slurm ends it: TIMEOUT); `victim`
    is cancelled with `scancel` from a terminal while it runs. Each one's
    dependent is cancelled naming it; all of it is recorded."""
    path = notebook(tmp_path, ssh_transport, [
        SLEEPER.format(name="slow", opts=" --time=00:01:00"),
        "%%asset after_slow\nslow + 1",
        SLEEPER.format(name="victim", opts=""),
        "%%asset after_victim\nvictim + 1",
    ])
    proc = subprocess.Popen([BINARY, "run", path, "--profile", "cluster", "--jobs", "per-asset"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out = ""
    scancelled = None
    try:
        for line in proc.stdout:
            out += line
            if scancelled is None and "[victim] victim 2" in line:
                (job,) = db_rows(path, "SELECT job_id FROM materializations WHERE asset = 'victim'")[0]
                p = ssh_transport.shell(f"scancel {int(job)}")
                assert p.returncode == 0, p.stderr
                scancelled = job
        err = proc.stderr.read()
        code = proc.wait(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert scancelled, out
    assert code == 1, out + err
    assert re.search(r"victim  cancelled: cancelled outside slurmbook \(scancel\)", out), out
    assert re.search(r"after_victim  cancelled: upstream victim was cancelled", out), out
    assert re.search(r"slow  failed: time limit \(00:01:00\) reached \(TIMEOUT\)", out), out
    assert re.search(r"after_slow  cancelled: upstream slow failed", out), out
    # The full error: Slurm's words, the stderr tail, a hint.
    assert "slow failed:\n  time limit (00:01:00) reached (TIMEOUT)" in err, err
    assert "--- last 40 lines of slow.err ---" in err and "slow: working" in err, err
    assert "DUE TO TIME LIMIT" in err, err
    assert "hint: the job ran out of its time limit of 00:01:00; ask for more with " \
           "`%%asset slow --time=HH:MM:SS`" in err, err
    # Output up to the end, nothing repeated.
    for name in ["slow", "victim"]:
        shown = [l for l in out.splitlines() if l.startswith(f"[{name}] {name} ")]
        assert shown == [f"[{name}] {name} {i}" for i in range(len(shown))], out
    assert len([l for l in out.splitlines() if l.startswith("[slow] slow ")]) >= 55, out
    assert ssh_transport.final_state(scancelled) == "CANCELLED"
    assert statuses(path) == {"slow": "failed", "after_slow": "cancelled", "victim": "cancelled",
                              "after_victim": "cancelled"}
    errors = dict(db_rows(path, "SELECT asset, error FROM materializations"))
    assert errors["slow"].startswith("time limit (00:01:00) reached (TIMEOUT)"), errors
    assert db_rows(path, "SELECT status FROM runs") == [("failed",)]
    assert "no Slurm run is in progress" in subprocess.run(
        [BINARY, "cancel", path], capture_output=True, text=True, timeout=60).stdout


def test_an_impossible_request_is_refused_at_submission_with_slurms_reason(tmp_path, ssh_transport):
    """64 CPUs on a 2-CPU partition: sbatch refuses; the user reads Slurm's
    reason at once (no job left pending forever) and nothing is half-recorded."""
    path = notebook(tmp_path, ssh_transport, [
        "%%asset fine\n1u8",
        "%%asset greedy --cpus=64\nfine + 1",
    ])
    for jobs in ["grouped", "per-asset"]:
        before = ssh_transport.shell("squeue -h -o %i").stdout.split()
        run = run_cli(path, "--jobs", jobs, timeout=300)
        out = run.stdout + run.stderr
        assert run.returncode != 0, out
        assert "More processors requested than permitted" in out, out
        assert "greedy" in out, out
        assert "hint:" in out, out
        # Whatever was submitted before the refusal was cancelled again.
        after = ssh_transport.shell("squeue -h -o %i").stdout.split()
        for job in set(after) - set(before):
            assert ssh_transport.final_state(job) == "CANCELLED", job
    assert db_rows(path, "SELECT count(*) FROM runs WHERE status = 'running'") == [(0,)]
    assert db_rows(path, "SELECT count(*) FROM materializations WHERE status IN ('running', 'ok')") == [(0,)]


def test_an_unwritable_remote_dir_fails_before_submission(tmp_path, ssh_transport):
    """remote_dir under a regular file: no directory can be made there. The
    error names the directory before anything is submitted; a later run with
    a good remote_dir works (nothing half-made is used)."""
    blocker = f"$SCRATCH/blocker-{tmp_path.name}"
    p = ssh_transport.shell(f"rm -rf {blocker}; echo not a directory > {blocker}")
    assert p.returncode == 0, p.stderr
    path = notebook(tmp_path, ssh_transport, ["%%asset one\n1u8", "%%asset two\none + 1"],
                    remote_dir=f"{blocker}/slurmbook")
    try:
        before = ssh_transport.shell("squeue -h --states=all -o %i").stdout.split()
        run = run_cli(path, timeout=300)
        out = run.stdout + run.stderr
        assert run.returncode != 0, out
        assert f"blocker-{tmp_path.name}/slurmbook" in out, out
        assert re.search(r"Not a directory|cannot create|not writable", out), out
        after = ssh_transport.shell("squeue -h --states=all -o %i").stdout.split()
        assert set(after) == set(before), "a job was submitted"
        assert db_rows(path, "SELECT count(*) FROM runs WHERE status = 'running'") == [(0,)]
        assert db_rows(path, "SELECT count(*) FROM materializations WHERE status = 'ok'") == [(0,)]
        # Fixed: the next run works from scratch.
        (tmp_path / "slurmbook.toml").write_text(
            ssh_transport.slurmbook_toml(remote_dir=f"$SCRATCH/fixed-{tmp_path.name}"))
        again = run_cli(path, timeout=600)
        assert again.returncode == 0, again.stdout + again.stderr
        assert "2 done, 0 fresh, 0 failed" in again.stdout
    finally:
        ssh_transport.shell(f"rm -rf {blocker} $SCRATCH/fixed-{tmp_path.name}")


def test_a_full_remote_disk_is_a_clear_error_and_nothing_half_written_is_used(tmp_path, ssh_transport):
    """remote_dir on a tiny tmpfs. First too small for the job program: the
    upload fails with the system's words before anything is submitted. Then
    big enough for the program but not for `big`'s value: that job fails
    saying it could not write the value, its dependent does not run, and no
    value is recorded. With room, the next run does both from what is there,
    so nothing half-written was taken for whole."""
    mnt = f"$SCRATCH/full-{tmp_path.name}"
    p = ssh_transport.shell(f"mkdir -p {mnt} && mount -t tmpfs -o size=256k,mode=0700 tmpfs {mnt}")
    assert p.returncode == 0, p.stderr
    cells = ["%%asset big\n(0..3_000_000u32).collect::<Vec<u32>>()",
             "%%asset total\nbig.iter().map(|&x| x as u64).sum::<u64>()"]
    path = notebook(tmp_path, ssh_transport, cells, remote_dir=f"{mnt}/slurmbook")
    try:
        # 1. No room for the job program: refused before submission.
        before = ssh_transport.shell("squeue -h --states=all -o %i").stdout.split()
        run = run_cli(path, timeout=600)
        out = run.stdout + run.stderr
        assert run.returncode != 0, out
        assert "No space left on device" in out, out
        after = ssh_transport.shell("squeue -h --states=all -o %i").stdout.split()
        assert set(after) == set(before), "a job was submitted"
        assert db_rows(path, "SELECT count(*) FROM materializations WHERE status = 'ok'") == [(0,)]
        assert db_rows(path, "SELECT count(*) FROM runs WHERE status = 'running'") == [(0,)]

        # 2. Room for the program, not for big's value (about 24 MB of JSON).
        p = ssh_transport.shell(f"mount -o remount,size=12m {mnt}")
        assert p.returncode == 0, p.stderr
        run = run_cli(path, timeout=600)
        out = run.stdout + run.stderr
        assert run.returncode != 0, out
        assert re.search(r"big\s+failed", out), out
        assert "writing the value" in out and "No space left on device" in out, out
        assert statuses(path).get("big") == "failed", statuses(path)
        assert statuses(path).get("total") != "ok", statuses(path)
        assert db_rows(path, "SELECT count(*) FROM materializations WHERE status IN ('ok', 'running')") == [(0,)]

        # 3. Room: both run, and the value is whole.
        p = ssh_transport.shell(f"mount -o remount,size=256m {mnt}")
        assert p.returncode == 0, p.stderr
        again = run_cli(path, timeout=600)
        assert again.returncode == 0, again.stdout + again.stderr
        assert "2 done, 0 fresh, 0 failed" in again.stdout, again.stdout
        load = subprocess.run([BINARY, "run", path, "--profile", "cluster"],
                              capture_output=True, text=True, timeout=300)
        assert load.returncode == 0 and "nothing to do" in load.stdout, load.stdout
    finally:
        # Lazily if a job of a failed assertion still has files open there.
        ssh_transport.shell(f"umount {mnt} || umount -l {mnt}; rm -rf {mnt}")
