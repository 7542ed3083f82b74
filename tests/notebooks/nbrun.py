"""Helpers to run notebooks through nbclient against the real slurmbook kernel."""
import json
import os
import pathlib
import shutil
import sqlite3

import nbformat
from nbclient import NotebookClient

ROOT = pathlib.Path(__file__).resolve().parents[2]


def copy_notebook(name, dest):
    dest = pathlib.Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    target = dest / name
    shutil.copy(ROOT / "notebooks" / name, target)
    return target


def execute(path, cells=None, allow_errors=False, timeout=600):
    """Runs the notebook at `path` (or a notebook made of `cells` attached to
    `path` via JPY_SESSION_NAME, as JupyterLab does) and returns it executed."""
    path = pathlib.Path(path)
    nb = nbformat.read(path, as_version=4) if cells is None else nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_code_cell(c) for c in cells],
        metadata={"kernelspec": {"name": "slurmbook", "display_name": "Rust (slurmbook)", "language": "rust"}},
    )
    old = os.environ.get("JPY_SESSION_NAME")
    os.environ["JPY_SESSION_NAME"] = str(path)
    try:
        client = NotebookClient(
            nb, kernel_name="slurmbook", timeout=timeout, startup_timeout=120,
            allow_errors=allow_errors, resources={"metadata": {"path": str(path.parent)}},
        )
        client.execute()
    finally:
        if old is None:
            os.environ.pop("JPY_SESSION_NAME", None)
        else:
            os.environ["JPY_SESSION_NAME"] = old
    return nb


def cell_source_index(nb, startswith):
    for i, c in enumerate(nb.cells):
        if c.cell_type == "code" and c.source.startswith(startswith):
            return i
    raise KeyError(startswith)


def outputs(nb, startswith):
    return nb.cells[cell_source_index(nb, startswith)].outputs


def text_of(outs, name="stdout"):
    return "".join(o.get("text", "") for o in outs if o["output_type"] == "stream" and o["name"] == name)


def errors_of(outs):
    return [o for o in outs if o["output_type"] == "error"]


def db_rows(notebook_path, sql, *args):
    db = pathlib.Path(notebook_path).parent / ".slurmbook" / "state.db"
    with sqlite3.connect(db) as conn:
        return conn.execute(sql, args).fetchall()


def edit_cell(path, startswith, new_source):
    nb = json.loads(pathlib.Path(path).read_text())
    for c in nb["cells"]:
        src = "".join(c["source"]) if isinstance(c["source"], list) else c["source"]
        if src.startswith(startswith):
            c["source"] = new_source
            break
    else:
        raise KeyError(startswith)
    pathlib.Path(path).write_text(json.dumps(nb, indent=1))
