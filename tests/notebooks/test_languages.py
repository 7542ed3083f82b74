"""Python and bash assets (`%%asset NAME --lang python|bash`) beside Rust ones.

The pipeline of notebooks/languages.ipynb: Python (`raw: Vec<i64>`) -> Rust
(`stats`) -> bash (`report_dir`, its `$OUT`) -> Python (`summary`), values
crossing each boundary as JSON, dependencies inferred from the Python and
shell code (no `--deps`). In the kernel (nbclient, the real slurmbook
kernel; no pixi environment installed: `python3`/`bash` on PATH) and on the
loopback cluster (tests/cluster), grouped and per-asset, in the notebook
project's packed pixi environment.

The environment is slurmbook-pack's test fixture (target/debug/examples/
make_test_env): its `python` conda package is a copy of this machine's own
interpreter with a `pyvenv.cfg` beside its `bin/` (standing in for
conda-forge's python, which the tests cannot download), and `--wheel` locks
a real pure-Python wheel built by the fixture (`slurmbook_greeting`, with a
console script) as a PyPI package: packed, installed at unpack with the
environment's own python and no index, imported by a Python asset on the
cluster.
"""
import json
import pathlib
import subprocess
import uuid

import nbformat
import pytest

from nbrun import ROOT, copy_notebook, db_rows, errors_of, execute, outputs, text_of

BINARY = ROOT / "target" / "debug" / "slurmbook"
MAKE_TEST_ENV = ROOT / "target" / "debug" / "examples" / "make_test_env"


def pipeline_cells():
    nb = nbformat.read(ROOT / "notebooks" / "languages.ipynb", as_version=4)
    return [c.source for c in nb.cells if c.cell_type == "code" and not c.source.startswith("%graph")]


def plain(outs):
    return "".join(o["data"].get("text/plain", "") for o in outs if o["output_type"] in ("execute_result", "display_data"))


def slurmbook(*args, env=None, timeout=900):
    return subprocess.run([BINARY, *map(str, args)], capture_output=True, text=True, timeout=timeout, env=env)


def make_env(project, *extras):
    made = subprocess.run([MAKE_TEST_ENV, project, "--python", *extras], capture_output=True, text=True, timeout=300)
    assert made.returncode == 0, made.stderr
    return json.loads(made.stdout)


# --- In the kernel ---


def test_the_pipeline_runs_cell_by_cell_in_the_kernel_values_crossing_every_boundary(tmp_path):
    path = copy_notebook("languages.ipynb", tmp_path)
    nb = execute(path)
    raw = outputs(nb, "%%asset raw")
    assert "python made 5 squares" in text_of(raw)
    # The Python value is in the session as the Rust type it states.
    assert plain(raw).strip() == "[1, 4, 9, 16, 25]"
    stats = outputs(nb, "%%asset stats")
    assert "rust summed 5 values" in text_of(stats)
    assert plain(stats).strip() == "(55, 25)"
    report = outputs(nb, "%%asset report_dir")
    assert "bash wrote 8 bytes" in text_of(report)
    # The bash value is $OUT, a directory beside the value store's files.
    out_dir = pathlib.Path(json.loads(plain(report)))
    assert out_dir.parent == tmp_path / ".slurmbook" / "values", out_dir
    assert json.loads((out_dir / "stats.json").read_text()) == [55, 25]
    summary = outputs(nb, "%%asset summary")
    assert errors_of(summary) == []
    (value_path,) = db_rows(path, "SELECT value_path FROM materializations WHERE asset = 'summary' AND status = 'ok'")[0:1]
    assert json.loads(pathlib.Path(value_path[0]).read_text()) == {"total": 55, "max": 25, "files": ["stats.json"]}
    # Inferred dependencies, and the language on each node.
    graph = plain(outputs(nb, "%graph"))
    assert "raw        [fresh]  (python)" in graph, graph
    assert "stats      [fresh] <- raw\n" in graph, graph
    assert "report_dir [fresh] <- stats  (bash)" in graph, graph
    assert "summary    [fresh] <- report_dir  (python)" in graph, graph
    # The types recorded are the stated (or default) Rust types.
    types = dict(db_rows(path, "SELECT asset, json_extract(metadata, '$.type') FROM materializations WHERE status = 'ok'"))
    assert types == {"raw": "Vec<i64>", "stats": "(i64, i64)", "report_dir": "std::path::PathBuf",
                     "summary": "serde_json::Value"}


def test_a_failing_python_asset_shows_its_traceback_and_stops_its_dependents(tmp_path):
    path = tmp_path / "fail.ipynb"
    cells = pipeline_cells()
    cells[0] = cells[0].replace("squares = [", "def explode(x):\n    return x // 0\nexplode(3)\nsquares = [")
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells]), path)
    nb = execute(path, cells=["%materialize"], allow_errors=True)
    outs = nb.cells[0].outputs
    err = text_of(outs, "stderr") + text_of(outs)
    assert "ZeroDivisionError: integer division or modulo by zero" in err, err
    assert 'File "<asset raw>", line 2, in explode' in err, err
    rows = dict(db_rows(path, "SELECT asset, status FROM materializations"))
    assert rows == {"raw": "failed", "stats": "skipped", "report_dir": "skipped", "summary": "skipped"}
    error = db_rows(path, "SELECT error FROM materializations WHERE asset = 'raw'")[0][0]
    assert "return x // 0" in error and "ZeroDivisionError" in error, error


def test_a_python_value_that_does_not_decode_into_its_stated_type_names_both_assets_and_the_type(tmp_path):
    path = tmp_path / "types.ipynb"
    cells = ["%%asset words: Vec<String> --lang python\n[1, 2, 3]", "%%asset count\nwords.len()"]
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells]), path)
    nb = execute(path, cells=["%materialize"], allow_errors=True)
    (error,) = errors_of(nb.cells[0].outputs)
    err = "\n".join(error["traceback"])
    assert "the value of `words` (a python asset) does not decode into `Vec<String>`" in err, err
    assert "so `count` cannot use it" in err, err
    assert dict(db_rows(path, "SELECT asset, status FROM materializations")) == {"words": "ok", "count": "failed"}


def test_checks_on_a_python_value_and_config_says_which_interpreters_the_kernel_uses(tmp_path):
    path = tmp_path / "checks.ipynb"
    cells = [
        "%%asset raw: Vec<i64> --lang python\n[3, -1, 2]",
        "%%check raw all_positive\nraw.iter().all(|x| *x > 0)",
        "%%asset doubled --lang python\n[2 * x for x in raw]",
    ]
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells]), path)
    nb = execute(path, cells=["%config", "%materialize"], allow_errors=True)
    config = text_of(nb.cells[0].outputs)
    # No pixi project here: the interpreters on PATH.
    assert "kernel python = `python3` on PATH (no pixi project)" in config, config
    assert "kernel bash   = `bash` on PATH (no pixi project)" in config, config
    run = nb.cells[1].outputs
    assert "check all_positive FAILED" in text_of(run, "stderr") + text_of(run), run
    rows = dict(db_rows(path, "SELECT asset, status FROM materializations"))
    assert rows == {"raw": "ok", "doubled": "skipped"}, rows


def test_fmt_leaves_python_and_bash_cells_alone_and_export_refuses_them_clearly(tmp_path):
    path = copy_notebook("languages.ipynb", tmp_path)
    before = path.read_bytes()
    fmt = slurmbook("fmt", path)
    assert fmt.returncode == 0, fmt.stdout + fmt.stderr
    assert path.read_bytes() == before
    export = slurmbook("export", path, "--to", tmp_path / "out")
    assert export.returncode != 0
    assert "asset `raw` is a python asset: the generated crate (lint, test, export) holds Rust assets only" in export.stderr
    assert not (tmp_path / "out").exists()


def test_a_changed_pixi_lock_makes_every_asset_of_the_environment_stale_rust_too(tmp_path):
    # Headless local runs (`slurmbook run --target local`) of the pipeline in
    # a pixi project; the lock then gains a PyPI wheel.
    project = tmp_path / "project"
    make_env(project)
    path = copy_notebook("languages.ipynb", project)
    first = slurmbook("run", path, "--target", "local")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "4 done, 0 fresh, 0 failed" in first.stdout, first.stdout
    again = slurmbook("run", path, "--target", "local", "--dry-run")
    assert "0 to run, 4 fresh" in again.stdout, again.stdout
    make_env(project, "--wheel")
    stale = slurmbook("run", path, "--target", "local", "--dry-run")
    assert stale.returncode == 0, stale.stdout + stale.stderr
    assert "4 to run, 0 fresh" in stale.stdout, stale.stdout
    for asset in ["raw", "stats", "report_dir", "summary"]:
        line = next(l for l in stale.stdout.splitlines() if l.strip().startswith(asset + " "))
        assert "environment changed" in line, stale.stdout
    # `env = "none"`: no environment, so nothing of the lock in the versions.
    (project / "slurmbook.toml").write_text('profile = "here"\n[profiles.here]\nenv = "none"\n')
    none = slurmbook("run", path, "--target", "local", "--dry-run")
    assert "4 to run, 0 fresh" in none.stdout and "environment changed" in none.stdout, none.stdout


# --- On the loopback cluster ---


WHEEL_CELL = (
    "%%asset greeting --lang python\n"
    "import subprocess\n"
    "import slurmbook_greeting\n"
    "script = subprocess.run(['slurmbook-greeting'], capture_output=True, text=True, check=True).stdout.strip()\n"
    "{'module': slurmbook_greeting.greet(), 'script': script, 'total': summary['total']}"
)


def cluster_project(tmp_path, transport, jobs):
    project = tmp_path / "project"
    make_env(project, "--wheel")
    remote_dir = f"{transport.facts['scratch']}/lang-{uuid.uuid4().hex[:12]}"
    (project / "slurmbook.toml").write_text(transport.slurmbook_toml(remote_dir=remote_dir, extra=f'jobs = "{jobs}"\n'))
    path = project / "lang.ipynb"
    cells = pipeline_cells() + [WHEEL_CELL]
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells]), path)
    return path, remote_dir


def remote_values(transport, path):
    values = {}
    for asset, value_path in db_rows(path, "SELECT asset, value_path FROM materializations WHERE status = 'ok' ORDER BY id"):
        cat = transport.shell(f"cat {value_path}")
        assert cat.returncode == 0, cat.stderr
        values[asset] = json.loads(cat.stdout)
    return values


@pytest.mark.parametrize("jobs", ["grouped", "per-asset"])
def test_the_pipeline_runs_on_slurm_in_the_packed_environment_with_its_wheel(tmp_path, transport, jobs):
    path, remote_dir = cluster_project(tmp_path, transport, jobs)
    run = slurmbook("run", path, "--profile", "cluster")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "5 done, 0 fresh, 0 failed" in run.stdout, run.stdout
    if jobs == "grouped":
        assert "1 job for 5 assets" in run.stdout, run.stdout
    # Output streams, prefixed by asset, from each language.
    for line in ["[raw] python made 5 squares", "[stats] rust summed 5 values", "[report_dir] bash wrote 8 bytes"]:
        assert line in run.stdout, run.stdout
    values = remote_values(transport, path)
    assert values["raw"] == [1, 4, 9, 16, 25]
    assert values["stats"] == [55, 25]
    # $OUT on the cluster: under remote_dir, content-addressed by version.
    out_dir = values["report_dir"]
    version = db_rows(path, "SELECT version FROM materializations WHERE asset = 'report_dir'")[0][0]
    assert out_dir == f"{remote_dir}/values/report_dir-{version}.d", out_dir
    listing = transport.shell(f"cat {out_dir}/stats.json")
    assert json.loads(listing.stdout) == [55, 25], listing.stdout + listing.stderr
    assert values["summary"] == {"total": 55, "max": 25, "files": ["stats.json"]}
    # The wheel was installed into the unpacked environment: importable, and
    # its console script on PATH.
    assert values["greeting"] == {"module": "hello from a wheel", "script": "hello from a wheel", "total": 55}
    again = slurmbook("run", path, "--profile", "cluster", "--dry-run")
    assert "0 to run, 5 fresh" in again.stdout, again.stdout


def test_a_failing_python_asset_on_slurm_shows_the_stderr_tail_and_stops_its_dependents(tmp_path, local_transport):
    path, _ = cluster_project(tmp_path, local_transport, "per-asset")
    nb = nbformat.read(path, as_version=4)
    nb.cells[0].source = nb.cells[0].source.replace("squares = [", "raise ValueError('no squares today')\nsquares = [")
    nbformat.write(nb, path)
    run = slurmbook("run", path, "--profile", "cluster")
    assert run.returncode != 0, run.stdout
    # Streamed as it happened, and the end of its stderr with the failure.
    assert "[raw] ValueError: no squares today" in run.stdout, run.stdout
    tail = run.stderr.split("raw failed:", 1)[1]
    assert "--- last 40 lines of raw.err ---" in tail, run.stderr
    assert 'File "<asset raw>", line 1, in <module>' in tail, run.stderr
    assert "ValueError: no squares today" in tail, run.stderr
    rows = dict(db_rows(path, "SELECT asset, status FROM materializations"))
    assert rows["raw"] == "failed"
    assert all(rows[a] in ("cancelled", "skipped") for a in ["stats", "report_dir", "summary", "greeting"]), rows


def test_the_kernel_runs_the_pipeline_on_slurm_and_loads_python_and_bash_values(tmp_path, local_transport):
    path, _ = cluster_project(tmp_path, local_transport, "grouped")
    nb = execute(path, cells=["%materialize", "%load raw", "%load report_dir", "raw.len()",
                              'report_dir.join("stats.json").exists()'])
    run = nb.cells[0].outputs
    assert "[raw] python made 5 squares" in text_of(run), text_of(run)
    assert "5 done, 0 fresh, 0 failed" in text_of(run), text_of(run)
    assert "loaded raw: Vec<i64>" in text_of(nb.cells[1].outputs)
    assert "loaded report_dir: std::path::PathBuf" in text_of(nb.cells[2].outputs)
    assert plain(nb.cells[3].outputs).strip() == "5"
    # The directory is on the cluster: the loopback cluster shares this file system.
    assert plain(nb.cells[4].outputs).strip() == "true"


def test_a_source_distribution_in_the_lock_stops_the_run_before_anything_is_submitted(tmp_path, local_transport):
    path, remote_dir = cluster_project(tmp_path, local_transport, "grouped")
    make_env(path.parent, "--wheel", "--sdist")
    run = slurmbook("run", path, "--profile", "cluster")
    assert run.returncode != 0, run.stdout
    out = run.stdout + run.stderr
    assert "PyPI package `slurmbook-sdist` of environment `default` is a source distribution" in out, out
    assert "make it a conda package (`pixi build` or `rattler-build`)" in out, out
    assert db_rows(path, "SELECT count(*) FROM materializations WHERE job_id IS NOT NULL") == [(0,)]


def test_a_python_value_not_decoding_into_its_stated_type_fails_the_rust_job_naming_both(tmp_path, local_transport):
    path, _ = cluster_project(tmp_path, local_transport, "per-asset")
    nb = nbformat.read(path, as_version=4)
    # Strings where it states Vec<i64>.
    assert nb.cells[0].source.endswith("\nsquares")
    nb.cells[0].source += "\n[str(s) for s in squares]"
    nbformat.write(nb, path)
    run = slurmbook("run", path, "--profile", "cluster", "--select", "+stats")
    assert run.returncode != 0, run.stdout
    out = run.stdout + run.stderr
    assert "the value of `raw` (a python asset) does not decode into `Vec<i64>`" in out, out
    assert "so `stats` cannot use it" in out, out
    assert dict(db_rows(path, "SELECT asset, status FROM materializations")) == {"raw": "ok", "stats": "failed"}
