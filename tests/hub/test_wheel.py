"""The slurmbook wheel (kernel/pyproject.toml, maturin `bindings = "bin"`):
it carries the binary as a script and the kernelspec as data files, so that
`pip install slurmbook-*.whl` into a fresh virtualenv is the whole install."""
import json
import pathlib
import subprocess
import zipfile

import pytest

from hubkit import ROOT, clean_env

pytestmark = pytest.mark.timeout(1800)  # a cold wheel build compiles the workspace

SPEC_FILES = ["kernel.json", "logo-32x32.png", "logo-64x64.png", "logo-svg.svg"]


def cargo_version():
    for line in (ROOT / "Cargo.toml").read_text().splitlines():
        if line.startswith("version = "):
            return line.split('"')[1]
    raise AssertionError("no version in Cargo.toml")


def test_the_wheel_carries_the_binary_and_the_kernelspec(wheel):
    version = cargo_version()
    assert wheel.name == f"slurmbook-{version}-py3-none-linux_x86_64.whl", wheel.name
    data = f"slurmbook-{version}.data"
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        script = z.getinfo(f"{data}/scripts/slurmbook")
        assert (script.external_attr >> 16) & 0o111, "the slurmbook script is not executable"
        assert script.file_size > 1_000_000, script.file_size
        spec_dir = f"{data}/data/share/jupyter/kernels/slurmbook"
        shipped = sorted(n.rsplit("/", 1)[1] for n in names if n.startswith(spec_dir + "/"))
        assert shipped == sorted(SPEC_FILES), shipped
        for name in SPEC_FILES:
            assert z.read(f"{spec_dir}/{name}") == (ROOT / "kernelspec" / name).read_bytes(), name
        spec = json.loads(z.read(f"{spec_dir}/kernel.json"))
        metadata = z.read(f"slurmbook-{version}.dist-info/METADATA").decode()
    # argv[0] is the wheel's script, found on PATH (the environment's bin/).
    assert spec["argv"] == ["slurmbook", "kernel", "--connection-file", "{connection_file}"], spec
    assert spec["display_name"] == "Rust (slurmbook)"
    assert "Name: slurmbook\n" in metadata and f"Version: {version}\n" in metadata, metadata[:500]


def _jupyter(hub_env, tmp_path, *args, **extra_env):
    """`jupyter ARGS` of the hub environment, with a private (empty) user data dir."""
    env = clean_env(PATH=f"{hub_env / 'bin'}:/usr/bin:/bin", JUPYTER_DATA_DIR=str(tmp_path / "user-data"),
                    JUPYTER_CONFIG_DIR=str(tmp_path / "user-config"), **extra_env)
    r = subprocess.run([str(hub_env / "bin" / "jupyter"), *args], capture_output=True, text=True,
                       timeout=120, env=env)
    assert r.returncode == 0, f"jupyter {' '.join(args)} failed:\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}"
    return r.stdout


def test_pip_install_is_the_whole_install(hub_env, tmp_path):
    # The script is the environment's bin/slurmbook, and Jupyter lists the
    # kernelspec from the environment's share/jupyter, with no other step.
    assert (hub_env / "bin" / "slurmbook").is_file()
    listing = _jupyter(hub_env, tmp_path, "kernelspec", "list")
    assert "slurmbook" in listing, listing
    specs = json.loads(_jupyter(hub_env, tmp_path, "kernelspec", "list", "--json"))["kernelspecs"]
    assert pathlib.Path(specs["slurmbook"]["resource_dir"]) == hub_env / "share/jupyter/kernels/slurmbook", specs
    assert specs["slurmbook"]["spec"]["argv"][0] == "slurmbook"

    # The kernel starts from that kernelspec (argv[0] found on PATH) and answers.
    probe = (
        "import json, os, jupyter_client.manager\n"
        "km, kc = jupyter_client.manager.start_new_kernel(kernel_name='slurmbook', startup_timeout=60)\n"
        "try:\n"
        "    info = kc.kernel_info(reply=True, timeout=30)['content']\n"
        "    exe = os.readlink(f'/proc/{km.provisioner.process.pid}/exe')\n"
        "    print(json.dumps({'implementation': info['implementation'], 'exe': exe,\n"
        "                      'language': info['language_info']['name'], 'argv': km.kernel_spec.argv}))\n"
        "finally:\n"
        "    kc.stop_channels(); km.shutdown_kernel(now=True)\n"
    )
    env = clean_env(PATH=f"{hub_env / 'bin'}:/usr/bin:/bin", JUPYTER_DATA_DIR=str(tmp_path / "user-data"),
                    JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"))
    r = subprocess.run([str(hub_env / "bin" / "python"), "-c", probe], capture_output=True, text=True,
                       timeout=180, env=env, cwd=tmp_path)
    assert r.returncode == 0, f"the wheel's kernel did not start:\n{r.stdout[-2000:]}\n{r.stderr[-3000:]}"
    facts = json.loads(r.stdout.strip().splitlines()[-1])
    assert facts["implementation"] == "slurmbook" and facts["language"] == "Rust", facts
    assert facts["argv"][0] == "slurmbook", facts
    assert facts["exe"] == str(hub_env / "bin" / "slurmbook"), facts


def test_install_with_a_prefix_is_found_by_jupyter(hub_env, tmp_path):
    # What `slurmbook install --prefix /usr/local` does, into a stand-in prefix
    # that Jupyter searches (JUPYTER_PATH, as /usr/local/share/jupyter is).
    prefix = tmp_path / "usr-local"
    r = subprocess.run([str(hub_env / "bin" / "slurmbook"), "install", "--prefix", str(prefix)],
                       capture_output=True, text=True, timeout=60, env=clean_env())
    assert r.returncode == 0, r.stdout + r.stderr
    kernel_dir = prefix / "share/jupyter/kernels/slurmbook"
    assert str(kernel_dir) in r.stdout, r.stdout
    spec = json.loads((kernel_dir / "kernel.json").read_text())
    assert spec["argv"][0] == str(hub_env / "bin" / "slurmbook"), spec
    for name in SPEC_FILES[1:]:
        assert (kernel_dir / name).read_bytes() == (ROOT / "kernelspec" / name).read_bytes(), name
    specs = json.loads(_jupyter(hub_env, tmp_path, "kernelspec", "list", "--json",
                                JUPYTER_PATH=str(prefix / "share/jupyter")))["kernelspecs"]
    assert pathlib.Path(specs["slurmbook"]["resource_dir"]) == kernel_dir, specs
