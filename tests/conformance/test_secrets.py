"""No secret in the kernel's logs: with every log level on (RUST_LOG=trace),
the HMAC key of the connection file appears nowhere in what the kernel
prints, while it serves signed requests and runs a cell."""
import json
import os
import secrets
import subprocess

from jupyter_client import BlockingKernelClient
from jupyter_client.connect import write_connection_file
from jupyter_client.kernelspec import KernelSpecManager


def test_the_hmac_key_never_reaches_the_logs(tmp_path):
    key = secrets.token_hex(32)
    conn, _ = write_connection_file(str(tmp_path / "kernel.json"), key=key.encode())
    env = {**os.environ, "RUST_LOG": "trace"}
    program = KernelSpecManager().get_kernel_spec("slurmbook").argv[0]  # the installed kernel
    log = open(tmp_path / "kernel.log", "wb")  # a file: a full pipe would block the kernel
    proc = subprocess.Popen([program, "kernel", "--connection-file", conn], env=env,
                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    kc = BlockingKernelClient(connection_file=conn)
    kc.load_connection_file()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=120)
        reply = kc.execute_interactive("let secret_test = 6 * 7; secret_test", timeout=180)
        assert reply["content"]["status"] == "ok"
        kc.shutdown()
        proc.wait(timeout=30)
    finally:
        kc.stop_channels()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    log.close()
    logs = (tmp_path / "kernel.log").read_text(errors="replace")
    assert "kernel ready" in logs, logs[-2000:]  # the logs were on
    assert key not in logs
    assert json.loads(open(conn).read())["key"] == key  # the key was this one
