"""A Slurm job printing 10 MB at full speed (issue 18, load): the cell shows
the first 1 MiB and says the rest is held back; `%log NAME` and `slurmbook
log` give all of it back byte-for-byte; the kernel's memory stays bounded
(its peak RSS is printed: pytest -s)."""
import os
import subprocess

import nbformat
from jupyter_client.manager import KernelManager

from nbrun import ROOT, db_rows

BINARY = ROOT / "target" / "debug" / "slurmbook"
LINES = 100_000
BODY = f"""%%asset big
use std::io::Write;
let mut out = std::io::stdout().lock();
let pad = "x".repeat(90);
for i in 0..{LINES}u64 {{
    writeln!(out, "{{i:09}} {{pad}}").unwrap();
}}
{LINES}u64"""
EXPECTED = "".join(f"{i:09} {'x' * 90}\n" for i in range(LINES))


def _rss_kib(pid, field):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} for {pid}")


def _run(kc, code, timeout=900):
    """Executes `code`; returns (streams by name, error contents)."""
    msg_id = kc.execute(code)
    streams, errors = {"stdout": "", "stderr": ""}, []
    while True:
        msg = kc.get_iopub_msg(timeout=timeout)
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        kind, content = msg["msg_type"], msg["content"]
        if kind == "stream":
            streams[content["name"]] += content["text"]
        elif kind == "error":
            errors.append(content)
        elif kind == "status" and content["execution_state"] == "idle":
            return streams, errors


def test_ten_megabytes_of_job_output_are_trimmed_in_the_cell_and_complete_in_the_log(tmp_path, ssh_transport):
    (tmp_path / "slurmbook.toml").write_text(ssh_transport.slurmbook_toml())
    path = tmp_path / "big.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(BODY)]), path)
    km = KernelManager(kernel_name="slurmbook")
    km.start_kernel(env={**os.environ, "JPY_SESSION_NAME": str(path)}, cwd=str(tmp_path))
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=120)
        pid = km.provisioner.process.pid
        before = _rss_kib(pid, "VmRSS")
        streams, errors = _run(kc, "%materialize big --target slurm")
        assert not errors, errors
        peak = _rss_kib(pid, "VmHWM")
        print(f"kernel RSS before {before / 1024:.1f} MiB, peak {peak / 1024:.1f} MiB "
              f"for {len(EXPECTED) / 1e6:.1f} MB of job output")
        # The cell: the first MiB, exactly, then a note on stderr and a
        # summary at the end.
        shown = "".join(line[len("[big] "):] for line in streams["stdout"].splitlines(keepends=True)
                        if line.startswith("[big] "))
        # (A line cut at the limit is ended by the cell's own newline.)
        cut = shown[:-1] if not EXPECTED.startswith(shown) else shown
        assert 1_000_000 < len(cut) <= 1 << 20, len(cut)
        assert EXPECTED.startswith(cut)
        assert "[big] ... more than 1.0 MiB of output: the rest is not shown here; `%log big` has all of it" \
            in streams["stderr"], streams["stderr"][-500:]
        held = len(EXPECTED) - len(cut)
        assert f"output of big: {held / (1 << 20):.1f} MiB not shown in this cell (over 1.0 MiB); " \
               "`%log big` copies all of it here" in streams["stdout"], streams["stdout"][-500:]
        assert "1 done, 0 fresh, 0 failed" in streams["stdout"]
        # %log: all of it, copied here.
        streams, errors = _run(kc, "%log big --tail 2")
        assert not errors, errors
        run = db_rows(path, "SELECT MAX(id) FROM runs")[0][0]
        copy = tmp_path / ".slurmbook" / "logs" / f"run-{run}" / "big.out"
        assert f"output of big in run {run}: {len(EXPECTED)} byte(s), copied to .slurmbook/logs/run-{run}/big.out" \
            in streams["stdout"], streams["stdout"]
        assert streams["stdout"].endswith("".join(EXPECTED.splitlines(keepends=True)[-2:]))
        assert copy.read_text() == EXPECTED
        assert oct(copy.stat().st_mode & 0o777) == "0o600"
        # Bad arguments: a clear error, nothing done.
        _, errors = _run(kc, "%log big --tail zero")
        assert errors and "--tail" in errors[0]["evalue"], errors
        _, errors = _run(kc, "%log nobody")
        assert errors and "`nobody` was never materialized on Slurm" in errors[0]["evalue"], errors
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    # The CLI prints the whole output as it was written.
    cli = subprocess.run([BINARY, "log", path, "big"], capture_output=True, timeout=300)
    assert cli.returncode == 0, cli.stderr
    assert cli.stdout.decode() == EXPECTED
