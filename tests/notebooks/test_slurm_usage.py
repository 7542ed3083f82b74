"""Resource usage, right-sizing hints, pending reasons and run timelines on the
loopback Slurm cluster (tests/cluster), which has no accounting: the figures
come from the job binary's own measurement."""
import json
import os
import pathlib
import re
import subprocess
import time
import xml.etree.ElementTree as ET

import nbformat
import pytest

from nbrun import ROOT, db_rows, errors_of, execute, text_of

CLUSTER_DIR = pathlib.Path(os.environ.get("SLURMBOOK_CLUSTER_DIR", "/tmp/slurmbook-cluster"))
SVG = "{http://www.w3.org/2000/svg}"
MB = 1_000_000


@pytest.fixture(scope="module")
def facts():
    path = CLUSTER_DIR / "cluster.json"
    assert path.exists(), f"the loopback cluster is not up ({path} missing): run python3 tests/cluster/cluster.py up"
    return json.loads(path.read_text())


def project_dir(tmp_path, facts):
    (tmp_path / "slurmbook.toml").write_text(
        'profile = "cluster"\n[profiles.cluster]\ntarget = "slurm"\n'
        f'host = "{facts["host"]}"\nssh_config = "{facts["ssh_config"]}"\n'
        'remote_dir = "$SCRATCH/slurmbook"\npartition = "debug"\ntime = "00:10:00"\n'
    )
    return tmp_path


def write_notebook(path, cells):
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in cells]), path)
    return path


def svg_bars(svg):
    """The timeline's bars (asset, start) in drawing order, and its job boxes."""
    root = ET.fromstring(svg)
    groups = list(root.iter(f"{SVG}g"))
    bars = [(g.get("data-asset"), float(g.get("data-start")), g)
            for g in groups if "bar" in g.get("class", "").split()]
    jobs = [g for g in groups if "job" in g.get("class", "").split()]
    return bars, jobs


def final_table(outputs):
    return [o for o in outputs if o["output_type"] == "display_data"][0]["data"]["text/plain"]


def test_peak_memory_is_self_measured_without_accounting(tmp_path, facts):
    """An asset that allocates ~200 MB shows a peak between 150 and 400 MB,
    from the job's own getrusage (the cluster has no sacct); the final table,
    %runs RUN (table + timeline SVG), %history and %assets show it."""
    path = write_notebook(project_dir(tmp_path, facts) / "usage.ipynb", [
        "%%asset big --mem 2G\n"
        "let v = vec![1u8; 200 << 20];\n"
        "v.iter().map(|&x| x as u64).sum::<u64>()",
        "%%asset small --mem 100M\nprintln!(\"big was {big}\");\nbig / 2",
    ])
    nb = execute(path, cells=["%materialize --target slurm", "%runs 1", "%history big", "%assets"])
    out = nb.cells[0].outputs
    assert not errors_of(out), errors_of(out)
    status = final_table(out)
    assert re.search(r"peak mem", status), status
    row = next(line for line in status.splitlines() if line.startswith("big "))
    peak = re.search(r"\b(\d+(?:\.\d+)?)M\b", row)
    assert peak and 150 <= float(peak.group(1)) * 1.048576 <= 400, row
    # 2G asked, ~200 MB used: the hint names the option to use.
    assert "asked --mem 2G, peak" in status and "--mem 512M would do" in status, status

    # The state database has the self-measured figures.
    rows = db_rows(path, "SELECT m.asset, u.source, u.max_rss_bytes, u.wall_ms, u.cpu_ms, u.queue_ms, "
                         "u.allocation, u.req_mem_bytes FROM usage u JOIN materializations m "
                         "ON m.id = u.materialization_id ORDER BY m.asset")
    by = {r[0]: r for r in rows}
    assert set(by) == {"big", "small"}
    _, source, rss, wall, cpu, queue, allocation, req_mem = by["big"]
    assert source == "job"
    assert 150 * MB <= rss <= 400 * MB, rss
    assert wall is not None and cpu is not None and queue is not None
    assert req_mem == 2 << 30
    # Both ran as steps of one allocation.
    assert allocation and by["small"][6] == allocation

    # %runs 1: the usage table and the timeline, one bar per asset in order of start.
    runs = nb.cells[1].outputs
    table = runs[0]["data"]["text/plain"]
    assert re.search(r"big\s+done", table) and "self-measured" in table, table
    bars, jobs = svg_bars(runs[1]["data"]["image/svg+xml"])
    assert [b[0] for b in bars] == ["big", "small"]
    starts = [b[1] for b in bars]
    assert starts == sorted(starts)
    assert len(jobs) == 1 and jobs[0].get("data-allocation") == allocation
    assert "queued" in runs[1]["data"]["text/plain"]

    # %history big: one materialization, its peak, and a plot.
    hist = nb.cells[2].outputs
    history = hist[0]["data"]["text/plain"]
    assert "big: last 1 materialization" in history and re.search(r"done .*slurm .*\d+M", history), history
    plot = ET.fromstring(hist[1]["data"]["image/svg+xml"])
    names = [g.get("data-name") for g in plot.iter(f"{SVG}g") if g.get("class") == "series"]
    assert names[:2] == ["duration (s)", "peak memory (MiB)"], names

    # %assets: the last usage.
    assets = nb.cells[3].outputs[0]["data"]["text/plain"]
    assert "last usage" in assets and re.search(r"big .*peak \d+M", assets), assets

    # Headless: the same report, the timeline as text and as SVG.
    binary = ROOT / "target" / "debug" / "slurmbook"
    text = subprocess.run([binary, "runs", path, "1"], capture_output=True, text=True, timeout=60)
    assert text.returncode == 0, text.stderr
    assert re.search(r"big\s+\|[ .:]*#+", text.stdout), text.stdout
    assert "job " in text.stdout and "queued" in text.stdout
    svg = subprocess.run([binary, "runs", path, "1", "--svg"], capture_output=True, text=True, timeout=60)
    assert [b[0] for b in svg_bars(svg.stdout)[0]] == ["big", "small"]


def test_a_held_job_shows_its_pending_reason_in_the_live_table(tmp_path, facts, monkeypatch):
    """`scontrol hold` on a pending job: the live status table shows Slurm's
    reason (JobHeldAdmin) while it waits; released, the run completes."""
    from jupyter_client.manager import start_new_kernel

    project_dir(tmp_path, facts)
    path = write_notebook(tmp_path / "held.ipynb", [
        # Takes both CPUs of the loopback node, so the other job pends.
        "%%asset hog --cpus 2\nstd::thread::sleep(std::time::Duration::from_secs(20));\n1u8",
        "%%asset waiter\n2u8",
    ])
    monkeypatch.setenv("JPY_SESSION_NAME", str(path))
    ssh = ["ssh", "-F", facts["ssh_config"], facts["host"]]
    km, kc = start_new_kernel(kernel_name="slurmbook", cwd=str(tmp_path), startup_timeout=120)
    held = None
    try:
        msg_id = kc.execute("%materialize --target slurm --jobs per-asset")
        deadline = time.time() + 500
        saw_reason = None
        while True:
            assert time.time() < deadline, "no held reason was shown"
            msg = kc.get_iopub_msg(timeout=500)
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            if msg["msg_type"] in ("display_data", "update_display_data"):
                text = msg["content"]["data"].get("text/plain", "")
                m = re.search(r"waiter\s+queued\s+queued \(job (\d+)\)", text)
                if m and held is None:
                    held = m.group(1)
                    subprocess.run(ssh + [f"scontrol hold {held}"], check=True, capture_output=True)
                if held and re.search(r"waiter\s+queued\s+queued \(job \d+\): JobHeld(Admin|User)", text):
                    saw_reason = text
                    break
        assert "JobHeld" in saw_reason
        subprocess.run(ssh + [f"scontrol release {held}"], check=True, capture_output=True)
        held = None
        while True:
            reply = kc.get_shell_msg(timeout=500)
            if reply["parent_header"].get("msg_id") == msg_id:
                break
        assert reply["content"]["status"] == "ok", reply["content"]
        assert db_rows(path, "SELECT status FROM runs") == [("ok",)]
        # Both waited in the queue, the waiter longer than the hog.
        queue = dict(db_rows(path, "SELECT m.asset, u.queue_ms FROM usage u JOIN materializations m "
                                   "ON m.id = u.materialization_id"))
        assert queue["waiter"] > queue["hog"]
    finally:
        if held:
            subprocess.run(ssh + [f"scontrol release {held}"], capture_output=True)
        kc.stop_channels()
        km.shutdown_kernel(now=True)
