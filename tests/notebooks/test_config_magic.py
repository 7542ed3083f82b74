"""%config: effective configuration with provenance; validation before anything applies."""
import nbformat

from nbrun import errors_of, execute, text_of

TOML = """
profile = "cluster"
[profiles.cluster]
target = "local"
host = "slurmbook-test"
remote_dir = "$SCRATCH/slurmbook"
partition = "debug"
"""


def test_config_shows_sources_and_validates(tmp_path, monkeypatch):
    (tmp_path / "slurmbook.toml").write_text(TOML)
    path = tmp_path / "c.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("%%asset a\n1")]), path)
    monkeypatch.setenv("SLURMBOOK_TIME", "00:20:00")
    nb = execute(path, cells=[
        "%config",
        "%config partition=\"cpu; touch /tmp/pwned\" time=00:05:00",
        "%config colour=red",
        "%config partition=long qos=normal",
        "%config",
        "%config notebook=/no/such.ipynb",
    ], allow_errors=True)
    first = text_of(nb.cells[0].outputs)
    assert "profile    = cluster" in first
    assert f"host       = slurmbook-test" in first and "[profiles.cluster]" in first
    assert "time       = 00:20:00" in first and "(environment SLURMBOOK_TIME)" in first
    assert f"notebook   = {path}" in first and "JPY_SESSION_NAME" in first
    bad = errors_of(nb.cells[1].outputs)[0]
    assert "partition" in bad["evalue"] and "touch" in bad["evalue"]
    unknown = errors_of(nb.cells[2].outputs)[0]
    assert "unknown setting `colour`" in unknown["evalue"] and "remote_dir" in unknown["evalue"]
    last = text_of(nb.cells[4].outputs)
    assert "partition  = long" in last and "(%config)" in last
    # the rejected line applied nothing: time still comes from the environment
    assert "time       = 00:20:00" in last and "00:05:00" not in last
    assert "no notebook at /no/such.ipynb" in errors_of(nb.cells[5].outputs)[0]["evalue"]
    assert not __import__("os").path.exists("/tmp/pwned")
