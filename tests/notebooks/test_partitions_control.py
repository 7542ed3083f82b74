"""Controlling sweeps (partitioned assets, issue 16): interrupting a sweep
in the kernel kills its partition processes, records the partitions that
ran as cancelled and keeps the session; a headless run of a job array
killed mid-run is followed to its end by `slurmbook attach`, one partition
per task and several per task alike, with every partition's lines and
each partition recorded."""
import os
import pathlib
import subprocess
import time

import nbformat
import pytest

from nbrun import db_rows
from test_slurm_control import BINARY, reply_of, run_killed_at, start_kernel, streamed
from test_slurm_notebook import project_dir


def write_notebook(path, sources):
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources]), path)
    return path


def sweep_processes(tmp_path):
    """Pids of processes whose command line names a task table of this test."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmd = pathlib.Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue  # ended while we looked
        if b"--task-table" in cmd and any(str(tmp_path).encode() in c for c in cmd):
            pids.append(int(entry))
    return pids


def test_interrupting_a_sweep_in_the_kernel_kills_its_partitions(tmp_path, monkeypatch):
    path = write_notebook(tmp_path / "slow.ipynb", [
        "%%asset slow: u64 --partitions 0..4 --max-parallel 2\n"
        "println!(\"start {partition}\");\n"
        "std::thread::sleep(std::time::Duration::from_secs(600));\n"
        "1u64",
    ])
    km, kc = start_kernel(path, tmp_path, monkeypatch)
    try:
        cell = kc.execute("%materialize slow")
        text = streamed(kc, cell, until=lambda t: "[slow[0]] start 0" in t and "[slow[1]] start 1" in t,
                        timeout=600)
        assert len(sweep_processes(tmp_path)) == 2, text
        km.interrupt_kernel()
        reply = reply_of(kc, cell, timeout=120)
        assert reply["status"] == "error", reply
        # The partition processes are gone (killed, not left to run 10 min).
        deadline = time.time() + 30
        while sweep_processes(tmp_path) and time.time() < deadline:
            time.sleep(0.2)
        assert sweep_processes(tmp_path) == []
        # The two that ran are cancelled, the others never started; the
        # session lives on.
        rows = db_rows(path, "SELECT partition, status, error FROM materializations "
                             "WHERE asset = 'slow' AND partition IS NOT NULL ORDER BY partition")
        assert [(r[0], r[1]) for r in rows] == [("0", "cancelled"), ("1", "cancelled")], rows
        assert all("interrupted" in (r[2] or "") for r in rows), rows
        assert db_rows(path, "SELECT status FROM runs") != [("running",)]
        alive = reply_of(kc, kc.execute("1 + 1"))
        assert alive["status"] == "ok", alive
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


LINES = 6


@pytest.mark.parametrize("per_task", [1, 2])
def test_headless_attach_follows_a_job_array_to_its_end(tmp_path, ssh_transport, per_task):
    project_dir(tmp_path, ssh_transport)
    path = write_notebook(tmp_path / "sweep.ipynb", [
        f"%%asset sweep: u64 --partitions 0..4 --per-task {per_task}\n"
        f"for i in 0..{LINES} {{\n"
        "    println!(\"line {i}\");\n"
        "    std::thread::sleep(std::time::Duration::from_millis(300));\n"
        "}\n"
        "partition_index as u64",
    ])
    before = run_killed_at(path, "[sweep[0]] line 1")
    assert db_rows(path, "SELECT status FROM runs") == [("running",)]
    attach = subprocess.run([BINARY, "attach", path], capture_output=True, text=True, timeout=300)
    assert attach.returncode == 0, attach.stdout + attach.stderr
    every = {f"[sweep[{k}]] line {i}" for k in range(4) for i in range(LINES)}
    shown = [l for l in (before + attach.stdout).splitlines() if l in every]
    assert set(shown) == every, (before, attach.stdout)
    assert "1 done, 0 fresh, 0 failed" in attach.stdout, attach.stdout
    assert db_rows(path, "SELECT status FROM runs") == [("ok",)]
    rows = db_rows(path, "SELECT partition, status, job_id FROM materializations "
                         "WHERE asset = 'sweep' AND partition IS NOT NULL ORDER BY partition")
    assert [r[:2] for r in rows] == [(str(k), "ok") for k in range(4)], rows
    tasks = {r[2] for r in rows}
    assert len(tasks) == 4 // per_task, rows
