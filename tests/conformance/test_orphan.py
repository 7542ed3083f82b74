"""A kernel whose Jupyter server dies without shutting it down (killed, as a
JupyterHub stops or culls a user's server) exits by itself, with its evcxr
child, instead of living on as an orphan (kernel/src/parent.rs)."""
import json
import os
import signal
import subprocess
import sys
import time

# Starts the kernel the way jupyter_server does (jupyter_client), reports the
# pids, and waits to be killed.
LAUNCHER = r"""
import json, os, sys, time
from jupyter_client.manager import KernelManager
km = KernelManager(kernel_name="slurmbook")
km.start_kernel()
kc = km.client()
kc.start_channels()
kc.wait_for_ready(timeout=120)
pid = km.provisioner.process.pid
def parent_of(p):
    try:  # a process may end between listing /proc and reading its stat
        with open(f"/proc/{p}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[1]
    except OSError:
        return None
children = [int(p) for p in os.listdir("/proc") if p.isdigit() and parent_of(p) == str(pid)]
print(json.dumps({"kernel": pid, "children": children}), flush=True)
time.sleep(600)
"""


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_the_kernel_exits_when_its_server_is_killed(tmp_path):
    launcher = subprocess.Popen([sys.executable, "-c", LAUNCHER], stdout=subprocess.PIPE, text=True,
                                cwd=tmp_path, start_new_session=True)
    try:
        line = launcher.stdout.readline()
        assert line, f"the launcher died before the kernel was ready (exit {launcher.poll()})"
        pids = json.loads(line)
        kernel = pids["kernel"]
        assert _alive(kernel)
        os.kill(launcher.pid, signal.SIGKILL)  # no shutdown_request, no cleanup
        launcher.wait(timeout=30)
        deadline = time.monotonic() + 60
        while _alive(kernel) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _alive(kernel), f"the kernel {kernel} outlived its server"
        left = [p for p in pids["children"] if _alive(p)]
        assert not left, f"the kernel's children outlived it: {left}"
    finally:
        if launcher.poll() is None:
            os.kill(launcher.pid, signal.SIGKILL)
            launcher.wait(timeout=30)
        if "pids" in locals():
            for pid in [pids["kernel"], *pids["children"]]:
                if _alive(pid):
                    os.kill(pid, signal.SIGKILL)
