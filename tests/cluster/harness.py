"""Helpers for tests that use the loopback Slurm test cluster (see README.md).

    import sys; sys.path.insert(0, "<repo>/tests/cluster")   # not needed inside tests/cluster
    import harness

    f = harness.facts()                          # dict from <dir>/cluster.json
    p = harness.ssh(["sinfo", "-h"])             # CompletedProcess (text), through ssh -F ... slurmbook-test
    job = harness.sbatch(["--wrap", "echo hi"])  # job id (int), submitted over ssh
    harness.wait_job(job)                        # waits until the job is finished, returns its scontrol fields

The cluster itself is managed by cluster.py (`up`, `down`, `status`); `up()`/`down()`
here just run it.  Standard library only.
"""
from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Iterable, TypeVar

HERE = Path(__file__).resolve().parent
CLUSTER_PY = HERE / "cluster.py"
HOST_ALIAS = "slurmbook-test"
TERMINAL_STATES = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY",
                   "PREEMPTED", "BOOT_FAIL", "DEADLINE"}

T = TypeVar("T")


def cluster_dir(dir: str | os.PathLike | None = None) -> Path:
    """The run directory: dir, else $SLURMBOOK_CLUSTER_DIR, else /tmp/slurmbook-cluster."""
    return Path(dir or os.environ.get("SLURMBOOK_CLUSTER_DIR") or "/tmp/slurmbook-cluster").absolute()


def facts(dir: str | os.PathLike | None = None) -> dict:
    """The connection facts written by `cluster.py up` (DIR/cluster.json)."""
    path = cluster_dir(dir) / "cluster.json"
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise RuntimeError(f"{path} not found: start the test cluster with "
                           f"`python3 {CLUSTER_PY} up --dir {cluster_dir(dir)}`") from None


def ssh_argv(dir: str | os.PathLike | None = None) -> list[str]:
    """`ssh -F <ssh_config> slurmbook-test` -- append `--` and a remote command line."""
    return ["ssh", "-F", facts(dir)["ssh_config"], HOST_ALIAS]


def ssh(cmd: list[str] | str, *, dir: str | os.PathLike | None = None, check: bool = False,
        timeout: float = 120, input: str | None = None) -> subprocess.CompletedProcess:
    """Run a command on the cluster through `ssh -F <ssh_config> slurmbook-test -- <cmd>`.

    A list is shell-quoted (each element one word); a str is passed as a remote shell
    command line as is (pipes, `cd x && ...`).  Output is captured as text."""
    remote = cmd if isinstance(cmd, str) else shlex.join(str(c) for c in cmd)
    return subprocess.run([*ssh_argv(dir), "--", remote], capture_output=True, text=True, check=check,
                          timeout=timeout, input=input, stdin=None if input is not None else subprocess.DEVNULL)


def local_env(dir: str | os.PathLike | None = None) -> dict[str, str]:
    """os.environ plus what local Slurm clients (sinfo, squeue, ...) need, e.g. SLURM_CONF."""
    return {**os.environ, **facts(dir)["env"]}


def cluster(command: str, dir: str | os.PathLike | None = None, timeout: float = 1800
            ) -> subprocess.CompletedProcess:
    """Run `python3 cluster.py <command> --dir <dir>` (stdout and stderr captured)."""
    return subprocess.run([sys.executable, str(CLUSTER_PY), command, "--dir", str(cluster_dir(dir))],
                          capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def up(dir: str | os.PathLike | None = None) -> dict:
    """Bring the cluster up (or find it up); returns the facts of the JSON line."""
    p = cluster("up", dir)
    if p.returncode != 0:
        raise RuntimeError(f"cluster.py up failed (exit {p.returncode}):\n{p.stderr[-4000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def down(dir: str | os.PathLike | None = None) -> None:
    p = cluster("down", dir, timeout=300)
    if p.returncode != 0:
        raise RuntimeError(f"cluster.py down failed (exit {p.returncode}):\n{p.stderr[-4000:]}")


def is_running(dir: str | os.PathLike | None = None) -> bool:
    """True when `cluster.py status` says every daemon is up, sinfo answers and ssh works."""
    return cluster("status", dir, timeout=120).returncode == 0


def wait_until(pred: Callable[[], T], timeout: float = 60, interval: float = 0.2, what: str = "condition") -> T:
    """Poll pred() until it returns something truthy; return it.  TimeoutError after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def sbatch(args: list[str], *, dir: str | os.PathLike | None = None) -> int:
    """sbatch --parsable <args> over ssh; returns the job id."""
    p = ssh(["sbatch", "--parsable", *args], dir=dir)
    if p.returncode != 0:
        raise RuntimeError(f"sbatch {shlex.join(args)} failed (exit {p.returncode}): {p.stderr.strip()}")
    return int(p.stdout.strip().split(";")[0])


_FIELD = re.compile(r"(\w[\w:/]*)=(\S*)")


def job_info(job: int, *, dir: str | os.PathLike | None = None) -> dict[str, str]:
    """`scontrol show job -o <job>` as a dict (JobState, Reason, ExitCode, StartTime, EndTime,
    Partition, TimeLimit, ...).  Finished jobs stay visible for MinJobAge=3600 s.  {} if unknown."""
    p = ssh(["scontrol", "show", "job", "-o", str(job)], dir=dir)
    if p.returncode != 0:
        return {}
    return dict(_FIELD.findall(p.stdout))


def job_state(job: int, *, dir: str | os.PathLike | None = None) -> str:
    return job_info(job, dir=dir).get("JobState", "")


def wait_job(job: int, states: Iterable[str] = TERMINAL_STATES, *, timeout: float = 120,
             dir: str | os.PathLike | None = None) -> dict[str, str]:
    """Wait until the job's JobState is one of states (default: any finished state)."""
    wanted = set(states)

    def check():
        info = job_info(job, dir=dir)
        return info if info.get("JobState") in wanted else None

    try:
        return wait_until(check, timeout=timeout, interval=0.3, what=f"job {job} to reach {sorted(wanted)}")
    except TimeoutError as e:
        raise TimeoutError(f"{e}; last: {job_info(job, dir=dir)}") from None


def squeue_all(*, dir: str | os.PathLike | None = None) -> dict[int, str]:
    """{job id: state} of every job slurmctld still knows, finished ones included."""
    p = ssh(["squeue", "-h", "--states=all", "-o", "%i %T"], dir=dir, check=True)
    out = {}
    for line in p.stdout.splitlines():
        bits = line.split()
        if len(bits) == 2 and bits[0].isdigit():
            out[int(bits[0])] = bits[1]
    return out
