"""Fault matrix (issue 18): a job over its --mem, on a cluster of its own
that watches memory as sites without cgroups do (SLURMBOOK_CLUSTER_MEMORY=
enforce: slurmstepd samples every second and kills a step over its limit).
Slurm then ends the job FAILED (signal 9) and says why only on its stderr;
the cell must say "out of memory (asked 200M)" with the hint, whether the
asset ran as a job of its own or as a step of a grouped job, and its
dependent must not run."""
import os
import re
import subprocess

import nbformat
import pytest

from conftest import Cluster
from nbrun import ROOT, db_rows

import sys
sys.path.insert(0, str(ROOT / "tests" / "cluster"))
import harness  # noqa: E402

BINARY = ROOT / "target" / "debug" / "slurmbook"
OWN_DIR = f"/tmp/sb-memory-{os.getpid()}"

HOG = ("%%asset hog --mem=200M\n"
       "let mut held: Vec<Vec<u8>> = Vec::new();\n"
       "for i in 0..60 {\n"
       "    held.push(vec![1u8; 20 << 20]);\n"
       "    println!(\"hog holds {} MiB\", (i + 1) * 20);\n"
       "    std::thread::sleep(std::time::Duration::from_millis(200));\n"
       "}\n"
       "held.len()")
AFTER = "%%asset after\nhog + 1"


@pytest.fixture(scope="module")
def memory_cluster():
    before = os.environ.get("SLURMBOOK_CLUSTER_MEMORY")
    os.environ["SLURMBOOK_CLUSTER_MEMORY"] = "enforce"
    try:
        facts = harness.up(OWN_DIR)
    finally:
        if before is None:
            os.environ.pop("SLURMBOOK_CLUSTER_MEMORY", None)
        else:
            os.environ["SLURMBOOK_CLUSTER_MEMORY"] = before
    try:
        yield Cluster("ssh", facts)
    finally:
        harness.down(OWN_DIR)


@pytest.mark.parametrize("jobs", ["per-asset", "grouped"])
def test_a_job_over_its_memory_is_out_of_memory_with_a_hint(tmp_path, memory_cluster, jobs):
    (tmp_path / "slurmbook.toml").write_text(memory_cluster.slurmbook_toml(remote_dir=f"$SCRATCH/mem-{jobs}"))
    path = tmp_path / "memory.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in (HOG, AFTER)]), path)
    run = subprocess.run([BINARY, "run", path, "--profile", "cluster", "--jobs", jobs],
                         capture_output=True, text=True, timeout=600)
    out = run.stdout + run.stderr
    assert run.returncode != 0, out
    assert re.search(r"hog\s+failed: out of memory \(asked 200M\)", out), out
    assert "hint: ask for more memory with `%%asset hog --mem=SIZE` (e.g. twice 200M)" in out, out
    assert re.search(r"after\s+cancelled", out), out
    statuses = dict(db_rows(path, "SELECT asset, status FROM materializations"))
    assert statuses.get("hog") == "failed", statuses
    assert statuses.get("after") != "ok", statuses
    assert db_rows(path, "SELECT count(*) FROM materializations WHERE status IN ('ok', 'running')") == [(0,)]
