"""The job environment on the loopback cluster (tests/cluster): building the
job binary on the cluster from vendored sources (`build = "remote"`)."""
import re
import subprocess

from nbrun import ROOT, copy_notebook, db_rows
from test_slurm_notebook import facts  # noqa: F401  (fixture)

BINARY = ROOT / "target" / "debug" / "slurmbook"


def remote_shell(facts, script):
    ssh = ["ssh", "-F", facts["ssh_config"], facts["host"]]
    return subprocess.run(ssh + [script], capture_output=True, text=True, timeout=120)


def test_build_remote_builds_the_bundle_on_the_cluster_from_vendored_sources(tmp_path, facts):
    remote_dir = f"{facts['scratch']}/remote-build-{tmp_path.name}"
    (tmp_path / "slurmbook.toml").write_text(
        'profile = "cluster"\n[profiles.cluster]\ntarget = "slurm"\n'
        f'host = "{facts["host"]}"\nssh_config = "{facts["ssh_config"]}"\n'
        f'remote_dir = "{remote_dir}"\npartition = "debug"\ntime = "00:10:00"\nbuild = "remote"\n'
    )
    path = copy_notebook("slurm.ipynb", tmp_path)
    run = subprocess.run([BINARY, "run", path, "--profile", "cluster", "--select", "+total"],
                         capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "4 done, 0 fresh, 0 failed" in run.stdout
    # The job scripts run a binary built on the cluster, not an uploaded one.
    listing = remote_shell(facts, f"ls {remote_dir}/builds/*/ {remote_dir}/builds/work/vendor; "
                                  f"grep -h exec {remote_dir}/runs/*/total.sh")
    assert listing.returncode == 0, listing.stderr
    assert re.search(r"slurmbook_job_[0-9a-f]{16}", listing.stdout), listing.stdout
    assert re.search(r"^serde-1\.\d+\.\d+$", listing.stdout, re.M), listing.stdout
    assert f"{remote_dir}/builds/" in listing.stdout and "/cache/" not in listing.stdout.split("exec")[-1]
    # A forced repeat finds the build: nothing vendored or sent again.
    again = subprocess.run([BINARY, "run", path, "--profile", "cluster", "--select", "+total", "--force"],
                           capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stdout + again.stderr
    m = re.search(r"ssh: \d+ connection\(s\), \d+ remote command\(s\), (\d+) byte\(s\) uploaded", again.stdout)
    assert m and m.group(1) == "0", again.stdout
    assert db_rows(path, "SELECT count(*) FROM materializations WHERE status = 'ok'") == [(8,)]
