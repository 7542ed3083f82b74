"""Helpers of the tests/hub tests (imported by name: a test module cannot
import the conftest of its own directory reliably)."""
import os
import pathlib
import shutil
import sys

import pytest

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parents[1]
OUTPUT = HERE / "output"
# The features tests/run-all.sh builds with: the same artifacts, no rebuild.
FEATURES = ["--features", "slurmbook-magics/cluster-tests"]


def clean_env(**extra):
    """This process's environment without the test virtualenv's Jupyter
    settings and slurmbook variables (tests/run-all.sh points JUPYTER_* at
    .venv, whose kernelspec runs target/debug/slurmbook)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("JUPYTER", "SLURMBOOK_", "JPY_")) and k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env.update(extra)
    return env


def maturin():
    found = shutil.which("maturin", path=str(pathlib.Path(sys.executable).parent)) or shutil.which("maturin")
    if found is None:
        pytest.fail(f"maturin is not installed for {sys.executable}: "
                    f"`pip install -r tests/requirements.txt` (tests/run-all.sh does)")
    return found
