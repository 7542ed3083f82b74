"""More asset behaviour through the real kernel and the headless CLI: checks
that block dependents, asset cells with missing upstreams, --dry-run, asset
completion and inspection, `slurmbook run` and `slurmbook graph`."""
import pathlib
import re
import subprocess

import nbformat
from jupyter_client.manager import start_new_kernel

from nbrun import ROOT, copy_notebook, db_rows, errors_of, execute, text_of

BIN = ROOT / "target" / "debug" / "slurmbook"


def write_notebook(path, sources):
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources]), path)
    return path


def test_failing_check_blocks_dependents_and_dry_run_runs_nothing(tmp_path):
    path = write_notebook(tmp_path / "checks.ipynb", [
        "%%asset base\n5",
        "%%check base positive\nbase > 0",
        "%%check base small\nif base < 3 { Ok(()) } else { Err(format!(\"{base} is too big\")) }",
        "%%asset derived\nbase * 2",
        "%%asset other\n7",
    ])
    nb = execute(path, cells=["%materialize --dry-run", "%materialize", "derived"], allow_errors=True)
    dry = nb.cells[0].outputs
    assert "plan for *: 3 to run, 0 fresh" in text_of(dry)
    assert not errors_of(dry)
    runs_after_dry = db_rows(path, "SELECT COUNT(*) FROM runs")
    out = nb.cells[1].outputs
    assert "[base] check positive passed" in text_of(out)
    assert "check small FAILED" in text_of(out, "stderr") and "5 is too big" in text_of(out, "stderr")
    status = [o for o in out if o["output_type"] == "display_data"][0]["data"]["text/plain"]
    assert re.search(r"derived\s+skipped\s+skipped: upstream base failed check small", status), status
    assert re.search(r"other\s+done", status), status
    assert errors_of(out)[0]["ename"] == "MaterializeError"
    # the dependent was not computed
    assert errors_of(nb.cells[2].outputs)
    assert runs_after_dry[0][0] == 1  # only the real run was recorded


def test_asset_cell_needs_its_upstreams_in_the_session(tmp_path):
    path = write_notebook(tmp_path / "up.ipynb", ["%%asset first\n40", "%%asset second\nfirst + 2"])
    nb = execute(path, cells=["%%asset second\nfirst + 2", "%materialize +first", "%%asset second\nfirst + 2"],
                 allow_errors=True)
    missing = errors_of(nb.cells[0].outputs)[0]
    assert missing["ename"] == "MissingUpstream"
    assert "first" in missing["evalue"] and "%materialize +second" in missing["evalue"]
    assert nb.cells[2].outputs[0]["data"]["text/plain"] == "42"


def test_completion_offers_assets_and_inspect_describes_them(tmp_path, monkeypatch):
    path = write_notebook(tmp_path / "c.ipynb", ["%%asset temperatures\nvec![1.0f64]", "%%asset summary\ntemperatures.len()"])
    monkeypatch.setenv("JPY_SESSION_NAME", str(path))
    km, kc = start_new_kernel(kernel_name="slurmbook", cwd=str(tmp_path), startup_timeout=120)
    try:
        for code in ["%materialize +tem", "%load temp", "%graph su"]:
            msg_id = kc.complete(code, len(code))
            reply = kc.get_shell_msg(timeout=30)
            assert reply["parent_header"]["msg_id"] == msg_id
            assert reply["content"]["matches"] in (["temperatures"], ["summary"]), reply["content"]
            assert reply["content"]["cursor_end"] == len(code)
        code = "summary"
        kc.inspect(code, 3)
        reply = kc.get_shell_msg(timeout=30)["content"]
        assert reply["found"]
        text = reply["data"]["text/plain"]
        assert "asset summary" in text and "deps:       temperatures" in text and "never materialized" in text
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def test_headless_run_and_graph(tmp_path):
    path = copy_notebook("quickstart.ipynb", tmp_path)
    graph = subprocess.run([BIN, "graph", path], capture_output=True, text=True, check=True)
    assert re.search(r"report\s+\[missing\] <- fahrenheit, stats, extremes", graph.stdout), graph.stdout
    mermaid = subprocess.run([BIN, "graph", path, "--format", "mermaid"], capture_output=True, text=True, check=True)
    assert mermaid.stdout.startswith("flowchart")
    dry = subprocess.run([BIN, "run", path, "--select", "+stats", "--dry-run"], capture_output=True, text=True, check=True)
    assert "plan for +stats: 3 to run, 0 fresh" in dry.stdout
    run = subprocess.run([BIN, "run", path, "--select", "+stats"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "3 done, 0 fresh, 0 failed" in run.stdout
    assert re.search(r"stats\s+done in", run.stdout)
    again = subprocess.run([BIN, "run", path], capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    assert "plan for *: 3 to run, 3 fresh" in again.stdout
    assert "[report] building the report from 2000 readings" in again.stdout
    bad = subprocess.run([BIN, "run", path, "--select", "+nosuch"], capture_output=True, text=True)
    assert bad.returncode != 0 and "nosuch" in bad.stderr
    broken = write_notebook(tmp_path / "broken.ipynb", ["%%asset ok_one\n1", "%%asset bad_one\nlet v: Vec<i32> = vec![];\nif v.is_empty() { panic!(\"nope\") }\nv[0]", "%%asset after\nbad_one + 1"])
    failed = subprocess.run([BIN, "run", broken], capture_output=True, text=True)
    assert failed.returncode == 1
    assert "1 done, 0 fresh, 1 failed, 1 skipped" in failed.stdout
    assert "nope" in failed.stderr
