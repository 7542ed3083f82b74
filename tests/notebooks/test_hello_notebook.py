"""notebooks/hello.ipynb executed end to end with nbclient, and with
`jupyter nbconvert --execute` as a user would."""
import pathlib
import subprocess
import sys

import nbformat
from nbclient import NotebookClient

ROOT = pathlib.Path(__file__).resolve().parents[2]


def outputs_of(nb, index):
    return nb.cells[index].outputs


def test_hello_notebook_runs_with_nbclient():
    nb = nbformat.read(ROOT / "notebooks/hello.ipynb", as_version=4)
    NotebookClient(nb, kernel_name="slurmbook", timeout=300, startup_timeout=120).execute()
    # greeting printed
    assert outputs_of(nb, 1)[0]["text"] == "hello, world\n"
    # final expression as execute_result
    result = outputs_of(nb, 2)[0]
    assert result["output_type"] == "execute_result"
    assert result["data"]["text/plain"] == "[1, 4, 9, 16, 25]"
    # rich content as display_data
    shown = outputs_of(nb, 4)[0]
    assert shown["output_type"] == "display_data"  # a display, not the cell's value
    assert shown["data"]["text/html"] == "<b>HELLO</b>"
    # the tagged error cell produced exactly one error output
    errors = [o for o in outputs_of(nb, 6) if o["output_type"] == "error"]
    assert len(errors) == 1 and errors[0]["ename"] == "CompilationError"
    # and execution went on after it
    assert outputs_of(nb, 7)[0]["data"]["text/plain"] == "144"
    # nbformat validation of the executed notebook
    nbformat.validate(nb)


def test_hello_notebook_runs_with_nbconvert(tmp_path):
    out = tmp_path / "hello.out.ipynb"
    subprocess.run(
        [sys.executable, "-m", "jupyter", "nbconvert", "--to", "notebook", "--execute",
         "--ExecutePreprocessor.timeout=300", "--output", str(out), str(ROOT / "notebooks/hello.ipynb")],
        check=True,
    )
    nb = nbformat.read(out, as_version=4)
    assert nb.cells[7].outputs[0]["data"]["text/plain"] == "144"
