"""Runs INSIDE a Slurm job (see test_slurm_local.py): starts the slurmbook
kernel with jupyter_client's KernelManager, as batchspawner or Open OnDemand
would start a notebook server's kernel in a job, and drives it:

  1. `%config`                                         (which transport)
  2. `%materialize +env_second --target slurm`         (grouped: one allocation)
  3. `%materialize +env_second --target slurm --force --jobs per-asset`
  4. `%materialize slow --target slurm`                (left running: the test
     then cancels THIS job while it runs)

After each step it rewrites RESULTS (JSON) with what it saw: the job's own
environment (SLURM_*, SBATCH_*), the kernel's pid, and per step the streamed
text and the reply's status. After step 4 has streamed its first line it
waits to be cancelled.

    python kernel_in_job.py NOTEBOOK RESULTS
"""
import json
import os
import sys
import time

from jupyter_client.manager import KernelManager


def save(results, path):
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(results, f, indent=1)
    os.replace(tmp, path)


def run(kc, code, results, path, name, until=None, timeout=900):
    """Executes `code`; collects its stream text until its reply (or until `until(text)`)."""
    msg_id = kc.execute(code)
    step = {"code": code, "text": "", "errors": [], "status": None}
    results["steps"][name] = step
    deadline = time.time() + timeout
    while time.time() < deadline:
        msg = kc.get_iopub_msg(timeout=timeout)
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        kind, content = msg["msg_type"], msg["content"]
        if kind == "stream":
            step["text"] += content["text"]
            if until and until(step["text"]):
                step["status"] = "still running"
                save(results, path)
                return step
        elif kind == "error":
            step["errors"].append(f"{content['ename']}: {content['evalue']}")
        elif kind == "status" and content["execution_state"] == "idle":
            break
    while True:
        reply = kc.get_shell_msg(timeout=60)
        if reply["parent_header"].get("msg_id") == msg_id:
            step["status"] = reply["content"]["status"]
            break
    save(results, path)
    return step


def main():
    notebook, path = sys.argv[1], sys.argv[2]
    job_env = {k: v for k, v in os.environ.items() if k.startswith(("SLURM_", "SBATCH_"))}
    results = {"job_env": job_env, "steps": {}, "kernel_pid": None}
    save(results, path)
    os.environ["JPY_SESSION_NAME"] = notebook
    km = KernelManager(kernel_name="slurmbook")
    km.start_kernel(cwd=os.path.dirname(notebook))
    results["kernel_pid"] = km.provisioner.pid
    kc = km.client()
    kc.start_channels()
    kc.wait_for_ready(timeout=120)
    run(kc, "%config", results, path, "config")
    run(kc, "%materialize +env_second --target slurm", results, path, "grouped")
    run(kc, "%materialize +env_second --target slurm --force --jobs per-asset", results, path, "per_asset")
    run(kc, "%materialize slow --target slurm", results, path, "slow", until=lambda t: "[slow] tick 0\n" in t)
    results["waiting"] = True
    save(results, path)
    # This job ends now (the test cancels it), with the kernel and its run.
    while True:
        time.sleep(60)


if __name__ == "__main__":
    main()
