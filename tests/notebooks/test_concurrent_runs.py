"""The fault matrix (issue 18): two runs of one notebook at once — a
kernel and `slurmbook run`, or two `slurmbook run`s — materializing
overlapping selections. The asset both select is computed once: the
second run says which run computes it, waits, and reuses its value; when
the run computing it dies, the waiting run takes over. In the kernel
(local target) and as Slurm jobs on the loopback cluster (tests/cluster).

The shared asset appends a line to a side-effect file each time it runs,
so the count of computations does not depend on what slurmbook records."""
import os
import pathlib
import re
import signal
import subprocess
import time
import uuid

import nbformat
import pytest

from nbrun import ROOT, db_rows
from test_slurm_control import reply_of, start_kernel, streamed
from test_slurm_notebook import project_dir

BINARY = ROOT / "target" / "debug" / "slurmbook"


def shared_notebook(path, side_effects, seconds, left_seconds=0):
    """`shared` (slow, one line in `side_effects` a computation), and `left`
    and `right` downstream of it."""
    cells = [
        "%%asset shared\n"
        "use std::io::Write;\n"
        "let mut f = std::fs::OpenOptions::new().append(true).create(true)"
        f".open(\"{side_effects}\").unwrap();\n"
        "writeln!(f, \"computed\").unwrap();\n"
        "println!(\"shared start\");\n"
        f"for i in 0..{seconds * 2} {{\n"
        "    println!(\"shared tick {i}\");\n"
        "    std::thread::sleep(std::time::Duration::from_millis(500));\n"
        "}\n"
        f"if std::path::Path::new(\"{side_effects}.fail\").exists() {{\n"
        f"    std::fs::remove_file(\"{side_effects}.fail\").unwrap();\n"
        "    panic!(\"failing once, as asked\");\n"
        "}\n"
        "writeln!(f, \"finished\").unwrap();\n"
        "vec![1u64, 2, 3]",
        "%%asset left\n"
        f"for i in 0..{left_seconds * 2} {{\n"
        "    println!(\"left tick {i}\");\n"
        "    std::thread::sleep(std::time::Duration::from_millis(500));\n"
        "}\n"
        "shared.len() as u64 + 10",
        "%%asset right\nshared.len() as u64 + 20",
    ]
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in cells]), path)
    return path


def computations(side_effects):
    return side_effects.read_text().count("computed\n") if side_effects.exists() else 0


def read_until(proc, predicate, timeout=300):
    """Lines of `proc` until `predicate(text so far)`; the text."""
    text = ""
    deadline = time.time() + timeout
    for line in proc.stdout:
        text += line
        if predicate(text):
            return text
        assert time.time() < deadline, text
    raise AssertionError(f"the process ended first:\n{text}")


def cli_run(path, *args):
    return subprocess.Popen([BINARY, "run", path, *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def finish(proc, text, timeout=600):
    try:
        out, _ = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
    return proc.returncode, text + out


WAITING = re.compile(r"asset `shared` is being materialized by run (\d+) \((slurmbook \w+), pid (\d+)[^)]*\); waiting for it")


def test_a_kernel_and_the_cli_compute_a_shared_asset_once(tmp_path, monkeypatch):
    side = tmp_path / "side-effects.txt"
    path = shared_notebook(tmp_path / "shared.ipynb", side, seconds=8)
    km, kc = start_kernel(path, tmp_path, monkeypatch)
    try:
        first = kc.execute("%materialize +left")
        streamed(kc, first, until=lambda t: "shared start" in t)
        proc = cli_run(path, "--select", "+right")
        text = read_until(proc, lambda t: "waiting for it" in t)
        m = WAITING.search(text)
        assert m, text
        kernel_run = int(m.group(1))
        assert m.group(2) == "slurmbook kernel" and int(m.group(3)) == km.provisioner.process.pid, text
        code, out = finish(proc, text)
        kernel_text = streamed(kc, first)
        assert reply_of(kc, first)["status"] == "ok", kernel_text
        assert code == 0, out
        assert f"asset `shared` was materialized by run {kernel_run} meanwhile; using its value" in out, out
        assert "1 done, 1 fresh, 0 failed" in out, out
        assert "shared tick" not in out, out
        # The kernel has both values: its own and the CLI's (from the store).
        for code in ["%load right", "assert_eq!((left, right), (13, 23));"]:
            content = reply_of(kc, kc.execute(code))
            assert content["status"] == "ok", (code, content)
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    assert computations(side) == 1, side.read_text()
    assert db_rows(path, "SELECT status FROM runs ORDER BY id") == [("ok",), ("ok",)]
    assert db_rows(path, "SELECT run_id, status FROM materializations WHERE asset = 'shared' ORDER BY id") == [
        (kernel_run, "ok"), (kernel_run + 1, "skipped")]
    assert sorted(db_rows(path, "SELECT asset FROM materializations WHERE status = 'ok'")) == [
        ("left",), ("right",), ("shared",)]
    assert db_rows(path, "SELECT CAST(value_path IS NOT NULL AS INT) FROM materializations WHERE asset = 'right'") == [(1,)]


def test_a_kernel_releases_the_shared_asset_once_recorded_not_at_the_end_of_its_run(tmp_path, monkeypatch):
    side = tmp_path / "side-effects.txt"
    path = shared_notebook(tmp_path / "shared.ipynb", side, seconds=6, left_seconds=300)
    km, kc = start_kernel(path, tmp_path, monkeypatch)
    try:
        first = kc.execute("%materialize +left")
        streamed(kc, first, until=lambda t: "shared start" in t)
        proc = cli_run(path, "--select", "+right")
        text = read_until(proc, lambda t: "waiting for it" in t)
        code, out = finish(proc, text)
        assert code == 0, out
        assert "1 done, 1 fresh, 0 failed" in out, out
        # The CLI's run ended while the kernel's still computes `left`.
        kernel_run = int(WAITING.search(text).group(1))
        assert db_rows(path, "SELECT status FROM runs WHERE id = ?", kernel_run) == [("running",)]
        assert db_rows(path, "SELECT status FROM materializations WHERE run_id = ? AND asset = 'left'",
                       kernel_run) == [("running",)]
        km.interrupt_kernel()
        assert reply_of(kc, first)["status"] == "error"
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    assert computations(side) == 1


def test_an_asset_cell_run_while_the_cli_computes_it_waits_and_gets_its_value(tmp_path, monkeypatch):
    side = tmp_path / "side-effects.txt"
    path = shared_notebook(tmp_path / "shared.ipynb", side, seconds=15)
    source = nbformat.read(path, as_version=4).cells[0].source
    km, kc = start_kernel(path, tmp_path, monkeypatch)
    owner = cli_run(path, "--select", "+left")
    try:
        read_until(owner, lambda t: "shared start" in t)
        cell = kc.execute(source)
        text = streamed(kc, cell, until=lambda t: "waiting for it" in t)
        assert WAITING.search(text), text
        owner_code, owner_out = finish(owner, "")
        assert owner_code == 0, owner_out
        assert reply_of(kc, cell)["status"] == "ok"
        check = reply_of(kc, kc.execute("assert_eq!(shared, vec![1u64, 2, 3]);"))
        assert check["status"] == "ok", check
    finally:
        if owner.poll() is None:
            owner.kill()
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    assert computations(side) == 1


def test_a_waiting_run_takes_over_when_the_computing_cli_is_killed(tmp_path):
    side = tmp_path / "side-effects.txt"
    path = shared_notebook(tmp_path / "shared.ipynb", side, seconds=30)
    owner = cli_run(path, "--select", "+left")
    try:
        read_until(owner, lambda t: "shared start" in t)
        waiter = cli_run(path, "--select", "+right")
        text = read_until(waiter, lambda t: "waiting for it" in t)
        m = WAITING.search(text)
        assert m and m.group(2) == "slurmbook run" and int(m.group(3)) == owner.pid, text
        owner_run = int(m.group(1))
        os.kill(owner.pid, signal.SIGKILL)
        owner.wait(timeout=30)
        code, out = finish(waiter, text)
    finally:
        if owner.poll() is None:
            owner.kill()
    assert code == 0, out
    assert (f"run {owner_run} did not materialize asset `shared` (its process ended before it finished); "
            "materializing it in this run") in out, out
    assert "2 done, 0 fresh, 0 failed" in out, out
    # Computed twice, but never at once: the owner's computation ended with it.
    assert computations(side) == 2, side.read_text()
    oks = db_rows(path, "SELECT run_id FROM materializations WHERE asset = 'shared' AND status = 'ok'")
    assert oks == [(owner_run + 1,)], oks
    # The killed run is closed as interrupted by the next command.
    status = subprocess.run([BINARY, "status", path], capture_output=True, text=True, timeout=120)
    assert status.returncode == 0, status.stdout + status.stderr
    assert db_rows(path, "SELECT id, status FROM runs ORDER BY id") == [
        (owner_run, "cancelled"), (owner_run + 1, "ok")]


@pytest.mark.parametrize("how", ["cancelled", "failed"])
def test_a_waiting_run_computes_what_the_other_run_cancelled_or_failed(tmp_path, how):
    side = tmp_path / "side-effects.txt"
    path = shared_notebook(tmp_path / "shared.ipynb", side, seconds=6 if how == "failed" else 20)
    if how == "failed":
        pathlib.Path(f"{side}.fail").write_text("")
    owner = cli_run(path, "--select", "+left")
    try:
        read_until(owner, lambda t: "shared start" in t)
        waiter = cli_run(path, "--select", "+right")
        text = read_until(waiter, lambda t: "waiting for it" in t)
        owner_run = int(WAITING.search(text).group(1))
        if how == "cancelled":
            owner.send_signal(signal.SIGINT)
        owner_code, owner_out = finish(owner, "")
        code, out = finish(waiter, text)
    finally:
        if owner.poll() is None:
            owner.kill()
    assert owner_code != 0, owner_out
    assert code == 0, out
    said = {"cancelled": "it was cancelled)", "failed": "it failed: "}[how]
    assert f"run {owner_run} did not materialize asset `shared` ({said}" in out, out
    assert "materializing it in this run" in out and "2 done, 0 fresh, 0 failed" in out, out
    assert computations(side) == 2
    assert db_rows(path, "SELECT run_id, status FROM materializations WHERE asset = 'shared' ORDER BY id") == [
        (owner_run, how), (owner_run + 1, "ok")]


def test_interrupting_a_waiting_kernel_keeps_its_session(tmp_path, monkeypatch):
    side = tmp_path / "side-effects.txt"
    path = shared_notebook(tmp_path / "shared.ipynb", side, seconds=15)
    km, kc = start_kernel(path, tmp_path, monkeypatch)
    owner = cli_run(path, "--select", "+left")
    try:
        assert reply_of(kc, kc.execute("let keep = 41u32;"))["status"] == "ok"
        read_until(owner, lambda t: "shared start" in t)
        cell = kc.execute("%materialize +right")
        streamed(kc, cell, until=lambda t: "waiting for it" in t)
        km.interrupt_kernel()
        reply = reply_of(kc, cell)
        assert reply["status"] == "error" and reply["ename"] == "KeyboardInterrupt", reply
        assert "the session's variables are kept" in reply["evalue"], reply
        assert reply_of(kc, kc.execute("assert_eq!(keep + 1, 42);"))["status"] == "ok"
        owner_code, owner_out = finish(owner, "")
        assert owner_code == 0, owner_out
    finally:
        if owner.poll() is None:
            owner.kill()
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    assert computations(side) == 1
    assert db_rows(path, "SELECT status FROM runs ORDER BY id") == [("ok",), ("cancelled",)]


def test_interrupting_a_waiting_run_cancels_it_and_leaves_the_other_alone(tmp_path):
    side = tmp_path / "side-effects.txt"
    path = shared_notebook(tmp_path / "shared.ipynb", side, seconds=8)
    owner = cli_run(path, "--select", "+left")
    try:
        read_until(owner, lambda t: "shared start" in t)
        waiter = cli_run(path, "--select", "+right")
        text = read_until(waiter, lambda t: "waiting for it" in t)
        waiter.send_signal(signal.SIGINT)
        code, out = finish(waiter, text)
        owner_code, owner_out = finish(owner, "")
    finally:
        for p in (owner,):
            if p.poll() is None:
                p.kill()
    assert code != 0, out
    assert "cancelled" in out and "panicked" not in out, out
    assert owner_code == 0, owner_out
    assert computations(side) == 1
    assert db_rows(path, "SELECT status FROM runs ORDER BY id") == [("ok",), ("cancelled",)]


def test_two_slurm_runs_submit_one_job_for_the_shared_asset(tmp_path, monkeypatch, transport):
    project_dir(tmp_path, transport)
    side = f"{transport.facts['scratch']}/side-{uuid.uuid4().hex[:12]}.txt"
    path = shared_notebook(tmp_path / "shared.ipynb", side, seconds=10)
    km, kc = start_kernel(path, tmp_path, monkeypatch)
    try:
        first = kc.execute("%materialize +left")
        streamed(kc, first, until=lambda t: "shared start" in t)
        proc = cli_run(path, "--select", "+right")
        text = read_until(proc, lambda t: "waiting for it" in t)
        m = WAITING.search(text)
        assert m and m.group(2) == "slurmbook kernel", text
        kernel_run = int(m.group(1))
        job = db_rows(path, "SELECT job_id FROM materializations WHERE asset = 'shared'")[0][0]
        assert f", job {job}); waiting for it" in text, text
        code, out = finish(proc, text)
        kernel_text = streamed(kc, first)
        assert reply_of(kc, first)["status"] == "ok", kernel_text
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    assert code == 0, out
    assert f"asset `shared` was materialized by run {kernel_run} meanwhile; using its value" in out, out
    assert "1 done, 1 fresh, 0 failed" in out, out
    count = transport.shell(f"grep -c computed {side}")
    assert count.stdout.strip() == "1", count.stdout + count.stderr
    # One job computed `shared`; the CLI's run submitted `right` alone, which read its value.
    jobs = db_rows(path, "SELECT run_id, asset, job_id FROM materializations WHERE status = 'ok' ORDER BY id")
    assert [(r, a) for r, a, _ in jobs] == [(kernel_run, "shared"), (kernel_run, "left"),
                                            (kernel_run + 1, "right")], jobs
    assert len({j for _, a, j in jobs if a == "shared"}) == 1
    assert jobs[2][2] not in {jobs[0][2], jobs[1][2]}, jobs


def test_a_slurm_job_left_running_by_a_killed_cli_is_waited_for_not_duplicated(tmp_path, transport):
    project_dir(tmp_path, transport)
    side = f"{transport.facts['scratch']}/side-{uuid.uuid4().hex[:12]}.txt"
    path = shared_notebook(tmp_path / "shared.ipynb", side, seconds=10)
    owner = cli_run(path, "--select", "+left")
    try:
        read_until(owner, lambda t: "shared start" in t)
        os.kill(owner.pid, signal.SIGKILL)
        owner.wait(timeout=30)
    finally:
        if owner.poll() is None:
            owner.kill()
    (owner_run, job), = db_rows(path, "SELECT run_id, job_id FROM materializations WHERE asset = 'shared'")
    waiter = cli_run(path, "--select", "+right")
    text = read_until(waiter, lambda t: "waiting for the job" in t)
    assert (f"asset `shared` is being materialized by job {job} of run {owner_run}, whose process ended "
            "(its job runs on: RUNNING); waiting for the job") in text, text
    code, out = finish(waiter, text)
    assert code == 0, out
    assert (f"job {job} of run {owner_run} ended without its outcome recorded (`%attach {owner_run}` records it); "
            "materializing asset `shared` in this run") in out, out
    assert "2 done, 0 fresh, 0 failed" in out, out
    # Two computations, one after the other: never two jobs at once.
    lines = transport.shell(f"cat {side}").stdout.split()
    assert lines == ["computed", "finished", "computed", "finished"], lines
    jobs = db_rows(path, "SELECT DISTINCT job_id FROM materializations WHERE asset = 'shared'")
    assert len(jobs) == 2, jobs
