"""Assets through the real kernel with nbclient: the quickstart notebook end
to end, staleness after an edit, clear errors that leave the state database
consistent, and state that survives a kernel restart."""
import re

import pytest

from nbrun import (copy_notebook, db_rows, edit_cell, errors_of, execute, outputs, text_of)

ASSETS = {"readings", "celsius", "fahrenheit", "stats", "extremes", "report"}


@pytest.fixture(scope="module")
def quickstart(tmp_path_factory):
    """A fresh copy of the quickstart, materialized from a kernel attached to
    it before any of its cells ran (as in a freshly opened notebook)."""
    path = copy_notebook("quickstart.ipynb", tmp_path_factory.mktemp("quickstart"))
    nb = execute(path, cells=["%graph", "%materialize", "%assets", "report"])
    return path, nb


def test_quickstart_runs_top_to_bottom(tmp_path):
    path = copy_notebook("quickstart.ipynb", tmp_path)
    nb = execute(path)
    # Running an asset cell materializes it and shows its value.
    assert outputs(nb, "%%asset stats")[0]["data"]["text/plain"].startswith("(20.")
    assert "check plausible on celsius passed" in text_of(outputs(nb, "%%check celsius"))
    # So %materialize then finds everything fresh.
    assert "plan for *: 0 to run, 6 fresh" in text_of(outputs(nb, "%materialize"))
    assert outputs(nb, "report")[0]["data"]["text/plain"].startswith('"2000 readings, mean')


def test_quickstart_materializes_before_any_cell_ran(quickstart):
    path, nb = quickstart
    graph = outputs(nb, "%graph")[0]
    assert graph["output_type"] == "display_data"
    for name in ASSETS:
        assert name in graph["data"]["text/vnd.mermaid"]
        assert name in graph["data"]["image/svg+xml"]
    mat = outputs(nb, "%materialize")
    assert "plan for *: 6 to run, 0 fresh" in text_of(mat)
    # The live status table: one display with a display_id, updated in place;
    # nbclient applied the updates, so it shows the final states.
    tables = [o for o in mat if o["output_type"] == "display_data"]
    assert len(tables) == 1
    final = tables[0]["data"]["text/plain"]
    for name in ASSETS:
        assert re.search(rf"{name}\s+done", final), final
    assert "[report] building the report from 2000 readings" in text_of(mat)
    assert "[celsius] check plausible passed" in text_of(mat)
    assert "6 done, 0 fresh, 0 failed" in text_of(mat)
    table = outputs(nb, "%assets")[0]["data"]
    assert "<table" in table["text/html"]
    for name in ASSETS:
        assert re.search(rf"{name}\s+.*\bfresh\b", table["text/plain"]), table["text/plain"]
    report = outputs(nb, "report")[0]["data"]["text/plain"]
    assert report.startswith('"2000 readings, mean')
    runs = db_rows(path, "SELECT status FROM runs")
    assert runs == [("ok",)]
    assert db_rows(path, "SELECT COUNT(*) FROM materializations WHERE status='ok'") == [(6,)]


def test_edit_makes_exactly_downstream_stale(quickstart, tmp_path):
    path, _ = quickstart
    # Whitespace and comments do not change versions.
    edit_cell(path, "%%asset extremes",
              "%%asset extremes --group=analyse\n// lowest and highest\nlet lo = celsius.iter().cloned().fold(f64::INFINITY,   f64::min);\n"
              "let hi = celsius.iter().cloned().fold(f64::NEG_INFINITY, f64::max);\n(lo, hi)")
    nb = execute(path, cells=["%assets"])
    assert "stale" not in nb.cells[0].outputs[0]["data"]["text/plain"]
    # A real change: extremes and its downstream report become stale, nothing else.
    edit_cell(path, "%%asset extremes",
              "%%asset extremes --group=analyse\nlet lo = celsius.iter().cloned().fold(f64::INFINITY, f64::min);\n"
              "let hi = celsius.iter().cloned().fold(f64::NEG_INFINITY, f64::max);\n(lo - 1.0, hi + 1.0)")
    nb = execute(path, cells=["%assets", "%materialize *", "%assets"])
    before = nb.cells[0].outputs[0]["data"]["text/plain"]
    assert re.search(r"extremes\s+.*stale\s+code changed", before), before
    assert re.search(r"report\s+.*stale\s+upstream extremes changed", before), before
    for name in ASSETS - {"extremes", "report"}:
        assert re.search(rf"{name}\s+.*\bfresh\b", before), before
    assert "plan for *: 2 to run, 4 fresh" in text_of(nb.cells[1].outputs)
    last_run = db_rows(path, "SELECT MAX(id) FROM runs")[0][0]
    ran = {a for (a,) in db_rows(path, "SELECT asset FROM materializations WHERE run_id=? AND status='ok'", last_run)}
    assert ran == {"extremes", "report"}
    after = nb.cells[2].outputs[0]["data"]["text/plain"]
    assert "stale" not in after and "missing" not in after


def test_restart_keeps_states_and_values_load(quickstart):
    path, _ = quickstart
    nb = execute(path, cells=["%assets", "%load report", "report.len() > 10"])
    table = nb.cells[0].outputs[0]["data"]["text/plain"]
    for name in ASSETS:
        assert re.search(rf"{name}\s+.*\bfresh\b", table), table
    assert "loaded report: String" in text_of(nb.cells[1].outputs)
    assert nb.cells[2].outputs[0]["data"]["text/plain"] == "true"


def test_errors_are_clear_and_leave_state_consistent(tmp_path):
    path = tmp_path / "broken.ipynb"
    import nbformat
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in [
        "%%asset a\n1 + 1",
        "%%asset boom\nlet x: Vec<i32> = vec![];\nx[a as usize]",
        "%%asset after_boom\nboom + 1",
        "%%asset independent\na * 10",
    ]], metadata={"kernelspec": {"name": "slurmbook", "display_name": "Rust (slurmbook)", "language": "rust"}})
    nbformat.write(nb, path)
    out = execute(path, cells=[
        "%frobnicate",
        "%materialize --frobnicate",
        "%materialize nosuchasset",
        "%%asset bad name\n1",
        "%materialize",
        "%%asset cyc1\ncyc2 + 1",
        "%%asset cyc2\ncyc1 + 1",
        "%assets",
    ], allow_errors=True)
    unknown = errors_of(out.cells[0].outputs)[0]
    assert "unknown magic `%frobnicate`" in unknown["evalue"] and "%materialize" in unknown["evalue"]
    bad_opt = errors_of(out.cells[1].outputs)[0]
    assert "--frobnicate" in bad_opt["evalue"] and "--force" in bad_opt["evalue"]
    assert "nosuchasset" in errors_of(out.cells[2].outputs)[0]["evalue"]
    assert errors_of(out.cells[3].outputs), "a bad asset name is an error"
    failed = errors_of(out.cells[4].outputs)[0]
    assert failed["ename"] == "MaterializeError"
    assert "boom" in failed["evalue"]
    assert any("after_boom" in line for line in failed["traceback"])
    status = [o for o in out.cells[4].outputs if o["output_type"] == "display_data"][0]["data"]["text/plain"]
    assert re.search(r"boom\s+failed", status)
    assert re.search(r"after_boom\s+skipped\s+skipped: upstream boom failed", status)
    assert re.search(r"independent\s+done", status)
    # the second cycle cell closes the cycle: a clear error naming the path
    cycle = errors_of(out.cells[6].outputs)[0]
    assert "cycle" in cycle["evalue"] and "cyc1" in cycle["evalue"] and "cyc2" in cycle["evalue"]
    # nothing half-applied: the cycle was not recorded, %assets still works
    table = out.cells[7].outputs[0]["data"]["text/plain"]
    assert re.search(r"^cyc1\s", table, re.M) and not re.search(r"^cyc2\s", table, re.M), table
    assert "\x1b[" not in table
    # the database is consistent: no materialization left running, the run finished
    assert db_rows(path, "SELECT COUNT(*) FROM materializations WHERE status='running'") == [(0,)]
    # the %materialize run and the failed cyc1 cell run
    assert db_rows(path, "SELECT status FROM runs") == [("failed",), ("failed",)]
    statuses = dict(db_rows(path, "SELECT asset, status FROM materializations"))
    assert statuses["boom"] == "failed" and statuses["after_boom"] == "skipped" and statuses["independent"] == "ok"
