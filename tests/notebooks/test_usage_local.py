"""Usage of in-kernel runs (wall time, the session's CPU time), `%runs RUN`'s
timeline, `%history NAME` with a numeric metadata key, and bad arguments."""
import re
import subprocess
import xml.etree.ElementTree as ET

import nbformat

from nbrun import ROOT, db_rows, errors_of, execute

SVG = "{http://www.w3.org/2000/svg}"


def test_kernel_runs_have_a_timeline_and_a_history(tmp_path):
    path = tmp_path / "local.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in [
        "%%asset first\n(0..2_000_000u64).map(|i| i % 7).sum::<u64>()",
        "%%asset second\nfirst + 1",
    ]]), path)
    nb = execute(path, cells=["%materialize", "%materialize --force", "%runs 2", "%history second",
                              "%runs 99", "%history nothing"], allow_errors=True)
    assert not errors_of(nb.cells[0].outputs) and not errors_of(nb.cells[1].outputs)
    final = [o for o in nb.cells[1].outputs if o["output_type"] == "display_data"][0]["data"]["text/plain"]
    assert "wall" in final and re.search(r"second\s+done", final), final
    rows = db_rows(path, "SELECT u.source, u.wall_ms, u.started_at, u.ended_at FROM usage u")
    assert len(rows) == 4 and all(r[0] == "kernel" and r[1] is not None and r[2] <= r[3] for r in rows), rows

    runs = nb.cells[2].outputs
    assert "kernel" in runs[0]["data"]["text/plain"]
    root = ET.fromstring(runs[1]["data"]["image/svg+xml"])
    bars = [(g.get("data-asset"), float(g.get("data-start")))
            for g in root.iter(f"{SVG}g") if g.get("class") == "bar"]
    assert [b[0] for b in bars] == ["first", "second"]
    assert bars[0][1] <= bars[1][1]

    history = nb.cells[3].outputs[0]["data"]["text/plain"]
    assert "second: last 2 materializations" in history
    assert history.count("local") == 2 and "same code" in history, history

    assert "there is no run 99" in errors_of(nb.cells[4].outputs)[0]["evalue"]
    assert "no asset `nothing`" in errors_of(nb.cells[5].outputs)[0]["evalue"]

    # Headless: the runs, and run 2's text timeline.
    binary = ROOT / "target" / "debug" / "slurmbook"
    listed = subprocess.run([binary, "runs", path], capture_output=True, text=True, timeout=60)
    assert listed.returncode == 0 and re.search(r"^\s*2\s+\S+", listed.stdout, re.M), listed.stdout
    one = subprocess.run([binary, "runs", path, "2"], capture_output=True, text=True, timeout=60)
    assert one.returncode == 0, one.stderr
    assert re.search(r"^first\s+\|[ .]*#+", one.stdout, re.M), one.stdout
    assert "run 2 · local · ok — 2 assets" in one.stdout
