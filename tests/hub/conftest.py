"""The slurmbook wheel (kernel/pyproject.toml, built with maturin) and a fresh
virtualenv it is installed into, the way a hub administrator installs a
kernel: `pip install slurmbook-*.whl` next to jupyterhub and jupyterlab, and
nothing else.

Both are made once per test session, in pytest's temporary directory:

- `wheel`: `maturin build --profile dev` (the debug build tests/run-all.sh
  made is reused: maturin runs cargo on the same target dir with the same
  features, so only the final link can be new); its build time and size are
  printed and kept in tests/hub/output/wheel.json.
- `hub_env`: `python -m venv` + `pip install -r tests/hub/requirements.txt
  slurmbook-*.whl` (jupyterhub, jupyterlab, the wheel; pip's cache makes a
  repeat quick).
"""
import json
import os
import shutil
import subprocess
import time
import zipfile

import pytest

from hubkit import FEATURES, HERE, OUTPUT, ROOT, clean_env, maturin


@pytest.fixture(scope="session")
def wheel(tmp_path_factory):
    """The path of the freshly built slurmbook wheel."""
    out = tmp_path_factory.mktemp("wheel")
    cmd = [maturin(), "build", "--manifest-path", str(ROOT / "kernel" / "Cargo.toml"),
           "--profile", "dev", "--locked", *FEATURES, "--out", str(out)]
    t0 = time.monotonic()
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=1800,
                       env={**os.environ, "CARGO_TERM_COLOR": "never"})
    seconds = time.monotonic() - t0
    assert r.returncode == 0, f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-5000:]}"
    wheels = sorted(out.glob("slurmbook-*.whl"))
    assert len(wheels) == 1, f"expected one wheel in {out}: {list(out.iterdir())}"
    path = wheels[0]
    with zipfile.ZipFile(path) as z:
        unpacked = sum(i.file_size for i in z.infolist())
    compiled = [line.strip() for line in r.stderr.splitlines() if line.strip().startswith("Compiling ")]
    facts = {"wheel": path.name, "build_seconds": round(seconds, 1), "bytes": path.stat().st_size,
             "unpacked_bytes": unpacked, "compiled": compiled}
    OUTPUT.mkdir(exist_ok=True)
    (OUTPUT / "wheel.json").write_text(json.dumps(facts, indent=2))
    print(f"\nwheel {path.name}: built in {seconds:.1f} s, {path.stat().st_size / 1e6:.1f} MB "
          f"({unpacked / 1e6:.1f} MB unpacked); crates compiled: {compiled or 'none'}")
    return path


@pytest.fixture(scope="session")
def hub_env(tmp_path_factory, wheel):
    """A fresh virtualenv with jupyterhub, jupyterlab and the wheel: its prefix."""
    env_dir = tmp_path_factory.mktemp("hub-env") / "venv"
    python = shutil.which("python3")
    r = subprocess.run([python, "-m", "venv", str(env_dir)], capture_output=True, text=True, timeout=300,
                       env=clean_env())
    assert r.returncode == 0, f"python3 -m venv failed:\n{r.stderr[-2000:]}"
    pip = [str(env_dir / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    t0 = time.monotonic()
    r = subprocess.run([*pip, "-r", str(HERE / "requirements.txt"), str(wheel)],
                       capture_output=True, text=True, timeout=900, env=clean_env())
    assert r.returncode == 0, f"pip install into {env_dir} failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    print(f"\nhub environment {env_dir}: pip install took {time.monotonic() - t0:.1f} s")
    return env_dir
