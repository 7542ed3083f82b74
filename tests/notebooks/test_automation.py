"""Declarative automation through the real binary: `slurmbook tick` with
the local profile (two concurrent ticks submit once, a second tick does
nothing, a failure exits 1 and runs the notify command, bad input exits 2),
and on the loopback cluster: `slurmbook schedule install --every 1m` puts a
scrontab entry there, a tick runs on the cluster with nothing of ours
running, a new kernel's %runs shows the scheduled run and %load returns its
value, `schedule remove` leaves no entry; on a second cluster whose
scrontab is off, install says so and `--fallback` ticks with a job that
resubmits itself with --begin."""
import datetime
import json
import os
import pathlib
import re
import subprocess
import sys
import time
import uuid

import nbformat
import pytest

from nbrun import ROOT, db_rows, errors_of, execute, text_of

sys.path.insert(0, str(ROOT / "tests" / "cluster"))
import harness  # noqa: E402

BINARY = ROOT / "target" / "debug" / "slurmbook"


def notebook(tmp_path, cells, name="auto.ipynb"):
    path = tmp_path / name
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in cells]), path)
    return path


def slurmbook(*args, env=None, timeout=600):
    return subprocess.run([str(BINARY), *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})


def test_two_concurrent_ticks_submit_once_and_a_second_tick_does_nothing(tmp_path):
    path = notebook(tmp_path, ["%%asset seed --auto on-missing\n21u64",
                               "%%asset doubled --auto eager\nseed * 2"])
    procs = [subprocess.Popen([str(BINARY), "tick", str(path)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    said = "".join(o for o, _ in outs)
    assert said.count("tick ") == 2 and "nothing to do" in said, said
    assert db_rows(path, "SELECT COUNT(*) FROM materializations WHERE asset = 'seed'") == [(1,)]
    assert db_rows(path, "SELECT COUNT(*) FROM materializations WHERE asset = 'doubled'") == [(1,)]
    triggers = db_rows(path, "SELECT trigger FROM run_triggers")
    assert triggers == [("seed: on-missing: never materialized; doubled: eager: newly missing",)], triggers
    again = slurmbook("tick", path)
    assert again.returncode == 0 and "nothing to do" in again.stdout, again


def test_a_failing_tick_exits_1_and_notifies_and_bad_input_exits_2(tmp_path):
    path = notebook(tmp_path, ["%%asset boom --auto on-missing\nif true { panic!(\"boom\") }\n1u8"])
    seen = tmp_path / "notified.txt"
    hook = tmp_path / "notify.sh"
    hook.write_text(f"#!/bin/sh\nenv | grep ^SLURMBOOK_ | sort > {seen}\n")
    hook.chmod(0o755)
    failed = slurmbook("tick", path, env={"SLURMBOOK_NOTIFY": str(hook)})
    assert failed.returncode == 1, failed
    notice = seen.read_text()
    assert "SLURMBOOK_ASSET=boom" in notice and "SLURMBOOK_FRESHNESS=failed" in notice, notice
    assert slurmbook("tick", tmp_path / "missing.ipynb").returncode == 2
    bad = notebook(tmp_path, ["%%asset x --auto lazy\n1u8"], name="bad.ipynb")
    wrong = slurmbook("tick", bad)
    assert wrong.returncode == 2 and "--auto" in wrong.stderr and "lazy" in wrong.stderr, wrong


def test_a_tick_notifies_an_overdue_asset_even_when_nothing_runs(tmp_path):
    path = notebook(tmp_path, ["%%asset seed --auto on-missing --freshness 1h\n21u64"])
    seen = tmp_path / "notified.txt"
    hook = tmp_path / "notify.sh"
    hook.write_text(f"#!/bin/sh\nenv | grep ^SLURMBOOK_ | sort >> {seen}\n")
    hook.chmod(0o755)
    env = {"SLURMBOOK_NOTIFY": str(hook)}
    first = slurmbook("tick", path, env=env)
    assert first.returncode == 0 and "run " in first.stdout, first
    assert not seen.exists(), seen.read_text()
    # Two hours later on-missing has nothing to do, but seed is overdue.
    later = (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=2))
    stamp = later.strftime("%Y-%m-%dT%H:%M:%SZ")
    overdue = slurmbook("tick", path, "--now", stamp, env=env)
    assert overdue.returncode == 0 and "nothing to do" in overdue.stdout, overdue
    notice = seen.read_text()
    assert "SLURMBOOK_ASSET=seed" in notice and "SLURMBOOK_FRESHNESS=FAIL" in notice, notice
    # Once per transition: a second overdue tick says nothing new.
    assert slurmbook("tick", path, "--now", stamp, env=env).returncode == 0
    assert seen.read_text().count("SLURMBOOK_ASSET=seed") == 1, seen.read_text()


def scheduled_project(tmp_path, facts, remote_dir):
    (tmp_path / "slurmbook.toml").write_text(
        'profile = "cluster"\n[profiles.cluster]\ntarget = "slurm"\n'
        f'host = "{facts["host"]}"\nssh_config = "{facts["ssh_config"]}"\n'
        f'remote_dir = "{remote_dir}"\npartition = "debug"\ntime = "00:10:00"\n')
    return notebook(tmp_path, ["%%asset seed --auto eager\n21u64", "%%asset doubled --auto eager\nseed * 2"])


def remote_runs(facts, schedule_dir):
    """Finished runs in the schedule's state on the cluster (read there)."""
    db = f"{schedule_dir}/.slurmbook/state.db"
    p = harness.ssh(["python3", "-c", f"import sqlite3; print(sqlite3.connect({db!r}).execute("
                     "\"SELECT COUNT(*) FROM runs WHERE status = 'ok'\").fetchone()[0])"],
                    dir=facts["dir"])
    return int(p.stdout.strip() or 0) if p.returncode == 0 else 0


def schedule_dir_of(out):
    return out.split(" in ", 1)[1].split(" (", 1)[0]


def test_schedule_ticks_on_the_cluster_and_a_new_kernel_sees_it(tmp_path, facts):
    remote = f"{facts['scratch']}/sb-auto-{uuid.uuid4().hex[:8]}"
    path = scheduled_project(tmp_path, facts, remote)
    installed = slurmbook("schedule", "install", path, "--profile", "cluster", "--every", "1m")
    assert installed.returncode == 0, installed
    assert "a scrontab entry" in installed.stdout
    try:
        scheduled_run_is_seen(path, facts, schedule_dir_of(installed.stdout))
    finally:
        removed = slurmbook("schedule", "remove", path, "--profile", "cluster")
    assert removed.returncode == 0 and "schedule removed" in removed.stdout, removed
    assert "slurmbook schedule" not in harness.ssh(["scrontab", "-l"], dir=facts["dir"]).stdout


def scheduled_run_is_seen(path, facts, sdir):
    crontab = harness.ssh(["scrontab", "-l"], dir=facts["dir"]).stdout
    assert f"* * * * * {sdir}/tick.sh" in crontab, crontab
    again = slurmbook("schedule", "install", path, "--profile", "cluster", "--every", "1m")
    assert "a scrontab entry" in again.stdout
    assert again.returncode == 0, again
    # the notebook and slurmbook are not sent again (only the small schedule.json changes)
    assert int(re.search(r"\((\d+) byte", again.stdout).group(1)) < 10_000, again.stdout
    assert harness.ssh(["scrontab", "-l"], dir=facts["dir"]).stdout.count("begin") == crontab.count("begin")
    # Nothing of ours runs now: the cluster ticks by itself.
    harness.wait_until(lambda: remote_runs(facts, sdir) >= 1, timeout=180, interval=5,
                       what="a scheduled run on the cluster")
    # The schedule's files are the user's only (like every upload).
    modes = harness.ssh(["stat", "-c", "%a %n", f"{sdir}/notebook.ipynb", f"{sdir}/tick.sh",
                         f"{sdir}/slurmbook.toml", f"{sdir}/.slurmbook/state.db"], dir=facts["dir"]).stdout
    assert all(line.split()[0] in ("600", "700") for line in modes.splitlines()), modes
    # The jobs ran the job binary built at install (no Rust toolchain needed there).
    job = json.loads(harness.ssh(["cat", f"{sdir}/job-binary.json"], dir=facts["dir"]).stdout)
    assert sorted(job["assets"]) == ["doubled", "seed"], job
    base = sdir.rsplit("/schedules/", 1)[0]
    used = harness.ssh(["grep", "-rl", job["binary"], f"{base}/runs"], dir=facts["dir"]).stdout
    assert used.strip(), f"no job script of {base}/runs runs {job['binary']}"
    nb = execute(path, cells=["%runs", "%load doubled", "doubled", "%assets", "%graph"])
    runs = nb.cells[0].outputs
    assert not errors_of(runs), errors_of(runs)
    assert "scheduled run(s) imported" in text_of(runs)
    table = [o for o in runs if o["output_type"] == "display_data"][0]["data"]["text/plain"]
    assert "scheduled on cluster: seed: eager: newly missing" in table, table
    assert "loaded doubled: u64" in text_of(nb.cells[1].outputs), nb.cells[1].outputs
    assert nb.cells[2].outputs[0]["data"]["text/plain"] == "42"
    assets = nb.cells[3].outputs[0]["data"]["text/plain"]
    assert "fresh" in assets and "eager" in assets, assets
    graph = [o for o in nb.cells[4].outputs if o["output_type"] == "display_data"][0]["data"]
    assert "auto eager" in graph["text/vnd.mermaid"], graph["text/vnd.mermaid"]
    listed = slurmbook("schedule", "list", path, "--profile", "cluster")
    assert listed.returncode == 0 and " yes " in listed.stdout and "scrontab" in listed.stdout, listed
    # A changed notebook is uploaded again by install, with a job binary built from it.
    changed = nbformat.read(path, as_version=4)
    changed.cells[1].source = "%%asset doubled --auto eager\nseed * 3"
    nbformat.write(changed, path)
    again = slurmbook("schedule", "install", path, "--profile", "cluster", "--every", "1m")
    assert again.returncode == 0 and schedule_dir_of(again.stdout) == sdir, again
    assert int(re.search(r"\((\d+) byte", again.stdout).group(1)) > 10_000, again.stdout
    there = harness.ssh(["cat", f"{sdir}/notebook.ipynb"], dir=facts["dir"]).stdout
    assert there == path.read_text(), "the snapshot on the cluster is not the changed notebook"
    rebuilt = json.loads(harness.ssh(["cat", f"{sdir}/job-binary.json"], dir=facts["dir"]).stdout)
    assert rebuilt["notebook_sha256"] != job["notebook_sha256"] and rebuilt["binary"] != job["binary"], rebuilt


@pytest.fixture(scope="module")
def scronless():
    """A second loopback cluster whose slurm.conf leaves scrontab off."""
    d = pathlib.Path(f"/tmp/sb-noscron-{uuid.uuid4().hex[:6]}")
    env = {**os.environ, "SLURMBOOK_CLUSTER_DIR": str(d), "SLURMBOOK_CLUSTER_SCRONTAB": "disable"}
    p = subprocess.run([sys.executable, str(ROOT / "tests/cluster/cluster.py"), "up", "--dir", str(d)],
                       env=env, capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, p.stderr[-3000:]
    try:
        yield harness.facts(d)
    finally:
        subprocess.run([sys.executable, str(ROOT / "tests/cluster/cluster.py"), "down", "--dir", str(d)],
                       capture_output=True, timeout=300)


def test_without_scrontab_install_says_so_and_the_fallback_job_ticks(tmp_path, scronless):
    f = scronless
    assert f["scrontab"] is False
    path = scheduled_project(tmp_path, f, f"{f['scratch']}/sb-auto")
    refused = slurmbook("schedule", "install", path, "--profile", "cluster", "--every", "1m")
    assert refused.returncode == 2, refused
    assert "ScronParameters" in refused.stderr and "--fallback" in refused.stderr, refused.stderr
    installed = slurmbook("schedule", "install", path, "--profile", "cluster", "--every", "1m", "--fallback")
    assert installed.returncode == 0 and "resubmits itself" in installed.stdout, installed
    sdir = schedule_dir_of(installed.stdout)
    name = installed.stdout.split("schedule ", 1)[1].split(" ", 1)[0]
    harness.wait_until(lambda: remote_runs(f, sdir) >= 1, timeout=180, interval=5,
                       what="a run of the fallback job")
    queued = lambda: harness.ssh(["squeue", "-h", "-o", "%j %T"], dir=f["dir"]).stdout  # noqa: E731
    harness.wait_until(lambda: f"slurmbook-tick-{name} PENDING" in queued(), timeout=60,
                       what="the resubmitted tick job")
    removed = slurmbook("schedule", "remove", path, "--profile", "cluster")
    assert removed.returncode == 0 and "schedule removed" in removed.stdout, removed
    time.sleep(1)
    assert f"slurmbook-tick-{name} PENDING" not in queued()
