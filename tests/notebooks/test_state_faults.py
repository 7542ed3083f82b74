"""The fault matrix (issue 18), local side: the state database locked by
another process, corrupted, or deleted in the middle of a run; the
notebook edited during a run; the kernel SIGKILLed during a local
materialization. What the user sees, and that nothing is lost or
half-recorded. The Slurm runs here go over SSH only: none of these faults
depends on the transport."""
import json
import os
import pathlib
import signal
import sqlite3
import subprocess
import time

import nbformat

from nbrun import ROOT, db_rows, edit_cell
from test_slurm_control import LINES, reply_of, streamed, ticker_notebook

BINARY = ROOT / "target" / "debug" / "slurmbook"


def small_notebook(tmp_path):
    path = tmp_path / "small.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in [
        "%%asset one\n1u8", "%%asset two\none + 1"]]), path)
    return path


def cli(*args, timeout=120):
    return subprocess.run([BINARY, *map(str, args)], capture_output=True, text=True, timeout=timeout)


def state_db(path):
    return pathlib.Path(path).parent / ".slurmbook" / "state.db"


def test_a_locked_state_db_waits_with_a_message_then_fails_clearly(tmp_path):
    path = small_notebook(tmp_path)
    assert cli("run", path, "--dry-run").returncode == 0
    db = state_db(path)
    holder = sqlite3.connect(db, isolation_level=None, timeout=1)
    try:
        holder.execute("BEGIN IMMEDIATE")  # another process writing, and not finishing
        run = cli("run", path, "--dry-run")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    out = run.stdout + run.stderr
    assert run.returncode != 0, out
    assert "the state database is locked by another process; waiting up to 10 s" in run.stderr, out
    assert "held .slurmbook/state.db for more than 10 s; let it finish, then try again" in run.stderr, out
    assert "panicked" not in out, out
    # Released: the same command works, and nothing was half-written.
    again = cli("run", path, "--dry-run")
    assert again.returncode == 0, again.stdout + again.stderr
    assert db_rows(path, "SELECT count(*) FROM runs") == [(0,)]
    assert db_rows(path, "PRAGMA integrity_check") == [("ok",)]


def test_a_kernel_waiting_for_a_locked_state_db_says_so_in_the_cell(tmp_path, monkeypatch):
    """In a kernel the wait is said in the cell that waits (not only in the
    kernel's log); released within the 10 s, the materialization goes on."""
    from jupyter_client.manager import start_new_kernel

    path = small_notebook(tmp_path)
    assert cli("run", path, "--dry-run").returncode == 0
    monkeypatch.setenv("JPY_SESSION_NAME", str(path))
    km, kc = start_new_kernel(kernel_name="slurmbook", cwd=str(tmp_path), startup_timeout=120)
    holder = sqlite3.connect(state_db(path), isolation_level=None, timeout=1)
    try:
        holder.execute("BEGIN IMMEDIATE")  # another process writing
        msg = kc.execute("%materialize")
        said = streamed(kc, msg, until=lambda t: "waiting up to 10 s" in t, timeout=120)
        assert "the state database is locked by another process; waiting up to 10 s" in said, said
        holder.execute("ROLLBACK")
        said += streamed(kc, msg, timeout=300)
        reply = reply_of(kc, msg)
        assert reply["status"] == "ok", (reply, said)
        assert db_rows(path, "SELECT asset, status FROM materializations ORDER BY asset") == [
            ("one", "ok"), ("two", "ok")], said
    finally:
        holder.close()
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def test_a_corrupted_state_db_names_the_file_and_how_to_recover(tmp_path):
    path = small_notebook(tmp_path)
    assert cli("run", path, "--dry-run").returncode == 0
    db = state_db(path)
    for extra in ["-wal", "-shm"]:
        pathlib.Path(f"{db}{extra}").unlink(missing_ok=True)
    db.write_bytes(b"this is not an SQLite database, it was overwritten\n" * 100)
    for args in [("run", path, "--dry-run"), ("status", path)]:
        run = cli(*args)
        out = run.stdout + run.stderr
        assert run.returncode != 0, out
        assert f"{db} is not a readable state database" in out, out
        assert f"mv {db} {db}.broken" in out, out
        assert "panicked" not in out, out
    # Following the advice works.
    db.rename(f"{db}.broken")
    again = cli("run", path, "--dry-run")
    assert again.returncode == 0, again.stdout + again.stderr


def run_ticker_and(path, at_line, action, *args):
    """`slurmbook run` of the ticker notebook; `action()` once `[ticker] line
    {at_line}` is shown. Returns (exit code, output)."""
    proc = subprocess.Popen([BINARY, "run", path, "--profile", "cluster", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out = ""
    acted = False
    try:
        for line in proc.stdout:
            out += line
            if not acted and f"[ticker] line {at_line}" in line:
                action()
                acted = True
        code = proc.wait(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert acted, out
    return code, out


def test_the_state_db_deleted_mid_run_is_recreated_consistent(tmp_path, ssh_transport):
    path = ticker_notebook(tmp_path, ssh_transport, seconds_per_line=0.15)
    db = state_db(path)

    def delete():
        for extra in ["", "-wal", "-shm"]:
            pathlib.Path(f"{db}{extra}").unlink(missing_ok=True)

    code, out = run_ticker_and(path, 5, delete)
    assert code == 0, out
    shown = [l for l in out.splitlines() if l.startswith("[ticker] line ")]
    assert shown == [f"[ticker] line {i}" for i in range(LINES)], out
    assert "2 done, 0 fresh, 0 failed" in out
    assert db.exists(), "the run did not re-create the state database"
    assert "was deleted while in use; re-created it" in out, out
    assert db_rows(path, "PRAGMA integrity_check") == [("ok",)]
    assert db_rows(path, "SELECT status FROM runs") == [("ok",)]
    assert sorted(db_rows(path, "SELECT asset, status FROM materializations")) == [
        ("after_ticker", "ok"), ("ticker", "ok")]
    again = cli("run", path, "--profile", "cluster", timeout=300)
    assert again.returncode == 0 and "nothing to do" in again.stdout, again.stdout + again.stderr


def test_editing_the_notebook_during_a_run_uses_the_snapshot(tmp_path, ssh_transport):
    path = ticker_notebook(tmp_path, ssh_transport, seconds_per_line=0.15)
    original = path.read_text()
    edited = ("%%asset ticker\nfor i in 0..3 {\n    println!(\"edited {i}\");\n}\n3u32")
    code, out = run_ticker_and(path, 5, lambda: edit_cell(path, "%%asset ticker", edited))
    assert code == 0, out
    # The run is the snapshot's: all its lines, none of the edit's.
    shown = [l for l in out.splitlines() if l.startswith("[ticker] ")]
    assert shown == [f"[ticker] line {i}" for i in range(LINES)], out
    assert "2 done, 0 fresh, 0 failed" in out
    # The recorded versions are the snapshot's: the edited notebook is
    # stale, the original one fresh.
    stale = cli("run", path, "--profile", "cluster", "--dry-run", timeout=300)
    assert stale.returncode == 0, stale.stdout + stale.stderr
    assert "2 to run" in stale.stdout, stale.stdout
    path.write_text(original)
    fresh = cli("run", path, "--profile", "cluster", timeout=300)
    assert fresh.returncode == 0 and "nothing to do" in fresh.stdout, fresh.stdout + fresh.stderr


def shown_text(kc, msg_id, timeout=120):
    """Every text/plain the cell `msg_id` showed (streams, displays, results)."""
    text = ""
    while True:
        msg = kc.get_iopub_msg(timeout=timeout)
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        content = msg["content"]
        if msg["msg_type"] == "stream":
            text += content["text"]
        elif msg["msg_type"] in ("display_data", "execute_result", "update_display_data"):
            text += content["data"].get("text/plain", "") + "\n"
        elif msg["msg_type"] == "status" and content["execution_state"] == "idle":
            return text


def test_a_kernel_killed_during_a_local_materialization(tmp_path, monkeypatch):
    from jupyter_client.manager import start_new_kernel

    path = tmp_path / "local.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in [
        "%%asset slowlocal\nfor i in 0..600 {\n    println!(\"tick {i}\");\n"
        "    std::thread::sleep(std::time::Duration::from_millis(200));\n}\nvec![1u64, 2, 3]",
    ]]), path)
    monkeypatch.setenv("JPY_SESSION_NAME", str(path))
    km, kc = start_new_kernel(kernel_name="slurmbook", cwd=str(tmp_path), startup_timeout=120)
    try:
        first = kc.execute("%materialize slowlocal")
        streamed(kc, first, until=lambda t: "tick 3\n" in t)
        os.kill(km.provisioner.process.pid, signal.SIGKILL)
        km.provisioner.process.wait(timeout=30)
        assert db_rows(path, "SELECT status FROM runs") == [("running",)]
        km.restart_kernel(now=True)
        kc.wait_for_ready(timeout=120)
        table = shown_text(kc, kc.execute("%assets"))
        assert "slowlocal" in table and "interrupted" in table and "running" not in table, table
        shown = table + json.dumps(db_rows(path, "SELECT asset, status, error FROM materializations"))
        assert db_rows(path, "SELECT status FROM runs") == [("cancelled",)], shown
        assert db_rows(path, "SELECT status, substr(error, 1, 12) FROM materializations") == [
            ("failed", "interrupted:")], shown
        load = kc.execute("%load slowlocal")
        content = reply_of(kc, load)
        assert content["status"] == "error", content
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    leftovers = [p.name for p in (tmp_path / ".slurmbook").rglob("*") if "slowlocal" in p.name]
    assert not [n for n in leftovers if not n.startswith(".")], leftovers
