"""The notebook as maintained code, through the real binary and a real
kernel: `slurmbook fmt [--check]`, `lint [--deny-warnings]`, `test` and
`export`, and `%lint` / `%export` in the kernel."""
import subprocess

import nbformat

from nbrun import ROOT, copy_notebook, errors_of, execute, text_of

BIN = ROOT / "target" / "debug" / "slurmbook"

LINTME = [
    "fn halve(x: u64) -> u64 { x / 2 }",
    "%%asset nums\nvec![1u64, 2, 3]",
    "%%asset total\nlet mut s = 0;\nfor i in 0..nums.len() {\n    s += halve(nums[i]) * 2;\n}\ns",
    "%%check total positive\ntotal > 0",
]


def run(*args):
    return subprocess.run([str(BIN), *map(str, args)], capture_output=True, text=True, timeout=900)


def test_fmt_formats_code_cells_keeps_magics_broken_cells_and_outputs(tmp_path):
    path = tmp_path / "messy.ipynb"
    cells = [
        nbformat.v4.new_markdown_cell("# Messy\n\nlet   x=1;"),
        nbformat.v4.new_code_cell(":dep serde_json = \"1\"\nfn double( x:u64 )->u64{x*2}\n%graph\nlet y=double(2);\ny"),
        nbformat.v4.new_code_cell("%%asset stats: (u64, usize) --cpus=2\nlet v=vec![1u64,2,3];\n(v.iter().sum::<u64>(),v.len())"),
        nbformat.v4.new_code_cell("%%asset broken\nlet x = (1 +;\nx"),
        nbformat.v4.new_code_cell("%materialize   +stats"),
    ]
    cells[1].outputs = [nbformat.v4.new_output("stream", name="stdout", text="café ✓\n")]
    cells[1].execution_count = 4
    cells[1].metadata["tags"] = ["keep"]
    nbformat.write(nbformat.v4.new_notebook(cells=cells), path)
    before = path.read_bytes()

    check = run("fmt", "--check", path)
    assert check.returncode == 1, check.stdout + check.stderr
    assert "would reformat" in check.stdout and "cell 1, cell 2 (asset `stats`)" in check.stdout
    assert "cell 3 (asset `broken`): not formatted: line 2:" in check.stderr
    assert path.read_bytes() == before

    fmt = run("fmt", path)
    assert fmt.returncode == 0, fmt.stderr
    after = nbformat.read(path, as_version=4)
    assert after.cells[1].source == ":dep serde_json = \"1\"\nfn double(x: u64) -> u64 {\n    x * 2\n}\n%graph\nlet y = double(2);\ny"
    assert after.cells[2].source == "%%asset stats: (u64, usize) --cpus=2\nlet v = vec![1u64, 2, 3];\n(v.iter().sum::<u64>(), v.len())"
    original = nbformat.reads(before.decode(), as_version=4)
    for i in (0, 3, 4):
        assert after.cells[i].source == original.cells[i].source
    for a, b in zip(after.cells, original.cells):
        assert a.metadata == b.metadata and a.get("outputs") == b.get("outputs") and a.get("id") == b.get("id")
    assert after.metadata == original.metadata

    assert run("fmt", "--check", path).returncode == 0
    unchanged = path.read_bytes()
    assert run("fmt", path).returncode == 0
    assert path.read_bytes() == unchanged

    missing = run("fmt", "--check", tmp_path / "nope.ipynb", path)
    assert missing.returncode == 2 and "nope.ipynb" in missing.stderr


def test_lint_test_and_export_on_the_command_line(tmp_path):
    path = tmp_path / "lintme.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in LINTME]), path)

    lint = run("lint", path)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    assert "cell 2 (asset `total`), line 3: warning: " in lint.stdout
    assert "clippy::needless_range_loop" in lint.stdout
    denied = run("lint", path, "--deny-warnings")
    assert denied.returncode == 1

    passing = run("test", path)
    assert passing.returncode == 0, passing.stdout + passing.stderr
    assert "checks::total_positive ... ok" in passing.stdout

    nb = nbformat.read(path, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell("%%check total small\ntotal < 3"))
    nbformat.write(nb, path)
    failing = run("test", path)
    assert failing.returncode != 0
    assert "checks::total_small ... FAILED" in failing.stdout
    assert "check `small` of asset `total` failed: returned false" in failing.stdout

    out = tmp_path / "project"
    export = run("export", path, "--to", out)
    assert export.returncode == 0, export.stderr
    assert "exported package `lintme` (2 asset(s), 2 check(s))" in export.stdout
    assert (out / "src" / "assets.rs").read_text().count("pub fn ") == 2
    (out / "NOTES.md").write_text("mine")
    again = run("export", path, "--to", out)
    assert again.returncode == 0 and (out / "NOTES.md").read_text() == "mine"


def test_lint_and_export_magics_in_the_kernel(tmp_path):
    path = tmp_path / "lintme.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in LINTME]), path)
    nb = execute(path, cells=["%lint", "%export exported", "%export", "%lint extra"], allow_errors=True)

    lint = nb.cells[0].outputs
    assert not errors_of(lint), lint
    html = [o for o in lint if o["output_type"] == "display_data"][0]["data"]["text/html"]
    assert "cell 2 (asset `total`)" in html and "clippy::needless_range_loop" in html

    exported = nb.cells[1].outputs
    assert not errors_of(exported), exported
    assert "exported package `lintme`" in text_of(exported)
    assert (tmp_path / "exported" / "Cargo.toml").is_file()

    for cell, message in ((2, "missing the directory"), (3, "unexpected argument `extra`")):
        errs = errors_of(nb.cells[cell].outputs)
        assert errs and message in errs[0]["evalue"], nb.cells[cell].outputs


def test_test_stored_checks_the_values_the_notebook_stored(tmp_path):
    path = copy_notebook("quickstart.ipynb", tmp_path)
    materialized = run("run", path, "--select", "+celsius")
    assert materialized.returncode == 0, materialized.stdout + materialized.stderr
    stored = list((tmp_path / ".slurmbook" / "values").glob("celsius-*.json"))
    assert len(stored) == 1, stored
    # A stored value the check rejects: only --stored sees it.
    stored[0].write_text("[1000.0]")
    fresh = run("test", path)
    assert fresh.returncode == 0, fresh.stdout + fresh.stderr
    assert "checks::celsius_plausible ... ok" in fresh.stdout
    checked = run("test", path, "--stored")
    assert checked.returncode != 0, checked.stdout + checked.stderr
    assert "checks::celsius_plausible ... FAILED" in checked.stdout
