"""slurmbook on a real JupyterHub on the loopback cluster's submit host (issue 13).

The hub (jupyterhub 6 from PyPI, configurable-http-proxy 5 from npm, the
DummyAuthenticator with a password, LocalProcessSpawner) runs from a fresh
virtualenv that has only jupyterhub, jupyterlab and the slurmbook wheel
(conftest.py): the kernel is the wheel's. The single-user server's
environment has the cluster's `remote_env` (SLURM_CONF, SCRATCH), a site
configuration (SLURMBOOK_SITE_CONFIG) and, first on PATH, an `ssh` that
writes a marker and fails loudly. The user's notebook directory holds a
notebook and a `slurmbook.toml` whose profile `hub` has no `host`.

`jupyterhub.test.mjs` drives Debian's Chromium with playwright-core like a
user: logs in (a wrong password first), opens the notebook, runs `%config`,
`%materialize +total` (watching the cell while the Slurm job runs), `%load
total`, `total`, and a cell that reports the kernel's executable and PATH and
runs the `ssh` on PATH once as a control. Its JSON facts are asserted here;
screenshots go to tests/hub/output/ (gitignored).

Ports (hub, proxy API, hub API) are free loopback ports chosen per run;
everything lives in a temporary directory and is stopped by this module.
"""
import json
import os
import pathlib
import re
import secrets
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request

import nbformat
import pytest

from hubkit import HERE, OUTPUT, ROOT, clean_env

sys.path.insert(0, str(ROOT / "tests" / "browser"))
from browserkit import CHROMIUM, ensure_chromium, ensure_node, free_port, npm_ci, tail  # noqa: E402

CLUSTER_DIR = pathlib.Path(os.environ.get("SLURMBOOK_CLUSTER_DIR", "/tmp/slurmbook-cluster"))
USER = "root"  # LocalProcessSpawner runs the server as this system user; we are root
NODE_TIMEOUT = 660  # the script's own budget is 600 s, then a 30 s watchdog
STEPS = 8  # lines the asset `total` prints, one a second, while its job runs

pytestmark = pytest.mark.timeout(2400)

NOTEBOOK_CELLS = [
    ("markdown", "# Slurm from a JupyterHub\n\nThe profile `hub` has no `host`: jobs are submitted on this machine."),
    ("code", "%config"),
    ("code", "%%asset numbers\n(1..=100).collect::<Vec<u64>>()"),
    ("code", "%%asset total\n"
             f"for i in 1..={STEPS} {{\n"
             f"    println!(\"step {{i}} of {STEPS} in Slurm job {{}}\", std::env::var(\"SLURM_JOB_ID\").unwrap_or_default());\n"
             "    std::thread::sleep(std::time::Duration::from_secs(1));\n"
             "}\n"
             "numbers.iter().sum::<u64>()"),
    ("code", "%materialize +total"),
    ("code", "%load total"),
    ("code", "total"),
    # What the kernel runs as, and a control: the `ssh` first on PATH is the
    # marker-writing one (its marker for this call goes to another file).
    ("code", "let control = std::process::Command::new(\"ssh\").arg(\"control-probe\")\n"
             "    .env(\"SB_TEST_SSH_MARKER\", std::env::var(\"SB_TEST_SSH_CONTROL\").unwrap())\n"
             "    .output().unwrap();\n"
             "println!(\"exe={}\", std::env::current_exe().unwrap().display());\n"
             "println!(\"kernel_pid={}\", std::os::unix::process::parent_id());\n"
             "println!(\"path0={}\", std::env::var(\"PATH\").unwrap().split(':').next().unwrap());\n"
             "println!(\"ssh_exit={:?}\", control.status.code());\n"
             "println!(\"ssh_stderr={}\", String::from_utf8_lossy(&control.stderr).trim());"),
]

SSH_SHIM = """#!/bin/sh
# On the hub, a host-less profile must never run ssh: leave a mark, fail loudly.
echo "ssh $*" >> "${SB_TEST_SSH_MARKER:-/dev/null}"
echo "slurmbook test: ssh must not run on the hub (ssh $*)" >&2
exit 255
"""


@pytest.fixture(scope="module")
def facts():
    path = CLUSTER_DIR / "cluster.json"
    assert path.exists(), (f"the loopback cluster is not up ({path} missing): "
                           f"run python3 tests/cluster/cluster.py up (tests/run-all.sh does)")
    return json.loads(path.read_text())


def _http_status(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return resp.status


def _alive(pid, needle):
    """pid is running and its command line contains needle (a recycled pid is not ours)."""
    try:
        return needle in pathlib.Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return False


def _server_pid(db):
    """The single-user server's pid, from the hub's database (LocalProcessSpawner state)."""
    try:
        with sqlite3.connect(db) as conn:
            for (state,) in conn.execute("SELECT state FROM spawners"):
                pid = json.loads(state or "{}").get("pid")
                if pid:
                    return pid
    except sqlite3.Error:
        pass
    return None


def _stop_hub(hub, proxy_pid_file, server_pid):
    """SIGTERM to the hub (it stops the single-user server and the proxy),
    then whatever of ours is left, by pid."""
    if hub.poll() is None:
        hub.send_signal(signal.SIGTERM)
        try:
            hub.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(hub.pid, signal.SIGKILL)
            hub.wait(timeout=10)
    leftovers = []
    if server_pid and _alive(server_pid, "jupyterhub-singleuser"):
        leftovers.append(server_pid)
    try:
        proxy_pid = int(proxy_pid_file.read_text().strip())
        if _alive(proxy_pid, "configurable-http-proxy"):
            leftovers.append(proxy_pid)
    except (OSError, ValueError):
        pass
    for pid in leftovers:
        os.kill(pid, signal.SIGTERM)
    return leftovers


@pytest.fixture(scope="module")
def hub(tmp_path_factory, hub_env, facts):
    """Runs the browser script against a fresh JupyterHub; returns its JSON result."""
    ensure_chromium()
    node = ensure_node()
    npm_ci(HERE, "playwright-core", "configurable-http-proxy")
    chp = HERE / "node_modules" / ".bin" / "configurable-http-proxy"
    assert chp.exists(), chp

    tmp = tmp_path_factory.mktemp("jupyterhub")
    notebooks = tmp / "notebooks"
    notebooks.mkdir()
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell(src) if kind == "markdown" else nbformat.v4.new_code_cell(src)
        for kind, src in NOTEBOOK_CELLS])
    nb.metadata["kernelspec"] = {"name": "slurmbook", "display_name": "Rust (slurmbook)", "language": "rust"}
    nbformat.write(nb, notebooks / "hub.ipynb")
    # The user's project: the host-less profile, chosen by default.
    (notebooks / "slurmbook.toml").write_text(
        'profile = "hub"\n[profiles.hub]   # no host: sbatch runs on this machine\n'
        'target = "slurm"\ntime = "00:05:00"\n')
    # The site's defaults, read before the user's file.
    site = tmp / "site" / "slurmbook.toml"
    site.parent.mkdir()
    site.write_text('[profiles.hub]\npartition = "debug"\nremote_dir = "$SCRATCH/slurmbook-hub"\n'
                    'time = "00:30:00"\n')
    shim_dir = tmp / "no-ssh"
    shim_dir.mkdir()
    (shim_dir / "ssh").write_text(SSH_SHIM)
    (shim_dir / "ssh").chmod(0o755)
    marker, control = tmp / "ssh-was-run", tmp / "ssh-control"

    cargo = shutil.which("cargo")
    assert cargo, "cargo is not on PATH: evcxr and the job build need a Rust toolchain"
    user_path = ":".join([str(shim_dir), str(hub_env / "bin"), str(pathlib.Path(cargo).parent),
                          "/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"])
    user_dirs = {name: tmp / "user" / name for name in ("data", "config", "runtime", "lab-settings", "lab-workspaces")}
    (user_dirs["lab-settings"] / "@jupyterlab" / "apputils-extension").mkdir(parents=True)
    (user_dirs["lab-settings"] / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    environment = {
        **facts["remote_env"],  # SLURM_CONF, SCRATCH: what a login node's users have
        "PATH": user_path,
        "SLURMBOOK_SITE_CONFIG": str(site),
        "SB_TEST_SSH_MARKER": str(marker),
        "SB_TEST_SSH_CONTROL": str(control),
        # Jupyter's per-user places, private to this run (not ~root).
        "JUPYTER_DATA_DIR": str(user_dirs["data"]),
        "JUPYTER_CONFIG_DIR": str(user_dirs["config"]),
        "JUPYTER_RUNTIME_DIR": str(user_dirs["runtime"]),
        "JUPYTERLAB_SETTINGS_DIR": str(user_dirs["lab-settings"]),
        "JUPYTERLAB_WORKSPACES_DIR": str(user_dirs["lab-workspaces"]),
    }
    for var in ("CARGO_HOME", "RUSTUP_HOME", "RUSTUP_TOOLCHAIN"):
        if var in os.environ:
            environment[var] = os.environ[var]

    port, api_port, hub_port = free_port(), free_port(), free_port()
    while len({port, api_port, hub_port}) < 3:
        api_port, hub_port = free_port(), free_port()
    password = secrets.token_urlsafe(12)
    db = tmp / "jupyterhub.sqlite"
    proxy_pid_file = tmp / "proxy.pid"
    config = tmp / "jupyterhub_config.py"
    config.write_text(f"""c = get_config()  # noqa
c.JupyterHub.bind_url = {f"http://127.0.0.1:{port}"!r}
c.JupyterHub.hub_bind_url = {f"http://127.0.0.1:{hub_port}"!r}
c.ConfigurableHTTPProxy.api_url = {f"http://127.0.0.1:{api_port}"!r}
c.ConfigurableHTTPProxy.command = [{str(chp)!r}]
c.ConfigurableHTTPProxy.pid_file = {str(proxy_pid_file)!r}
c.JupyterHub.db_url = {f"sqlite:///{db}"!r}
c.JupyterHub.cookie_secret_file = {str(tmp / "cookie_secret")!r}
c.JupyterHub.pid_file = {str(tmp / "jupyterhub.pid")!r}
c.JupyterHub.authenticator_class = "dummy"
c.DummyAuthenticator.password = {password!r}
c.Authenticator.allowed_users = {{{USER!r}}}
c.JupyterHub.spawner_class = "localprocess"
c.Spawner.cmd = [{str(hub_env / "bin" / "jupyterhub-singleuser")!r}]
c.Spawner.args = ["--allow-root"]
c.Spawner.notebook_dir = {str(notebooks)!r}
c.Spawner.default_url = "/lab"
c.Spawner.env_keep = ["LANG", "LC_ALL"]
c.Spawner.environment = {environment!r}
c.Spawner.start_timeout = 180
c.Spawner.http_timeout = 180
c.JupyterHub.cleanup_servers = True
c.JupyterHub.cleanup_proxy = True
""")
    log_path = tmp / "jupyterhub.log"
    log = open(log_path, "w")
    hub_proc = subprocess.Popen([str(hub_env / "bin" / "jupyterhub"), "-f", str(config)], cwd=tmp,
                                env=clean_env(PATH=f"{hub_env / 'bin'}:/usr/local/bin:/usr/bin:/bin"),
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    server_pid = None
    try:
        deadline = time.time() + 120
        while True:
            if hub_proc.poll() is not None:
                pytest.fail(f"jupyterhub exited with {hub_proc.returncode}:\n{tail(log_path)}")
            try:
                if _http_status(f"{url}/hub/api/") == 200:
                    break
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            if time.time() > deadline:
                pytest.fail(f"jupyterhub did not answer on {url} within 120 s:\n{tail(log_path)}")
            time.sleep(0.3)

        OUTPUT.mkdir(exist_ok=True)
        for old in OUTPUT.glob("*.png"):
            old.unlink()
        out = tmp / "result.json"
        try:
            run = subprocess.run(
                [node, str(HERE / "jupyterhub.test.mjs"), "--url", url, "--user", USER,
                 "--password", password, "--notebook", "hub.ipynb", "--steps", str(STEPS),
                 "--out", str(out), "--artifacts", str(OUTPUT)],
                cwd=HERE, env={**os.environ, "CHROMIUM": str(CHROMIUM)},
                capture_output=True, text=True, timeout=NODE_TIMEOUT,
            )
        except subprocess.TimeoutExpired:
            pytest.fail(f"the browser script ran over {NODE_TIMEOUT} s;\npartial result: "
                        f"{out.read_text()[-4000:] if out.exists() else '(none)'}\nhub log:\n{tail(log_path)}")
        if not out.exists():
            pytest.fail(f"the browser script wrote no result (exit {run.returncode}):\n"
                        f"{run.stdout[-3000:]}\n{run.stderr[-3000:]}\nhub log:\n{tail(log_path)}")
        result = json.loads(out.read_text())
        shutil.copy(out, OUTPUT / "result.json")
        result["_exit"] = run.returncode
        result["_stderr"] = run.stderr[-3000:]
        result["_hub_log"] = tail(log_path, 60)
        result["_hub_env"] = str(hub_env)
        result["_marker"] = marker.read_text() if marker.exists() else None
        result["_control"] = control.read_text() if control.exists() else None
        result["_notebooks"] = str(notebooks)
        server_pid = _server_pid(db)
        result["_server_pid"] = server_pid
        return result
    finally:
        server_pid = server_pid or _server_pid(db)
        leftovers = _stop_hub(hub_proc, proxy_pid_file, server_pid)
        log.close()
        OUTPUT.mkdir(exist_ok=True)
        shutil.copy(log_path, OUTPUT / "jupyterhub.log")
        if leftovers:
            print(f"stopped what the hub left running: {leftovers}")
        if "result" in locals():
            result["_leftovers"] = leftovers
            result["_kernel_left"] = _kernel_outlives_the_hub(result)


def _kernel_outlives_the_hub(result):
    """The kernel's pid (reported by a cell) if it is still running a minute
    after the hub stopped (then it is stopped here); None when it ended."""
    try:
        checks = result["steps"]["checks"]["outputs"]
        pid = int(re.search(r"kernel_pid=(\d+)", text(checks)).group(1))
    except (KeyError, AttributeError, ValueError):
        return None
    deadline = time.monotonic() + 60
    while _alive(pid, "slurmbook") and time.monotonic() < deadline:
        time.sleep(0.5)
    if _alive(pid, "slurmbook"):
        os.kill(pid, signal.SIGTERM)
        return pid
    return None


def step(hub, name):
    """The facts of one step of the browser script; fails with its error if it did not complete."""
    assert not hub.get("fatal"), f"the browser script crashed: {hub['fatal']}\n{hub.get('_stderr', '')}"
    facts = hub["steps"].get(name)
    assert facts is not None, f"step {name!r} never ran (steps: {list(hub['steps'])}); stderr: {hub.get('_stderr', '')}"
    assert facts["ok"], (f"browser step {name!r} failed: {facts.get('error')}\nfacts: "
                         f"{json.dumps({k: v for k, v in facts.items() if k != 'error'})[:3000]}\n"
                         f"screenshot: {hub['screenshots'].get('failed-' + name)}\nhub log:\n{hub['_hub_log']}")
    return facts


def text(outputs):
    return "\n".join(o["text"] for o in outputs)


def test_login_needs_the_password_and_spawns_the_users_server(hub):
    f = step(hub, "login")
    assert "Invalid username or password" in f["wrong_password_error"], f
    assert f["after_wrong_password"].endswith("/hub/login") or "/hub/login" in f["after_wrong_password"], f
    assert re.search(r"/user/root/lab", f["landed"]), f["landed"]


def test_the_notebook_runs_the_wheels_kernel(hub):
    f = step(hub, "open")
    assert f["toolbar_kernel"] == "Rust (slurmbook)", f
    specs = f["kernelspecs"]["kernelspecs"]
    assert "slurmbook" in specs, specs
    # The wheel's kernelspec: argv[0] is the bare `slurmbook` found on PATH
    # (a `slurmbook install` writes an absolute path).
    assert specs["slurmbook"]["spec"]["argv"][0] == "slurmbook", specs["slurmbook"]
    checks = step(hub, "checks")
    lines = dict(line.split("=", 1) for line in text(checks["outputs"]).splitlines() if "=" in line)
    assert lines.get("exe") == f"{hub['_hub_env']}/bin/slurmbook", lines


def test_config_shows_the_local_transport_and_each_values_source(hub):
    shown = text(step(hub, "config")["outputs"])
    assert "transport: local (no SSH) (Slurm runs)" in shown, shown
    assert re.search(r"profile\s+= hub\s+\(.*/notebooks/slurmbook\.toml\)", shown), shown
    assert re.search(r"target\s+= slurm\s+\(.*/notebooks/slurmbook\.toml \[profiles\.hub\]\)", shown), shown
    # The user's file overrides the site's time; the site's partition and remote_dir stay.
    assert re.search(r"time\s+= 00:05:00\s+\(.*/notebooks/slurmbook\.toml \[profiles\.hub\]\)", shown), shown
    assert re.search(r"partition\s+= debug\s+\(site .*/site/slurmbook\.toml \[profiles\.hub\]\)", shown), shown
    assert re.search(r"remote_dir\s+= \$SCRATCH/slurmbook-hub\s+\(site .*/site/slurmbook\.toml", shown), shown
    assert re.search(r"site config: .*/site/slurmbook\.toml", shown), shown
    assert not re.search(r"^host\s+=", shown, re.M), shown


def test_job_lines_stream_into_the_cell_while_the_job_runs(hub):
    f = step(hub, "materialize")
    during = f["during"]
    assert during, f"no state of the cell was seen with a job line before the run ended: {f.get('states')}"
    # The cell was still executing, the job still running, and only part of
    # its lines had arrived.
    assert during["prompt"] == "[*]:", during
    assert f"[total] step 1 of {STEPS} in Slurm job" in during["text"], during["text"]
    assert f"step {STEPS} of {STEPS}" not in during["text"], during["text"]
    assert "done, 0 fresh" not in during["text"], during["text"]
    assert any(row[0] == "total" and row[1] == "running" for row in during["rows"]), during["rows"]
    shot = pathlib.Path(hub["screenshots"]["03-streaming"])
    assert shot.is_file() and shot.stat().st_size > 10_000, shot
    # The number of job lines shown went up step by step (not all at the end).
    counts = f["line_counts"]
    assert counts == sorted(counts) and len(set(counts)) >= 3, counts


def test_the_run_ends_with_the_jobs_output_and_table(hub):
    f = step(hub, "materialize")
    final = f["final_text"]
    job_ids = set(re.findall(r"\[total\] step \d+ of \d+ in Slurm job (\d+)", final))
    assert len(job_ids) == 1, f"the lines should come from one Slurm job: {final}"
    for i in range(1, STEPS + 1):
        assert f"[total] step {i} of {STEPS} in Slurm job" in final, final
    assert "2 done, 0 fresh, 0 failed" in final, final
    assert [r[:2] for r in f["final_rows"]] == [["numbers", "done"], ["total", "done"]], f["final_rows"]


def test_the_value_is_loaded_and_shown(hub):
    f = step(hub, "load")
    assert "loaded total: u64" in text(f["load"]), f["load"]
    assert text(f["value"]) == "5050", f["value"]
    shot = pathlib.Path(hub["screenshots"]["05-value"])
    assert shot.is_file() and shot.stat().st_size > 10_000, shot


def test_no_ssh_was_executed(hub):
    f = step(hub, "checks")
    lines = dict(line.split("=", 1) for line in text(f["outputs"]).splitlines() if "=" in line)
    # The control: the kernel's PATH starts with the marker-writing ssh, which
    # fails loudly when run...
    assert lines.get("path0", "").endswith("/no-ssh"), lines
    assert lines.get("ssh_exit") == "Some(255)" and "ssh must not run" in lines.get("ssh_stderr", ""), lines
    assert hub["_control"] == "ssh control-probe\n", hub["_control"]
    # ...and nothing else ran it: no marker from the whole session.
    assert hub["_marker"] is None, f"ssh was executed on the hub: {hub['_marker']}"


def test_everything_stops_with_the_hub(hub):
    # The hub stops the single-user server and the proxy; the server's kernel
    # then ends by itself (kernel/src/parent.rs), as nothing shuts it down.
    assert hub["_leftovers"] == [], f"left running after the hub stopped: {hub['_leftovers']}"
    assert hub["_kernel_left"] is None, f"the kernel {hub['_kernel_left']} outlived the hub"


def test_screenshots_and_no_page_errors(hub):
    for name in ("01-login", "02-notebook", "03-streaming", "04-materialized", "05-value"):
        shot = hub["screenshots"].get(name)
        assert shot and pathlib.Path(shot).is_file() and pathlib.Path(shot).stat().st_size > 10_000, \
            f"screenshot {name}: {shot}"
    print(f"\nscreenshots: {sorted(hub['screenshots'].values())}")
    assert hub["page_errors"] == [], f"uncaught errors in the page: {hub['page_errors']}"
    assert hub["_exit"] == 0, f"the browser script exited {hub['_exit']}: {hub['_stderr']}"
