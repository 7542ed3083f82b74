"""Values survive a kernel restart without ceremony: a notebook without
`:dep serde_json` still stores its assets' values, a later kernel loads a
fresh upstream instead of blaming its type, and an upstream whose stored
value is gone is computed again in the same run (saying so)."""
import pathlib
import re

import nbformat

from nbrun import db_rows, edit_cell, errors_of, execute, text_of

CELLS = [
    "%%asset base\n(1..=10u64).collect::<Vec<u64>>()",
    "%%asset squares\nbase.iter().map(|x| x * x).collect::<Vec<u64>>()",
    "%%asset other\nbase.len()",
]


def notebook(tmp_path):
    path = tmp_path / "restart.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in CELLS]), path)
    return path


def test_a_fresh_upstream_is_loaded_after_a_restart_without_dep_serde_json(tmp_path):
    path = notebook(tmp_path)
    first = execute(path, cells=["%materialize *"])
    assert "3 done, 0 fresh, 0 failed" in text_of(first.cells[0].outputs)
    stored = db_rows(path, "SELECT asset, value_path FROM materializations WHERE status='ok'")
    assert {a for a, p in stored if p and pathlib.Path(p).is_file()} == {"base", "squares", "other"}, stored
    # A new kernel (a restart): squares changes, base is fresh and must be loaded.
    edit_cell(path, "%%asset squares", "%%asset squares\nbase.iter().map(|x| x * x + 1).collect::<Vec<u64>>()")
    second = execute(path, cells=["%materialize *", "squares.iter().sum::<u64>()"])
    out = second.cells[0].outputs
    assert not errors_of(out), errors_of(out)
    text = text_of(out) + text_of(out, "stderr")
    assert "1 done, 2 fresh, 0 failed, 0 skipped" in text, text
    assert "serde" not in text and "could not be loaded" not in text, text
    assert second.cells[1].outputs[0]["data"]["text/plain"] == "395"


def test_an_upstream_whose_value_is_gone_is_computed_again(tmp_path):
    path = notebook(tmp_path)
    execute(path, cells=["%materialize *"])
    for _, p in db_rows(path, "SELECT asset, value_path FROM materializations WHERE asset='base' AND status='ok'"):
        pathlib.Path(p).unlink()
    edit_cell(path, "%%asset squares", "%%asset squares\nbase.iter().map(|x| x * 2).collect::<Vec<u64>>()")
    nb = execute(path, cells=["%materialize *", "squares.iter().sum::<u64>()"])
    out = nb.cells[0].outputs
    assert not errors_of(out), errors_of(out)
    said = text_of(out, "stderr") + text_of(out)
    assert re.search(r"computing fresh asset base again: its stored value could not be loaded \(its stored file .* is missing\)", said), said
    assert "2 done, 1 fresh, 0 failed, 0 skipped" in said, said
    assert nb.cells[1].outputs[0]["data"]["text/plain"] == "110"
