"""Controlling Slurm runs against the loopback cluster (tests/cluster):
a kernel restart mid-run then `%attach` shows every line exactly once;
`%cancel` cancels a run left running by a restarted kernel; through the
headless CLI, a repeat with `--force` uploads zero bytes, editing one cell
resubmits only that asset and its downstream, and killing the SSH master
mid-run reconnects and finishes the run. Everything but the SSH master test
runs over SSH and with a host-less (local) profile (the `transport`
fixture, conftest.py)."""
import os
import re
import signal
import subprocess
import time
import uuid

import nbformat

from nbrun import ROOT, copy_notebook, db_rows, edit_cell
from test_slurm_notebook import project_dir

BINARY = ROOT / "target" / "debug" / "slurmbook"
LINES = 40


def ticker_notebook(tmp_path, transport, seconds_per_line=0.1):
    project_dir(tmp_path, transport)
    path = tmp_path / "ticker.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in [
        "%%asset ticker\n"
        f"for i in 0..{LINES} {{\n"
        "    println!(\"line {i}\");\n"
        f"    std::thread::sleep(std::time::Duration::from_millis({int(seconds_per_line * 1000)}));\n"
        "}\n"
        f"{LINES}u32",
        "%%asset after_ticker\nticker + 1",
    ]]), path)
    return path


def start_kernel(path, tmp_path, monkeypatch):
    from jupyter_client.manager import start_new_kernel

    monkeypatch.setenv("JPY_SESSION_NAME", str(path))
    return start_new_kernel(kernel_name="slurmbook", cwd=str(tmp_path), startup_timeout=120)


def streamed(kc, msg_id, until=None, timeout=300):
    """Stream texts of `msg_id` until its execute_reply (or until `until(text_so_far)`)."""
    text = ""
    deadline = time.time() + timeout
    while time.time() < deadline:
        msg = kc.get_iopub_msg(timeout=timeout)
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        if msg["msg_type"] == "stream":
            text += msg["content"]["text"]
            if until and until(text):
                return text
        if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            return text
    raise AssertionError(f"no end of {msg_id} within {timeout} s; got {text!r}")


def drain_until_shutdown(kc, msg_id):
    """After a restart: what the old kernel sent for `msg_id` before its shutdown_reply."""
    text = ""
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            msg = kc.get_iopub_msg(timeout=5)
        except Exception:
            break
        if msg["msg_type"] == "shutdown_reply":
            return text, True
        if msg["parent_header"].get("msg_id") == msg_id and msg["msg_type"] == "stream":
            text += msg["content"]["text"]
    return text, False


def reply_of(kc, msg_id, timeout=300):
    while True:
        reply = kc.get_shell_msg(timeout=timeout)
        if reply["parent_header"].get("msg_id") == msg_id:
            return reply["content"]


def test_restart_mid_run_then_attach_shows_every_line_once(tmp_path, transport, monkeypatch):
    path = ticker_notebook(tmp_path, transport)
    km, kc = start_kernel(path, tmp_path, monkeypatch)
    try:
        first = kc.execute("%materialize --target slurm")
        before = streamed(kc, first, until=lambda t: "[ticker] line 5\n" in t)
        km.restart_kernel(now=False)
        rest, saw_shutdown = drain_until_shutdown(kc, first)
        assert saw_shutdown, "the kernel's iopub shutdown_reply never arrived"
        before += rest
        kc.wait_for_ready(timeout=120)
        assert db_rows(path, "SELECT status FROM runs") == [("running",)]
        attach = kc.execute("%attach")
        after = streamed(kc, attach)
        content = reply_of(kc, attach)
        assert content["status"] == "ok", content
        shown = [l for l in (before + after).splitlines() if l.startswith("[ticker] line ")]
        assert shown == [f"[ticker] line {i}" for i in range(LINES)], (before, after)
        assert "[ticker] line 0" not in after, "attach repeated lines already shown"
        assert "2 done, 0 fresh, 0 failed" in after
        assert db_rows(path, "SELECT status FROM runs") == [("ok",)]
        assert sorted(db_rows(path, "SELECT asset, status FROM materializations")) == [
            ("after_ticker", "ok"), ("ticker", "ok")]
        again = kc.execute("%attach")
        assert "no Slurm run is in progress" in reply_of(kc, again)["evalue"]
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def test_cancel_magic_cancels_a_run_left_by_a_restart(tmp_path, transport, monkeypatch):
    path = ticker_notebook(tmp_path, transport, seconds_per_line=3)
    km, kc = start_kernel(path, tmp_path, monkeypatch)
    try:
        first = kc.execute("%materialize --target slurm")
        streamed(kc, first, until=lambda t: "[ticker] line 0\n" in t)
        km.restart_kernel(now=False)
        kc.wait_for_ready(timeout=120)
        cancel = kc.execute("%cancel")
        text = streamed(kc, cancel)
        assert reply_of(kc, cancel)["status"] == "ok"
        jobs = db_rows(path, "SELECT job_id FROM materializations ORDER BY id")
        assert len(jobs) == 2
        assert re.search(r"run 1 cancelled \(scancel \d+ \d+\)", text), text
        for (job,) in jobs:
            assert transport.final_state(job) == "CANCELLED"
        assert db_rows(path, "SELECT status FROM runs") == [("cancelled",)]
        assert set(db_rows(path, "SELECT status FROM materializations")) == {("cancelled",)}
        nothing = kc.execute("%cancel")
        assert "no Slurm run is in progress" in streamed(kc, nothing)
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def headless(path, *args, timeout=600):
    run = subprocess.run([BINARY, "run", path, "--profile", "cluster", *args],
                         capture_output=True, text=True, timeout=timeout)
    assert run.returncode == 0, run.stdout + run.stderr
    return run.stdout + run.stderr


def test_repeat_uploads_nothing_and_an_edit_resubmits_only_downstream(tmp_path, transport):
    # Its own remote_dir: the first run's upload is not found from other tests.
    (tmp_path / "slurmbook.toml").write_text(
        transport.slurmbook_toml(remote_dir=f"$SCRATCH/repeat-{uuid.uuid4().hex[:12]}"))
    path = copy_notebook("slurm.ipynb", tmp_path)
    one_connection = 0 if transport.local else 1
    first = headless(path, "--select", "+total")
    stats = transport.stats(first)
    assert stats.connections == one_connection and stats.bytes > 0, first
    forced = headless(path, "--select", "+total", "--force")
    assert "4 done" in forced
    stats = transport.stats(forced)
    assert (stats.connections, stats.bytes) == (one_connection, 0), forced
    edit_cell(path, "%%asset odds",
              "%%asset odds\nnumbers.iter().filter(|n| *n % 2 == 1).map(|n| n * 1).collect::<Vec<u64>>()")
    edited = headless(path, "--select", "+total")
    assert "2 done, 2 fresh, 0 failed" in edited, edited
    last_run = db_rows(path, "SELECT max(id) FROM runs")[0][0]
    resubmitted = db_rows(path, "SELECT asset FROM materializations WHERE run_id = ? AND job_id IS NOT NULL",
                          last_run)
    assert sorted(a for (a,) in resubmitted) == ["odds", "total"]


def ssh_masters(config):
    found = set()
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            argv = open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"ssh") and b"-M" in argv and config.encode() in argv:
            found.add(int(pid))
    return found


def test_killing_the_ssh_master_mid_run_reconnects_and_finishes(tmp_path, ssh_transport):
    facts = ssh_transport.facts
    path = ticker_notebook(tmp_path, ssh_transport, seconds_per_line=0.25)
    old = ssh_masters(facts["ssh_config"])
    proc = subprocess.Popen([BINARY, "run", path, "--profile", "cluster"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out = ""
    killed = set()
    try:
        for line in proc.stdout:
            out += line
            if "[ticker] line 3" in line:
                killed = ssh_masters(facts["ssh_config"]) - old
                for pid in killed:
                    os.kill(pid, signal.SIGKILL)
                break
        out += proc.stdout.read()
        assert proc.wait(timeout=300) == 0, out
    finally:
        if proc.poll() is None:
            proc.kill()
    assert len(killed) == 1, (killed, out)
    shown = [l for l in out.splitlines() if l.startswith("[ticker] line ")]
    assert shown == [f"[ticker] line {i}" for i in range(LINES)], out
    assert "2 done, 0 fresh, 0 failed" in out
    assert ssh_transport.stats(out).connections == 2, out
    assert db_rows(path, "SELECT status FROM runs") == [("ok",)]


def run_killed_at(path, marker):
    """`slurmbook run PATH --profile cluster`, SIGKILLed once a line holds
    `marker` (like a closed laptop: no chance to clean up); what it printed."""
    proc = subprocess.Popen([BINARY, "run", path, "--profile", "cluster"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    before = ""
    try:
        for line in proc.stdout:
            before += line
            if marker in line:
                break
        proc.kill()
        proc.wait(timeout=30)
        before += proc.stdout.read()
    finally:
        if proc.poll() is None:
            proc.kill()
    return before


def test_headless_attach_after_the_cli_was_killed(tmp_path, transport):
    path = ticker_notebook(tmp_path, transport, seconds_per_line=0.15)
    before = run_killed_at(path, "[ticker] line 5")
    assert db_rows(path, "SELECT status FROM runs") == [("running",)]
    attach = subprocess.run([BINARY, "attach", path], capture_output=True, text=True, timeout=300)
    assert attach.returncode == 0, attach.stdout + attach.stderr
    every = [f"[ticker] line {i}" for i in range(LINES)]
    seen = [l for l in before.splitlines() if l.startswith("[ticker] line ")]
    resumed = [l for l in attach.stdout.splitlines() if l.startswith("[ticker] line ")]
    assert seen == every[:len(seen)] and resumed == every[LINES - len(resumed):], (before, attach.stdout)
    # Offsets are saved with each batch of output, so a kill can at most
    # repeat the batch it interrupted; nothing is lost.
    assert len(seen) + len(resumed) >= LINES, (before, attach.stdout)
    assert len(seen) + len(resumed) - LINES <= 1, (before, attach.stdout)
    assert "2 done, 0 fresh, 0 failed" in attach.stdout
    assert db_rows(path, "SELECT status FROM runs") == [("ok",)]
    again = subprocess.run([BINARY, "cancel", path], capture_output=True, text=True, timeout=60)
    assert again.returncode == 0 and "no Slurm run is in progress" in again.stdout


def test_headless_dry_run_lists_the_slurm_jobs_grouped_or_per_asset(tmp_path, transport):
    path = copy_notebook("slurm.ipynb", project_dir(tmp_path, transport))
    grouped = headless(path, "--dry-run")
    assert "Slurm jobs (grouped): 1 job for 4 assets" in grouped, grouped
    assert re.search(r"job alloc_numbers: 4 steps: numbers, (evens, odds|odds, evens), total", grouped), grouped
    per_asset = headless(path, "--dry-run", "--jobs", "per-asset")
    assert "Slurm jobs (per-asset): 4 jobs for 4 assets" in per_asset, per_asset
    assert db_rows(path, "SELECT count(*) FROM runs") == [(0,)]
