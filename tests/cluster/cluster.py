#!/usr/bin/env python3
"""A real single-node Slurm cluster plus an sshd on loopback, for slurmbook's tests.

    python3 tests/cluster/cluster.py up     [--dir DIR]
    python3 tests/cluster/cluster.py status [--dir DIR]
    python3 tests/cluster/cluster.py down   [--dir DIR]

DIR defaults to $SLURMBOOK_CLUSTER_DIR or /tmp/slurmbook-cluster.

`up` installs what is missing (apt, non-interactive), writes a slurm.conf for
this machine, starts munged, slurmctld, slurmd and an sshd on a free loopback
port (own host key, own client key, host-key checking ON), waits until the
node is idle and ssh works, writes DIR/cluster.json and prints the same facts
as ONE JSON line, the last line on stdout.  Logs go to stderr.  Running `up`
again while the cluster is healthy only prints the facts; a half-dead cluster
is stopped and started afresh.

`down` cancels the cluster's jobs, stops every daemon it started by the pid in
its pid file (checked against a marker -- SLURMBOOK_CLUSTER_RUN=DIR in the
environment, or DIR in the command line -- so a recycled pid is never killed),
sweeps what remains of this run (ssh sessions, slurmstepd and job processes),
removes /etc/slurm/slurm.conf if it is our symlink, and removes DIR.

`status` prints the facts plus the liveness of each daemon as one JSON line;
exit 0 when everything is up, 3 when it is not running, 1 when it is broken.

Environment switches read by `up` (they shape slurm.conf; the facts say which
was used):
  SLURMBOOK_CLUSTER_SCRONTAB=disable   no `ScronParameters=enable` (facts
                                       "scrontab": false)
  SLURMBOOK_CLUSTER_MEMORY=enforce     slurmstepd kills a step over its --mem
  SLURMBOOK_CLUSTER_SCHEDULER=default  no `SchedulerParameters` line: Slurm's
                                       default scheduling (what most sites run:
                                       a main pass every 60 s, backfill every
                                       30 s, batched submit-triggered passes),
                                       still sched/backfill; anything else or
                                       unset: the harness's tuned, prompt
                                       settings.  Facts "scheduler": "default"
                                       or "tuned".

Must run as root.  Standard library only (python >= 3.9).
"""
from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

HOST_ALIAS = "slurmbook-test"
USER = "root"
CLUSTER_NAME = "slurmbook"
PARTITIONS = [
    {"name": "debug", "default": True, "max_time": "01:00:00"},
    {"name": "long", "default": False, "max_time": "7-00:00:00"},
]
MARKER_FILE = ".slurmbook-cluster"  # proves a directory is ours before we delete it
MARKER_ENV = "SLURMBOOK_CLUSTER_RUN"  # set in every daemon we start (value: run dir)
DAEMONS = ["munged", "slurmctld", "slurmd", "sshd"]  # start order; stopped in reverse
ETC_SLURM_CONF = Path("/etc/slurm/slurm.conf")
APT_PACKAGES = ["slurm-wlm", "slurm-client", "munge", "openssh-server", "openssh-client"]
# binary -> package that provides it; apt is skipped when all are present
REQUIRED_BINARIES = {
    "slurmctld": "slurm-wlm",
    "slurmd": "slurm-wlm",
    "sinfo": "slurm-client",
    "sbatch": "slurm-client",
    "squeue": "slurm-client",
    "scontrol": "slurm-client",
    "scancel": "slurm-client",
    "munged": "munge",
    "munge": "munge",
    "unmunge": "munge",
    "/usr/sbin/sshd": "openssh-server",
    "ssh": "openssh-client",
    "ssh-keygen": "openssh-client",
}
FATAL_PATTERNS = ("fatal:", "Cannot bind any address", "Address already in use")
UP_TIMEOUT = float(os.environ.get("SLURMBOOK_CLUSTER_TIMEOUT", "90"))
# scrontab (Slurm's cron): `ScronParameters=enable` in slurm.conf unless the
# environment of `up` says SLURMBOOK_CLUSTER_SCRONTAB=disable (a cluster whose
# site turned it off, for the fallback tests).
SCRONTAB_ENV = "SLURMBOOK_CLUSTER_SCRONTAB"
# SLURMBOOK_CLUSTER_MEMORY=enforce: slurmstepd samples each step's memory
# every second and kills a step over its --mem (OUT_OF_MEMORY), as sites
# without cgroups do; otherwise memory is not watched (no cgroups here).
MEMORY_ENV = "SLURMBOOK_CLUSTER_MEMORY"
# SLURMBOOK_CLUSTER_SCHEDULER=default: slurm.conf has no SchedulerParameters
# line (Slurm's defaults, what most sites run); otherwise the tuned line of
# TUNED_SCHEDULER_PARAMETERS (prompt scheduling for fast tests).
SCHEDULER_ENV = "SLURMBOOK_CLUSTER_SCHEDULER"
TUNED_SCHEDULER_PARAMETERS = ("sched_interval=2,sched_min_interval=0,bf_interval=1,batch_sched_delay=0,"
                              "default_queue_depth=1000")
# Debian ships no `scrontab` client: `up` builds it from Debian's source package
# of the installed Slurm (same version as the installed libslurmfull) once.
SCRONTAB_BIN = Path("/usr/local/bin/scrontab")
SCRONTAB_BUILD = Path("/var/cache/slurmbook-cluster/scrontab")
SLURM_LIB_DIR = "/usr/lib/x86_64-linux-gnu/slurm-wlm"


class ClusterError(Exception):
    pass


# --------------------------------------------------------------------------- utils

def log(msg: str) -> None:
    print(f"[cluster {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def default_dir() -> Path:
    return Path(os.environ.get("SLURMBOOK_CLUSTER_DIR") or "/tmp/slurmbook-cluster")


def world_searchable_ancestors(path: Path) -> bool:
    """Every existing ancestor of path has o+x (what munged demands of its socket dir)."""
    for p in path.parents:
        try:
            if not os.stat(p).st_mode & 0o001:
                return False
        except FileNotFoundError:
            continue
    return True


class Layout:
    """Every path of a run directory, in one place."""

    def __init__(self, root: Path):
        self.root = root.absolute()
        r = self.root
        self.marker = r / MARKER_FILE
        self.facts = r / "cluster.json"
        self.pids = r / "pids"
        self.logs = r / "log"
        self.slurm_dir = r / "slurm"
        self.slurm_conf = self.slurm_dir / "slurm.conf"
        self.state = r / "slurm" / "state"
        self.spool = r / "slurm" / "spool"
        self.munge_dir = r / "munge"
        self.munge_key = self.munge_dir / "munge.key"
        # munged insists that every directory above its socket be world-searchable
        # (o+x).  When the run dir sits below e.g. a 0700 directory, the socket goes
        # to /run/slurmbook-munge/<hash of dir>/ instead (removed by `down`).
        self.munge_run_fallback = Path("/run/slurmbook-munge") / hashlib.sha256(
            str(self.root).encode()).hexdigest()[:16]
        sock_dir = self.munge_dir if world_searchable_ancestors(self.root) else self.munge_run_fallback
        self.munge_socket = sock_dir / "munge.socket"
        self.ssh_dir = r / "ssh"
        self.host_key = self.ssh_dir / "ssh_host_ed25519_key"
        self.client_key = self.ssh_dir / "id_ed25519"
        self.authorized_keys = self.ssh_dir / "authorized_keys"
        self.sshd_config = self.ssh_dir / "sshd_config"
        self.known_hosts = self.ssh_dir / "known_hosts"
        self.ssh_config = r / "ssh_config"
        self.scratch = r / "scratch"

    def pid_file(self, daemon: str) -> Path:
        return self.pids / f"{daemon}.pid"

    def log_file(self, daemon: str) -> Path:
        return self.logs / f"{daemon}.log"

    def out_file(self, daemon: str) -> Path:
        # stdout/stderr of the launcher, before the daemon detaches
        return self.logs / f"{daemon}.out"


def run(cmd, *, check=True, env=None, timeout=60, **kw) -> subprocess.CompletedProcess:
    if "input" not in kw:
        kw["stdin"] = subprocess.DEVNULL
    try:
        p = subprocess.run(cmd, env=env, timeout=timeout, text=True, capture_output=True, **kw)
    except FileNotFoundError as e:
        raise ClusterError(f"cannot run {cmd[0]!r}: {e}") from e
    except subprocess.TimeoutExpired as e:
        raise ClusterError(f"timed out after {timeout}s: {shlex.join(map(str, cmd))}") from e
    if check and p.returncode != 0:
        raise ClusterError(
            f"command failed (exit {p.returncode}): {shlex.join(map(str, cmd))}\n"
            f"{(p.stdout or '')[-2000:]}{(p.stderr or '')[-2000:]}")
    return p


def tail(path: Path, n: int = 25) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError as e:
        return f"    (no {path}: {e.strerror})"
    return "\n".join("    " + ln for ln in lines[-n:]) or f"    ({path} is empty)"


def new_text(path: Path, offset: int) -> str:
    """What was appended to path after offset."""
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            return f.read().decode(errors="replace")
    except OSError:
        return ""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_ports(n: int) -> list[int]:
    # hold all sockets open at once so the n ports differ
    socks, ports = [], []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
            ports.append(s.getsockname()[1])
    finally:
        for s in socks:
            s.close()
    return ports


def write(path: Path, text: str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def q(value) -> str:
    """Quote a path for ssh_config / sshd_config when needed."""
    s = str(value)
    return f'"{s}"' if any(c in s for c in ' \t#"') else s


# ------------------------------------------------------------------ process helpers

def read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def proc_environ(pid: int) -> dict[str, str]:
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return {}
    env = {}
    for item in raw.split(b"\0"):
        k, sep, v = item.partition(b"=")
        if sep:
            env[k.decode(errors="replace")] = v.decode(errors="replace")
    return env


def proc_cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def proc_stat(pid: int) -> tuple[str, int, int] | None:
    """(state, ppid, starttime) of a live process, None if gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return fields[0], int(fields[1]), int(fields[19])
    except (OSError, IndexError, ValueError):
        return None


def alive(pid: int) -> bool:
    st = proc_stat(pid)
    return st is not None and st[0] not in ("Z", "X")


def marked(pid: int, layout: Layout) -> bool:
    """The process carries our marker in its environment (inherited from a daemon we
    started, or set by our sshd's SetEnv for ssh sessions and the jobs they submit)."""
    return alive(pid) and proc_environ(pid).get(MARKER_ENV) == str(layout.root)


def ours(pid: int | None, layout: Layout) -> bool:
    """pid (from one of our pid files) is alive and is a daemon of this run dir:
    marker in its environment, or (sshd overwrites its environment with its process
    title) our run dir in its command line."""
    if not pid or pid <= 0 or not alive(pid):
        return False
    return marked(pid, layout) or str(layout.root) + "/" in proc_cmdline(pid)


def children_map() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            st = proc_stat(int(entry))
            if st:
                kids.setdefault(st[1], []).append(int(entry))
    return kids


def descendants(pid: int) -> list[int]:
    kids = children_map()
    out, todo = [], [pid]
    while todo:
        for c in kids.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def daemon_pids(layout: Layout) -> dict[str, int | None]:
    return {d: read_pid(layout.pid_file(d)) for d in DAEMONS}


def daemon_alive(layout: Layout) -> dict[str, bool]:
    return {d: ours(pid, layout) for d, pid in daemon_pids(layout).items()}


def self_and_ancestors() -> set[int]:
    skip, pid = set(), os.getpid()
    while pid > 1 and pid not in skip:
        skip.add(pid)
        st = proc_stat(pid)
        if not st:
            break
        pid = st[1]
    return skip


def uses_dir(pid: int, layout: Layout) -> bool:
    """cwd or an open file of pid is inside the run dir."""
    prefix = str(layout.root) + "/"
    try:
        links = [os.readlink(f"/proc/{pid}/cwd")]
        links += [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
    except OSError:
        return False
    return any(ln.startswith(prefix) for ln in links)


def stray_processes(layout: Layout) -> list[int]:
    """Live processes of this run that no pid file names: anything carrying our
    marker (ssh sessions, jobs submitted through our sshd) and slurmstepd processes
    of our slurmd (their environment is overwritten by their process title, but they
    keep our slurmd.log and spool open).  Never us or our ancestors."""
    skip = self_and_ancestors()
    found = []
    for e in os.listdir("/proc"):
        if not e.isdigit() or int(e) in skip:
            continue
        p = int(e)
        if marked(p, layout):
            found.append(p)
        elif proc_cmdline(p).startswith("slurmstepd") and uses_dir(p, layout):
            found += [p, *descendants(p)]  # the step and the job processes it runs
    return sorted(set(found) - skip)


def kill_and_wait(pids: list[int], timeout: float = 10.0) -> list[int]:
    """SIGTERM, wait, then SIGKILL.  A pid is only signalled while it is still the same
    process (same start time) as when it was identified by the caller."""
    skip = self_and_ancestors()
    refs = {p: st[2] for p in pids if p not in skip and (st := proc_stat(p))}

    def same(p: int) -> bool:
        st = proc_stat(p)
        return st is not None and st[0] not in ("Z", "X") and st[2] == refs[p]

    def signal_all(sig: int) -> None:
        for p in list(refs):
            if same(p):
                try:
                    os.kill(p, sig)
                except ProcessLookupError:
                    pass

    def wait(t: float) -> bool:
        deadline = time.monotonic() + t
        while time.monotonic() < deadline:
            if not any(same(p) for p in refs):
                return True
            time.sleep(0.1)
        return False

    signal_all(signal.SIGTERM)
    if wait(timeout):
        return []
    for p in refs:
        if same(p):
            log(f"pid {p} ({proc_cmdline(p)[:80]}) ignored SIGTERM, sending SIGKILL")
    signal_all(signal.SIGKILL)
    wait(5)
    return [p for p in refs if same(p)]


def daemon_env(layout: Layout) -> dict[str, str]:
    env = dict(os.environ)
    env[MARKER_ENV] = str(layout.root)
    env["SLURM_CONF"] = str(layout.slurm_conf)
    env.pop("SLURMBOOK_CLUSTER_DIR", None)
    return env


def client_env(layout: Layout) -> dict[str, str]:
    env = dict(os.environ)
    env["SLURM_CONF"] = str(layout.slurm_conf)
    env.pop(MARKER_ENV, None)
    return env


def start_daemon(name: str, cmd: list[str], layout: Layout) -> int:
    """Run a self-daemonizing program; return the pid from its pid file."""
    pid_file = layout.pid_file(name)
    offsets = {f: (f.stat().st_size if f.exists() else 0) for f in (layout.log_file(name), layout.out_file(name))}
    log(f"starting {name}: {shlex.join(cmd)}")
    with open(layout.out_file(name), "ab") as out:
        p = subprocess.run(cmd, env=daemon_env(layout), cwd=layout.root, stdin=subprocess.DEVNULL,
                           stdout=out, stderr=out, start_new_session=True, timeout=60)
    if p.returncode != 0:
        raise ClusterError(f"{name} failed to start (exit {p.returncode}).\n"
                           f"  {layout.out_file(name)}:\n{tail(layout.out_file(name))}\n"
                           f"  {layout.log_file(name)}:\n{tail(layout.log_file(name))}")
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        pid = read_pid(pid_file)
        if ours(pid, layout):
            return pid
        # a daemon that died after detaching: fail fast on its last words
        logged = "".join(new_text(f, off) for f, off in offsets.items())
        if any(pat in logged for pat in FATAL_PATTERNS):
            break
        time.sleep(0.05)
    raise ClusterError(f"{name} did not stay up (no live pid in {pid_file}).\n"
                       f"  {layout.out_file(name)}:\n{tail(layout.out_file(name))}\n"
                       f"  {layout.log_file(name)}:\n{tail(layout.log_file(name))}")


# ------------------------------------------------------------------------ install

def missing_binaries() -> list[str]:
    return [b for b in REQUIRED_BINARIES if not (os.path.isabs(b) and os.access(b, os.X_OK)
                                                  or not os.path.isabs(b) and shutil.which(b, path=_path()))]


def _path() -> str:
    return os.environ.get("PATH", "") + ":/usr/local/sbin:/usr/sbin:/sbin:/usr/local/bin:/usr/bin:/bin"


def ensure_installed() -> None:
    missing = missing_binaries()
    if not missing:
        return
    pkgs = sorted(set(APT_PACKAGES) | {REQUIRED_BINARIES[b] for b in missing})
    log(f"missing {', '.join(missing)}; installing {' '.join(pkgs)} with apt-get")
    if not shutil.which("apt-get"):
        raise ClusterError("these programs are missing and apt-get is not available: " + ", ".join(missing))
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive", NEEDRESTART_MODE="a")
    # keep package postinst scripts from starting system daemons (no systemd here anyway)
    policy = Path("/usr/sbin/policy-rc.d")
    added_policy = False
    if not policy.exists():
        write(policy, "#!/bin/sh\n# temporary, written by slurmbook tests/cluster/cluster.py\nexit 101\n", 0o755)
        added_policy = True
    try:
        t0 = time.monotonic()
        run(["apt-get", "-o", "DPkg::Lock::Timeout=600", "update", "-q"], env=env, timeout=600)
        # Recommends (slurm-wlm-plugins, *-dev, ...) are not needed: everything used
        # here is in slurm-wlm-basic-plugins
        run(["apt-get", "install", "-y", "-q", "--no-install-recommends", "-o", "DPkg::Lock::Timeout=600",
             "-o", "Dpkg::Options::=--force-confdef",
             "-o", "Dpkg::Options::=--force-confold", *pkgs], env=env, timeout=1800)
        log(f"apt-get done in {time.monotonic() - t0:.1f}s")
    finally:
        if added_policy:
            policy.unlink(missing_ok=True)
    still = missing_binaries()
    if still:
        raise ClusterError("still missing after apt-get install: " + ", ".join(still))


def memory_watch() -> str:
    """slurm.conf's memory watching (see MEMORY_ENV)."""
    if os.environ.get(MEMORY_ENV) == "enforce":
        return ("JobAcctGatherType=jobacct_gather/linux\n"
                "JobAcctGatherParams=OverMemoryKill\n"
                "JobAcctGatherFrequency=task=1")
    return "JobAcctGatherType=jobacct_gather/none"


def scrontab_enabled() -> bool:
    return os.environ.get(SCRONTAB_ENV, "enable") != "disable"


def scheduler_setting() -> str:
    """"default" (Slurm's scheduler defaults) or "tuned" (see SCHEDULER_ENV)."""
    return "default" if os.environ.get(SCHEDULER_ENV) == "default" else "tuned"


def scheduler_parameters() -> str:
    """slurm.conf's scheduling lines after SchedulerType (see SCHEDULER_ENV)."""
    if scheduler_setting() == "default":
        return ("# Slurm's default scheduling (SLURMBOOK_CLUSTER_SCHEDULER=default): no SchedulerParameters")
    return ("# prompt scheduling: event-driven scheduling without throttling, frequent periodic passes.\n"
            "# (slurmctld still batches event-triggered scheduling into ~1 s ticks: an afterok\n"
            "# dependent starts ~1 s after its parent ends.)\n"
            f"SchedulerParameters={TUNED_SCHEDULER_PARAMETERS}")


def ensure_scrontab() -> None:
    """Install a `scrontab` client when none is on PATH: Debian's slurm-client
    leaves it out, so it is compiled from Debian's source package of the
    installed Slurm (apt-get source with a private sources list: the system's
    apt configuration is not touched) and linked against the installed
    libslurmfull.  Takes ~2 minutes once; later `up`s find it."""
    if shutil.which("scrontab", path=_path()):
        return
    version = run(["dpkg-query", "-W", "-f", "${Version}", "slurm-client"], timeout=20).stdout.strip()
    lib = Path(SLURM_LIB_DIR) / "libslurmfull.so"
    if not version or not lib.exists():
        raise ClusterError(f"cannot build scrontab: slurm-client {version!r}, {lib} exists: {lib.exists()}")
    tools = [t for t in ("gcc", "make", "ld", "objcopy") if not shutil.which(t)]
    if tools:
        log(f"building scrontab needs {', '.join(tools)}; installing gcc make binutils libc6-dev")
        run(["apt-get", "install", "-y", "-q", "--no-install-recommends", "-o", "DPkg::Lock::Timeout=600",
             "gcc", "make", "binutils", "libc6-dev"],
            env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"), timeout=1800)
    t0 = time.monotonic()
    work = SCRONTAB_BUILD / version
    shutil.rmtree(work, ignore_errors=True)
    (work / "lists" / "partial").mkdir(parents=True)
    # deb-src lines of the suites the system's deb lines use
    suites = set()
    for f in [Path("/etc/apt/sources.list"), *Path("/etc/apt/sources.list.d").glob("*")]:
        try:
            text = f.read_text()
        except OSError:
            continue
        for uri, suite_list in re.findall(r"^URIs:\s*(\S+)\s*\nSuites:\s*([^\n]+)", text, re.M):
            for suite in suite_list.split():
                suites.add((uri, suite))
        for uri, suite in re.findall(r"^deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+(\S+)", text, re.M):
            suites.add((uri, suite))
    if not suites:
        raise ClusterError("cannot build scrontab: no apt sources found to fetch Slurm's source from")
    keyring = "/usr/share/keyrings/debian-archive-keyring.gpg"
    signed = f"[signed-by={keyring}] " if Path(keyring).exists() else ""
    (work / "sources.list").write_text(
        "".join(f"deb-src {signed}{uri} {suite} main\n" for uri, suite in sorted(suites)))
    opts = ["-o", f"Dir::Etc::SourceList={work / 'sources.list'}", "-o", "Dir::Etc::SourceParts=-",
            "-o", f"Dir::State::Lists={work / 'lists'}", "-o", "APT::Sandbox::User=root"]
    log(f"building scrontab from Debian's slurm-wlm {version} source (once)")
    run(["apt-get", *opts, "update", "-q"], timeout=600)
    run(["apt-get", *opts, "source", "--download-only", f"slurm-wlm={version}"], cwd=work, timeout=600)
    orig = next(work.glob("slurm-wlm_*.orig.tar.*"), None)
    if orig is None:
        raise ClusterError(f"no slurm-wlm source tarball downloaded into {work}")
    run(["tar", "xf", str(orig)], cwd=work, timeout=300)
    src = next(p for p in work.iterdir() if p.is_dir() and (p / "configure").exists())
    run(["./configure", "--prefix=/usr", "--sysconfdir=/etc/slurm", "--without-munge", "--disable-debug"],
        cwd=src, timeout=900)
    d = src / "src" / "scrontab"
    for ref in ("default_crontab", "usage"):
        run(["ld", "-r", "-o", f"{ref}.bino", "-z", "noexecstack", "--format=binary", f"{ref}.txt"], cwd=d)
        run(["objcopy", "--rename-section", ".data=.rodata,alloc,load,readonly,data,contents", f"{ref}.bino"],
            cwd=d)
    out = work / "scrontab"
    run(["gcc", "-O1", "-I../..", "-I../../slurm", "-DHAVE_CONFIG_H", "-o", str(out),
         "env.c", "opt.c", "parse.c", "scrontab.c", "default_crontab.bino", "usage.bino",
         f"-L{SLURM_LIB_DIR}", "-lslurmfull", f"-Wl,-rpath,{SLURM_LIB_DIR}", "-ldl", "-lpthread"],
        cwd=d, timeout=300)
    SCRONTAB_BIN.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(out, SCRONTAB_BIN)
    os.chmod(SCRONTAB_BIN, 0o755)
    shutil.rmtree(src, ignore_errors=True)
    log(f"installed {SCRONTAB_BIN} in {time.monotonic() - t0:.0f}s")


# -------------------------------------------------------------------------- config

def node_hardware() -> dict:
    """CPUs/topology from `slurmd -C`, memory a bit below the total."""
    hw = {"CPUs": os.cpu_count() or 1}
    try:
        out = run(["slurmd", "-C"], timeout=30).stdout
        first = out.splitlines()[0]
        for tok in first.split():
            k, _, v = tok.partition("=")
            if k in ("CPUs", "Boards", "SocketsPerBoard", "CoresPerSocket", "ThreadsPerCore", "RealMemory"):
                hw[k] = int(v)
    except (ClusterError, IndexError, ValueError) as e:
        log(f"slurmd -C failed ({e}); using os.cpu_count() and /proc/meminfo")
    if "RealMemory" not in hw:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                hw["RealMemory"] = int(line.split()[1]) // 1024
    total = hw["RealMemory"]
    # leave ~5% (at least 256 MiB) for the OS, so slurmd never reports less than configured
    hw["RealMemory"] = max(256, total - max(256, total // 20))
    return hw


def slurm_conf_text(layout: Layout, node: str, hw: dict, ctld_port: int, slurmd_port: int) -> str:
    node_hw = " ".join(f"{k}={v}" for k, v in hw.items())
    cpus = hw["CPUs"]
    def_mem = max(100, min(2048, hw["RealMemory"] // max(1, cpus)))
    parts = []
    for p in PARTITIONS:
        parts.append(f"PartitionName={p['name']} Nodes={node} Default={'YES' if p['default'] else 'NO'} "
                     f"MaxTime={p['max_time']} State=UP OverSubscribe=NO")
    return f"""\
# Written by slurmbook tests/cluster/cluster.py -- single-node test cluster on loopback.
ClusterName={CLUSTER_NAME}
SlurmctldHost={node}(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={layout.munge_socket}

StateSaveLocation={layout.state}
SlurmdSpoolDir={layout.spool}
SlurmctldPidFile={layout.pid_file('slurmctld')}
SlurmdPidFile={layout.pid_file('slurmd')}
SlurmctldLogFile={layout.log_file('slurmctld')}
SlurmdLogFile={layout.log_file('slurmd')}
SlurmctldDebug=info
SlurmdDebug=info

ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SwitchType=switch/none
ReturnToService=2
{memory_watch()}
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MailProg=/bin/true
# reject at submit time what a partition cannot run (e.g. --time over its MaxTime)
EnforcePartLimits=ALL

# keep finished jobs visible to scontrol/squeue for an hour (no slurmdbd, no sacct)
MinJobAge=3600
MaxJobCount=100000
# Slurm's cron (scrontab); off only when the environment of `up` says so
{"ScronParameters=enable" if scrontab_enabled() else "# ScronParameters: scrontab disabled for this run"}
SchedulerType=sched/backfill
{scheduler_parameters()}
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU={def_mem}
KillWait=5
InactiveLimit=0
Waittime=0
MessageTimeout=20
SlurmctldTimeout=120
SlurmdTimeout=300
UnkillableStepTimeout=60

NodeName={node} NodeAddr=127.0.0.1 NodeHostname={node} {node_hw} State=UNKNOWN
{chr(10).join(parts)}
"""


def remote_env(layout: Layout) -> dict[str, str]:
    """Environment every ssh session (and so every job submitted through it) gets."""
    return {"SLURM_CONF": str(layout.slurm_conf), "SCRATCH": str(layout.scratch)}


def sshd_config_text(layout: Layout, port: int) -> str:
    sftp = "/usr/lib/openssh/sftp-server"
    sftp_line = f"Subsystem sftp {sftp}" if os.path.exists(sftp) else "Subsystem sftp internal-sftp"
    return f"""\
# Written by slurmbook tests/cluster/cluster.py -- test sshd on loopback only.
ListenAddress 127.0.0.1
Port {port}
HostKey {q(layout.host_key)}
PidFile {q(layout.pid_file('sshd'))}
AuthorizedKeysFile {q(layout.authorized_keys)}
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
UseDNS no
PrintMotd no
PrintLastLog no
X11Forwarding no
AllowTcpForwarding yes
AllowStreamLocalForwarding yes
MaxSessions 64
MaxStartups 100:30:200
LoginGraceTime 30
ClientAliveInterval 0
LogLevel INFO
# Slurm commands run through this sshd find the test cluster's slurm.conf; $SCRATCH
# is a 1777 scratch dir inside the run dir (like HPC sites); the marker lets `down`
# find sessions and jobs of this run.
SetEnv {" ".join(q(f"{k}={v}") for k, v in remote_env(layout).items())} {q(MARKER_ENV + '=' + str(layout.root))}
{sftp_line}
"""


def ssh_config_text(layout: Layout, port: int) -> str:
    return f"""\
# Written by slurmbook tests/cluster/cluster.py.
# Use: ssh -F {layout.ssh_config} {HOST_ALIAS}
# or put `Include {layout.ssh_config}` at the TOP of ~/.ssh/config.
Host {HOST_ALIAS}
    HostName 127.0.0.1
    Port {port}
    User {USER}
    IdentityFile {q(layout.client_key)}
    IdentitiesOnly yes
    UserKnownHostsFile {q(layout.known_hosts)}
    GlobalKnownHostsFile /dev/null
    StrictHostKeyChecking yes
    CheckHostIP no
    UpdateHostKeys no
    PasswordAuthentication no
    KbdInteractiveAuthentication no
    BatchMode yes
    ConnectTimeout 10
    LogLevel ERROR
"""


# ---------------------------------------------------------------------------- facts

def build_facts(layout: Layout, node: str, ports: dict, hw: dict, slurm_version: str,
                etc_link: bool) -> dict:
    return {
        "dir": str(layout.root),
        "host": HOST_ALIAS,
        "hostname": "127.0.0.1",
        "port": ports["ssh"],
        "user": USER,
        "ssh_config": str(layout.ssh_config),
        "identity_file": str(layout.client_key),
        "known_hosts": str(layout.known_hosts),
        "host_key_pub": (layout.host_key.with_suffix(".pub")).read_text().strip(),
        "ssh_command": ["ssh", "-F", str(layout.ssh_config), HOST_ALIAS],
        "node": node,
        "partitions": [p["name"] for p in PARTITIONS],
        "default_partition": next(p["name"] for p in PARTITIONS if p["default"]),
        "partition_max_time": {p["name"]: p["max_time"] for p in PARTITIONS},
        "cpus": hw["CPUs"],
        "real_memory_mb": hw["RealMemory"],
        "cluster_name": CLUSTER_NAME,
        "scrontab": scrontab_enabled(),
        "scheduler": scheduler_setting(),
        "slurm_version": slurm_version,
        "slurm_conf": str(layout.slurm_conf),
        "etc_slurm_conf_symlink": etc_link,
        "env": {"SLURM_CONF": str(layout.slurm_conf)},
        "remote_env": remote_env(layout),
        "munge_socket": str(layout.munge_socket),
        "slurmctld_port": ports["slurmctld"],
        "slurmd_port": ports["slurmd"],
        "scratch": str(layout.scratch),
        "pid_files": {d: str(layout.pid_file(d)) for d in DAEMONS},
        "pids": daemon_pids(layout),
        "logs": {d: str(layout.log_file(d)) for d in DAEMONS},
    }


def load_facts(layout: Layout) -> dict | None:
    try:
        return json.loads(layout.facts.read_text())
    except (OSError, ValueError):
        return None


# ------------------------------------------------------------------------- checks

def sinfo_nodes(layout: Layout) -> list[tuple[str, str, str]]:
    p = run(["sinfo", "-h", "-N", "-o", "%N|%t|%P"], env=client_env(layout), check=False, timeout=20)
    if p.returncode != 0:
        return []
    rows = []
    for line in p.stdout.splitlines():
        bits = line.strip().split("|")
        if len(bits) == 3:
            rows.append((bits[0], bits[1], bits[2]))
    return rows


def wait_node_idle(layout: Layout, node: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        rows = sinfo_nodes(layout)
        last = rows
        states = {r[1] for r in rows if r[0] == node}
        if states == {"idle"}:
            return
        alive = daemon_alive(layout)
        for d in ("munged", "slurmctld", "slurmd"):
            if not alive[d]:
                raise ClusterError(f"{d} died while waiting for node {node} to become idle.\n"
                                   f"  {layout.log_file(d)}:\n{tail(layout.log_file(d))}\n"
                                   f"  {layout.out_file(d)}:\n{tail(layout.out_file(d))}")
        time.sleep(0.2)
    raise ClusterError(f"node {node} not idle after {timeout:.0f}s (sinfo: {last}).\n"
                       f"  slurmctld log:\n{tail(layout.log_file('slurmctld'))}\n"
                       f"  slurmd log:\n{tail(layout.log_file('slurmd'))}")


def ssh_cmd(layout: Layout, remote: str) -> list[str]:
    return ["ssh", "-F", str(layout.ssh_config), HOST_ALIAS, "--", remote]


def wait_ssh(layout: Layout, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        p = run(ssh_cmd(layout, 'echo "ok:$SLURM_CONF"'), check=False, timeout=20)
        if p.returncode == 0 and p.stdout.strip() == f"ok:{layout.slurm_conf}":
            return
        last = (p.stdout + p.stderr).strip()
        if not ours(read_pid(layout.pid_file("sshd")), layout):
            break
        time.sleep(0.2)
    raise ClusterError(f"ssh -F {layout.ssh_config} {HOST_ALIAS} does not work: {last}\n"
                       f"  sshd log:\n{tail(layout.log_file('sshd'))}")


def healthy(layout: Layout) -> tuple[bool, str]:
    facts = load_facts(layout)
    if not facts:
        return False, "no cluster.json"
    alive = daemon_alive(layout)
    dead = [d for d, ok in alive.items() if not ok]
    if dead:
        return False, "not running: " + ", ".join(dead)
    states = {r[1] for r in sinfo_nodes(layout) if r[0] == facts["node"]}
    if not states:
        return False, "sinfo does not answer"
    if states & {"down", "drain", "drng", "fail", "unk", "down*", "drain*", "unk*", "fail*"}:
        return False, f"node state {sorted(states)}"
    p = run(ssh_cmd(layout, "true"), check=False, timeout=20)
    if p.returncode != 0:
        return False, f"ssh fails: {p.stderr.strip()}"
    return True, "running"


# ----------------------------------------------------------------------- commands

def dir_is_ours_or_empty(layout: Layout) -> bool:
    root = layout.root
    if not root.exists():
        return True
    if not root.is_dir():
        return False
    return layout.marker.exists() or not any(root.iterdir())


def etc_link_target_ok(layout: Layout) -> bool:
    try:
        return ETC_SLURM_CONF.is_symlink() and os.readlink(ETC_SLURM_CONF) == str(layout.slurm_conf)
    except OSError:
        return False


def make_etc_link(layout: Layout) -> bool:
    """Convenience: /etc/slurm/slurm.conf -> our conf, so bare `sinfo` works in any
    shell.  Never replaces a real file nor a live link of another run; the sshd
    SetEnv SLURM_CONF is what ssh-side commands rely on."""
    try:
        ETC_SLURM_CONF.parent.mkdir(parents=True, exist_ok=True)
        if ETC_SLURM_CONF.is_symlink():
            if not ETC_SLURM_CONF.exists():  # dangling: a dead run's link
                ETC_SLURM_CONF.unlink()
            elif etc_link_target_ok(layout):
                return True
            else:
                return False
        elif ETC_SLURM_CONF.exists():
            return False
        os.symlink(layout.slurm_conf, ETC_SLURM_CONF)
        return True
    except OSError as e:
        log(f"not linking {ETC_SLURM_CONF}: {e}")
        return False


def remove_etc_link(layout: Layout) -> None:
    if etc_link_target_ok(layout):
        ETC_SLURM_CONF.unlink()
        log(f"removed symlink {ETC_SLURM_CONF}")


def stop(layout: Layout) -> list[int]:
    """Cancel jobs, stop daemons (reverse order), sweep marked leftovers. Returns survivors."""
    alive = daemon_alive(layout)
    if alive.get("slurmctld") and layout.slurm_conf.exists():
        env = client_env(layout)
        p = run(["squeue", "-h", "-o", "%i", "--states=PENDING,RUNNING,SUSPENDED,CONFIGURING,COMPLETING"],
                env=env, check=False, timeout=20)
        jobs = p.stdout.split() if p.returncode == 0 else []
        if jobs:
            log(f"cancelling {len(jobs)} job(s)")
            run(["scancel", *jobs], env=env, check=False, timeout=30)
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                p = run(["squeue", "-h", "-o", "%i"], env=env, check=False, timeout=20)
                if p.returncode != 0 or not p.stdout.split():
                    break
                time.sleep(0.2)
    survivors = []
    pids = daemon_pids(layout)
    for d in reversed(DAEMONS):
        pid = pids[d]
        if ours(pid, layout):
            # the daemon and what it forked that is still attached to it (sshd sessions)
            tree = [pid, *descendants(pid)]
            log(f"stopping {d} (pid {pid}" + (f" and {len(tree) - 1} child(ren)" if len(tree) > 1 else "") + ")")
            left = kill_and_wait(tree)
            if left:
                log(f"{d}: pids {left} would not die")
                survivors += left
    # slurmstepd, job processes and ssh sessions that carry our marker
    rest = stray_processes(layout)
    if rest:
        log(f"stopping {len(rest)} leftover process(es): {rest}")
        survivors += kill_and_wait(rest, timeout=5)
    remove_etc_link(layout)
    if layout.munge_run_fallback.exists():
        shutil.rmtree(layout.munge_run_fallback, ignore_errors=True)
        try:
            layout.munge_run_fallback.parent.rmdir()  # only if empty
        except OSError:
            pass
    return survivors


def cmd_down(layout: Layout) -> int:
    if not layout.root.exists():
        log(f"{layout.root} does not exist; nothing to stop")
        return 0
    if not layout.marker.exists():
        if any(layout.root.iterdir()):
            raise ClusterError(f"{layout.root} is not a slurmbook cluster dir (no {MARKER_FILE}); refusing to touch it")
    left = stop(layout)
    if left:
        raise ClusterError(f"processes still alive: {left}; not removing {layout.root}")
    shutil.rmtree(layout.root, ignore_errors=True)
    if layout.root.exists():
        raise ClusterError(f"could not remove {layout.root}")
    log(f"down: stopped and removed {layout.root}")
    return 0


def cmd_status(layout: Layout) -> int:
    facts = load_facts(layout) or {"dir": str(layout.root)}
    ok, why = healthy(layout) if layout.root.exists() else (False, "no run dir")
    alive = daemon_alive(layout) if layout.root.exists() else {d: False for d in DAEMONS}
    facts.update({"running": ok, "reason": why, "alive": alive})
    if ok:
        facts["nodes"] = [{"node": n, "state": s, "partition": p} for n, s, p in sinfo_nodes(layout)]
    print(json.dumps(facts, sort_keys=True), flush=True)
    if ok:
        return 0
    return 3 if not any(alive.values()) else 1


def cmd_up(layout: Layout) -> int:
    t0 = time.monotonic()
    if os.geteuid() != 0:
        raise ClusterError("must run as root (it installs packages and starts slurmd/sshd as root)")
    if not dir_is_ours_or_empty(layout):
        raise ClusterError(f"{layout.root} exists and is not a slurmbook cluster dir (no {MARKER_FILE}); "
                           f"pick another --dir")
    if layout.marker.exists():
        ok, why = healthy(layout)
        if ok:
            log(f"already running in {layout.root}")
            facts = load_facts(layout)
            facts["pids"] = daemon_pids(layout)
            if facts.get("scheduler", "tuned") != scheduler_setting():
                log(f"note: this run has scheduler {facts.get('scheduler', 'tuned')!r}, not the "
                    f"{scheduler_setting()!r} {SCHEDULER_ENV} asks for; `down` it first to change it")
            print(json.dumps(facts, sort_keys=True), flush=True)
            return 0
        log(f"existing run in {layout.root} is not healthy ({why}); restarting it cleanly")
        left = stop(layout)
        if left:
            raise ClusterError(f"could not stop old processes {left}")
        shutil.rmtree(layout.root)

    ensure_installed()
    ensure_scrontab()

    # fresh tree
    layout.root.mkdir(parents=True, exist_ok=True)
    os.chmod(layout.root, 0o755)
    layout.marker.write_text("slurmbook test cluster run dir; `cluster.py down` removes it\n")
    for d in (layout.pids, layout.logs, layout.state, layout.spool, layout.munge_dir, layout.ssh_dir,
              layout.scratch):
        d.mkdir(parents=True, exist_ok=True)
    os.chmod(layout.scratch, 0o1777)
    os.chmod(layout.munge_dir, 0o755)  # munged: socket dir must be world-searchable
    os.chmod(layout.ssh_dir, 0o700)

    try:
        return _bring_up(layout, t0)
    except BaseException:
        log("up failed; stopping what was started (logs kept in " + str(layout.root) + ")")
        try:
            stop(layout)
        except Exception as e:  # noqa: BLE001
            log(f"cleanup error: {e}")
        raise


def _bring_up(layout: Layout, t0: float) -> int:
    node = socket.gethostname().split(".")[0]
    hw = node_hardware()
    ssh_port, ctld_port, slurmd_port = free_ports(3)
    ports = {"ssh": ssh_port, "slurmctld": ctld_port, "slurmd": slurmd_port}
    slurm_version = (run(["slurmctld", "-V"], timeout=20).stdout.split() or ["?"])[-1]

    # munge: own key, own socket (slurm finds it through AuthInfo=socket=...)
    layout.munge_socket.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    os.chmod(layout.munge_socket.parent, 0o755)
    with open(layout.munge_key, "wb") as f:
        f.write(os.urandom(1024))
    os.chmod(layout.munge_key, 0o400)
    start_daemon("munged", ["munged", f"--socket={layout.munge_socket}", f"--key-file={layout.munge_key}",
                            f"--log-file={layout.log_file('munged')}", f"--pid-file={layout.pid_file('munged')}",
                            f"--seed-file={layout.munge_dir / 'munged.seed'}", "--num-threads=4"], layout)
    if layout.munge_socket.parent != layout.munge_dir:
        log(f"{layout.root} is below a directory that is not world-searchable; munge socket in "
            f"{layout.munge_socket.parent}")
    cred = run(["munge", "-S", str(layout.munge_socket), "-n"], timeout=20).stdout
    run(["unmunge", "-S", str(layout.munge_socket)], input=cred, timeout=20)

    write(layout.slurm_conf, slurm_conf_text(layout, node, hw, ctld_port, slurmd_port))
    etc_link = make_etc_link(layout)
    conf = str(layout.slurm_conf)
    start_daemon("slurmctld", ["slurmctld", "-f", conf], layout)
    start_daemon("slurmd", ["slurmd", "-f", conf, "-N", node], layout)
    wait_node_idle(layout, node, UP_TIMEOUT)
    log(f"node {node} idle")

    # sshd with its own host key; a fresh client key; pinned known_hosts
    run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "slurmbook-test-host", "-f", str(layout.host_key)])
    run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "slurmbook-test-client", "-f", str(layout.client_key)])
    write(layout.authorized_keys, layout.client_key.with_suffix(".pub").read_text(), 0o600)
    host_pub = layout.host_key.with_suffix(".pub").read_text().split()
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation dir
    for attempt in range(1, 4):
        write(layout.known_hosts, f"[127.0.0.1]:{ssh_port} {host_pub[0]} {host_pub[1]}\n", 0o644)
        write(layout.sshd_config, sshd_config_text(layout, ssh_port), 0o600)
        write(layout.ssh_config, ssh_config_text(layout, ssh_port), 0o644)
        run(["/usr/sbin/sshd", "-t", "-f", str(layout.sshd_config)], timeout=20)
        try:
            start_daemon("sshd", ["/usr/sbin/sshd", "-f", str(layout.sshd_config),
                                  "-E", str(layout.log_file("sshd"))], layout)
            break
        except ClusterError as e:
            # the free port was taken between picking and binding: pick another
            if attempt == 3 or "Address already in use" not in tail(layout.log_file("sshd"), 5):
                raise
            log(f"port {ssh_port} got taken ({e}); retrying with another")
            ssh_port = ports["ssh"] = free_port()
    wait_ssh(layout, 30)
    p = run(ssh_cmd(layout, "sinfo -h -N -o %N:%t"), check=False, timeout=30)
    if p.returncode != 0 or f"{node}:idle" not in p.stdout:
        raise ClusterError(f"sinfo through ssh does not see node {node} idle: {p.stdout}{p.stderr}")

    facts = build_facts(layout, node, ports, hw, slurm_version, etc_link)
    write(layout.facts, json.dumps(facts, indent=2, sort_keys=True) + "\n")
    log(f"up in {time.monotonic() - t0:.1f}s: ssh -F {layout.ssh_config} {HOST_ALIAS}; "
        f"SLURM_CONF={layout.slurm_conf}")
    print(json.dumps(facts, sort_keys=True), flush=True)
    return 0


@contextlib.contextmanager
def lock(layout: Layout, create: bool):
    """Serialize up/down: flock on the run dir's parent (leaves no file behind)."""
    parent = layout.root.parent
    if create:
        parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(parent, os.O_RDONLY | os.O_DIRECTORY)
    except FileNotFoundError:
        yield
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log(f"another cluster.py holds the lock on {parent}; waiting")
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("command", choices=["up", "down", "status"])
    ap.add_argument("--dir", type=Path, default=None,
                    help="run directory (default: $SLURMBOOK_CLUSTER_DIR or /tmp/slurmbook-cluster)")
    args = ap.parse_args(argv)
    layout = Layout(args.dir or default_dir())
    os.environ["PATH"] = _path()  # slurmctld, slurmd, munged, sshd live in sbin dirs
    try:
        if args.command == "status":
            return cmd_status(layout)
        with lock(layout, create=args.command == "up"):
            return {"up": cmd_up, "down": cmd_down}[args.command](layout)
    except ClusterError as e:
        print(f"cluster.py {args.command}: error: {e}", file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:
        print(f"cluster.py {args.command}: interrupted", file=sys.stderr, flush=True)
        return 130


if __name__ == "__main__":
    sys.exit(main())
