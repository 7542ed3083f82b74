"""notebooks/slurm.ipynb against the loopback Slurm cluster (tests/cluster),
through the real kernel with nbclient: a diamond of assets as jobs, output
streamed into the cell, values loadable, a failure cancelling dependents,
and a second run with no change skipping everything. Each test runs over
SSH and with a host-less (local) profile (the `transport` fixture,
conftest.py)."""
import re
import uuid

import nbformat

from nbrun import copy_notebook, db_rows, errors_of, execute, text_of


def project_dir(tmp_path, transport):
    """tmp_path with a slurmbook.toml whose profile `cluster` reaches the cluster through `transport`."""
    (tmp_path / "slurmbook.toml").write_text(transport.slurmbook_toml())
    return tmp_path


def test_diamond_runs_as_jobs_and_streams(tmp_path, transport):
    # A remote_dir of its own, to check what the run created there.
    remote_dir = f"{transport.facts['scratch']}/private-{uuid.uuid4().hex[:12]}"
    (tmp_path / "slurmbook.toml").write_text(transport.slurmbook_toml(remote_dir=remote_dir))
    path = copy_notebook("slurm.ipynb", tmp_path)
    nb = execute(path, cells=["%materialize +total --target slurm", "%load total", "total", "%assets",
                              "%materialize +total --target slurm", "%config"])
    out = nb.cells[0].outputs
    assert not errors_of(out), errors_of(out)
    status = [o for o in out if o["output_type"] == "display_data"][0]["data"]["text/plain"]
    for name in ["numbers", "evens", "odds", "total"]:
        assert re.search(rf"{name}\s+done\s+done in .* on \S+", status), status
    streamed = text_of(out)
    for i in range(5):
        assert f"[total] tick {i}" in streamed
    assert "4 done, 0 fresh, 0 failed" in streamed
    assert "loaded total: u64" in text_of(nb.cells[1].outputs)
    assert nb.cells[2].outputs[0]["data"]["text/plain"] == "5050"
    table = nb.cells[3].outputs[0]["data"]["text/plain"]
    assert re.search(r"total\s.*fresh.*slurm job \d+ on \S+", table), table
    # jobs were chained in Slurm and recorded
    jobs = db_rows(path, "SELECT asset, job_id, node FROM materializations WHERE status='ok'")
    assert len(jobs) == 4 and all(j and n for _, j, n in jobs)
    # a second run with no change skips everything
    assert "plan for +total: 0 to run, 4 fresh" in text_of(nb.cells[4].outputs)
    expected = "local (no SSH)" if transport.local else f"ssh {transport.facts['host']}"
    assert f"transport: {expected} (Slurm runs)" in text_of(nb.cells[5].outputs), text_of(nb.cells[5].outputs)
    # Everything the run left under remote_dir (job binary, values, logs,
    # run directories) is the user's alone.
    found = transport.shell(f"find {remote_dir} -perm /077 -printf '%m %p\\n'; find {remote_dir} | wc -l")
    assert found.returncode == 0, found.stderr
    *loose, count = found.stdout.strip().splitlines()
    assert int(count) > 5 and not loose, found.stdout


def test_failure_cancels_dependents_and_shows_stderr(tmp_path, transport):
    project_dir(tmp_path, transport)
    path = tmp_path / "fail.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in [
        "%%asset good\n21u64",
        "%%asset bad\neprintln!(\"about to fail\");\nlet v: Vec<u64> = vec![];\nif v.is_empty() { panic!(\"bad asset failed on purpose\") }\ngood + v[0]",
        "%%asset downstream\nbad * 2",
        "%%asset sibling\ngood * 2",
    ]]), path)
    nb = execute(path, cells=["%materialize --target slurm"], allow_errors=True)
    out = nb.cells[0].outputs
    err = errors_of(out)[0]
    assert err["ename"] == "MaterializeError" and "bad" in err["evalue"]
    joined = "\n".join(err["traceback"])
    assert "bad asset failed on purpose" in joined and "about to fail" in joined
    assert "downstream" in joined
    status = [o for o in out if o["output_type"] == "display_data"][0]["data"]["text/plain"]
    assert re.search(r"bad\s+failed", status), status
    assert re.search(r"downstream\s+cancelled.*bad", status), status
    assert re.search(r"sibling\s+done", status), status


def test_interrupt_cancels_the_runs_jobs(tmp_path, transport, monkeypatch):
    import time
    from jupyter_client.manager import start_new_kernel

    project_dir(tmp_path, transport)
    path = tmp_path / "slow.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in [
        "%%asset slow\nprintln!(\"slow started\");\nstd::thread::sleep(std::time::Duration::from_secs(120));\n1u8",
        "%%asset after_slow\nslow + 1",
    ]]), path)
    monkeypatch.setenv("JPY_SESSION_NAME", str(path))
    km, kc = start_new_kernel(kernel_name="slurmbook", cwd=str(tmp_path), startup_timeout=120)
    try:
        msg_id = kc.execute("%materialize --target slurm")
        deadline = time.time() + 240
        while True:
            assert time.time() < deadline, "the job never started"
            msg = kc.get_iopub_msg(timeout=240)
            if msg["parent_header"].get("msg_id") == msg_id and msg["msg_type"] == "stream" \
                    and "[slow] slow started" in msg["content"]["text"]:
                break
        km.interrupt_kernel()
        while True:
            reply = kc.get_shell_msg(timeout=60)
            if reply["parent_header"].get("msg_id") == msg_id:
                break
        assert reply["content"]["status"] == "error"
        assert reply["content"]["ename"] == "KeyboardInterrupt"
        assert "cancelled" in reply["content"]["evalue"]
        jobs = db_rows(path, "SELECT job_id FROM materializations WHERE job_id IS NOT NULL")
        assert len(jobs) == 2
        for (job,) in jobs:
            assert transport.final_state(job) == "CANCELLED"
        assert db_rows(path, "SELECT status FROM runs") == [("cancelled",)]
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def test_headless_run_with_the_cluster_profile(tmp_path, transport):
    import subprocess

    from nbrun import ROOT

    path = copy_notebook("slurm.ipynb", project_dir(tmp_path, transport))
    binary = ROOT / "target" / "debug" / "slurmbook"
    run = subprocess.run([binary, "run", path, "--profile", "cluster", "--select", "+total"],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "run on slurm" in run.stdout
    assert "[total] tick 4" in run.stdout
    assert re.search(r"total\s+done in .* on \S+", run.stdout), run.stdout
    assert "4 done, 0 fresh, 0 failed" in run.stdout
    assert transport.stats(run.stdout).commands > 0
    again = subprocess.run([binary, "run", path, "--profile", "cluster", "--select", "+total"],
                           capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and "nothing to do" in again.stdout
    assert db_rows(path, "SELECT target, status FROM runs") == [("slurm", "ok")]
