"""The job environment on the loopback cluster (tests/cluster): building the
job binary on the cluster from vendored sources (`build = "remote"`); jobs
running in the notebook project's pixi environment (packed, uploaded once,
unpacked once by one of two concurrent jobs), and the failures that must stop
a run before anything is submitted (tampered package, missing lock, lock
without the cluster's platform); `env = "none"`; `%config` and
`slurmbook env status`. Every test runs over SSH and with a host-less
(local) profile (the `transport` fixture, conftest.py)."""
import json
import pathlib
import re
import subprocess
import uuid

import nbformat

from nbrun import ROOT, copy_notebook, db_rows, errors_of, execute, text_of

BINARY = ROOT / "target" / "debug" / "slurmbook"


def test_build_remote_builds_the_bundle_on_the_cluster_from_vendored_sources(tmp_path, transport):
    remote_dir = f"{transport.facts['scratch']}/remote-build-{uuid.uuid4().hex[:12]}"
    (tmp_path / "slurmbook.toml").write_text(
        transport.slurmbook_toml(remote_dir=remote_dir, extra='build = "remote"\n'))
    path = copy_notebook("slurm.ipynb", tmp_path)
    run = subprocess.run([BINARY, "run", path, "--profile", "cluster", "--select", "+total"],
                         capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "4 done, 0 fresh, 0 failed" in run.stdout
    # The job scripts run a binary built on the cluster, not an uploaded one.
    listing = transport.shell(f"ls {remote_dir}/builds/*/ {remote_dir}/builds/work/vendor")
    assert listing.returncode == 0, listing.stderr
    assert re.search(r"slurmbook_job_[0-9a-f]{16}", listing.stdout), listing.stdout
    assert re.search(r"^serde-1\.\d+\.\d+$", listing.stdout, re.M), listing.stdout
    scripts = transport.shell(f"cat {remote_dir}/runs/*/*.sh")
    assert scripts.returncode == 0, scripts.stderr
    assert re.search(rf"{re.escape(remote_dir)}/builds/[0-9a-f]{{16}}/slurmbook_job_", scripts.stdout), scripts.stdout
    assert f"{remote_dir}/cache/" not in scripts.stdout, scripts.stdout
    # A forced repeat finds the build: nothing vendored or sent again.
    again = subprocess.run([BINARY, "run", path, "--profile", "cluster", "--select", "+total", "--force"],
                           capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stdout + again.stderr
    assert transport.stats(again.stdout).bytes == 0, again.stdout
    assert db_rows(path, "SELECT count(*) FROM materializations WHERE status = 'ok'") == [(8,)]


# --- The notebook project's pixi environment (slurmbook-pack's fixture) ---
#
# target/debug/examples/make_test_env writes a pixi project locking a local
# channel of three packages: libgreet (lib/libgreet.so), greet-bin
# (bin/greet, linked against libgreet without an rpath: it only runs with
# the environment activated) and hello-tool (a noarch script). The notebook's
# assets run them with std::process::Command and return what they print.

MAKE_TEST_ENV = ROOT / "target" / "debug" / "examples" / "make_test_env"
HELLO = "hello from hello-tool"
GREET = "hello from libgreet"
ENV_CELLS = [
    "%%asset hello: String\n"
    "let out = std::process::Command::new(\"hello-tool\").output().expect(\"hello-tool runs\");\n"
    "assert!(out.status.success(), \"hello-tool failed: {}\", String::from_utf8_lossy(&out.stderr));\n"
    "String::from_utf8_lossy(&out.stdout).trim().to_string()",
    "%%asset greeting: String\n"
    "let out = std::process::Command::new(\"greet\").output().expect(\"greet runs\");\n"
    "assert!(out.status.success(), \"greet failed: {}\", String::from_utf8_lossy(&out.stderr));\n"
    "println!(\"greet printed {:?}\", String::from_utf8_lossy(&out.stdout).trim());\n"
    "String::from_utf8_lossy(&out.stdout).trim().to_string()",
    "%%asset both: String\nformat!(\"{hello} / {greeting}\")",
]


def env_project(tmp_path, transport, lock_platform=None, extra_config=""):
    """The fixture's pixi project in tmp_path/project, a slurmbook.toml with a
    fresh remote_dir (a cold cluster cache), and env.ipynb; returns
    (notebook path, fixture facts, remote_dir)."""
    project = tmp_path / "project"
    args = [MAKE_TEST_ENV, project] + (["--lock-platform", lock_platform] if lock_platform else [])
    made = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert made.returncode == 0, made.stderr
    fixture = json.loads(made.stdout)
    remote_dir = f"{transport.facts['scratch']}/env-{uuid.uuid4().hex[:12]}"
    (project / "slurmbook.toml").write_text(transport.slurmbook_toml(remote_dir=remote_dir, extra=extra_config))
    path = project / "env.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in ENV_CELLS]), path)
    return path, fixture, remote_dir


def slurmbook(*args, timeout=600):
    return subprocess.run([BINARY, *map(str, args)], capture_output=True, text=True, timeout=timeout)


def run_env(path, *args):
    return slurmbook("run", path, "--profile", "cluster", *args)


def remote_values(transport, path):
    """asset -> value (JSON on the cluster) of the newest ok materializations."""
    rows = db_rows(path, "SELECT asset, value_path FROM materializations WHERE status = 'ok' ORDER BY id")
    values = {}
    for asset, value_path in rows:
        cat = transport.shell(f"cat {value_path}")
        assert cat.returncode == 0, cat.stderr
        values[asset] = json.loads(cat.stdout)
    return values


def env_logs(transport, remote_dir, run_id):
    """job name -> the lines `slurmbook-env unpack` printed (its result line)
    for run `run_id` (the run dir is remote_dir/runs/<run id>-<suffix>/)."""
    out = transport.shell(f"cd {remote_dir}/runs/{run_id}-*/ && grep -H -e '^unpacked' -e '^already unpacked' *.env.log")
    assert out.returncode == 0, out.stdout + out.stderr
    logs = {}
    for line in out.stdout.splitlines():
        name, text = line.split(":", 1)
        logs[name.removesuffix(".env.log")] = text
    return logs


def assert_nothing_submitted(transport, path, remote_dir):
    assert db_rows(path, "SELECT count(*) FROM materializations WHERE job_id IS NOT NULL") == [(0,)]
    queue = transport.shell("squeue --states=all -h -o '%i %o'")
    assert queue.returncode == 0, queue.stderr
    assert remote_dir not in queue.stdout, queue.stdout
    runs = transport.shell(f"ls -A {remote_dir}/runs 2>/dev/null | wc -l")
    assert runs.stdout.strip() == "0", runs.stdout


def test_jobs_run_the_packed_tools_once_unpacked_and_a_forced_repeat_uploads_nothing(tmp_path, transport):
    # One Slurm job per asset (grouped runs: see the kernel test below).
    path, fixture, remote_dir = env_project(tmp_path, transport, extra_config='jobs = "per-asset"\n')
    assert fixture["platform"] == "linux-64"
    before = slurmbook("env", "status", path, "--profile", "cluster")
    assert before.returncode == 0, before.stdout + before.stderr
    key = re.search(r"^cache key:\s+([0-9a-f]{16})$", before.stdout, re.M).group(1)
    assert f"project:       {path.parent}/pixi.toml" in before.stdout, before.stdout
    assert "platform:      linux-64 (the cluster's)" in before.stdout, before.stdout
    assert "local archive: not packed on this machine" in before.stdout, before.stdout
    assert "cluster:       not unpacked" in before.stdout, before.stdout

    first = run_env(path)
    out = first.stdout + first.stderr
    assert first.returncode == 0, out
    assert "3 done, 0 fresh, 0 failed" in out, out
    assert f'[greeting] greet printed "{GREET}"' in out, out
    assert transport.stats(out).bytes > 0, out
    # (a) the packaged tools ran in the jobs: the values are their output.
    assert remote_values(transport, path) == {"hello": HELLO, "greeting": GREET, "both": f"{HELLO} / {GREET}"}
    # The environment was unpacked once, before submission: every job found
    # it ready.
    logs = env_logs(transport, remote_dir, 1)
    prefix = f"{remote_dir}/envs/{key}"
    assert sorted(k.rsplit("-", 1)[1] for k in logs) == ["both", "greeting", "hello"], logs
    assert set(logs.values()) == {f"already unpacked: {prefix}"}, logs
    marker = transport.shell(f"cat {prefix}/.slurmbook-ready").stdout
    assert marker, "no ready marker"
    # (c) two unpacks racing on the cluster (as two jobs would, were the
    # prefix gone): exactly one installs, the other waits and finds it ready.
    script = transport.shell(f"cat {remote_dir}/runs/1-*/hello.sh").stdout
    tool, archive = re.search(r"unpacked=\$\((\S+) unpack --archive (\S+) --prefix", script).groups()
    race = transport.shell(f"p={remote_dir}/envs/race; "
                               f"{tool} unpack --archive {archive} --prefix $p > {remote_dir}/race1 2>/dev/null & "
                               f"{tool} unpack --archive {archive} --prefix $p > {remote_dir}/race2 2>/dev/null; "
                               f"wait; cat {remote_dir}/race1 {remote_dir}/race2")
    assert race.returncode == 0, race.stderr
    racers = sorted(race.stdout.splitlines())
    assert racers == sorted([f"unpacked 3 packages into {remote_dir}/envs/race",
                             f"already unpacked: {remote_dir}/envs/race"]), race.stdout

    after = slurmbook("env", "status", path, "--profile", "cluster")
    assert f"cache key:     {key}" in after.stdout, after.stdout
    assert re.search(rf"local archive: .*slurmbook-env-{key}\.tar \(\d+ bytes\)", after.stdout), after.stdout
    assert f"cluster:       unpacked at {prefix}" in after.stdout, after.stdout

    # (b) a second dispatch sends nothing, and no job unpacks again.
    again = run_env(path, "--force")
    out = again.stdout + again.stderr
    assert again.returncode == 0, out
    assert "3 done, 0 fresh, 0 failed" in out, out
    assert transport.stats(out).bytes == 0, out
    assert set(env_logs(transport, remote_dir, 2).values()) == {f"already unpacked: {prefix}"}
    assert remote_values(transport, path)["both"] == f"{HELLO} / {GREET}"

    # --repack packs and unpacks afresh (a new ready marker), before the jobs.
    repacked = run_env(path, "--force", "--repack")
    out = repacked.stdout + repacked.stderr
    assert repacked.returncode == 0, out
    assert set(env_logs(transport, remote_dir, 3).values()) == {f"already unpacked: {prefix}"}
    assert transport.shell(f"cat {prefix}/.slurmbook-ready").stdout not in ("", marker)
    assert remote_values(transport, path)["both"] == f"{HELLO} / {GREET}"


def test_an_unpack_failure_on_the_cluster_is_an_error_and_submits_nothing(tmp_path, transport):
    path, _, remote_dir = env_project(tmp_path, transport)
    # remote_dir/envs is a file: no environment can be unpacked under it.
    put = transport.shell(f"mkdir -p {remote_dir} && echo not-a-directory > {remote_dir}/envs")
    assert put.returncode == 0, put.stderr
    run = run_env(path)
    out = run.stdout + run.stderr
    assert run.returncode != 0, out
    assert "unpacking the environment `default`" in out and "on the cluster failed" in out, out
    assert_nothing_submitted(transport, path, remote_dir)


def test_the_kernel_materializes_in_the_packed_environment_and_config_names_it(tmp_path, transport):
    path, _, remote_dir = env_project(tmp_path, transport)
    nb = execute(path, cells=["%config", "%materialize --target slurm", "%load both", "both", "%config"])
    config = text_of(nb.cells[0].outputs)
    assert f"jobs env   = pixi environment `default` of {path.parent}/pixi.toml for linux-64" in config, config
    key = re.search(r"^env key    = ([0-9a-f]{16}) \(not packed locally yet", config, re.M)
    assert key, config
    out = nb.cells[1].outputs
    assert not errors_of(out), errors_of(out)
    assert "3 done, 0 fresh, 0 failed" in text_of(out)
    assert f'[greeting] greet printed "{GREET}"' in text_of(out)
    assert "loaded both: String" in text_of(nb.cells[2].outputs)
    # Grouped (the default): one allocation whose driver activated the
    # environment once for its three steps.
    assert db_rows(path, "SELECT count(DISTINCT job_id) FROM materializations WHERE status = 'ok'") == [(1,)]
    assert nb.cells[3].outputs[0]["data"]["text/plain"] == f'"{HELLO} / {GREET}"'
    config = text_of(nb.cells[4].outputs)
    assert re.search(rf"^env key    = {key.group(1)} \(packed locally, \d+ bytes\)$", config, re.M), config
    ready = transport.shell(f"test -e {remote_dir}/envs/{key.group(1)}/.slurmbook-ready")
    assert ready.returncode == 0


def test_a_tampered_package_fails_with_its_checksum_and_submits_nothing(tmp_path, transport):
    path, fixture, remote_dir = env_project(tmp_path, transport)
    package = pathlib.Path(fixture["packages"]["greet-bin"])
    data = bytearray(package.read_bytes())
    data[len(data) // 2] ^= 0xFF
    package.write_bytes(bytes(data))
    run = run_env(path)
    out = run.stdout + run.stderr
    assert run.returncode != 0, out
    assert "checksum mismatch for package greet-bin-1.0-h0_0.conda" in out, out
    assert_nothing_submitted(transport, path, remote_dir)


def test_a_project_without_a_lock_fails_clearly_and_submits_nothing(tmp_path, transport):
    path, _, remote_dir = env_project(tmp_path, transport)
    (path.parent / "pixi.lock").unlink()
    run = run_env(path)
    out = run.stdout + run.stderr
    assert run.returncode != 0, out
    assert f"no lock file at {path.parent}/pixi.lock (run `pixi lock` in the project)" in out, out
    assert_nothing_submitted(transport, path, remote_dir)


def test_a_lock_without_the_clusters_platform_fails_clearly_and_submits_nothing(tmp_path, transport):
    path, fixture, remote_dir = env_project(tmp_path, transport, lock_platform="osx-arm64")
    assert fixture["lock_platform"] == "osx-arm64"
    run = run_env(path)
    out = run.stdout + run.stderr
    assert run.returncode != 0, out
    assert "is not locked for platform `linux-64` (it is locked for: osx-arm64)" in out, out
    assert_nothing_submitted(transport, path, remote_dir)


def test_an_asset_asking_for_an_environment_the_lock_lacks_fails_clearly(tmp_path, transport):
    path, _, remote_dir = env_project(tmp_path, transport)
    nbformat.write(nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("%%asset on_gpu --env gpu\n1u8")]), path)
    run = run_env(path)
    out = run.stdout + run.stderr
    assert run.returncode != 0, out
    assert "has no environment `gpu` (it has: default)" in out, out
    assert_nothing_submitted(transport, path, remote_dir)


def test_env_none_runs_jobs_in_the_clusters_own_environment(tmp_path, transport):
    path, _, remote_dir = env_project(tmp_path, transport, extra_config='env = "none"\n')
    status = slurmbook("env", "status", path, "--profile", "cluster")
    assert status.returncode == 0, status.stderr
    assert "jobs env   = none (env = \"none\"): jobs run in the cluster's own environment" in status.stdout
    run = run_env(path, "--select", "hello,greeting")
    out = run.stdout + run.stderr
    assert run.returncode != 0, out
    errors = dict(db_rows(path, "SELECT asset, error FROM materializations WHERE job_id IS NOT NULL"))
    assert sorted(errors) == ["greeting", "hello"], errors
    assert "hello-tool runs" in errors["hello"] and "NotFound" in errors["hello"], errors
    assert "greet runs" in errors["greeting"] and "NotFound" in errors["greeting"], errors
    # Nothing was packed, sent or unpacked for the jobs.
    listing = transport.shell(f"ls -A {remote_dir}; ls {remote_dir}/runs/*/")
    assert "envs" not in listing.stdout.split(), listing.stdout
    assert ".env.log" not in listing.stdout, listing.stdout


def test_the_remote_build_uses_the_packed_environments_cargo(tmp_path, transport):
    import shutil

    project = tmp_path / "project"
    real_cargo = shutil.which("cargo")
    made = subprocess.run([MAKE_TEST_ENV, project, "--cargo-shim", real_cargo],
                          capture_output=True, text=True, timeout=120)
    assert made.returncode == 0, made.stderr
    remote_dir = f"{transport.facts['scratch']}/envbuild-{uuid.uuid4().hex[:12]}"
    (project / "slurmbook.toml").write_text(
        transport.slurmbook_toml(remote_dir=remote_dir, extra='build = "remote"\n'))
    path = project / "answer.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("%%asset answer\n6u32 * 7")]), path)
    run = run_env(path)
    out = run.stdout + run.stderr
    assert run.returncode == 0, out
    assert "1 done, 0 fresh, 0 failed" in out, out
    # The bundle was built on the cluster by the environment's cargo (its
    # activation put the shim first on PATH), and the job ran that binary.
    shim_log = transport.shell(f"cat {remote_dir}/envs/*/cargo-shim.log")
    assert shim_log.returncode == 0, shim_log.stderr
    assert "cargo build --release --offline" in shim_log.stdout, shim_log.stdout
    assert remote_values(transport, path) == {"answer": 42}
    script = transport.shell(f"cat {remote_dir}/runs/1-*/*.sh").stdout
    assert f"{remote_dir}/builds/" in script, script
